"""The inputs the recipe reads from outside the storage root, as observable source assets: one per
stage that reads them (`orchestration.automation.WATCHED_SOURCES`: code_sources -> raw_code,
notebook_sources -> notebooks, commit_sources -> git_commits, issue_sources -> gh_issues,
web_sources -> web_pages).

Observing one records a data version (a fingerprint of exactly what its stage reads); its stage
depends on it, so a changed input makes that stage and everything downstream of it eager to
refresh, and only them (see `orchestration.automation`).
"""

import dagster as dg

from assets._stage import OWNER
from orchestration.automation import (
    GROUP_SOURCES,
    WATCHED_SOURCES,
    WatchedSource,
    sources_observation_condition,
)
from orchestration.resources import RecipeResource

SELECTS_FILES = "every_source_selects_files"


def observable_source(watched: WatchedSource) -> dg.AssetsDefinition:
    """The observable source asset of `watched`, with a check that no input selects nothing."""

    @dg.multi_observable_source_asset(
        name=f"observe_{watched.key}",
        specs=[
            dg.AssetSpec(
                watched.key,
                group_name=GROUP_SOURCES,
                owners=[OWNER],
                kinds={watched.kind},
                description=(
                    f"{watched.description} A new data version makes {watched.stage} and the data "
                    "assets downstream of it refresh while the data_automation sensor is on."
                ),
                automation_condition=sources_observation_condition(),
            )
        ],
        check_specs=[
            dg.AssetCheckSpec(
                SELECTS_FILES,
                asset=watched.key,
                description="Every configured input selects something (a glob typo selects nothing).",
            )
        ],
    )
    def observe(recipe: RecipeResource):
        found = watched.fingerprint(recipe.load())
        yield dg.ObserveResult(
            asset_key=watched.key,
            data_version=dg.DataVersion(found.version),
            metadata={
                "units": dg.MetadataValue.int(sum(found.by_input.values())),
                "inputs": dg.MetadataValue.md(
                    "\n".join(f"- `{name}`: {count}" for name, count in found.by_input.items()) or "_none_"
                ),
            },
        )
        empty = sorted(name for name, count in found.by_input.items() if count == 0)
        yield dg.AssetCheckResult(
            asset_key=watched.key,
            check_name=SELECTS_FILES,
            passed=not empty,
            metadata={"inputs_without_files": ", ".join(empty) or "none", **found.by_input},
        )

    return observe


observed_sources = [observable_source(watched) for watched in WATCHED_SOURCES]
