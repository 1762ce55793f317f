"""Quality stages after near dedup: signals, filters, PII redaction, decontamination, language mix.

    near_dedup -> quality_signals (side table, by doc_id)
    near_dedup + quality_signals -> filtered_code -> redacted_code -> decontaminated_code -> code_mix

Each asset reads its input, calls the engine in `quality/`, writes through `write_stage`, and
returns metadata; the work and its rules live in the engine modules.
"""

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
from quality import decontaminate, filters, mix, pii, signals
from quality.expectations import DOCUMENT_TYPES
from quality.funnel import build_funnel, plot_funnel
from quality.storage import StageNotMaterialized, read_manifest, read_rejected, read_stage, write_stage

NEAR_DEDUP = "near_dedup"  # written by assets/dedup.py; declared here by key only


def _parallelism(session) -> int:
    try:
        return int(session.sparkContext.defaultParallelism)
    except Exception:  # noqa: BLE001  (Spark Connect has no SparkContext)
        return 8


@dg.asset(
    name=signals.STAGE,
    deps=[NEAR_DEDUP],
    group_name=GROUP_DATA,
    kinds={"spark", "parquet"},
    owners=[OWNER],
    description=(
        "Per-document quality signals of near_dedup's output (line lengths, character shares, "
        "repetition, comments, strings, Python ast counts, HTML visible text...), stored as a side "
        "table keyed by doc_id so that changing a threshold re-runs only filtered_code.\n\n"
        + signals.signal_docs()
    ),
)
def quality_signals(
    context: dg.AssetExecutionContext,
    recipe: RecipeResource,
    storage: StorageResource,
    spark: SparkResource,
    mlflow: MLflowResource,
) -> dg.MaterializeResult:
    loaded, layout = recipe.load(), storage.layout()
    config = loaded.section("quality_signals", signals.SignalConfig)
    upstream, paths = layout.stage(NEAR_DEDUP), layout.stage(signals.STAGE)
    session = spark.session(loaded)
    rows_in = int(read_manifest(upstream)["rows_out"])
    with mlflow.run(
        context, loaded, layout, signals_version=signals.SIGNALS_VERSION, time_budget_s=config.time_budget_s
    ) as run:
        table = signals.compute_signals(
            read_stage(session, upstream),
            config,
            partitions=signals.signal_partitions(rows_in, _parallelism(session)),
        )
        manifest = write_stage(
            table,
            signals.empty_rejects(session),
            paths=paths,
            rows_in=rows_in,
            recipe_hash=loaded.hash,
            extra={"signals_version": signals.SIGNALS_VERSION},
        )
        summary = signals.summarize_signals(read_stage(session, paths))
        import mlflow as mlflow_api

        mlflow_api.log_metrics({f"signals.{k}": v for k, v in summary.items()})
        return stage_result(
            manifest,
            paths,
            run,
            extra={"signals_summary": as_json(summary), "signals_version": signals.SIGNALS_VERSION},
        )


quality_signals_checks = stage_checks(
    signals.STAGE,
    required_columns={"doc_id": "VARCHAR", "lang": "VARCHAR", "size_bytes": "BIGINT", "timed_out": "BOOLEAN"},
    with_expectations=False,
)


@dg.asset(
    name=filters.STAGE,
    deps=[NEAR_DEDUP, signals.STAGE],
    group_name=GROUP_DATA,
    kinds={"spark", "parquet"},
    owners=[OWNER],
    description=(
        "near_dedup's documents judged by the threshold profiles in quality/profiles/*.yaml "
        "(OpenCoder's general and per-language rules, StarCoder's alpha, long-line, XML, HTML and "
        "JSON/YAML rules) applied to the stored quality_signals. Every rejected row names the profile "
        "and every rule that fired with the value seen; OpenCoder's probabilistic drops are seeded by doc_id."
    ),
)
def filtered_code(
    context: dg.AssetExecutionContext,
    recipe: RecipeResource,
    storage: StorageResource,
    spark: SparkResource,
    mlflow: MLflowResource,
) -> dg.MaterializeResult:
    loaded, layout = recipe.load(), storage.layout()
    config = loaded.section("quality_filter", filters.FilterConfig)
    profiles = filters.load_profiles(config)
    upstream, paths = layout.stage(NEAR_DEDUP), layout.stage(filters.STAGE)
    session = spark.session(loaded)
    rows_in = int(read_manifest(upstream)["rows_out"])
    with mlflow.run(
        context, loaded, layout, profiles_fingerprint=profiles.fingerprint(), filter_seed=config.seed
    ) as run:
        kept, rejected = filters.apply_filters(
            read_stage(session, upstream), read_stage(session, layout.stage(signals.STAGE)), profiles
        )
        manifest = write_stage(
            kept,
            rejected,
            paths=paths,
            rows_in=rows_in,
            recipe_hash=loaded.hash,
            extra={"profiles_fingerprint": profiles.fingerprint(), "profile_versions": profiles.versions()},
        )
        hits = filters.rule_hits(read_rejected(session, paths)) if manifest["rows_rejected"] else {}
        import mlflow as mlflow_api

        mlflow_api.log_dict(
            {"rule_hits": hits, "profile_versions": profiles.versions()}, "filtered_code/rule_hits.json"
        )
        return stage_result(
            manifest,
            paths,
            run,
            extra={
                "rule_hits": dg.MetadataValue.md(
                    markdown_table([{"rule": rule, "documents": n} for rule, n in hits.items()])
                ),
                "profiles_fingerprint": profiles.fingerprint(),
                "profile_versions": as_json(profiles.versions()),
            },
        )


