"""Facts about a written dedup stage, read back from its Parquet files with DuckDB.

Used by the asset metadata, the asset checks and anyone with a notebook. A duplicate group is
identified by its kept document: its size is 1 + the rejected rows naming it as `kept_doc_id`,
which works the same way for exact and near dedup.
"""

from __future__ import annotations

from typing import Any

from quality.storage import StagePaths

# Upper bounds of the cluster-size histogram bins (the last bin is open-ended).
SIZE_BINS = (1, 2, 3, 5, 10, 20, 50, 100, 1000)


def _kept(paths: StagePaths) -> str:
    return f"{paths.data_dir}/*.parquet"


def _rejected(paths: StagePaths) -> str:
    return f"{paths.rejected_dir}/*.parquet"


def duplicate_rate_by_language(connection, paths: StagePaths, reason: str) -> list[dict[str, Any]]:
    """Per language: rows in, rows removed as `reason`, and the share removed; largest first."""
    rows = connection.execute(
        """
        WITH kept AS (SELECT lang, count(*) AS n FROM read_parquet(?) GROUP BY lang),
             removed AS (
                 SELECT lang, count(*) FILTER (WHERE reason = ?) AS dup, count(*) AS other
                 FROM read_parquet(?) GROUP BY lang)
        SELECT coalesce(k.lang, r.lang) AS lang,
               coalesce(k.n, 0) + coalesce(r.other, 0) AS rows_in,
               coalesce(r.dup, 0) AS duplicates
        FROM kept k FULL OUTER JOIN removed r ON k.lang IS NOT DISTINCT FROM r.lang
        ORDER BY rows_in DESC, lang
        """,
        [_kept(paths), reason, _rejected(paths)],
    ).fetchall()
    return [
        {
            "lang": lang,
            "rows_in": int(rows_in),
            "duplicates": int(dups),
            "duplicate_rate": round(dups / rows_in, 4) if rows_in else 0.0,
        }
        for lang, rows_in, dups in rows
    ]


def cluster_sizes(connection, paths: StagePaths, reason: str) -> list[tuple[int, int]]:
    """(cluster size, number of clusters) over every kept document, singletons included."""
    rows = connection.execute(
        """
        WITH removed AS (
            SELECT kept_doc_id, count(*) AS n FROM read_parquet(?) WHERE reason = ? GROUP BY kept_doc_id)
        SELECT 1 + coalesce(r.n, 0) AS size, count(*) AS clusters
        FROM read_parquet(?) k LEFT JOIN removed r ON r.kept_doc_id = k.doc_id
        GROUP BY size ORDER BY size
        """,
        [_rejected(paths), reason, _kept(paths)],
    ).fetchall()
    return [(int(size), int(count)) for size, count in rows]


def size_histogram(sizes: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """Cluster sizes binned (1, 2, 3-5, 6-10, ...): clusters and documents per bin."""
    bins: list[dict[str, Any]] = []
    low = 1
    for high in (*SIZE_BINS, None):
        label = (f"{low}" if high == low else f"{low}-{high}") if high is not None else f">{SIZE_BINS[-1]}"
        members = [(s, c) for s, c in sizes if s >= low and (high is None or s <= high)]
        bins.append(
            {"size": label, "clusters": sum(c for _, c in members), "docs": sum(s * c for s, c in members)}
        )
        if high is not None:
            low = high + 1
    return [b for b in bins if b["clusters"]]


def largest_clusters(connection, paths: StagePaths, reason: str, limit: int = 10) -> list[dict[str, Any]]:
    """The biggest duplicate groups with the kept document's path, language and repository."""
    rows = connection.execute(
        """
        WITH removed AS (
            SELECT kept_doc_id, any_value(cluster_id) AS cluster_id, count(*) AS n,
                   string_agg(path, ', ' ORDER BY path) AS removed_paths
            FROM read_parquet(?) WHERE reason = ? GROUP BY kept_doc_id)
        SELECT r.cluster_id, 1 + r.n AS size, k.doc_id, k.path, k.lang, k.repo, r.removed_paths
        FROM removed r JOIN read_parquet(?) k ON k.doc_id = r.kept_doc_id
        ORDER BY size DESC, k.doc_id LIMIT ?
        """,
        [_rejected(paths), reason, _kept(paths), int(limit)],
    ).fetchall()
    return [
        {
            "cluster_id": cluster_id,
            "size": int(size),
            "kept_doc_id": doc_id,
            "kept_path": path,
            "lang": lang,
            "repo": repo,
            "removed_paths": (removed or "")[:200],
        }
        for cluster_id, size, doc_id, path, lang, repo, removed in rows
    ]


def shared_sha256(connection, paths: StagePaths) -> tuple[bool, dict[str, Any]]:
    """No two kept rows share a SHA-256 (and none lacks one)."""
    total, distinct, missing = connection.execute(
        "SELECT count(*), count(DISTINCT sha256), count(*) FILTER (WHERE sha256 IS NULL) FROM read_parquet(?)",
        [_kept(paths)],
    ).fetchone()
    examples = connection.execute(
        "SELECT sha256 FROM read_parquet(?) GROUP BY sha256 HAVING count(*) > 1 ORDER BY sha256 LIMIT 3",
        [_kept(paths)],
    ).fetchall()
    facts = {
        "kept_rows": int(total),
        "distinct_sha256": int(distinct),
        "rows_sharing_a_sha256": int(total) - int(distinct) - int(missing),
        "rows_without_sha256": int(missing),
        "examples": ", ".join(e[0] for e in examples) or "none",
    }
    return facts["rows_sharing_a_sha256"] == 0 and facts["rows_without_sha256"] == 0, facts


def kept_twins_present(connection, paths: StagePaths, reason: str) -> tuple[bool, dict[str, Any]]:
    """Every duplicate rejected as `reason` names a `kept_doc_id` that is in the kept output."""
    checked, orphans = connection.execute(
        """
        SELECT count(*), count(*) FILTER (WHERE k.doc_id IS NULL)
        FROM read_parquet(?) r LEFT JOIN read_parquet(?) k ON k.doc_id = r.kept_doc_id
        WHERE r.reason = ?
        """,
        [_rejected(paths), _kept(paths), reason],
    ).fetchone()
    return orphans == 0, {"duplicates_checked": int(checked), "kept_doc_id_missing": int(orphans)}
