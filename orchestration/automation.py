"""Declarative refresh: which assets Dagster rebuilds by itself, and the sensor that evaluates it.

    code_sources (observed every 15 min: a fingerprint of the recipe's source files)
        -> raw_code -> exact_dedup -> ... -> code_mix        eager: rebuilt when an input changed
    web_pages -> recall_round_1..N -> code_web_pages         eager
    tokenizer, token_shards, checkpoint, eval_*              no condition: never started by automation

The data assets (groups `data` and `web`) carry `AutomationCondition.eager()`: requested when a
dependency has a newer materialization (or, for `raw_code`, a new observed data version of the
sources), never while a dependency is missing or in progress, never twice for one update. A change
in one branch requests that branch's downstream data assets and nothing else. Training and
evaluation carry no condition on purpose: a CPU-hour (or GPU-day) run is started deliberately,
from the UI or the weekly schedule's job, not by a changed file.

`data_automation` evaluates these conditions; like the schedule it is off until switched on in the
UI (Automation tab). The asset pages show each condition and the sensor's evaluations.
"""

from __future__ import annotations

import hashlib

import dagster as dg

from contracts.reuse import files_fingerprint
from orchestration.stage import GROUP_DATA, GROUP_WEB
from quality.ingest import SourceError, list_folder

CODE_SOURCES = "code_sources"
GROUP_SOURCES = "sources"
# How often the automation sensor asks for a new look at the source files.
OBSERVE_CRON = "*/15 * * * *"


def data_refresh_condition() -> dg.AutomationCondition:
    """The condition of every data asset: Dagster's eager (see the module docstring)."""
    return dg.AutomationCondition.eager()


def sources_observation_condition() -> dg.AutomationCondition:
    """Observe the sources on every tick of OBSERVE_CRON while the sensor runs."""
    return dg.AutomationCondition.cron_tick_passed(OBSERVE_CRON, "UTC").with_label(
        f"observe every 15 min ({OBSERVE_CRON})"
    )


def sources_fingerprint(recipe) -> tuple[str, int, dict[str, int]]:
    """A data version for the recipe's code sources, the number of files it covers, and that
    number per source.

    Folder sources: (relative path, size, mtime) of every file their globs select, so a file
    outside the globs changes nothing. File sources (JSONL, Parquet): size and mtime. A folder that
    is missing or unreadable is an error (the observation fails, visibly), not a new version.
    """
    digest, by_source = hashlib.sha256(), {}
    for source in recipe.sources:
        if source.kind == "folder":
            try:
                listed = list_folder(source)
            except SourceError as error:
                raise dg.Failure(description=f"code_sources: {error}") from error
            for item in listed:
                digest.update(f"{source.name}\0{item.relpath}\0{item.size}\0{item.mtime}\n".encode())
            by_source[source.name] = len(listed)
        else:
            digest.update(f"{source.name}\0{files_fingerprint([source.path])}\n".encode())
            by_source[source.name] = 1
    return digest.hexdigest()[:24], sum(by_source.values()), by_source


data_automation_sensor = dg.AutomationConditionSensorDefinition(
    "data_automation",
    target=dg.AssetSelection.groups(GROUP_DATA, GROUP_WEB) | dg.AssetSelection.assets(CODE_SOURCES),
    default_status=dg.DefaultSensorStatus.STOPPED,
    minimum_interval_seconds=60,
    description=(
        "Declarative refresh of the data assets: observes the code sources every 15 minutes and "
        "rebuilds exactly the data assets downstream of what changed (eager). Training and "
        "evaluation are never started by it."
    ),
)