filtered_code_checks = stage_checks(filters.STAGE)


@dg.asset(
    name=pii.STAGE,
    deps=[filters.STAGE],
    group_name=GROUP_DATA,
    kinds={"spark", "parquet"},
    owners=[OWNER],
    description=(
        "filtered_code with personal and secret information replaced: emails -> <EMAIL>, public "
        "IPv4/IPv6 -> a synthetic private address of the same family, provider tokens, private keys "
        "and high-entropy secrets -> <KEY>, passwords -> <PASSWORD>. Adds `pii_counts` per document; "
        "sha256 and size_bytes follow the new content. A blocking check rescans the output."
    ),
)
def redacted_code(
    context: dg.AssetExecutionContext,
    recipe: RecipeResource,
    storage: StorageResource,
    spark: SparkResource,
    mlflow: MLflowResource,
) -> dg.MaterializeResult:
    loaded, layout = recipe.load(), storage.layout()
    config = loaded.section("pii", pii.PIIConfig)
    upstream, paths = layout.stage(filters.STAGE), layout.stage(pii.STAGE)
    session = spark.session(loaded)
    rows_in = int(read_manifest(upstream)["rows_out"])
    with mlflow.run(context, loaded, layout, min_secret_entropy=config.min_secret_entropy) as run:
        result = pii.redact_documents(read_stage(session, upstream), config)
        try:
            manifest = write_stage(
                result.kept, result.rejected, paths=paths, rows_in=rows_in, recipe_hash=loaded.hash
            )
        finally:
            result.release()
        counts = pii.count_totals(read_stage(session, paths))
        categories = pii.by_category(counts)
        import mlflow as mlflow_api

        mlflow_api.log_metrics(
            {
                f"pii.{k}": v
                for k, v in {**counts, **{f"category.{c}": n for c, n in categories.items()}}.items()
            }
        )
        return stage_result(
            manifest,
            paths,
            run,
            extra={
                "pii_by_type": dg.MetadataValue.md(
                    markdown_table([{"type": c, "replaced": n} for c, n in sorted(categories.items())])
                ),
                "pii_by_kind": as_json(counts),
                **{f"pii_{c}": dg.MetadataValue.int(n) for c, n in sorted(categories.items())},
            },
        )


@dg.asset_check(
    asset=pii.STAGE,
    name="rescan_finds_nothing",
    blocking=True,
    description="The PII scanner run again over every redacted document finds nothing left to replace.",
)
def redacted_code_rescan(
    recipe: RecipeResource, storage: StorageResource, spark: SparkResource
) -> dg.AssetCheckResult:
    loaded, layout = recipe.load(), storage.layout()
    try:
        documents = read_stage(spark.session(loaded), layout.stage(pii.STAGE))
    except StageNotMaterialized as missing:
        return dg.AssetCheckResult(passed=False, metadata={"error": str(missing)})
    found = pii.rescan(documents, loaded.section("pii", pii.PIIConfig))
    return dg.AssetCheckResult(
        passed=found["findings"] == 0,
        metadata={
            "findings": found["findings"],
            "by_kind": as_json(found["by_kind"]),
            "examples": as_json(found["examples"]),
        },
    )


redacted_code_checks = [
    *stage_checks(pii.STAGE, required_columns={**DOCUMENT_TYPES, "pii_counts": "MAP(VARCHAR, BIGINT)"}),
    redacted_code_rescan,
]


