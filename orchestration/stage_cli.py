"""Shared plumbing for `codecook STAGE --input PATH --output DIR [--config FILE]` commands.

Every stage command reads its input the same way (`read_input`), takes its settings from a YAML
file holding the keys of its recipe section (`stage_config`), and writes through the same atomic
stage writer into DIR used as a storage root (`write_cli_stage`), so the outputs of a CLI run and
of a Dagster run look alike and chain: `codecook dedup --input DIR/data/raw_code --output DIR`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path
from typing import Any, TypeVar

import yaml

from quality.recipe import IngestConfig, SourceConfig, SparkConfig, config_from_dict

C = TypeVar("C")


def stage_config(cls: type[C], config_file: str | None) -> C:
    """The stage's typed config from a YAML file of its recipe section's keys (defaults if none)."""
    data: dict[str, Any] = {}
    if config_file:
        data = yaml.safe_load(Path(config_file).read_text(encoding="utf-8")) or {}
    return config_from_dict(cls, data, config_file or "defaults")


def config_hash(config: Any) -> str:
    """Stands in for the recipe hash in a CLI run's manifest: a hash of the stage's settings."""
    from dataclasses import asdict, is_dataclass

    payload = asdict(config) if is_dataclass(config) else config
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cli_spark():
    from quality.spark_session import build_spark_session

    return build_spark_session(SparkConfig(), app_name="codecook-cli")


def read_input(spark, path: str):
    """A DataFrame from a stage output folder, a Parquet file/folder, or a JSONL file/folder."""
    from quality.storage import spark_path

    target = Path(path)
    if "://" not in path and not target.exists():
        raise SystemExit(f"codecook: input not found: {path}")
    if target.is_dir():
        if any(target.glob("*.parquet")):
            return spark.read.parquet(spark_path(path))
        if any(target.glob("*.jsonl")) or any(target.glob("*.json")):
            return spark.read.json(spark_path(path))
        raise SystemExit(f"codecook: {path} holds neither Parquet nor JSONL files")
    if path.endswith((".parquet", ".pq")):
        return spark.read.parquet(spark_path(path))
    if path.endswith((".jsonl", ".json", ".jsonl.gz", ".json.gz")):
        return spark.read.json(spark_path(path))
    raise SystemExit(f"codecook: cannot tell the format of {path} (want .parquet or .jsonl)")


def write_cli_stage(
    kept, rejected, *, stage: str, output: str, rows_in: int, settings_hash: str, extra=None
) -> dict:
    from quality.storage import StorageLayout, write_stage

    root = output if "://" in output else str(Path(output).resolve())
    paths = StorageLayout(root).stage(stage)
    manifest = write_stage(
        kept, rejected, paths=paths, rows_in=rows_in, recipe_hash=settings_hash, extra=extra
    )
    reasons = ", ".join(
        f"{r}={n}" for r, n in sorted(manifest["rejected_by_reason"].items(), key=lambda kv: -kv[1])
    )
    print(
        f"{stage}: {manifest['rows_in']} in, {manifest['rows_out']} kept, {manifest['rows_rejected']} rejected ({reasons or 'none'})"
    )
    print(f"  kept:     {paths.data_dir}\n  rejected: {paths.rejected_dir}")
    return manifest


def ingest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", help="Source name, part of every doc_id (default: the input's base name).")
    parser.add_argument(
        "--include", action="append", help="Folder input: glob of files to take (repeatable)."
    )
    parser.add_argument(
        "--exclude", action="append", help="Folder input: glob of files to skip (repeatable)."
    )
    parser.add_argument("--repo", help="Repository name to record for every file.")


def ingest(args: argparse.Namespace) -> int:
    """`codecook ingest`: one source into raw_code rows."""
    from quality.ingest import STAGE, ingest_sources

    path = args.input
    kind = (
        "folder"
        if os.path.isdir(path)
        and not any(Path(path).glob("*.parquet"))
        and not any(Path(path).glob("*.jsonl"))
        else None
    )
    if kind is None:
        kind = (
            "parquet" if path.endswith((".parquet", ".pq")) or any(Path(path).glob("*.parquet")) else "jsonl"
        )
    name = args.name or Path(path.rstrip("/")).name.split(".")[0] or "input"
    source = SourceConfig(
        name=name.replace(" ", "_"),
        kind=kind,
        path=path,
        include=tuple(args.include or ("**",)),
        exclude=tuple(args.exclude or ()),
        repo=args.repo,
    )
    config = stage_config(IngestConfig, args.config)
    spark = cli_spark()
    result = ingest_sources(spark, (source,), config)
    try:
        write_cli_stage(
            result.kept,
            result.rejected,
            stage=STAGE,
            output=args.output,
            rows_in=result.rows_in,
            settings_hash=config_hash({"config": config_hash(config), "source": str(source)}),
        )
    finally:
        result.release()
    return 0
