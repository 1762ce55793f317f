"""The code stages, each declared once (see `orchestration.stage`), and the commands made of them.

    raw_code -> exact_dedup -> near_dedup -> quality_signals (side table, by doc_id)
    near_dedup + quality_signals -> filtered_code -> redacted_code -> decontaminated_code -> code_mix

The work and its rules live in the engines (`quality.ingest`, `quality.dedup`, `quality.signals`,
`quality.filters`, `quality.pii`, `quality.decontaminate`, `quality.mix`); a declaration only
says which engine call a stage is, what it logs and reports, and which checks guard it. The
Dagster assets (`assets/ingest.py`, `assets/dedup.py`, `assets/quality.py`) and the commands
below (`COMMANDS`, registered by `orchestration.cli`) are both made from these. Dagster-free.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from orchestration.source_stages import SOURCE_COMMANDS
from orchestration.stage import (
    Check,
    CheckRun,
    Command,
    Json,
    Markdown,
    Outcome,
    Plot,
    Report,
    Stage,
    StageRun,
    Table,
    command_spark,
    jvm_output_to,
    summary_line,
)
from orchestration.web_stages import WEB_PAGES_STAGE, check_web_input, web_arguments
from quality import decontaminate, filters, mix, pii, signals
from quality.dedup import report as dedup_report
from quality.dedup.config import DedupConfig, LSHParams
from quality.dedup.engine import EXACT_STAGE, NEAR_STAGE
from quality.expectations import DOCUMENT_TYPES
from quality.ingest import STAGE as RAW_CODE
from quality.recipe import IngestConfig, SourceConfig
from quality.storage import read_manifest

# --------------------------------------------------------------------------------------------------
# raw_code


def _ingest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", help="Source name, part of every doc_id (default: the input's base name).")
    parser.add_argument(
        "--include", action="append", help="Folder input: glob of files to take (repeatable)."
    )
    parser.add_argument(
        "--exclude", action="append", help="Folder input: glob of files to skip (repeatable)."
    )
    parser.add_argument("--repo", help="Repository name to record for every file.")


def _is_table_folder(path: str) -> bool:
    folder = Path(path)
    return (
        any(folder.glob("*.parquet")) or any(folder.glob("*.jsonl")) or (folder / "_manifest.json").exists()
    )


def _check_ingest_input(path: str) -> None:
    """Before Spark: a folder of files is read file by file; anything else must be readable rows."""
    from quality.plain import locate_input

    if "://" in path or not os.path.isdir(path):
        locate_input(path)


def command_source(options: dict[str, Any]) -> SourceConfig:
    """The one source `codecook ingest --input PATH` reads: a folder of files, JSONL or Parquet."""
    from quality.plain import locate_input

    path = options["input"]
    if "://" not in path and os.path.isdir(path) and not _is_table_folder(path):
        kind = "folder"
    else:
        kind = "parquet" if locate_input(path).kind in ("parquet", "stage") else "jsonl"
    name = (options.get("name") or Path(path.rstrip("/")).name.split(".")[0] or "input").replace(" ", "_")
    return SourceConfig(
        name=name,
        kind=kind,
        path=path,
        include=tuple(options.get("include") or ("**",)),
        exclude=tuple(options.get("exclude") or ()),
        repo=options.get("repo"),
    )


def _ingest(run: StageRun) -> Outcome:
    from quality.ingest import ingest_sources

    sources = run.recipe.sources if run.recipe is not None else (command_source(run.options),)
    result = ingest_sources(run.spark, sources, run.config)
    return Outcome(
        result.kept,
        result.rejected,
        rows_in=result.rows_in,
        manifest={"rows_in_by_source": result.rows_in_by_source},
        release=result.release,
        result=result,
    )


def language_breakdown(connection, paths, limit: int = 25) -> list[dict[str, Any]]:
    """Rows and bytes per language of a stage's kept output, largest first."""
    rows = connection.execute(
        "SELECT lang, count(*) AS docs, sum(size_bytes) AS bytes FROM read_parquet(?) "
        "GROUP BY lang ORDER BY bytes DESC, lang LIMIT ?",
        [f"{paths.data_dir}/*.parquet", limit],
    ).fetchall()
    return [{"lang": lang, "docs": int(docs), "bytes": int(size or 0)} for lang, docs, size in rows]


