"""`web_pages`, `recall_round_1..N`, `code_web_pages`: code-related pages recalled from a web pool.

The work lives in `quality.web` (HTML to documents), `quality.recall` (the rounds, the final
cleaning) and `quality.webpool` (the pool and the recipe section). `web_pages` is declared in
`orchestration.stages` (asset and `codecook ingest-web` made from it); the recall rounds and
`code_web_pages` are still hand-written adapters that read the recipe's `web` section, call the
engine, write through the shared stage writer and report to Dagster and MLflow. The number of rounds comes from the recipe (`web.recall.rounds`, default 3) when the
code location loads.
"""

from typing import Any

import dagster as dg

from assets._stage import (
    GROUP_WEB,
    OWNER,
    as_json,
    figure_metadata,
    markdown_table,
    stage_asset,
    stage_asset_checks,
    stage_result,
)
from orchestration.checks import stage_checks
from orchestration.resources import (
    DuckDBResource,
    MLflowResource,
    RecipeResource,
    SparkResource,
    StorageResource,
)
from orchestration.stages import WEB_PAGES_STAGE, query_rows
from quality.recall import clean_code_pages, run_round
from quality.recipe import Recipe, RecipeError, load_recipe
from quality.storage import StageNotMaterialized, StorageLayout, read_manifest, read_stage, write_stage
from quality.web import STAGE as WEB_PAGES
from quality.webpool import WebConfig

CODE_WEB_PAGES = "code_web_pages"
DEFAULT_ROUNDS = 3


def web_config(recipe: Recipe) -> WebConfig:
    return recipe.section("web", WebConfig)


def round_stage(number: int) -> str:
    return f"recall_round_{number}"


def recall_workdir(layout: StorageLayout) -> str:
    """Round artifacts (models, seeds, domain tables) beside the stage outputs."""
    return f"{layout.data_root}/web_recall"


def configured_rounds() -> int:
    """N from the recipe the code location runs with; the default when it cannot be read."""
    try:
        return web_config(load_recipe()).recall.rounds
    except (RecipeError, OSError, ValueError):
        return DEFAULT_ROUNDS


ROUNDS = configured_rounds()


# --------------------------------------------------------------------------------------------------


web_pages = stage_asset(WEB_PAGES_STAGE)  # declared in orchestration.stages
web_pages_checks = stage_asset_checks(WEB_PAGES_STAGE)


# --------------------------------------------------------------------------------------------------


