"""`code_sources`: the recipe's code source files as an observable source asset.

Observing it records a data version (a fingerprint of the selected files' paths, sizes and mtimes,
`orchestration.automation.sources_fingerprint`); `raw_code` depends on it, so a changed file makes
`raw_code` and everything downstream of it eager to refresh (see `orchestration.automation`).
"""

import dagster as dg

from assets._stage import OWNER
from orchestration.automation import (
    CODE_SOURCES,
    GROUP_SOURCES,
    sources_fingerprint,
    sources_observation_condition,
)
from orchestration.resources import RecipeResource

SELECTS_FILES = "every_source_selects_files"


@dg.multi_observable_source_asset(
    name="observe_code_sources",
    specs=[
        dg.AssetSpec(
            CODE_SOURCES,
            group_name=GROUP_SOURCES,
            owners=[OWNER],
            kinds={"folder"},
            description=(
                "The recipe's code sources (folders and files) that raw_code reads. Its data version is "
                "a fingerprint of every selected file's path, size and mtime; a new version makes the "
                "data assets downstream refresh while the data_automation sensor is on."
            ),
            automation_condition=sources_observation_condition(),
        )
    ],
    check_specs=[
        dg.AssetCheckSpec(
            SELECTS_FILES,
            asset=CODE_SOURCES,
            description="Every source selects at least one file (a glob typo selects nothing).",
        )
    ],
)
def code_sources(recipe: RecipeResource):
    loaded = recipe.load()
    version, files, by_source = sources_fingerprint(loaded)
    yield dg.ObserveResult(
        asset_key=CODE_SOURCES,
        data_version=dg.DataVersion(version),
        metadata={
            "files": dg.MetadataValue.int(files),
            "sources": dg.MetadataValue.md(
                "\n".join(
                    f"- `{s.name}` ({s.kind}, {by_source[s.name]} files): `{s.path}`" for s in loaded.sources
                )
            ),
        },
    )
    empty = sorted(name for name, count in by_source.items() if count == 0)
    yield dg.AssetCheckResult(
        asset_key=CODE_SOURCES,
        check_name=SELECTS_FILES,
        passed=not empty,
        metadata={"sources_without_files": ", ".join(empty) or "none", **by_source},
    )
