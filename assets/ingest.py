"""`raw_code`: the recipe's code sources as document rows (see `quality.ingest` for the rules)."""

import dagster as dg

from assets._stage import GROUP_DATA, OWNER, as_json, language_breakdown, markdown_table, stage_result
from orchestration.checks import stage_checks
from orchestration.resources import (
    DuckDBResource,
    MLflowResource,
    RecipeResource,
    SparkResource,
    StorageResource,
)
from quality.ingest import STAGE, ingest_sources
from quality.storage import write_stage


@dg.asset(
    name=STAGE,
    group_name=GROUP_DATA,
    kinds={"spark", "parquet"},
    owners=[OWNER],
    description=(
        "Every file of the recipe's code sources (folders, JSONL, Parquet) as a document row with "
        "language, size, SHA-256 and repository metadata. Oversized, binary, undecodable, empty and "
        "unknown-extension files are rejected with a reason into data/rejected/raw_code."
    ),
)
def raw_code(
    context: dg.AssetExecutionContext,
    recipe: RecipeResource,
    storage: StorageResource,
    spark: SparkResource,
    mlflow: MLflowResource,
    duckdb: DuckDBResource,
) -> dg.MaterializeResult:
    loaded, layout = recipe.load(), storage.layout()
    paths = layout.stage(STAGE)
    session = spark.session(loaded)
    with mlflow.run(context, loaded, layout, sources=",".join(s.name for s in loaded.sources)) as run:
        result = ingest_sources(session, loaded.sources, loaded.ingest)
        try:
            manifest = write_stage(
                result.kept,
                result.rejected,
                paths=paths,
                rows_in=result.rows_in,
                recipe_hash=loaded.hash,
                extra={"rows_in_by_source": result.rows_in_by_source},
            )
        finally:
            result.release()
        context.log.info(
            f"raw_code: {manifest['rows_out']} kept, {manifest['rows_rejected']} rejected of {manifest['rows_in']}"
        )
        with duckdb.connect() as connection:
            languages = language_breakdown(connection, paths)
        return stage_result(
            manifest,
            paths,
            run,
            extra={
                "rows_in_by_source": as_json(result.rows_in_by_source),
                "languages": dg.MetadataValue.md(markdown_table(languages)),
            },
        )


raw_code_checks = stage_checks(STAGE)
