"""Asset checks every document stage declares instead of copying.

    conservation  (blocking)  rows in = kept + rejected, recounted from the Parquet files
    schema        (blocking)  document columns and types; doc_id never null, never repeated;
                              every reject row has a reason
    expectations  (blocking)  a Great Expectations suite on a reproducible sample

A declared stage (orchestration.stage.Stage) gets these from `assets._stage.stage_asset_checks`,
plus `declared_checks`: the blocking checks its declaration names (`Stage.checks`), each a
Dagster-free function of the stage's paths, DuckDB, and Spark and config when it asks for them.
"""

from collections.abc import Callable
from typing import Any

import dagster as dg

from orchestration.resources import DuckDBResource, RecipeResource, SparkResource, StorageResource
from orchestration.stage import Check, CheckRun, Stage
from quality import expectations
from quality.storage import StageNotMaterialized, read_manifest


def _result(run: Callable[[], tuple[bool, dict]], severity: dg.AssetCheckSeverity) -> dg.AssetCheckResult:
    try:
        passed, facts = run()
    except StageNotMaterialized as missing:
        return dg.AssetCheckResult(passed=False, severity=severity, metadata={"error": str(missing)})
    return dg.AssetCheckResult(passed=bool(passed), severity=severity, metadata=facts)


def stage_checks(
    stage: str,
    *,
    required_columns: dict[str, str] | None = None,
    key: str = "doc_id",
    with_expectations: bool = True,
) -> list[dg.AssetChecksDefinition]:
    """The standard checks for the document stage `stage` (its asset key and storage name)."""

    @dg.asset_check(
        asset=stage,
        name="conservation",
        blocking=True,
        description="Rows in = kept + rejected, counted in the written Parquet files.",
    )
    def conservation_check(storage: StorageResource, duckdb: DuckDBResource) -> dg.AssetCheckResult:
        paths = storage.layout().stage(stage)
        with duckdb.connect() as connection:
            return _result(lambda: expectations.conservation(connection, paths), dg.AssetCheckSeverity.ERROR)

    @dg.asset_check(
        asset=stage,
        name="schema",
        blocking=True,
        description="Document columns and types present; key unique and non-null; every reject has a reason.",
    )
    def schema_check(storage: StorageResource, duckdb: DuckDBResource) -> dg.AssetCheckResult:
        paths = storage.layout().stage(stage)

        def both() -> tuple[bool, dict]:
            with duckdb.connect() as connection:
                ok_docs, facts = expectations.schema_conformance(connection, paths, required_columns, key)
                ok_rejects, reject_facts = expectations.rejected_schema_conformance(connection, paths)
            return ok_docs and ok_rejects, {**facts, **reject_facts}

        return _result(both, dg.AssetCheckSeverity.ERROR)

    checks = [conservation_check, schema_check]
    if with_expectations:

        @dg.asset_check(
            asset=stage,
            name="expectations",
            blocking=True,
            description="Great Expectations suite on a reproducible sample of the output.",
        )
        def expectations_check(storage: StorageResource, duckdb: DuckDBResource) -> dg.AssetCheckResult:
            paths = storage.layout().stage(stage)
            with duckdb.connect() as connection:
                return _result(
                    lambda: expectations.great_expectations_on_sample(connection, paths),
                    dg.AssetCheckSeverity.ERROR,
                )

        checks.append(expectations_check)
    return checks


def declared_checks(
    stage: Stage, metadata_value: Callable[[Any], Any] = lambda value: value
) -> list[dg.AssetChecksDefinition]:
    """Blocking asset checks from `stage.checks`; a stage without complete output fails them."""
    return [_declared_check(stage, check, metadata_value) for check in stage.checks]


def _declared_check(
    stage: Stage, check: Check, metadata_value: Callable[[Any], Any]
) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=stage.name, name=check.name, blocking=True, description=check.description)
    def declared_check(
        recipe: RecipeResource, storage: StorageResource, spark: SparkResource, duckdb: DuckDBResource
    ) -> dg.AssetCheckResult:
        paths = storage.layout().stage(stage.name)

        def run() -> tuple[bool, dict]:
            read_manifest(paths)  # raises when the stage has no complete output
            session = config = None
            if check.spark:
                loaded = recipe.load()
                session = spark.session(loaded)
                config = loaded.section(stage.section, stage.config) if stage.section else None
            with duckdb.connect() as connection:
                passed, facts = check.run(CheckRun(paths, connection, session, config))
            return passed, {name: metadata_value(value) for name, value in facts.items()}

        return _result(run, dg.AssetCheckSeverity.ERROR)

    return declared_check
