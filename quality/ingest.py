"""Ingest: sources (folders, JSONL, Parquet; local or fsspec URLs) to document rows, on Spark.

Every input unit becomes exactly one row, kept or rejected:
  * a folder source contributes one unit per listed file (after include/exclude globs);
  * a JSONL source one per line, a Parquet source one per row;
  * a Parquet file whose footer cannot be read is one rejected unit (`corrupt_file`), so a broken
    file in a folder of good ones is reported rather than failing the whole run or vanishing.
Rejection rules and their order are those of `quality.textio`; malformed JSON lines are
`malformed_json`, rows without content `missing_content`.

JSONL and Parquet rows keep their own columns: the input's `id` and every column this module does
not read ride along unchanged beside the document columns (DESIGN.md: stages add columns, none
drops one); only the content column, when named `text` or `code`, becomes `content`. Their
doc_ids use the same keys as `quality.plain`: `id:<id>`, else `path:<path>`, else the content's
SHA-256 (folder sources: the file's path below the folder).

The driver only lists files (names and sizes). Reading, decoding and hashing happen in Spark tasks,
so the same job runs on a laptop or a cluster; files over the size limit are never read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from quality.languages import language_of
from quality.plain import document_key
from quality.recipe import IngestConfig, SourceConfig
from quality.schema import DOCUMENT_COLUMNS, DOCUMENT_FIELDS, content_sha256, make_doc_id, reject_rows
from quality.spark_session import SparkConfig  # noqa: F401  (re-exported for callers' convenience)
from quality.textio import Rejected, decode_text

STAGE = "raw_code"


class SourceError(ValueError):
    """A source that cannot be read at all (missing, empty, no `content` column)."""


# One candidate row: every document column (nullable) plus the verdict. Kept rows have no reason.
# (Underscored, so that an input's own `reason` column is carried like any other of its columns.)
CANDIDATE_SCHEMA = T.StructType(
    [T.StructField(f.name, f.dataType, True) for f in DOCUMENT_FIELDS]
    + [T.StructField("_reason", T.StringType(), True), T.StructField("_detail", T.StringType(), True)]
)
_LISTING_SCHEMA = T.StructType(
    [
        T.StructField("source_name", T.StringType(), False),
        T.StructField("url", T.StringType(), False),
        T.StructField("relpath", T.StringType(), False),
        T.StructField("size", T.LongType(), False),
        T.StructField("mtime", T.DoubleType(), True),
        T.StructField("repo", T.StringType(), True),
        T.StructField("stars", T.LongType(), True),
        T.StructField("licence", T.StringType(), True),
        T.StructField("max_bytes", T.LongType(), False),
    ]
)


@lru_cache(maxsize=256)
def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Compile a path glob: `**` spans folders (also none), `*` and `?` stay inside one name."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def path_selected(relpath: str, include: tuple[str, ...], exclude: tuple[str, ...]) -> bool:
    return any(glob_to_regex(g).match(relpath) for g in include) and not any(
        glob_to_regex(g).match(relpath) for g in exclude
    )


@dataclass(frozen=True)
class ListedFile:
    url: str
    relpath: str
    size: int
    mtime: float | None


def list_folder(source: SourceConfig) -> list[ListedFile]:
    """Files of a folder source that pass its globs, sorted by relative path (links not followed)."""
    fs, root = fsspec.core.url_to_fs(source.path)
    if not fs.isdir(root):
        raise SourceError(f"source {source.name!r}: {source.path} is not a folder")
    local = fs.protocol in ("file", "local") or "file" in getattr(fs, "protocol", ())
    found: list[ListedFile] = []
    if local:
        for folder, dirs, files in os.walk(root, followlinks=False):
            dirs.sort()
            for name in files:
                full = os.path.join(folder, name)
                if os.path.islink(full) or not os.path.isfile(full):
                    continue
                rel = os.path.relpath(full, root).replace(os.sep, "/")
                if path_selected(rel, source.include, source.exclude):
                    stat = os.stat(full)
                    found.append(ListedFile(full, rel, stat.st_size, stat.st_mtime))
    else:
        for full, info in fs.find(root, detail=True).items():
            rel = full[len(root) :].lstrip("/")
            if info.get("type") == "file" and path_selected(rel, source.include, source.exclude):
                mtime = info.get("mtime") or info.get("LastModified")
                stamp = mtime.timestamp() if hasattr(mtime, "timestamp") else mtime
                found.append(ListedFile(fs.unstrip_protocol(full), rel, int(info["size"]), stamp))
    found.sort(key=lambda f: f.relpath)
    if not found:
        raise SourceError(
            f"source {source.name!r}: no file under {source.path} matches include={list(source.include)}"
        )
    return found


def _iso(mtime: float | None) -> str | None:
    return None if mtime is None else datetime.fromtimestamp(mtime, UTC).isoformat(timespec="seconds")


def judge(
    *,
    source_name: str,
    key: str,
    path: str | None,
    size: int,
    read,
    max_bytes: int,
    repo: str | None,
    stars: int | None,
    licence: str | None,
    commit_date: str | None,
    lang_hint: str | None = None,
) -> dict:
    """One candidate row for one input unit. `read()` returns bytes or text and is only called
    when the cheap checks (size, language) pass. A row without a path (JSONL, Parquet) takes its
    language from `lang_hint` (its own `lang` column), else `unknown`, rather than being rejected."""
    lang, ext = language_of(path) if path else (lang_hint or "unknown", "")
    row = {
        "doc_id": make_doc_id(source_name, key),
        "content": None,
        "path": path,
        "repo": repo,
        "lang": lang,
        "ext": ext or None,
        "size_bytes": int(size),
        "sha256": None,
        "stars": stars,
        "licence": licence,
        "commit_date": commit_date,
        "source": "code",
        "url": None,
        "_reason": None,
        "_detail": None,
    }
    try:
        if size > max_bytes:
            raise Rejected("too_large", f"{size} bytes > limit {max_bytes}")
        if lang is None:
            raise Rejected(
                "unknown_extension", f"no language for extension {ext!r}" if ext else "no extension"
            )
        data = read()
        if data is None:
            raise Rejected("missing_content", "content is null")
        if isinstance(data, str):
            if not data.strip():
                raise Rejected("empty", "whitespace only" if data else "no content")
            if "\x00" in data:
                raise Rejected("binary", f"NUL character at offset {data.index(chr(0))}")
            text = data.removeprefix("\ufeff")
        else:
            text = decode_text(data)
        row["content"] = text
        row["size_bytes"] = len(text.encode("utf-8", "surrogatepass"))
        row["sha256"] = content_sha256(text)
    except Rejected as rejected:
        row["_reason"], row["_detail"] = rejected.reason, rejected.detail
    except OSError as error:  # vanished or unreadable between listing and reading
        row["_reason"], row["_detail"] = "unreadable", f"{type(error).__name__}: {error}"
    return row


def _read_listed_files(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Spark task body: read, decode and judge each listed file."""
    arrow_schema = _arrow_candidate_schema()
    for batch in batches:
        rows = []
        for item in batch.to_pylist():

            def read(url=item["url"]):
                with fsspec.open(url, "rb") as handle:
                    return handle.read()

            rows.append(
                judge(
                    source_name=item["source_name"],
                    key=item["relpath"],
                    path=item["relpath"],
                    size=item["size"],
                    read=read,
                    max_bytes=item["max_bytes"],
                    repo=item["repo"],
                    stars=item["stars"],
                    licence=item["licence"],
                    commit_date=_iso(item["mtime"]),
                )
            )
        yield pa.RecordBatch.from_pylist(rows, schema=arrow_schema)


