"""`exact_dedup` and `near_dedup`: thin adapters over `quality.dedup` (see its engine for the rules)."""

from typing import Any

import dagster as dg

from assets._stage import GROUP_DATA, OWNER, as_json, figure_metadata, markdown_table, stage_result
from orchestration.checks import stage_checks
from orchestration.resources import (
    DuckDBResource,
    MLflowResource,
    RecipeResource,
    SparkResource,
    StorageResource,
)
from quality.dedup import report
from quality.dedup.config import DedupConfig, LSHParams
from quality.dedup.engine import EXACT_STAGE, NEAR_STAGE, DedupResult, exact_dedup, near_dedup
from quality.expectations import DOCUMENT_TYPES
from quality.ingest import STAGE as RAW_CODE
from quality.storage import StageNotMaterialized, StorageLayout, read_manifest, read_stage, write_stage

REASONS = {EXACT_STAGE: "exact_duplicate", NEAR_STAGE: "near_duplicate"}


def _cluster_plot(histogram: list[dict[str, Any]], stage: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.2))
    labels = [row["size"] for row in histogram]
    axis.bar(labels, [row["clusters"] for row in histogram], color="#4c72b0")
    axis.set_yscale("log")
    axis.set_xlabel("documents per cluster")
    axis.set_ylabel("clusters (log scale)")
    axis.set_title(f"{stage}: cluster sizes")
    for index, row in enumerate(histogram):
        axis.annotate(str(row["clusters"]), (index, row["clusters"]), ha="center", va="bottom", fontsize=8)
    return figure


def _s_curve_plot(lsh: LSHParams):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    grid = np.linspace(0, 1, 201)
    figure, axis = plt.subplots(figsize=(6, 3.6))
    axis.plot(grid, lsh.probability(grid), label=f"{lsh.num_bands} bands x {lsh.rows_per_band} rows")
    axis.axvline(lsh.threshold, color="grey", linestyle="--", label=f"threshold {lsh.threshold}")
    axis.axvline(
        lsh.s_curve_midpoint,
        color="#dd8452",
        linestyle=":",
        label=f"(1/b)^(1/r) = {lsh.s_curve_midpoint:.3f}",
    )
    axis.set_xlabel("Jaccard similarity of a pair")
    axis.set_ylabel("P(pair becomes a candidate)")
    axis.set_title(f"MinHash LSH S-curve ({lsh.num_perm} permutations)")
    axis.legend(loc="lower right", fontsize=8)
    axis.grid(alpha=0.3)
    return figure


def _run_stage(
    context: dg.AssetExecutionContext,
    *,
    stage: str,
    upstream: str,
    engine,
    recipe: RecipeResource,
    storage: StorageResource,
    spark: SparkResource,
    mlflow: MLflowResource,
    duckdb: DuckDBResource,
) -> dg.MaterializeResult:
    loaded, layout = recipe.load(), storage.layout()
    config = loaded.section("dedup", DedupConfig)
    paths = layout.stage(stage)
    session = spark.session(loaded)
    with mlflow.run(context, loaded, layout, **config.as_params()) as run:
        result: DedupResult = engine(
            read_stage(session, layout.stage(upstream)), config, log=context.log.info
        )
        try:
            manifest = write_stage(
                result.kept,
                result.rejected,
                paths=paths,
                rows_in=result.rows_in,
                recipe_hash=loaded.hash,
                extra={"dedup": result.facts},
            )
        finally:
            result.release()
        extra = _stage_metadata(layout, stage, duckdb, result.facts, config)
        return stage_result(manifest, paths, run, extra=extra)


def _stage_metadata(
    layout: StorageLayout, stage: str, duckdb: DuckDBResource, facts: dict[str, Any], config: DedupConfig
) -> dict[str, Any]:
    import mlflow

    paths, reason = layout.stage(stage), REASONS[stage]
    with duckdb.connect() as connection:
        by_language = report.duplicate_rate_by_language(connection, paths, reason)
        histogram = report.size_histogram(report.cluster_sizes(connection, paths, reason))
        largest = report.largest_clusters(connection, paths, reason)
    rows_in = sum(row["rows_in"] for row in by_language)
    removed = sum(row["duplicates"] for row in by_language)
    mlflow.log_metric(f"{stage}.duplicate_rate", removed / rows_in if rows_in else 0.0)
    mlflow.log_dict(
        {"by_language": by_language, "histogram": histogram, "largest": largest, "facts": facts},
        f"{stage}/report.json",
    )
    metadata: dict[str, Any] = {
        "duplicate_rate": dg.MetadataValue.float(round(removed / rows_in, 4) if rows_in else 0.0),
        "duplicate_rate_by_language": dg.MetadataValue.md(markdown_table(by_language)),
        "cluster_size_histogram": dg.MetadataValue.md(markdown_table(histogram)),
        "cluster_size_plot": figure_metadata(_cluster_plot(histogram, stage), f"{stage}/cluster_sizes.png"),
        "largest_clusters": dg.MetadataValue.md(markdown_table(largest)),
        "dedup_facts": as_json({k: v for k, v in facts.items() if k != "s_curve"}),
    }
    if stage == NEAR_STAGE:
        lsh = config.lsh()
        mlflow.log_metrics(
            {
                "near.clusters": facts["near_clusters"],
                "near.largest_cluster": facts["largest_cluster"],
                "near.capped_buckets": facts["capped_buckets"],
                "near.component_rounds": facts["component_rounds"],
            }
        )
        metadata.update(
            lsh=dg.MetadataValue.text(lsh.explain()),
            s_curve=dg.MetadataValue.md(
                markdown_table(
                    [{"jaccard": j, "p_candidate": p} for j, p in facts["s_curve"] if round(j * 20) % 2 == 0]
                )
            ),
            s_curve_plot=figure_metadata(_s_curve_plot(lsh), "near_dedup/s_curve.png"),
            capped_buckets=dg.MetadataValue.md(
                f"{facts['capped_buckets']} bucket(s) above bucket_cap={facts['bucket_cap']} "
                f"({facts['capped_bucket_members']} members; largest bucket {facts['largest_bucket']}). "
                f"Cap applies to: {facts['bucket_cap_applies']}."
            ),
        )
    return metadata


