"""The row contracts every stage shares (see DESIGN.md, "Contracts").

A *document row* is one source file or web page. Stages add columns, none renames or drops one.
A *reject row* records one input row a stage did not keep, with the rule that removed it.
"""

from __future__ import annotations

import hashlib

from pyspark.sql import types as T

# Columns every document row carries, in order. `doc_id` is stable across reruns: a hash of the
# source name and the path inside it, never a row number.
DOCUMENT_FIELDS: list[T.StructField] = [
    T.StructField("doc_id", T.StringType(), False),
    T.StructField("content", T.StringType(), False),
    T.StructField("path", T.StringType(), True),
    T.StructField("repo", T.StringType(), True),
    T.StructField("lang", T.StringType(), False),
    T.StructField("ext", T.StringType(), True),
    T.StructField("size_bytes", T.LongType(), False),
    T.StructField("sha256", T.StringType(), False),
    T.StructField("stars", T.LongType(), True),
    T.StructField("licence", T.StringType(), True),
    # ISO-8601 UTC; the newest copy wins a dedup tie on stars. Folder sources use the file mtime.
    T.StructField("commit_date", T.StringType(), True),
    T.StructField("source", T.StringType(), False),  # "code" or "web"
    T.StructField("url", T.StringType(), True),
]
DOCUMENT_SCHEMA = T.StructType(DOCUMENT_FIELDS)
DOCUMENT_COLUMNS = [f.name for f in DOCUMENT_FIELDS]

# Every rejected row, at every stage. `cluster_id` and `kept_doc_id` are filled by dedup only.
REJECT_FIELDS: list[T.StructField] = [
    T.StructField("doc_id", T.StringType(), False),
    T.StructField("stage", T.StringType(), False),
    T.StructField("reason", T.StringType(), False),
    T.StructField("detail", T.StringType(), True),
    T.StructField("path", T.StringType(), True),
    T.StructField("lang", T.StringType(), True),
    T.StructField("size_bytes", T.LongType(), True),
    T.StructField("cluster_id", T.StringType(), True),
    T.StructField("kept_doc_id", T.StringType(), True),
]
REJECT_SCHEMA = T.StructType(REJECT_FIELDS)
REJECT_COLUMNS = [f.name for f in REJECT_FIELDS]
# Written after REJECT_COLUMNS by `write_stage`, never produced by an engine: the input row's own
# `id` (plain JSONL/Parquet rows that had one), so a rejected row joins back to the user's data
# like a kept row does; null where the input had no id.
SOURCE_ID = "source_id"


def make_doc_id(source_name: str, key: str) -> str:
    """Stable id of a document: 128 bits of SHA-256 over the source name and its key (the path)."""
    digest = hashlib.sha256(f"{source_name}\x00{key}".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:32]


def content_sha256(text: str) -> str:
    """SHA-256 of the UTF-8 content: exact dedup and the 'no two kept rows share it' check use it."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def reject_rows(
    frame,
    stage: str,
    reason,
    detail,
    *,
    cluster_id=None,
    kept_doc_id=None,
):
    """`frame`'s rows as reject rows (REJECT_COLUMNS, in order) of `stage`.

    `reason` and `detail` are Columns or plain strings (taken as literals); `path`, `lang` and
    `size_bytes` come from the frame when it has them, else null."""
    from pyspark.sql import functions as F

    def column(value, kind: str = "string"):
        if value is None:
            return F.lit(None).cast(kind)
        return (F.lit(value) if isinstance(value, str) else value).cast(kind)

    def carried(name: str, kind: str):
        return F.col(name).cast(kind) if name in frame.columns else F.lit(None).cast(kind)

    return frame.select(
        F.col("doc_id").cast("string").alias("doc_id"),
        F.lit(stage).alias("stage"),
        column(reason).alias("reason"),
        column(detail).alias("detail"),
        carried("path", "string").alias("path"),
        carried("lang", "string").alias("lang"),
        carried("size_bytes", "long").alias("size_bytes"),
        column(cluster_id).alias("cluster_id"),
        column(kept_doc_id).alias("kept_doc_id"),
    )


def with_source_ids(rejected, documents):
    """Reject rows with `source_id` filled from the documents' own `id` column, when they have one."""
    from pyspark.sql import functions as F

    if "id" not in documents.columns or SOURCE_ID in rejected.columns:
        return rejected
    ids = documents.select("doc_id", F.col("id").cast("string").alias(SOURCE_ID)).dropDuplicates(["doc_id"])
    return rejected.join(ids, "doc_id", "left")