def _ingest_report(run: StageRun, outcome: Outcome, manifest: dict[str, Any]) -> Report:
    with run.connect() as connection:
        languages = language_breakdown(connection, run.paths) if manifest["rows_out"] else []
    by_source = outcome.result.rows_in_by_source
    return Report(
        metadata={"rows_in_by_source": Json(by_source), "languages": Table(languages)},
        lines=[", ".join(f"{row['lang']}={row['docs']}" for row in languages[:8])],
    )


RAW_CODE_STAGE = Stage(
    name=RAW_CODE,
    description=(
        "Every file of the recipe's code sources (folders, JSONL, Parquet) as a document row with "
        "language, size, SHA-256 and repository metadata. Oversized, binary, undecodable, empty and "
        "unknown-extension files are rejected with a reason into data/rejected/raw_code."
    ),
    run=_ingest,
    section="ingest",
    config=IngestConfig,
    params=lambda run: {"sources": ",".join(s.name for s in run.recipe.sources)} if run.recipe else {},
    report=_ingest_report,
)

# --------------------------------------------------------------------------------------------------
# exact_dedup, near_dedup

DUPLICATE_REASONS = {EXACT_STAGE: "exact_duplicate", NEAR_STAGE: "near_duplicate"}


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


def _dedup_engine(stage: str):
    def run(run: StageRun) -> Outcome:
        from quality.dedup.engine import exact_dedup, near_dedup

        engine = exact_dedup if stage == EXACT_STAGE else near_dedup
        result = engine(run.input(), run.config, log=run.log)
        return Outcome(
            result.kept,
            result.rejected,
            rows_in=result.rows_in,
            manifest={"dedup": result.facts},
            release=result.release,
            result=result,
        )

    return run


def _dedup_report(run: StageRun, outcome: Outcome, manifest: dict[str, Any]) -> Report:
    stage, paths = run.stage.name, run.paths
    reason, facts, config = DUPLICATE_REASONS[stage], outcome.result.facts, run.config
    with run.connect() as connection:
        by_language = dedup_report.duplicate_rate_by_language(connection, paths, reason)
        histogram = dedup_report.size_histogram(dedup_report.cluster_sizes(connection, paths, reason))
        largest = dedup_report.largest_clusters(connection, paths, reason)
    rows_in = sum(row["rows_in"] for row in by_language)
    removed = sum(row["duplicates"] for row in by_language)
    rate = removed / rows_in if rows_in else 0.0
    report = Report(
        metadata={
            "duplicate_rate": round(rate, 4),
            "duplicate_rate_by_language": Table(by_language),
            "cluster_size_histogram": Table(histogram),
            "cluster_size_plot": Plot(lambda: _cluster_plot(histogram, stage), f"{stage}/cluster_sizes.png"),
            "largest_clusters": Table(largest),
            "dedup_facts": Json({k: v for k, v in facts.items() if k != "s_curve"}),
        },
        metrics={f"{stage}.duplicate_rate": rate},
        artifacts={
            f"{stage}/report.json": {
                "by_language": by_language,
                "histogram": histogram,
                "largest": largest,
                "facts": facts,
            }
        },
    )
    if stage == NEAR_STAGE:
        lsh = config.lsh()
        report.metrics.update(
            {
                "near.clusters": facts["near_clusters"],
                "near.largest_cluster": facts["largest_cluster"],
                "near.capped_buckets": facts["capped_buckets"],
                "near.component_rounds": facts["component_rounds"],
            }
        )
        report.metadata.update(
            lsh=lsh.explain(),
            s_curve=Table(
                [{"jaccard": j, "p_candidate": p} for j, p in facts["s_curve"] if round(j * 20) % 2 == 0]
            ),
            s_curve_plot=Plot(lambda: _s_curve_plot(lsh), "near_dedup/s_curve.png"),
            capped_buckets=Markdown(
                f"{facts['capped_buckets']} bucket(s) above bucket_cap={facts['bucket_cap']} "
                f"({facts['capped_bucket_members']} members; largest bucket {facts['largest_bucket']}). "
                f"Cap applies to: {facts['bucket_cap_applies']}."
            ),
        )
        report.lines.append(
            f"{facts['near_clusters']} clusters of near duplicates, largest {facts['largest_cluster']} docs, "
            f"{facts['component_rounds']} component rounds"
        )
    return report