@lru_cache(maxsize=1)
def _arrow_candidate_schema() -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(CANDIDATE_SCHEMA)


def _folder_candidates(
    spark: SparkSession, source: SourceConfig, config: IngestConfig
) -> tuple[DataFrame, int]:
    listed = list_folder(source)
    rows = []
    for f in listed:
        repo = source.repo or source.name
        if source.repo_from_first_dir:
            repo = f.relpath.split("/", 1)[0] if "/" in f.relpath else os.path.splitext(f.relpath)[0]
        rows.append(
            (
                source.name,
                f.url,
                f.relpath,
                f.size,
                f.mtime,
                repo,
                source.stars,
                source.licence,
                config.max_file_bytes,
            )
        )
    partitions = max(1, -(-len(rows) // config.files_per_partition))
    listing = spark.createDataFrame(rows, _LISTING_SCHEMA).repartition(partitions)
    return listing.mapInArrow(_read_listed_files, CANDIDATE_SCHEMA), len(rows)


def _first_present(columns: list[str], *names: str) -> str | None:
    lowered = {c.lower(): c for c in columns}
    return next((lowered[n] for n in names if n in lowered), None)


def _table_files(source: SourceConfig) -> list[str]:
    fs, root = fsspec.core.url_to_fs(source.path)
    suffixes = (".jsonl", ".json", ".jsonl.gz", ".json.gz") if source.kind == "jsonl" else (".parquet", ".pq")
    if fs.isdir(root):
        files = sorted(p for p in fs.find(root) if p.endswith(suffixes))
    else:
        files = (
            sorted(fs.glob(root)) if any(c in root for c in "*?[") else ([root] if fs.exists(root) else [])
        )
    if not files:
        raise SourceError(f"source {source.name!r}: no {source.kind} file at {source.path}")
    return [fs.unstrip_protocol(p) if "://" in source.path else p for p in files]


def _table_candidates(
    spark: SparkSession, source: SourceConfig, config: IngestConfig
) -> tuple[DataFrame, int]:
    """JSONL / Parquet rows with a `content` column; corrupt files and lines become reject rows."""
    files = _table_files(source)
    broken: list[dict] = []
    if source.kind == "parquet":
        good = []
        for url in files:
            try:
                with fsspec.open(url, "rb") as handle:
                    pq.ParquetFile(handle).metadata  # noqa: B018  (reads and validates the footer)
                good.append(url)
            except Exception as error:  # noqa: BLE001  (any footer failure means the file is unusable)
                row = judge(
                    source_name=source.name,
                    key=f"file:{url}",
                    path=os.path.basename(url),
                    size=0,
                    read=lambda: "",
                    max_bytes=config.max_file_bytes,
                    repo=source.repo,
                    stars=source.stars,
                    licence=source.licence,
                    commit_date=None,
                )
                row.update(
                    _reason="corrupt_file", _detail=f"{type(error).__name__}: {error}"[:500], lang=None
                )
                broken.append(row)
        files = good
        frame = spark.read.parquet(*files) if files else None
    else:
        frame = (
            spark.read.option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", "_corrupt_record")
            .json(files)
        )
    if frame is None:
        return spark.createDataFrame(broken, CANDIDATE_SCHEMA), len(broken)
    frame = frame.withColumn("_file", F.input_file_name())
    # A cached copy: Spark refuses to query the corrupt-record column of a raw JSON scan alone.
    frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
    columns = frame.columns
    content_col = _first_present(columns, "content", "text", "code")
    if content_col is None:
        frame.unpersist()
        raise SourceError(
            f"source {source.name!r}: no 'content' column in {source.kind} data (columns: {columns})"
        )
    path_col = _first_present(columns, "path", "max_stars_repo_path", "filepath", "file_path")
    id_col = _first_present(columns, "id", "doc_id")
    repo_col = _first_present(columns, "repo", "repo_name", "max_stars_repo_name")
    stars_col = _first_present(columns, "stars", "max_stars_count", "star_count")
    licence_col = _first_present(columns, "licence", "license")
    date_col = _first_present(columns, "commit_date", "max_stars_repo_stars_event_max_datetime", "date")
    lang_col = _first_present(columns, "lang", "language")

    def col_or(name: str | None, default, cast: str = "string"):
        return F.col(name).cast(cast) if name else F.lit(default).cast(cast)

    corrupt = F.col("_corrupt_record") if "_corrupt_record" in columns else F.lit(None).cast("string")
    content = F.col(content_col).cast("string")
    # The input's own columns (its `id`, anything this module does not read) ride along unchanged,
    # so that results join back to the input data; document columns it names are recomputed.
    own = [
        c for c in columns if c not in ("_file", "_corrupt_record", content_col) and c not in DOCUMENT_COLUMNS
    ]
    # The same keys as plain inputs (quality.plain): id, else path, else the content's hash.
    base_key = document_key(id_col, path_col, F.coalesce(corrupt, content))
    shaped = frame.select(
        base_key.alias("_key"),
        col_or(path_col, None).alias("path"),
        F.coalesce(col_or(repo_col, None), F.lit(source.repo)).alias("repo"),
        F.coalesce(col_or(stars_col, None, "long"), F.lit(source.stars).cast("long")).alias("stars"),
        F.coalesce(col_or(licence_col, None), F.lit(source.licence)).alias("licence"),
        col_or(date_col, None).alias("commit_date"),
        F.lower(col_or(lang_col, None)).alias("lang"),
        content.alias("content"),
        corrupt.alias("_corrupt"),
        F.col("_file"),
        *[F.col(f"`{c}`") for c in own],
    )
    # Rows sharing a key (same path twice) get #2, #3... in a content order, so ids stay unique and stable.
    rank = F.row_number().over(
        Window.partitionBy("_key").orderBy(F.coalesce("content", "_corrupt"), "_file", "stars", "repo")
    )
    shaped = shaped.withColumn(
        "_key", F.when(rank > 1, F.concat("_key", F.lit("#"), rank.cast("string"))).otherwise(F.col("_key"))
    )
    name, max_bytes = source.name, config.max_file_bytes
    schema = T.StructType(
        CANDIDATE_SCHEMA.fields + [T.StructField(c, frame.schema[c].dataType, True) for c in own]
    )

    def judge_rows(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark.sql.pandas.types import to_arrow_schema

        arrow_schema = to_arrow_schema(schema)
        for batch in batches:
            out = []
            for item in batch.to_pylist():
                text = item["content"]
                row = judge(
                    source_name=name,
                    key=item["_key"],
                    path=item["path"],
                    size=len(text.encode("utf-8", "surrogatepass")) if text is not None else 0,
                    read=lambda text=text: text,
                    max_bytes=max_bytes,
                    repo=item["repo"],
                    stars=item["stars"],
                    licence=item["licence"],
                    commit_date=item["commit_date"],
                    lang_hint=item["lang"],
                )
                if item["_corrupt"] is not None:
                    row.update(
                        _reason="malformed_json", _detail=item["_corrupt"][:200], content=None, sha256=None
                    )
                row.update({column: item[column] for column in own})
                out.append(row)
            yield pa.RecordBatch.from_pylist(out, schema=arrow_schema)

    candidates = shaped.mapInArrow(judge_rows, schema)
    rows_in = frame.count()
    if broken:
        candidates = candidates.unionByName(
            spark.createDataFrame(broken, CANDIDATE_SCHEMA), allowMissingColumns=True
        )
    return candidates, rows_in + len(broken)


@dataclass
class IngestResult:
    kept: DataFrame
    rejected: DataFrame
    rows_in: int
    rows_in_by_source: dict[str, int]

    def release(self) -> None:
        self._candidates.unpersist()


def ingest_sources(
    spark: SparkSession, sources: tuple[SourceConfig, ...], config: IngestConfig
) -> IngestResult:
    """Candidate rows for all sources, split into kept documents and reject rows."""
    if not sources:
        raise SourceError("the recipe names no code source")
    parts, counts = [], {}
    for source in sources:
        frame, rows_in = (_folder_candidates if source.kind == "folder" else _table_candidates)(
            spark, source, config
        )
        parts.append(frame)
        counts[source.name] = rows_in
    candidates = parts[0]
    for frame in parts[1:]:
        candidates = candidates.unionByName(frame, allowMissingColumns=True)
    # Files are read once: both outputs come from this cached copy.
    candidates = candidates.persist(StorageLevel.MEMORY_AND_DISK)
    own = [c for c in candidates.columns if c not in CANDIDATE_SCHEMA.fieldNames()]
    kept = candidates.filter(F.col("_reason").isNull()).select(
        *DOCUMENT_COLUMNS, *[F.col(f"`{c}`") for c in own]
    )
    rejected = reject_rows(
        candidates.filter(F.col("_reason").isNotNull()), STAGE, F.col("_reason"), F.col("_detail")
    )
    result = IngestResult(kept, rejected, sum(counts.values()), counts)
    result._candidates = candidates
    return result