@dg.asset(
    name=decontaminate.STAGE,
    deps=[pii.STAGE],
    group_name=GROUP_DATA,
    kinds={"spark", "parquet"},
    owners=[OWNER],
    description=(
        "redacted_code without files containing HumanEval or MBPP items: case-insensitive exact "
        "substrings of prompts and canonical solutions (Aho-Corasick, BigCode's allowlist of trivial "
        "solutions) and word 13-gram overlap for edited copies. Rejected rows name the items matched."
    ),
)
def decontaminated_code(
    context: dg.AssetExecutionContext,
    recipe: RecipeResource,
    storage: StorageResource,
    spark: SparkResource,
    mlflow: MLflowResource,
) -> dg.MaterializeResult:
    loaded, layout = recipe.load(), storage.layout()
    config = loaded.section("decontamination", decontaminate.DecontaminationConfig)
    upstream, paths = layout.stage(pii.STAGE), layout.stage(decontaminate.STAGE)
    session = spark.session(loaded)
    rows_in = int(read_manifest(upstream)["rows_out"])
    with mlflow.run(
        context,
        loaded,
        layout,
        benchmarks=",".join(config.benchmarks),
        ngram_n=config.ngram_n,
        ngram_min_fraction=config.ngram_min_fraction,
    ) as run:
        result = decontaminate.decontaminate_documents(read_stage(session, upstream), config)
        try:
            manifest = write_stage(
                result.kept,
                result.rejected,
                paths=paths,
                rows_in=rows_in,
                recipe_hash=loaded.hash,
                extra={"benchmark_texts": result.benchmark_texts},
            )
        finally:
            result.release()
        removed: list[dict[str, Any]] = []
        if manifest["rows_rejected"]:
            removed = [
                {"path": r["path"], "reason": r["reason"], "matched": r["detail"][:200]}
                for r in read_rejected(session, paths).orderBy("doc_id").limit(50).collect()
            ]
        return stage_result(
            manifest,
            paths,
            run,
            extra={
                "benchmark_texts": dg.MetadataValue.int(result.benchmark_texts),
                "removed_files": dg.MetadataValue.md(markdown_table(removed)),
            },
        )


decontaminated_code_checks = stage_checks(decontaminate.STAGE)


@dg.asset(
    name=mix.STAGE,
    deps=[decontaminate.STAGE],
    group_name=GROUP_DATA,
    kinds={"spark", "parquet"},
    owners=[OWNER],
    description=(
        "decontaminated_code re-weighted by language: per-language downsampling (OpenCoder's Java and "
        "HTML) and byte caps (StarCoder's JSON/YAML and CSS) scaled by the recipe, decided per file by "
        "a hash of its doc_id. Carries the before/after plot and the whole code funnel."
    ),
)
def code_mix(
    context: dg.AssetExecutionContext,
    recipe: RecipeResource,
    storage: StorageResource,
    spark: SparkResource,
    mlflow: MLflowResource,
    duckdb: DuckDBResource,
) -> dg.MaterializeResult:
    loaded, layout = recipe.load(), storage.layout()
    config = loaded.section("code_mix", mix.MixConfig)
    upstream, paths = layout.stage(decontaminate.STAGE), layout.stage(mix.STAGE)
    session = spark.session(loaded)
    rows_in = int(read_manifest(upstream)["rows_out"])
    with mlflow.run(context, loaded, layout, mix_scale=config.scale, mix_seed=config.seed) as run:
        result = mix.mix_documents(read_stage(session, upstream), config)
        manifest = write_stage(
            result.kept,
            result.rejected,
            paths=paths,
            rows_in=rows_in,
            recipe_hash=loaded.hash,
            extra={"mix_caps_bytes": result.caps, "mix_cutoffs": result.cutoffs},
        )
        after = mix.language_totals(read_stage(session, paths))
        table = mix.mix_table(result.before, after, config.language_targets())
        with duckdb.connect() as connection:
            funnel = build_funnel(layout, connection)
        import mlflow as mlflow_api

        mlflow_api.log_dict({"before": result.before, "after": after}, "code_mix/languages.json")
        mlflow_api.log_text(funnel.markdown(), "funnel/funnel.md")
        mlflow_api.log_dict({"stages": funnel.stages, "reasons": funnel.reasons}, "funnel/funnel.json")
        return stage_result(
            manifest,
            paths,
            run,
            extra={
                "languages_before_after": dg.MetadataValue.md(markdown_table(table)),
                "mix_plot": figure_metadata(mix.plot_mix(result.before, after), "code_mix/before_after.png"),
                "funnel": dg.MetadataValue.md(funnel.markdown()),
                "funnel_plot": figure_metadata(plot_funnel(funnel), "funnel/funnel.png"),
            },
        )


code_mix_checks = stage_checks(mix.STAGE)