def _dedup_checks(stage: str) -> tuple[Check, ...]:
    reason = DUPLICATE_REASONS[stage]
    return (
        Check(
            name="unique_sha256",
            description=(
                "No two kept rows share a SHA-256 of their content (and none lacks one). At "
                "`dedup.level: repo` identical files of different repositories are kept by design: "
                "they are counted, and only rows without a SHA-256 fail."
            ),
            run=_unique_sha256,
        ),
        Check(
            name="kept_twin_present",
            description=f"Every `{reason}` reject names a kept_doc_id present in the kept rows.",
            run=lambda check: dedup_report.kept_twins_present(check.connection, check.paths, reason),
        ),
    )


def _unique_sha256(check) -> tuple[bool, dict[str, Any]]:
    passed, facts = dedup_report.shared_sha256(check.connection, check.paths)
    level = read_manifest(check.paths).get("dedup", {}).get("level", "file")
    if level == "repo":
        return facts["rows_without_sha256"] == 0, {**facts, "level": level}
    return passed, facts


EXACT_DEDUP_STAGE = Stage(
    name=EXACT_STAGE,
    description=(
        "raw_code with byte-identical files removed: rows sharing the SHA-256 of their content keep "
        "one copy, chosen by most stars, then newest commit date, then a permissive licence, then the "
        "content hash. Removed copies go to data/rejected/exact_dedup as `exact_duplicate` with the "
        "sha256 as cluster_id and the kept doc_id."
    ),
    run=_dedup_engine(EXACT_STAGE),
    upstream=(RAW_CODE,),
    section="dedup",
    config=DedupConfig,
    params=lambda run: run.config.as_params(),
    report=_dedup_report,
    checks=_dedup_checks(EXACT_STAGE),
)

NEAR_DEDUP_STAGE = Stage(
    name=NEAR_STAGE,
    description=(
        "exact_dedup with near-duplicate files removed: MinHash over token 5-grams, LSH bands, "
        "connected components on Spark, one file kept per component by the same policy as exact "
        "dedup. Every row gets a cluster_id (the smallest doc_id of its component); removed files "
        "go to data/rejected/near_dedup as `near_duplicate` with the doc_id kept in their place."
    ),
    run=_dedup_engine(NEAR_STAGE),
    upstream=(EXACT_STAGE,),
    section="dedup",
    config=DedupConfig,
    params=lambda run: run.config.as_params(),
    report=_dedup_report,
    required_columns={**DOCUMENT_TYPES, "cluster_id": "VARCHAR"},
    checks=_dedup_checks(NEAR_STAGE),
)

# --------------------------------------------------------------------------------------------------
# quality_signals, filtered_code


def _signals(run: StageRun) -> Outcome:
    rows = run.count(run.stage.upstream[0])
    table = signals.compute_signals(
        run.input(), run.config, partitions=signals.signal_partitions(rows, run.parallelism())
    )
    return Outcome(
        table, signals.empty_rejects(run.spark), manifest={"signals_version": signals.SIGNALS_VERSION}
    )


def _signals_report(run: StageRun, outcome: Outcome, manifest: dict[str, Any]) -> Report:
    from quality.storage import read_stage

    summary = signals.summarize_signals(read_stage(run.spark, run.paths))
    return Report(
        metadata={"signals_summary": Json(summary), "signals_version": signals.SIGNALS_VERSION},
        metrics={f"signals.{k}": v for k, v in summary.items()},
        lines=[", ".join(f"{k}={v}" for k, v in summary.items())],
    )


SIGNALS_STAGE = Stage(
    name=signals.STAGE,
    description=(
        "Per-document quality signals of near_dedup's output (line lengths, character shares, "
        "repetition, comments, strings, Python ast counts, HTML visible text...), stored as a side "
        "table keyed by doc_id so that changing a threshold re-runs only filtered_code.\n\n"
        + signals.signal_docs()
    ),
    run=_signals,
    upstream=(NEAR_STAGE,),
    section="quality_signals",
    config=signals.SignalConfig,
    params=lambda run: {
        "signals_version": signals.SIGNALS_VERSION,
        "time_budget_s": run.config.time_budget_s,
    },
    report=_signals_report,
    required_columns={"doc_id": "VARCHAR", "lang": "VARCHAR", "size_bytes": "BIGINT", "timed_out": "BOOLEAN"},
    expectations=False,
)


def _filter(run: StageRun) -> Outcome:
    profiles = filters.load_profiles(run.config)
    kept, rejected = filters.apply_filters(run.input(), run.read(signals.STAGE), profiles)
    return Outcome(
        kept,
        rejected,
        manifest={"profiles_fingerprint": profiles.fingerprint(), "profile_versions": profiles.versions()},
        result=profiles,
    )


