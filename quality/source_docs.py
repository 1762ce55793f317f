"""What the structured sources (notebooks, commits, issues) share: candidate rows, the Spark task
that makes them, and the split into kept documents and reject rows.

A source engine lists its units on the driver (notebook files, commits, conversations), hands the
list to Spark as a small table and turns every unit into candidate rows in Spark tasks
(`mapInArrow`): each candidate is a full document row with a `doc_format`, or a verdict
(`_reason`, `_detail`) saying why it is not one. Every unit gives at least one candidate, so
kept + rejected = the candidates the engine counted, and nothing is dropped silently.

Document rows follow `quality.schema` (source `code`) plus `doc_format`
(`contracts.doc_formats`), which tells the shard builder which markers to tokenize as special
tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from contracts.doc_formats import markers_in
from quality.schema import DOCUMENT_COLUMNS, DOCUMENT_FIELDS, content_sha256, make_doc_id, reject_rows

DOC_FORMAT = "doc_format"
CANDIDATE_SCHEMA = T.StructType(
    [T.StructField(f.name, f.dataType, True) for f in DOCUMENT_FIELDS]
    + [
        T.StructField(DOC_FORMAT, T.StringType(), True),
        T.StructField("_reason", T.StringType(), True),
        T.StructField("_detail", T.StringType(), True),
    ]
)
KEPT_COLUMNS = [*DOCUMENT_COLUMNS, DOC_FORMAT]


class Rejection(Exception):
    """A unit (or one of its documents) that cannot be used: `reason` is the rule's name."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def document(
    source_name: str,
    key: str,
    content: str,
    *,
    doc_format: str,
    path: str | None,
    lang: str,
    ext: str | None = None,
    repo: str | None = None,
    commit_date: str | None = None,
    url: str | None = None,
    licence: str | None = None,
    stars: int | None = None,
) -> dict[str, Any]:
    """A kept candidate: a document row of `doc_format` (doc_id from the source name and `key`)."""
    return {
        "doc_id": make_doc_id(source_name, key),
        "content": content,
        "path": path,
        "repo": repo,
        "lang": lang,
        "ext": ext,
        "size_bytes": len(content.encode("utf-8", "surrogatepass")),
        "sha256": content_sha256(content),
        "stars": stars,
        "licence": licence,
        "commit_date": commit_date,
        "source": "code",
        "url": url,
        DOC_FORMAT: doc_format,
        "_reason": None,
        "_detail": None,
    }


def rejected(
    source_name: str,
    key: str,
    reason: str,
    detail: str,
    *,
    path: str | None = None,
    lang: str | None = None,
    size_bytes: int | None = None,
    doc_format: str | None = None,
) -> dict[str, Any]:
    """A rejected candidate (doc_id from the source name and `key`, as a kept one would have)."""
    row = {name: None for name in CANDIDATE_SCHEMA.fieldNames()}
    row.update(
        doc_id=make_doc_id(source_name, key),
        path=path,
        lang=lang,
        size_bytes=size_bytes,
        source="code",
        _reason=reason,
        _detail=detail[:2000],
    )
    row[DOC_FORMAT] = doc_format
    return row


def check_no_markers(pieces: dict[str, str], doc_format: str) -> None:
    """Rejects (`format_marker_in_text`) a document whose own text spells one of its markers."""
    for name, text in pieces.items():
        found = markers_in(text, doc_format)
        if found:
            raise Rejection("format_marker_in_text", f"{name} already contains {', '.join(found)}")


@lru_cache(maxsize=1)
def _arrow_schema() -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(CANDIDATE_SCHEMA)


def candidates_from_units(
    spark: SparkSession,
    units: list[dict[str, Any]],
    unit_schema: T.StructType,
    make: Callable[[dict[str, Any]], list[dict[str, Any]]],
    *,
    units_per_partition: int,
) -> DataFrame:
    """Candidate rows of `units` (plain dicts matching `unit_schema`): `make(unit)` runs in Spark
    tasks and returns the unit's candidates (at least one)."""

    def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        schema = _arrow_schema()
        for batch in batches:
            rows = [row for unit in batch.to_pylist() for row in make(unit)]
            yield pa.RecordBatch.from_pylist(rows, schema=schema)

    partitions = max(1, -(-len(units) // max(1, units_per_partition)))
    rows = [tuple(unit[f.name] for f in unit_schema.fields) for unit in units]
    listing = spark.createDataFrame(rows, unit_schema).repartition(partitions)
    return listing.mapInArrow(task, CANDIDATE_SCHEMA)


@dataclass
class SourceResult:
    """A source stage's outcome: kept documents, reject rows, the candidates counted."""

    kept: DataFrame
    rejected: DataFrame
    rows_in: int
    facts: dict[str, Any] = field(default_factory=dict)
    _candidates: DataFrame | None = None

    def release(self) -> None:
        if self._candidates is not None:
            self._candidates.unpersist()


def split_candidates(candidates: DataFrame, stage: str, facts: dict[str, Any] | None = None) -> SourceResult:
    """Kept documents and reject rows of `stage`, from one cached copy of the candidates."""
    candidates = candidates.persist(StorageLevel.MEMORY_AND_DISK)
    rows_in = candidates.count()
    kept = candidates.filter(F.col("_reason").isNull()).select(*KEPT_COLUMNS)
    reject = reject_rows(
        candidates.filter(F.col("_reason").isNotNull()), stage, F.col("_reason"), F.col("_detail")
    )
    return SourceResult(kept, reject, int(rows_in), facts or {}, candidates)


def format_counts(connection, data_dir: str) -> list[dict[str, Any]]:
    """Documents and bytes per doc_format and language of a written source stage (DuckDB)."""
    rows = connection.execute(
        f"SELECT {DOC_FORMAT}, lang, count(*) AS docs, sum(size_bytes) AS bytes FROM read_parquet(?) "
        f"GROUP BY ALL ORDER BY docs DESC, {DOC_FORMAT}, lang",
        [f"{data_dir}/*.parquet"],
    ).fetchall()
    return [{"doc_format": f, "lang": lang, "docs": int(n), "bytes": int(b or 0)} for f, lang, n, b in rows]
