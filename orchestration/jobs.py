"""Jobs, the weekly refresh schedule and the source-folder sensor (both off until switched on)."""

import hashlib

import dagster as dg

from orchestration.resources import RecipeResource
from orchestration.stage import GROUP_DATA, GROUP_WEB
from quality.ingest import SourceError, list_folder

# Everything: what `codecook demo` / `make demo` materializes.
demo_job = dg.define_asset_job(
    "demo", selection=dg.AssetSelection.all(), description="The whole recipe, end to end."
)

# The data assets only (code and web); training and evaluation are started deliberately.
refresh_data_job = dg.define_asset_job(
    "refresh_data",
    selection=dg.AssetSelection.groups(GROUP_DATA, GROUP_WEB),
    description="Re-ingest the sources and rebuild every data stage.",
)

weekly_refresh_schedule = dg.ScheduleDefinition(
    name="weekly_data_refresh",
    job=refresh_data_job,
    cron_schedule="0 3 * * 1",  # Mondays 03:00, when nobody is waiting on the cluster
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Rebuild the data assets from fresh sources once a week.",
)


def folder_fingerprint(recipe) -> tuple[str, int]:
    """A hash over (path, size, mtime) of every selected file of the recipe's folder sources."""
    digest, files = hashlib.sha256(), 0
    for source in recipe.sources:
        if source.kind != "folder":
            continue
        try:
            listed = list_folder(source)
        except SourceError as error:
            digest.update(f"{source.name}:missing:{error}".encode())
            continue
        for item in listed:
            digest.update(f"{source.name}\0{item.relpath}\0{item.size}\0{item.mtime}\n".encode())
        files += len(listed)
    return digest.hexdigest()[:24], files


@dg.sensor(
    name="source_folder_sensor",
    job=refresh_data_job,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Starts a data refresh when a file in a watched source folder is added, removed or changed.",
)
def source_folder_sensor(context: dg.SensorEvaluationContext, recipe: RecipeResource):
    fingerprint, files = folder_fingerprint(recipe.load())
    if context.cursor is None:
        # The first look only records the baseline: an existing folder is not a change.
        context.update_cursor(fingerprint)
        return dg.SkipReason(f"baseline recorded: {files} files")
    if fingerprint == context.cursor:
        return dg.SkipReason(f"no change in {files} files")
    context.update_cursor(fingerprint)
    return dg.RunRequest(run_key=f"sources-{fingerprint}", tags={"codecook/trigger": "source_folder_sensor"})