def score_figure(histogram: list[dict[str, Any]], threshold: float, round_number: int):
    """Stacked histogram of P(code) per label class, with the threshold marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.6))
    lows = [b["low"] for b in histogram]
    width = (histogram[0]["high"] - histogram[0]["low"]) if histogram else 0.05
    bottom = [0] * len(histogram)
    for label, colour in (("code", "#2b8a3e"), ("other", "#c92a2a"), ("unlabelled", "#adb5bd")):
        values = [b[label] for b in histogram]
        axis.bar(lows, values, width=width, bottom=bottom, align="edge", color=colour, label=label)
        bottom = [a + v for a, v in zip(bottom, values, strict=True)]
    axis.axvline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    axis.set_xlabel("P(code) from the round's fastText classifier")
    axis.set_ylabel("pages")
    axis.set_title(f"recall round {round_number}: score distribution by measurement label")
    axis.legend(fontsize=8)
    return figure


def _round_asset(number: int) -> dg.AssetsDefinition:
    stage = round_stage(number)
    deps = [dg.AssetKey(WEB_PAGES)] + ([dg.AssetKey(round_stage(number - 1))] if number > 1 else [])

    @dg.asset(
        name=stage,
        group_name=GROUP_WEB,
        kinds={"spark", "fasttext", "parquet"},
        owners=[OWNER],
        deps=deps,
        description=(
            f"Recall round {number}: fastText trained on the driver on "
            + ("the seed URL patterns' pages" if number == 1 else f"round {number - 1}'s grown seeds")
            + " vs random pool pages, every pool page scored in Spark, pages over the threshold kept; "
            "domains with >10% of pages recalled are code-related and their code URL patterns' "
            "unrecalled pages seed the next round. Precision/recall on held-out labelled pages, "
            "score histogram and domain table in metadata and MLflow; pages below the threshold are "
            f"reject rows `below_threshold` in data/rejected/{stage}."
        ),
    )
    def recall_round(
        context: dg.AssetExecutionContext,
        recipe: RecipeResource,
        storage: StorageResource,
        spark: SparkResource,
        mlflow: MLflowResource,
    ) -> dg.MaterializeResult:
        loaded, layout = recipe.load(), storage.layout()
        config = web_config(loaded).recall
        session = spark.session(loaded)
        pool = read_stage(session, layout.stage(WEB_PAGES))
        previous = read_stage(session, layout.stage(round_stage(number - 1))) if number > 1 else None
        paths = layout.stage(stage)
        with mlflow.run(
            context,
            loaded,
            layout,
            round=number,
            threshold=config.threshold,
            domain_threshold=config.domain_threshold,
            seed=config.seed,
            seed_url_patterns=",".join(config.seed_url_patterns),
        ) as run:
            result = run_round(
                session,
                pool,
                round_number=number,
                config=config,
                workdir=recall_workdir(layout),
                previous_recalled=previous.select("doc_id") if previous is not None else None,
                stage=stage,
            )
            try:
                manifest = write_stage(
                    result.kept,
                    result.rejected,
                    paths=paths,
                    rows_in=result.rows_in,
                    recipe_hash=loaded.hash,
                    extra={
                        "recall": result.metrics,
                        "new_domains": result.new_domains,
                        "artifacts": result.artifacts,
                    },
                )
            finally:
                result.release()
            import mlflow as mlflow_client

            numeric = {
                k: float(v) for k, v in result.metrics.items() if isinstance(v, int | float) and v is not None
            }
            mlflow_client.log_metrics({f"recall.{k}": v for k, v in numeric.items()})
            mlflow_client.log_dict({"domains": result.domains}, f"{stage}/domains.json")
            mlflow_client.log_dict({"patterns": result.patterns}, f"{stage}/patterns.json")
            mlflow_client.log_dict({"bins": result.histogram}, f"{stage}/score_histogram.json")
            figure = score_figure(result.histogram, config.threshold, number)
            plot = figure_metadata(figure, f"{stage}/score_histogram.png")
            metrics = result.metrics
            context.log.info(
                f"{stage}: {metrics['pages_recalled']} of {metrics['pool_pages']} pages recalled; held-out "
                f"precision {metrics['precision']}, recall {metrics['recall']}; new domains {result.new_domains}"
            )
            return stage_result(
                manifest,
                paths,
                run,
                extra={
                    "pages_recalled": dg.MetadataValue.int(metrics["pages_recalled"]),
                    "precision": dg.MetadataValue.float(float(metrics["precision"] or 0.0)),
                    "recall": dg.MetadataValue.float(float(metrics["recall"] or 0.0)),
                    "f1": dg.MetadataValue.float(float(metrics["f1"] or 0.0)),
                    "heldout_labelled_pages": dg.MetadataValue.int(metrics["heldout_labelled"]),
                    "pages_per_second_scored": dg.MetadataValue.float(
                        float(metrics["pages_per_second_scored"] or 0.0)
                    ),
                    "seeds": dg.MetadataValue.int(metrics["seeds"]),
                    "seeds_added_for_next_round": dg.MetadataValue.int(metrics["seeds_added_for_next_round"]),
                    "new_domains": dg.MetadataValue.json(result.new_domains),
                    "code_domains": dg.MetadataValue.json(result.code_domains),
                    "domains": dg.MetadataValue.md(
                        markdown_table(
                            result.domains[:25],
                            ["domain", "pages", "recalled", "share", "code_related", "new"],
                        )
                    ),
                    "code_url_patterns": dg.MetadataValue.md(
                        markdown_table([p for p in result.patterns if p["code_pattern"]][:25])
                    ),
                    "score_histogram": plot,
                    "round_metrics": as_json(metrics),
                },
            )

    return recall_round


recall_round_assets = [_round_asset(n) for n in range(1, ROUNDS + 1)]
recall_round_checks = [check for n in range(1, ROUNDS + 1) for check in stage_checks(round_stage(n))]


# --------------------------------------------------------------------------------------------------


@dg.asset(
    name=CODE_WEB_PAGES,
    group_name=GROUP_WEB,
    kinds={"spark", "parquet"},
    owners=[OWNER],
    deps=[dg.AssetKey(round_stage(ROUNDS))],
    description=(
        f"The pages the last recall round (round {ROUNDS}) recalled, one copy per content SHA-256 (highest "
        "score wins), judged by the quality filters' `text` profile; these document rows join the code mix "
        "before tokenization. Duplicates and filtered pages are reject rows with the rule's name."
    ),
)
def code_web_pages(
    context: dg.AssetExecutionContext,
    recipe: RecipeResource,
    storage: StorageResource,
    spark: SparkResource,
    mlflow: MLflowResource,
    duckdb: DuckDBResource,
) -> dg.MaterializeResult:
    loaded, layout = recipe.load(), storage.layout()
    config = web_config(loaded).code_pages
    session = spark.session(loaded)
    recalled = read_stage(session, layout.stage(round_stage(ROUNDS)))
    paths = layout.stage(CODE_WEB_PAGES)
    from quality.filters import FilterConfig

    filter_config = (
        loaded.section("quality_filter", FilterConfig) if "quality_filter" in loaded.document else None
    )
    with mlflow.run(context, loaded, layout, from_round=ROUNDS, exact_dedup=config.exact_dedup) as run:
        result = clean_code_pages(
            recalled,
            stage=CODE_WEB_PAGES,
            exact_dedup=config.exact_dedup,
            text_filters=config.text_filters,
            filter_config=filter_config,
        )
        try:
            manifest = write_stage(
                result.kept,
                result.rejected,
                paths=paths,
                rows_in=result.rows_in,
                recipe_hash=loaded.hash,
                extra={"from_round": ROUNDS, "exact_duplicates": result.duplicates},
            )
        finally:
            result.release()
        with duckdb.connect() as connection:
            domains = query_rows(
                connection,
                "SELECT domain, count(*) AS pages, sum(size_bytes) AS bytes FROM read_parquet(?) "
                "GROUP BY domain ORDER BY pages DESC, domain",
                [f"{paths.data_dir}/*.parquet"],
            )
        context.log.info(f"code_web_pages: {manifest['rows_out']} pages from {manifest['rows_in']} recalled")
        return stage_result(
            manifest,
            paths,
            run,
            extra={
                "exact_duplicates": dg.MetadataValue.int(result.duplicates),
                "domains": dg.MetadataValue.md(markdown_table(domains)),
            },
        )


code_web_pages_checks = stage_checks(CODE_WEB_PAGES)


@dg.asset_check(
    asset=CODE_WEB_PAGES,
    name="unique_content",
    blocking=True,
    description="No two kept pages share a content SHA-256 (the exact dedup held).",
)
def code_web_pages_unique_content(storage: StorageResource, duckdb: DuckDBResource) -> dg.AssetCheckResult:
    paths = storage.layout().stage(CODE_WEB_PAGES)
    try:
        read_manifest(paths)
    except StageNotMaterialized as missing:
        return dg.AssetCheckResult(
            passed=False, severity=dg.AssetCheckSeverity.ERROR, metadata={"error": str(missing)}
        )
    with duckdb.connect() as connection:
        pages, distinct = connection.execute(
            "SELECT count(*), count(DISTINCT sha256) FROM read_parquet(?)", [f"{paths.data_dir}/*.parquet"]
        ).fetchone()
    return dg.AssetCheckResult(
        passed=int(pages) == int(distinct),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"pages": int(pages), "distinct_sha256": int(distinct)},
    )
