"""The Dagster code location: assembles, nothing else.

Every module in `assets/` is collected, with the asset checks it declares, so a new stage is
added by writing its module, not by editing this file.
"""

import dagster as dg

import assets
from orchestration.ablation_job import ablate_job
from orchestration.automation import data_automation_sensor
from orchestration.executor import step_executor
from orchestration.jobs import demo_job, refresh_data_job, source_folder_sensor, weekly_refresh_schedule
from orchestration.resources import default_resources

defs = dg.Definitions(
    assets=dg.load_assets_from_package_module(assets),
    asset_checks=dg.load_asset_checks_from_package_module(assets),
    jobs=[demo_job, refresh_data_job, ablate_job],
    schedules=[weekly_refresh_schedule],
    sensors=[source_folder_sensor, data_automation_sensor],
    resources=default_resources(),
    executor=step_executor,
)