def _filter_report(run: StageRun, outcome: Outcome, manifest: dict[str, Any]) -> Report:
    from quality.storage import read_rejected

    profiles = outcome.result
    hits = filters.rule_hits(read_rejected(run.spark, run.paths)) if manifest["rows_rejected"] else {}
    return Report(
        metadata={
            "rule_hits": Table([{"rule": rule, "documents": n} for rule, n in hits.items()]),
            "profiles_fingerprint": profiles.fingerprint(),
            "profile_versions": Json(profiles.versions()),
        },
        artifacts={
            "filtered_code/rule_hits.json": {"rule_hits": hits, "profile_versions": profiles.versions()}
        },
        lines=["rules fired: " + (", ".join(f"{rule}={n}" for rule, n in list(hits.items())[:10]) or "none")],
    )


FILTER_STAGE = Stage(
    name=filters.STAGE,
    description=(
        "near_dedup's documents judged by the threshold profiles in quality/profiles/*.yaml "
        "(OpenCoder's general and per-language rules, StarCoder's alpha, long-line, XML, HTML and "
        "JSON/YAML rules) applied to the stored quality_signals. Every rejected row names the profile "
        "and every rule that fired with the value seen; OpenCoder's probabilistic drops are seeded by doc_id."
    ),
    run=_filter,
    upstream=(NEAR_STAGE, signals.STAGE),
    section="quality_filter",
    config=filters.FilterConfig,
    params=lambda run: {
        "profiles_fingerprint": filters.load_profiles(run.config).fingerprint(),
        "filter_seed": run.config.seed,
    },
    report=_filter_report,
)

# --------------------------------------------------------------------------------------------------
# redacted_code


def _redact(run: StageRun) -> Outcome:
    result = pii.redact_documents(run.input(), run.config)
    return Outcome(result.kept, result.rejected, release=result.release)


def _redact_report(run: StageRun, outcome: Outcome, manifest: dict[str, Any]) -> Report:
    from quality.storage import read_stage

    counts = pii.count_totals(read_stage(run.spark, run.paths))
    categories = pii.by_category(counts)
    return Report(
        metadata={
            "pii_by_type": Table([{"type": c, "replaced": n} for c, n in sorted(categories.items())]),
            "pii_by_kind": Json(counts),
            **{f"pii_{c}": int(n) for c, n in sorted(categories.items())},
        },
        metrics={
            f"pii.{k}": v
            for k, v in {**counts, **{f"category.{c}": n for c, n in categories.items()}}.items()
        },
        lines=["replaced: " + (", ".join(f"{c}={n}" for c, n in sorted(categories.items())) or "nothing")],
    )


def _rescan(check: CheckRun) -> tuple[bool, dict[str, Any]]:
    from quality.storage import read_stage

    found = pii.rescan(read_stage(check.spark, check.paths), check.config)
    return found["findings"] == 0, {
        "findings": found["findings"],
        "by_kind": Json(found["by_kind"]),
        "examples": Json(found["examples"]),
    }


REDACT_STAGE = Stage(
    name=pii.STAGE,
    description=(
        "filtered_code with personal and secret information replaced: emails -> <EMAIL>, public "
        "IPv4/IPv6 -> a synthetic private address of the same family, provider tokens, private keys "
        "and high-entropy secrets -> <KEY>, passwords -> <PASSWORD>. Adds `pii_counts` per document; "
        "sha256 and size_bytes follow the new content. A blocking check rescans the output."
    ),
    run=_redact,
    upstream=(filters.STAGE,),
    section="pii",
    config=pii.PIIConfig,
    params=lambda run: {"min_secret_entropy": run.config.min_secret_entropy},
    report=_redact_report,
    required_columns={**DOCUMENT_TYPES, "pii_counts": "MAP(VARCHAR, BIGINT)"},
    checks=(
        Check(
            name="rescan_finds_nothing",
            description="The PII scanner run again over every redacted document finds nothing left to replace.",
            run=_rescan,
            spark=True,
        ),
    ),
)

# --------------------------------------------------------------------------------------------------
# decontaminated_code


def _decontaminate(run: StageRun) -> Outcome:
    result = decontaminate.decontaminate_documents(run.input(), run.config)
    return Outcome(
        result.kept,
        result.rejected,
        manifest={"benchmark_texts": result.benchmark_texts},
        release=result.release,
        result=result,
    )


