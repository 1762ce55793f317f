"""`codecook filter | redact | decontaminate | mix --input PATH --output DIR [--config FILE]`.

The command-line twins of the quality assets: the same engines (`quality.signals`,
`quality.filters`, `quality.pii`, `quality.decontaminate`, `quality.mix`) and the same atomic stage
writer, with DIR used as a storage root. They chain like the assets do:

    codecook filter --input DIR/data/near_dedup --output DIR        # writes quality_signals too
    codecook redact --input DIR/data/filtered_code --output DIR
    codecook decontaminate --input DIR/data/redacted_code --output DIR
    codecook mix --input DIR/data/decontaminated_code --output DIR

`--config FILE` is YAML holding the recipe section's keys (for `filter`, optionally two sections,
`quality_signals:` and `quality_filter:`, like a recipe fragment).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from orchestration.stage_cli import cli_spark, config_hash, read_input, stage_config, write_cli_stage
from quality.recipe import config_from_dict


def _sections(config_file: str | None) -> dict:
    if not config_file:
        return {}
    return yaml.safe_load(Path(config_file).read_text(encoding="utf-8")) or {}


def filter_command(args: argparse.Namespace) -> int:
    """Signals then decisions: writes DIR/data/quality_signals and DIR/data/filtered_code."""
    from quality import filters, signals

    sections = _sections(args.config)
    if set(sections) - {"quality_signals", "quality_filter"}:
        sections = {"quality_filter": sections}  # a bare file of quality_filter keys
    signal_config = config_from_dict(signals.SignalConfig, sections.get("quality_signals"), "quality_signals")
    filter_config = config_from_dict(filters.FilterConfig, sections.get("quality_filter"), "quality_filter")
    profiles = filters.load_profiles(filter_config)
    spark = cli_spark()
    documents = read_input(spark, args.input)
    rows_in = documents.count()
    table = signals.compute_signals(
        documents,
        signal_config,
        partitions=signals.signal_partitions(rows_in, spark.sparkContext.defaultParallelism),
    )
    settings = config_hash({"signals": config_hash(signal_config), "profiles": profiles.fingerprint()})
    write_cli_stage(
        table,
        signals.empty_rejects(spark),
        stage=signals.STAGE,
        output=args.output,
        rows_in=rows_in,
        settings_hash=settings,
    )
    from quality.storage import StorageLayout, read_stage

    root = args.output if "://" in args.output else str(Path(args.output).resolve())
    stored = read_stage(spark, StorageLayout(root).stage(signals.STAGE))
    kept, rejected = filters.apply_filters(documents, stored, profiles)
    write_cli_stage(
        kept,
        rejected,
        stage=filters.STAGE,
        output=args.output,
        rows_in=rows_in,
        settings_hash=settings,
        extra={"profiles_fingerprint": profiles.fingerprint(), "profile_versions": profiles.versions()},
    )
    return 0


def redact_command(args: argparse.Namespace) -> int:
    from quality import pii

    config = stage_config(pii.PIIConfig, args.config)
    spark = cli_spark()
    documents = read_input(spark, args.input)
    result = pii.redact_documents(documents, config)
    try:
        write_cli_stage(
            result.kept,
            result.rejected,
            stage=pii.STAGE,
            output=args.output,
            rows_in=documents.count(),
            settings_hash=config_hash(config),
        )
    finally:
        result.release()
    return 0


def decontaminate_command(args: argparse.Namespace) -> int:
    from quality import decontaminate

    config = stage_config(decontaminate.DecontaminationConfig, args.config)
    spark = cli_spark()
    documents = read_input(spark, args.input)
    result = decontaminate.decontaminate_documents(documents, config)
    try:
        write_cli_stage(
            result.kept,
            result.rejected,
            stage=decontaminate.STAGE,
            output=args.output,
            rows_in=documents.count(),
            settings_hash=config_hash(config),
            extra={"benchmark_texts": result.benchmark_texts},
        )
    finally:
        result.release()
    return 0


def mix_command(args: argparse.Namespace) -> int:
    from quality import mix

    config = stage_config(mix.MixConfig, args.config)
    spark = cli_spark()
    documents = read_input(spark, args.input)
    result = mix.mix_documents(documents, config)
    write_cli_stage(
        result.kept,
        result.rejected,
        stage=mix.STAGE,
        output=args.output,
        rows_in=documents.count(),
        settings_hash=config_hash(config),
        extra={"mix_caps_bytes": result.caps, "mix_cutoffs": result.cutoffs},
    )
    return 0
