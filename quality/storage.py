"""The storage root and the one way every stage writes its output.

Layout under the root (`CODECOOK_HOME`, default `.codecook/` in the working directory):

    dagster/                    the Dagster instance (SQLite)
    mlflow.db, mlflow-artifacts/  MLflow tracking store and artifacts
    data/<stage>/               kept rows as Parquet parts + `_manifest.json`
    data/rejected/<stage>/      every rejected row (REJECT_SCHEMA) as Parquet parts
    data/.tmp/                  work in progress; never read

A stage's output is complete exactly when its `_manifest.json` exists: the manifest is written last,
by atomic rename, after the kept and rejected folders were swapped into place. A crash at any point
leaves no manifest, so no reader mistakes half an output for a whole one.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec
import pyarrow.parquet as pq
from pyspark.sql import DataFrame

from quality.schema import REJECT_COLUMNS

MANIFEST = "_manifest.json"
DEFAULT_HOME = ".codecook"


def default_home() -> str:
    """`$CODECOOK_HOME`, else `.codecook` in the working directory, as an absolute path or URL."""
    home = os.environ.get("CODECOOK_HOME") or DEFAULT_HOME
    return home if "://" in home else str(Path(home).resolve())


class StageNotMaterialized(RuntimeError):
    """A stage's input has no complete output yet."""


@dataclass(frozen=True)
class StagePaths:
    """Where one stage's kept and rejected rows live."""

    stage: str
    data_dir: str
    rejected_dir: str

    @property
    def manifest_path(self) -> str:
        return f"{self.data_dir}/{MANIFEST}"


@dataclass(frozen=True)
class StorageLayout:
    """The folders under one storage root (a local path or an fsspec URL)."""

    root: str

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        return fsspec.core.url_to_fs(self.root)[0]

    @property
    def data_root(self) -> str:
        return f"{self.root}/data"

    @property
    def dagster_home(self) -> str:
        return f"{self.root}/dagster"

    @property
    def mlflow_uri(self) -> str:
        return f"sqlite:///{self.root}/mlflow.db"

    @property
    def mlflow_artifacts(self) -> str:
        return f"{self.root}/mlflow-artifacts"

    def stage(self, name: str) -> StagePaths:
        return StagePaths(name, f"{self.data_root}/{name}", f"{self.data_root}/rejected/{name}")

    def scratch(self, name: str) -> str:
        """A fresh folder for work in progress under `data/.tmp`."""
        return f"{self.data_root}/.tmp/{name}-{uuid.uuid4().hex[:12]}"

    def manifests(self) -> list[dict[str, Any]]:
        """Every complete stage's manifest, for status reports."""
        fs = self.fs
        found = []
        for path in sorted(fs.glob(f"{self.data_root}/*/{MANIFEST}")):
            with fs.open(path, "r") as handle:
                found.append(json.load(handle))
        return found


def spark_path(url: str) -> str:
    """The same location as Spark's Hadoop filesystem names it (s3:// is s3a:// there)."""
    return "s3a://" + url[len("s3://") :] if url.startswith("s3://") else url


def read_manifest(paths: StagePaths) -> dict[str, Any]:
    fs = fsspec.core.url_to_fs(paths.data_dir)[0]
    if not fs.exists(paths.manifest_path):
        raise StageNotMaterialized(
            f"stage '{paths.stage}' has no complete output at {paths.data_dir}; materialize it first"
        )
    with fs.open(paths.manifest_path, "r") as handle:
        return json.load(handle)


def read_stage(spark, paths: StagePaths) -> DataFrame:
    """The kept rows of a completed stage (refuses an output without a manifest)."""
    read_manifest(paths)
    return spark.read.parquet(spark_path(paths.data_dir))


def read_rejected(spark, paths: StagePaths) -> DataFrame:
    read_manifest(paths)
    return spark.read.parquet(spark_path(paths.rejected_dir))


def default_file_count(rows: int, rows_per_file: int = 25_000) -> int:
    """How many Parquet parts a stage writes: from the row count, never from the core count,
    so that the same input gives the same files on any machine."""
    return max(1, min(64, -(-rows // rows_per_file)))


def _write_sorted(frame: DataFrame, target: str, num_files: int, fs: fsspec.AbstractFileSystem) -> list[str]:
    """Write `frame` hash-partitioned and sorted by doc_id, then give the parts stable names."""
    (
        frame.repartition(num_files, "doc_id")
        .sortWithinPartitions("doc_id")
        .write.option("compression", "zstd")
        .mode("errorifexists")
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


def _swap_into_place(fs: fsspec.AbstractFileSystem, new_dir: str, final_dir: str) -> None:
    if fs.exists(final_dir):
        trash = f"{final_dir}.old-{uuid.uuid4().hex[:8]}"
        fs.mv(final_dir, trash, recursive=True)
        fs.mv(new_dir, final_dir, recursive=True)
        fs.rm(trash, recursive=True)
    else:
        fs.makedirs(os.path.dirname(final_dir), exist_ok=True)
        fs.mv(new_dir, final_dir, recursive=True)


def _parquet_facts(fs, folder: str, names: list[str], digest) -> int:
    rows = 0
    for name in names:
        with fs.open(f"{folder}/{name}", "rb") as handle:
            data = handle.read()
        digest.update(data)
        with fs.open(f"{folder}/{name}", "rb") as handle:
            rows += pq.ParquetFile(handle).metadata.num_rows
    return rows


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
    written sorted by doc_id into a fixed number of parts, so reruns produce byte-identical files.
    """
    missing = [c for c in REJECT_COLUMNS if c not in rejected.columns]
    if missing:
        raise ValueError(f"rejected rows of stage {paths.stage} lack {missing}")
    rejected = rejected.select(*REJECT_COLUMNS)
    fs = fsspec.core.url_to_fs(paths.data_dir)[0]
    token = uuid.uuid4().hex[:12]
    tmp_root = f"{os.path.dirname(paths.data_dir)}/.tmp"
    tmp_kept, tmp_rejected = f"{tmp_root}/{paths.stage}-{token}", f"{tmp_root}/{paths.stage}-{token}-rejected"
    spark = kept.sparkSession
    files = num_files or default_file_count(rows_in)
    try:
        kept_names = _write_sorted(kept, tmp_kept, files, fs)
        rejected_names = _write_sorted(rejected, tmp_rejected, max(1, min(files, 8)), fs)
        digest = hashlib.sha256()
        rows_out = _parquet_facts(fs, tmp_kept, kept_names, digest)
        rows_rejected = _parquet_facts(fs, tmp_rejected, rejected_names, digest)
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
            "checksum": f"sha256:{digest.hexdigest()}",
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
        _swap_into_place(fs, tmp_rejected, paths.rejected_dir)
        _swap_into_place(fs, tmp_kept, paths.data_dir)
        write_json_atomic(fs, paths.manifest_path, manifest)
        return manifest
    finally:
        for leftover in (tmp_kept, tmp_rejected):
            if fs.exists(leftover):
                fs.rm(leftover, recursive=True)


def write_json_atomic(fs: fsspec.AbstractFileSystem, path: str, payload: dict[str, Any]) -> None:
    """Write JSON to a temporary name beside `path`, then rename it over `path`."""
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    with fs.open(tmp, "w") as handle:
        json.dump(payload, handle, indent=2, sort_keys=True, default=str)
    fs.mv(tmp, path)