def _decontaminate_report(run: StageRun, outcome: Outcome, manifest: dict[str, Any]) -> Report:
    from quality.storage import read_rejected

    removed: list[dict[str, Any]] = []
    if manifest["rows_rejected"]:
        removed = [
            {"path": r["path"], "reason": r["reason"], "matched": (r["detail"] or "")[:200]}
            for r in read_rejected(run.spark, run.paths).orderBy("doc_id").limit(50).collect()
        ]
    return Report(
        metadata={"benchmark_texts": int(outcome.result.benchmark_texts), "removed_files": Table(removed)},
        lines=[f"{outcome.result.benchmark_texts} benchmark texts checked"],
    )


DECONTAMINATE_STAGE = Stage(
    name=decontaminate.STAGE,
    description=(
        "redacted_code without files containing HumanEval or MBPP items: case-insensitive exact "
        "substrings of prompts and canonical solutions (Aho-Corasick, BigCode's allowlist of trivial "
        "solutions) and word 13-gram overlap for edited copies. Rejected rows name the items matched."
    ),
    run=_decontaminate,
    upstream=(pii.STAGE,),
    section="decontamination",
    config=decontaminate.DecontaminationConfig,
    params=lambda run: {
        "benchmarks": ",".join(run.config.benchmarks),
        "ngram_n": run.config.ngram_n,
        "ngram_min_fraction": run.config.ngram_min_fraction,
    },
    report=_decontaminate_report,
)

# --------------------------------------------------------------------------------------------------
# code_mix


def mixed_sources(config: mix.MixConfig) -> tuple[str, ...]:
    """The source stages code_mix reads: those of share > 0 in `code_mix.sources`."""
    return tuple(name for name in sorted(config.sources) if float(config.sources[name]) > 0.0)


def sources_not_read(config: mix.MixConfig) -> dict[str, str]:
    """Every source stage code_mix does not read, with why (a share-0 source need not exist)."""
    return {
        name: "share 0" if name in config.sources else "not in code_mix.sources"
        for name in mix.SOURCE_STAGES
        if name not in mixed_sources(config)
    }


def _mix_reads(config: mix.MixConfig) -> tuple[str, ...]:
    return (decontaminate.STAGE, *mixed_sources(config))


def _mix(run: StageRun) -> Outcome:
    # Source stages (notebooks, commits, issues) of share > 0 in `code_mix.sources` join the code
    # files; one of share 0 is not read at all (an ablation never runs it).
    sources = {name: run.read(name) for name in mixed_sources(run.config)}
    result = mix.mix_documents(run.input(), run.config, sources=sources)
    rows_in = run.count(run.stage.upstream[0]) + sum(run.count(name) for name in sources)
    return Outcome(
        result.kept,
        result.rejected,
        rows_in=rows_in,
        manifest={
            "mix_caps_bytes": result.caps,
            "mix_cutoffs": result.cutoffs,
            "mix_sources": {name: float(run.config.sources[name]) for name in sources},
            "mix_sources_not_read": sources_not_read(run.config),
        },
        result=result,
    )


def _mix_report(run: StageRun, outcome: Outcome, manifest: dict[str, Any]) -> Report:
    from quality.storage import read_stage

    before = outcome.result.before
    after = mix.language_totals(read_stage(run.spark, run.paths))
    table = mix.mix_table(before, after, run.config.language_targets())
    # The whole code funnel (`funnel`, `funnel_plot`, funnel/ artifacts) is added after this report,
    # as for every stage of the funnel (orchestration.stage.add_funnel).
    return Report(
        metadata={
            "languages_before_after": Table(table),
            "sources": Table(
                [
                    {"source": name, "share": share, "read": "yes", "rows": run.count(name)}
                    for name, share in manifest["mix_sources"].items()
                ]
                + [
                    {"source": name, "share": run.config.sources.get(name, ""), "read": f"no: {why}"}
                    for name, why in manifest["mix_sources_not_read"].items()
                ],
                ["source", "share", "read", "rows"],
            ),
            "mix_plot": Plot(lambda: mix.plot_mix(before, after), "code_mix/before_after.png"),
        },
        artifacts={"code_mix/languages.json": {"before": before, "after": after}},
    )