@dg.asset(
    name=EXACT_STAGE,
    deps=[RAW_CODE],
    group_name=GROUP_DATA,
    kinds={"spark", "parquet"},
    owners=[OWNER],
    description=(
        "raw_code with byte-identical files removed: rows sharing the SHA-256 of their content keep "
        "one copy, chosen by most stars, then newest commit date, then a permissive licence, then the "
        "content hash. Removed copies go to data/rejected/exact_dedup as `exact_duplicate` with the "
        "sha256 as cluster_id and the kept doc_id."
    ),
)
def exact_dedup_asset(
    context: dg.AssetExecutionContext,
    recipe: RecipeResource,
    storage: StorageResource,
    spark: SparkResource,
    mlflow: MLflowResource,
    duckdb: DuckDBResource,
) -> dg.MaterializeResult:
    return _run_stage(
        context,
        stage=EXACT_STAGE,
        upstream=RAW_CODE,
        engine=exact_dedup,
        recipe=recipe,
        storage=storage,
        spark=spark,
        mlflow=mlflow,
        duckdb=duckdb,
    )


@dg.asset(
    name=NEAR_STAGE,
    deps=[EXACT_STAGE],
    group_name=GROUP_DATA,
    kinds={"spark", "parquet"},
    owners=[OWNER],
    description=(
        "exact_dedup with near-duplicate files removed: MinHash over token 5-grams, LSH bands, "
        "connected components on Spark, one file kept per component by the same policy as exact "
        "dedup. Every row gets a cluster_id (the smallest doc_id of its component); removed files "
        "go to data/rejected/near_dedup as `near_duplicate` with the doc_id kept in their place."
    ),
)
def near_dedup_asset(
    context: dg.AssetExecutionContext,
    recipe: RecipeResource,
    storage: StorageResource,
    spark: SparkResource,
    mlflow: MLflowResource,
    duckdb: DuckDBResource,
) -> dg.MaterializeResult:
    return _run_stage(
        context,
        stage=NEAR_STAGE,
        upstream=EXACT_STAGE,
        engine=near_dedup,
        recipe=recipe,
        storage=storage,
        spark=spark,
        mlflow=mlflow,
        duckdb=duckdb,
    )


def _check(paths, run) -> dg.AssetCheckResult:
    """A blocking check's result from `(passed, facts)`; a missing output fails it with the reason."""
    try:
        read_manifest(paths)  # raises when the stage has no complete output
        passed, facts = run()
    except StageNotMaterialized as missing:
        return dg.AssetCheckResult(
            passed=False, severity=dg.AssetCheckSeverity.ERROR, metadata={"error": str(missing)}
        )
    return dg.AssetCheckResult(passed=bool(passed), severity=dg.AssetCheckSeverity.ERROR, metadata=facts)


def _dedup_checks(stage: str) -> list[dg.AssetChecksDefinition]:
    reason = REASONS[stage]

    @dg.asset_check(
        asset=stage,
        name="unique_sha256",
        blocking=True,
        description="No two kept rows share a SHA-256 of their content (and none lacks one).",
    )
    def unique_sha256(storage: StorageResource, duckdb: DuckDBResource) -> dg.AssetCheckResult:
        paths = storage.layout().stage(stage)
        with duckdb.connect() as connection:
            return _check(paths, lambda: report.shared_sha256(connection, paths))

    @dg.asset_check(
        asset=stage,
        name="kept_twin_present",
        blocking=True,
        description=f"Every `{reason}` reject names a kept_doc_id present in the kept rows.",
    )
    def kept_twin_present(storage: StorageResource, duckdb: DuckDBResource) -> dg.AssetCheckResult:
        paths = storage.layout().stage(stage)
        with duckdb.connect() as connection:
            return _check(paths, lambda: report.kept_twins_present(connection, paths, reason))

    return [unique_sha256, kept_twin_present]


exact_dedup_checks = [*stage_checks(EXACT_STAGE), *_dedup_checks(EXACT_STAGE)]
near_dedup_checks = [
    *stage_checks(NEAR_STAGE, required_columns={**DOCUMENT_TYPES, "cluster_id": "VARCHAR"}),
    *_dedup_checks(NEAR_STAGE),
]
