"""Which copy of a duplicate group survives: one policy for exact and near dedup.

Ordered by, first difference wins:
  1. most `stars` (unknown counts last)
  2. newest `commit_date` (unparseable or missing dates last)
  3. a permissive licence before any other (or none)
  4. smallest `sha256` of the content: an arbitrary but content-bound tie-break, so the same
     files win whatever their ids or the order they arrived in
  5. smallest `doc_id`: exact duplicates share their sha256, and the result must still be total

`keep_order` is the Spark form used by both stages; `keep_key` mirrors it in Python for baselines
that run without Spark (the tests check that the two agree).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import Column
from pyspark.sql import functions as F


def is_permissive(licences: Iterable[str]) -> Column:
    """1 when the row's licence (any case, surrounding spaces ignored) is in `licences`, else 0."""
    wanted = sorted({name.strip().lower() for name in licences})
    if not wanted:
        return F.lit(0)
    # A case-insensitive whole-string regex, not `lower(...) IN (...)`: Spark 4's `lower` makes
    # each JVM initialise ICU's case mapping first (1.5-2 CPU seconds, measured), a cost a
    # short dedup stage would pay for a handful of licence names. `\Q...\E` quotes each name.
    names = "|".join(f"\\Q{name}\\E" for name in wanted)
    matches = F.trim(F.col("licence")).rlike(f"(?iu)^(?:{names})$")
    return F.when(matches, F.lit(1)).otherwise(F.lit(0))


def commit_timestamp() -> Column:
    """`commit_date` as a timestamp; None when missing or unparseable (never an error)."""
    return F.expr("try_cast(commit_date AS TIMESTAMP)")


def keep_order(licences: Iterable[str]) -> list[Column]:
    """Sort expressions putting the copy to keep first within a duplicate group."""
    return [
        F.col("stars").desc_nulls_last(),
        commit_timestamp().desc_nulls_last(),
        is_permissive(licences).desc(),
        F.col("sha256").asc_nulls_last(),
        F.col("doc_id").asc(),
    ]


def _timestamp(value: str | None) -> float | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    # Spark's session time zone is UTC: a date without an offset means UTC there too.
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def keep_key(row: dict[str, Any], licences: Iterable[str]) -> tuple:
    """Python mirror of `keep_order`: `min(rows, key=...)` is the row to keep."""
    wanted = {name.strip().lower() for name in licences}
    stars, stamp = row.get("stars"), _timestamp(row.get("commit_date"))
    licence = (row.get("licence") or "").strip().lower()
    sha = row.get("sha256")
    return (
        (stars is None, -(stars or 0)),
        (stamp is None, -(stamp or 0.0)),
        0 if licence in wanted else 1,
        (sha is None, sha or ""),
        row["doc_id"],
    )


# ---- Repository-level dedup: the keep policy over whole repositories ---------------------------


def unit_key() -> Column:
    """The dedup unit of a row at `level: repo`: its repository, or the document itself.

    `repo:<name>` for rows with a non-blank `repo`, `doc:<doc_id>` for the others, so a file
    without a repository never joins a repository's unit (and two such files never share one)."""
    repo = F.trim(F.col("repo"))
    return F.when(repo.isNotNull() & (repo != ""), F.concat(F.lit("repo:"), F.col("repo"))).otherwise(
        F.concat(F.lit("doc:"), F.col("doc_id"))
    )


def unit_keep_columns(licences: Iterable[str]) -> list[Column]:
    """Aggregates giving one row per unit the columns `keep_order` reads (grouped by unit).

    stars        the most stars of any of its files (a repository's files normally share one count)
    commit_date  its newest commit date (as Spark's timestamp text, which `commit_timestamp` reads)
    licence      a permissive licence if any file has one, else the largest licence name
    doc_id       its smallest doc_id: the unit's id, and the `kept_doc_id` its duplicates name
    The unit's `sha256` is the caller's: it depends on what the stage compares (file hashes for
    exact dedup). The order is then the file-level one: stars, date, licence, hash, id."""
    permissive = is_permissive(licences) == 1
    return [
        F.min("doc_id").alias("doc_id"),
        F.max("stars").alias("stars"),
        F.max(commit_timestamp()).cast("string").alias("commit_date"),
        F.coalesce(F.max(F.when(permissive, F.col("licence"))), F.max("licence")).alias("licence"),
    ]
