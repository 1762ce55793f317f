"""The one way every Spark stage writes its output, and reads a finished one back.

The storage layout, manifests, atomic writes and content checksums are Spark-free and live in
`contracts.storage` (the training image uses them too); they are re-exported here so existing
`from quality.storage import ...` imports keep working. This module adds only what needs Spark.
A stage's output is complete exactly when its `_manifest.json` exists (see `contracts.storage`).
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from typing import Any

import fsspec
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from contracts.storage import (
    CHECKSUM_SCHEME,
    DEFAULT_HOME,
    MANIFEST,
    StageNotMaterialized,
    StagePaths,
    StorageLayout,
    default_file_count,
    default_home,
    read_manifest,
    spark_path,
    stage_checksum,
    swap_into_place,
    write_json_atomic,
)
from quality.schema import REJECT_COLUMNS, SOURCE_ID

__all__ = [
    "DEFAULT_HOME",
    "MANIFEST",
    "StageNotMaterialized",
    "StagePaths",
    "StorageLayout",
    "default_file_count",
    "default_home",
    "read_manifest",
    "read_rejected",
    "read_stage",
    "spark_path",
    "write_json_atomic",
    "write_stage",
]


def read_stage(spark, paths: StagePaths) -> DataFrame:
    """The kept rows of a completed stage (refuses an output without a manifest)."""
    read_manifest(paths)
    return spark.read.parquet(spark_path(paths.data_dir))


def read_rejected(spark, paths: StagePaths) -> DataFrame:
    read_manifest(paths)
    return spark.read.parquet(spark_path(paths.rejected_dir))


def _write_sorted(frame: DataFrame, target: str, num_files: int, fs: fsspec.AbstractFileSystem) -> list[str]:
    """Write `frame` hash-partitioned and sorted by doc_id, then give the parts stable names."""
    (
        frame.repartition(num_files, "doc_id")
        .sortWithinPartitions("doc_id")
        .write.option("compression", "zstd")
        # "error" rather than its alias "errorifexists": Spark Connect's client knows only "error".
        .mode("error")
        .parquet(spark_path(target))
    )
    produced = sorted(p for p in fs.ls(target, detail=False) if os.path.basename(p).startswith("part-"))
    names = []
    for index, path in enumerate(produced):
        name = f"part-{index:05d}.parquet"
        fs.mv(path, f"{target}/{name}")
        names.append(name)
    # Spark's marker and checksum side files are not part of the output.
    for path in fs.ls(target, detail=False):
        if not os.path.basename(path).startswith("part-"):
            fs.rm(path)
    return names


def _reject_summary(spark, folder: str) -> dict[str, int]:
    counts = spark.read.parquet(spark_path(folder)).groupBy("reason").count().collect()
    return {row["reason"]: int(row["count"]) for row in sorted(counts, key=lambda r: r["reason"])}


def write_stage(
    kept: DataFrame,
    rejected: DataFrame,
    *,
    paths: StagePaths,
    rows_in: int,
    recipe_hash: str,
    num_files: int | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write one stage's output atomically and return its manifest.

    `kept` must carry a `doc_id` column; `rejected` must have the REJECT_SCHEMA columns. Both are
    written hash-partitioned by doc_id into a number of parts fixed by `rows_in`, and sorted by
    doc_id within each part, so reruns write the same rows in the same order. (Not always the same
    bytes: parquet-mr orders footer lists such as a column chunk's encodings differently from one
    JVM to the next.) The manifest's `checksum` is therefore over the decoded rows, kept then
    rejected (`contracts.storage.stage_checksum`), and stays put across reruns.
    """
    missing = [c for c in REJECT_COLUMNS if c not in rejected.columns]
    if missing:
        raise ValueError(f"rejected rows of stage {paths.stage} lack {missing}")
    source_id = F.col(SOURCE_ID) if SOURCE_ID in rejected.columns else F.lit(None).cast("string")
    rejected = rejected.select(*REJECT_COLUMNS, source_id.alias(SOURCE_ID))
    fs = fsspec.core.url_to_fs(paths.data_dir)[0]
    token = uuid.uuid4().hex[:12]
    tmp_root = f"{os.path.dirname(paths.data_dir)}/.tmp"
    tmp_kept, tmp_rejected = f"{tmp_root}/{paths.stage}-{token}", f"{tmp_root}/{paths.stage}-{token}-rejected"
    spark = kept.sparkSession
    files = num_files or default_file_count(rows_in)
    try:
        kept_names = _write_sorted(kept, tmp_kept, files, fs)
        rejected_names = _write_sorted(rejected, tmp_rejected, max(1, min(files, 8)), fs)
        content = stage_checksum(fs, tmp_kept, tmp_rejected)
        rows_out, rows_rejected = content.rows_out, content.rows_rejected
        by_reason = _reject_summary(spark, tmp_rejected)
        bytes_out = 0
        if "size_bytes" in kept.columns and rows_out:
            bytes_out = int(
                spark.read.parquet(spark_path(tmp_kept)).agg({"size_bytes": "sum"}).collect()[0][0] or 0
            )
        manifest = {
            "stage": paths.stage,
            "rows_in": int(rows_in),
            "rows_out": rows_out,
            "rows_rejected": rows_rejected,
            "rejected_by_reason": by_reason,
            "bytes_out": bytes_out,
            "checksum": content.checksum,
            "checksum_scheme": CHECKSUM_SCHEME,
            "recipe_hash": recipe_hash,
            "files": kept_names,
            "rejected_files": rejected_names,
            "columns": kept.columns,
            "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
            **(extra or {}),
        }
        # The old manifest goes first: from here until the new one lands, the stage reads as
        # incomplete rather than as a mix of two runs.
        if fs.exists(paths.manifest_path):
            fs.rm(paths.manifest_path)
        swap_into_place(fs, tmp_rejected, paths.rejected_dir)
        swap_into_place(fs, tmp_kept, paths.data_dir)
        write_json_atomic(fs, paths.manifest_path, manifest)
        return manifest
    finally:
        for leftover in (tmp_kept, tmp_rejected):
            if fs.exists(leftover):
                fs.rm(leftover, recursive=True)