MIX_STAGE = Stage(
    name=mix.STAGE,
    description=(
        "decontaminated_code, plus the shares of the source stages (notebooks, commits, issues) named in "
        "`code_mix.sources`, re-weighted by language: per-language downsampling (OpenCoder's Java and "
        "HTML) and byte caps (StarCoder's JSON/YAML and CSS) scaled by the recipe, decided per file by "
        "a hash of its doc_id. Carries the before/after plot and the whole code funnel."
    ),
    run=_mix,
    # The source stages are read only when `code_mix.sources` gives them a share > 0 (never by
    # `codecook mix`); all stay upstream so that the graph (and "Materialize all") shows them.
    upstream=(decontaminate.STAGE, *mix.SOURCE_STAGES),
    reads=_mix_reads,
    section="code_mix",
    config=mix.MixConfig,
    params=lambda run: {"mix_scale": run.config.scale, "mix_seed": run.config.seed},
    report=_mix_report,
)

CODE_STAGES = (
    RAW_CODE_STAGE,
    EXACT_DEDUP_STAGE,
    NEAR_DEDUP_STAGE,
    SIGNALS_STAGE,
    FILTER_STAGE,
    REDACT_STAGE,
    DECONTAMINATE_STAGE,
    MIX_STAGE,
)

# --------------------------------------------------------------------------------------------------
# The command twins: `codecook NAME --input PATH --output DIR [--config FILE] [--master URL]`.


def tokenize_command(args: argparse.Namespace) -> int:
    """`codecook tokenize`: a stage folder is read as it is; any other input (plain JSONL or Parquet
    rows) first becomes document rows in DIR/data/documents, its unusable rows reject rows with
    reasons, as every stage command's input does. Then `training.commands.tokenize` reads them."""
    from contracts.recipe import settings_hash
    from quality.plain import locate_input, read_documents
    from quality.storage import MANIFEST, StorageLayout, write_stage
    from training.commands import tokenize

    if "://" in args.input or Path(args.input, MANIFEST).is_file():
        return tokenize(args)
    spec = locate_input(args.input)
    root = args.output if "://" in args.output else str(Path(args.output).resolve())
    paths = StorageLayout(root).stage("documents")
    log_path = f"{root}/logs/tokenize.log" if "://" not in root else os.devnull
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with jvm_output_to(log_path):
        spark = command_spark(getattr(args, "master", None))
        plain = read_documents(spark, spec, stage="documents")
        try:
            manifest = write_stage(
                plain.documents,
                plain.rejected,
                paths=paths,
                rows_in=plain.rows_in,
                recipe_hash=settings_hash({"input": args.input}),
            )
        finally:
            plain.release()
    print(summary_line(manifest))
    return tokenize(argparse.Namespace(**{**vars(args), "input": paths.data_dir}))


COMMANDS: dict[str, Command] = {
    command.name: command
    for command in (
        Command(
            name="ingest",
            help="Read code sources (a folder, JSONL or Parquet) into document rows (DIR/data/raw_code).",
            stages=(RAW_CODE_STAGE,),
            arguments=_ingest_arguments,
            plain_input=False,
            check_input=_check_ingest_input,
        ),
        Command(
            name="ingest-web",
            help="Read HTML pages (a folder of .html, JSONL with url+html, or WARC) into DIR/data/web_pages.",
            stages=(WEB_PAGES_STAGE,),
            arguments=web_arguments,
            plain_input=False,
            check_input=check_web_input,
        ),
        Command(
            name="dedup",
            help="Exact (SHA-256) then near (MinHash LSH) dedup (DIR/data/exact_dedup, near_dedup).",
            stages=(EXACT_DEDUP_STAGE, NEAR_DEDUP_STAGE),
        ),
        Command(
            name="filter",
            help="Quality signals, then the threshold profiles (DIR/data/quality_signals, filtered_code).",
            stages=(SIGNALS_STAGE, FILTER_STAGE),
        ),
        Command(
            name="redact",
            help="Replace emails, public IPs, keys, tokens and passwords (DIR/data/redacted_code).",
            stages=(REDACT_STAGE,),
        ),
        Command(
            name="decontaminate",
            help="Remove files containing HumanEval/MBPP items (DIR/data/decontaminated_code).",
            stages=(DECONTAMINATE_STAGE,),
        ),
        Command(
            name="mix",
            help="Re-weight languages: downsampling and byte caps (DIR/data/code_mix).",
            stages=(MIX_STAGE,),
        ),
        *SOURCE_COMMANDS,
    )
}
