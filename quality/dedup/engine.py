"""Exact and near deduplication of document rows on Spark.

exact_dedup  groups rows by the SHA-256 of their content; in each group the keep policy
             (`quality.dedup.keep`) picks one row, the others are rejected as `exact_duplicate`
             with `cluster_id` = the shared sha256 and `kept_doc_id` = the survivor.

near_dedup   1. signatures: MinHash over token 5-grams, computed per Arrow batch with numpy
                (`quality.dedup.minhash`), one row per document with its band keys;
             2. buckets: documents sharing a (band, key) are candidates. Each bucket links its
                members to its smallest doc_id (a star: n - 1 edges, whatever the bucket size),
                which gives the same components as linking all pairs. With `verify`, buckets up
                to `bucket_cap` members are paired all-to-all and every pair's exact Jaccard on
                its shingle sets must reach the threshold; bigger buckets are verified against
                their smallest member only, and reported as capped;
             3. components: one job signs every document and brings the members of the
                candidate buckets to the driver, up to 2 x `driver_graph_max_edges` of them; a
                graph within that bound is labelled there in numpy, with the keep choice of step
                4 (one more job ranks its documents); a bigger one goes through large-star /
                small-star rounds on Spark (`quality.dedup.components`). Both give the same
                labels, so small corpora pay for a handful of jobs, not one per round. Every
                signature row carries the keep policy's columns (KEEP_COLUMNS), so ranking never
                goes back to the documents;
             4. keep: the same keep policy per component picks the document to keep; members
                whose MinHash Jaccard estimate with it reaches `kept_twin_min_jaccard` are
                rejected as `near_duplicate`; the rest of the component (the far end of a chain
                A ~ B ~ C) is regrouped around its own best document, so every removed document
                has a near twin kept in its place. Every output row carries `cluster_id`, the
                smallest doc_id of its component (its own doc_id when it has no near twin).

`level: repo` (OpenCoder's repository-level ablation): both stages compare whole repositories
(`quality.dedup.keep.unit_key`: the `repo`, or the document itself when it has none) instead of
files, and remove a duplicate repository with all its files (`repo_exact_duplicate`,
`repo_near_duplicate`); files are never removed one by one, so copies shared by otherwise
different repositories survive. See `repo_exact_dedup` and `repo_near_dedup`.

Both functions return DataFrames for `quality.storage.write_stage`, plus facts for the manifest.
Nothing depends on partitioning, core count or arrival order: cluster ids are minima, the keep
policy is a total order, so reruns and different machines write the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Observation, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from quality.dedup import minhash
from quality.dedup.components import connected_components, label_components
from quality.dedup.config import DedupConfig
from quality.dedup.keep import keep_order, unit_keep_columns, unit_key
from quality.schema import REJECT_COLUMNS

EXACT_STAGE = "exact_dedup"
NEAR_STAGE = "near_dedup"

# What the keep policy and the reject rows read from a document row.
NEEDED_COLUMNS = (
    "doc_id",
    "content",
    "sha256",
    "stars",
    "commit_date",
    "licence",
    "path",
    "lang",
    "size_bytes",
)

# Content handled per numpy pass inside one Arrow batch: bounds the Python worker's scratch memory.
_SLICE_BYTES = 8 * 1024 * 1024

SIGNATURE_SCHEMA = T.StructType(
    [
        T.StructField("doc_id", T.StringType(), False),
        T.StructField("tokens", T.LongType(), False),
        T.StructField("band_keys", T.ArrayType(T.LongType(), False), False),
        T.StructField("signature", T.ArrayType(T.IntegerType(), False), False),
        T.StructField("shingles", T.ArrayType(T.LongType(), False), True),
    ]
)
_PAIR_SCHEMA = T.StructType(
    [
        T.StructField("a", T.StringType(), False),
        T.StructField("b", T.StringType(), False),
        T.StructField("jaccard", T.DoubleType(), False),
    ]
)


class DedupInputError(ValueError):
    """Input rows that cannot be deduplicated as given (a missing column, repeated doc_ids)."""


@dataclass
class DedupResult:
    """Kept rows, reject rows (REJECT_SCHEMA) and facts for the manifest of one stage."""

    stage: str
    kept: DataFrame
    rejected: DataFrame
    rows_in: int
    facts: dict[str, Any]
    _cached: list[DataFrame] = field(default_factory=list, repr=False)

    def release(self) -> None:
        """Drop the cached intermediate tables (call after the outputs were written)."""
        for frame in self._cached:
            frame.unpersist()
        self._cached.clear()


def require_columns(docs: DataFrame, stage: str, needed: tuple[str, ...] = NEEDED_COLUMNS) -> None:
    missing = [name for name in needed if name not in docs.columns]
    if missing:
        raise DedupInputError(f"{stage}: input lacks column(s) {missing}; it has {docs.columns}")


def _reject_rows(
    frame: DataFrame, stage: str, reason: Column | str, detail, cluster_id, kept_doc_id
) -> DataFrame:
    return frame.select(
        F.col("doc_id"),
        F.lit(stage).alias("stage"),
        (F.lit(reason) if isinstance(reason, str) else reason).alias("reason"),
        detail.alias("detail"),
        F.col("path").cast("string").alias("path"),
        F.col("lang").cast("string").alias("lang"),
        F.col("size_bytes").cast("long").alias("size_bytes"),
        cluster_id.cast("string").alias("cluster_id"),
        kept_doc_id.cast("string").alias("kept_doc_id"),
    ).select(*REJECT_COLUMNS)


def _unusable_rejects(frame: DataFrame) -> DataFrame:
    """Reject rows of exact dedup for rows whose `problem` says they have no content to hash."""
    return _reject_rows(
        frame.filter(F.col("problem").isNotNull()),
        EXACT_STAGE,
        F.col("problem"),
        F.when(F.col("problem") == "missing_content", F.lit("content is null")).otherwise(
            F.lit("content is empty or whitespace only")
        ),
        F.lit(None),
        F.lit(None),
    )


def exact_dedup(docs: DataFrame, config: DedupConfig, log: Callable[[str], None] = print) -> DedupResult:
    """Keep one row per distinct content (SHA-256); reject rows without content as well.

    At `level: repo` the compared unit is the repository (see `repo_exact_dedup`)."""
    if config.level == "repo":
        return repo_exact_dedup(docs, config, log)
    require_columns(docs, EXACT_STAGE)
    no_content = F.col("content").isNull()
    blank = F.coalesce(F.col("content"), F.lit("")).rlike(r"^\s*$")  # empty or whitespace only
    order = keep_order(config.permissive_licences)
    # Rows without usable content form groups of their own, so one window ranks everything.
    group = Window.partitionBy(
        F.when(F.col("problem").isNull(), F.col("sha256")).otherwise(F.concat(F.lit("unusable:"), "doc_id"))
    )
    # A row without its sha256 gets it from its content: null hashes must never group together.
    docs = docs.withColumn("sha256", F.coalesce(F.col("sha256"), F.sha2(F.col("content"), 256)))
    ranked = (
        docs.select(
            "doc_id",
            "sha256",
            "stars",
            "commit_date",
            "licence",
            "path",
            "lang",
            "size_bytes",
            F.when(no_content, "missing_content").when(blank, "empty_content").alias("problem"),
        )
        .withColumn("rank", F.row_number().over(group.orderBy(*order)))
        .withColumn("kept_doc_id", F.first("doc_id").over(group.orderBy(*order)))
        .withColumn("copies", F.count(F.lit(1)).over(group))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    duplicate = F.col("problem").isNull() & (F.col("rank") > 1)
    stats = ranked.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.when(duplicate, 1).otherwise(0)).alias("duplicates"),
        F.sum(F.when(F.col("problem") == "missing_content", 1).otherwise(0)).alias("missing"),
        F.sum(F.when(F.col("problem") == "empty_content", 1).otherwise(0)).alias("empty"),
        F.sum(
            F.when(F.col("problem").isNull() & (F.col("copies") > 1) & (F.col("rank") == 1), 1).otherwise(0)
        ).alias("groups"),
        F.max(F.when(F.col("problem").isNull(), F.col("copies"))).alias("largest"),
    ).collect()[0]
    duplicates = _reject_rows(
        ranked.filter(duplicate),
        EXACT_STAGE,
        "exact_duplicate",
        F.format_string(
            "identical content (sha256) to the kept doc; %d copies in this group", F.col("copies")
        ),
        F.col("sha256"),
        F.col("kept_doc_id"),
    )
    unusable_rows = _unusable_rejects(ranked)
    rejected = duplicates.unionByName(unusable_rows)
    kept = docs.join(rejected.select("doc_id"), "doc_id", "left_anti").select(*docs.columns)
    rows_in = int(stats["rows"])
    by_reason = {
        name: int(stats[key] or 0)
        for name, key in (
            ("exact_duplicate", "duplicates"),
            ("missing_content", "missing"),
            ("empty_content", "empty"),
        )
        if stats[key]
    }
    facts = {
        "duplicate_groups": int(stats["groups"] or 0),
        "largest_group": int(stats["largest"] or 1),
        "rejected_by_reason": by_reason,
        "keep_policy": "stars desc, commit_date desc, permissive licence, sha256, doc_id",
    }
    log(
        f"exact_dedup: {rows_in} rows, {facts['duplicate_groups']} groups of identical content, "
        f"{by_reason.get('exact_duplicate', 0)} duplicates removed, "
        f"{by_reason.get('missing_content', 0) + by_reason.get('empty_content', 0)} rows without content rejected"
    )
    return DedupResult(EXACT_STAGE, kept, rejected, rows_in, facts, [ranked])


def _unusable_content() -> Column:
    """`missing_content` / `empty_content` (empty or whitespace only), or null for a usable row."""
    blank = F.coalesce(F.col("content"), F.lit("")).rlike(r"^\s*$")
    return F.when(F.col("content").isNull(), "missing_content").when(blank, "empty_content")


def _unit_hash() -> Column:
    """Aggregate: SHA-256 of a unit's file hashes in path order (then doc_id), comma-joined.

    Equal for two units exactly when their files, taken in path order, have the same contents:
    the hash of "the files concatenated in path order", without building that string."""
    files = F.sort_array(F.collect_list(F.struct("path", "doc_id", "sha256")))
    return F.sha2(F.array_join(F.transform(files, lambda f: f["sha256"]), ","), 256)


def repo_exact_dedup(docs: DataFrame, config: DedupConfig, log: Callable[[str], None] = print) -> DedupResult:
    """`level: repo`: repositories whose files are identical to another's are removed whole.

    Unit: `quality.dedup.keep.unit_key` (the repository, or the document when it has none); its
    id is its smallest doc_id. Rows without usable content are rejected first, exactly as at file
    level (`missing_content`, `empty_content`), and are not part of any unit. Two units are
    duplicates when their `_unit_hash` (file hashes in path order) agree; the keep policy ranks
    them by their most-starred file, newest date, licence, unit hash and id. Every file of a
    removed unit is a `repo_exact_duplicate` reject with `cluster_id` = the unit hash and
    `kept_doc_id` = the kept unit's id (its smallest doc_id, a kept row). Identical files in
    different (or the same) repositories are never removed one by one."""
    require_columns(docs, EXACT_STAGE, (*NEEDED_COLUMNS, "repo"))
    licences = config.permissive_licences
    docs = docs.withColumn("sha256", F.coalesce(F.col("sha256"), F.sha2(F.col("content"), 256)))
    files = docs.select(
        "doc_id",
        "sha256",
        "stars",
        "commit_date",
        "licence",
        "path",
        "repo",
        "lang",
        "size_bytes",
        _unusable_content().alias("problem"),
        unit_key().alias("unit"),
    ).persist(StorageLevel.MEMORY_AND_DISK)
    usable = files.filter(F.col("problem").isNull())
    units = usable.groupBy("unit").agg(
        *unit_keep_columns(licences), _unit_hash().alias("sha256"), F.count(F.lit(1)).alias("files")
    )
    group = Window.partitionBy("sha256")
    ordered = group.orderBy(*keep_order(licences))
    ranked = (
        units.withColumn("rank", F.row_number().over(ordered))
        .withColumn("kept_doc_id", F.first("doc_id").over(ordered))
        .withColumn("kept_unit", F.first("unit").over(ordered))
        .withColumn("copies", F.count(F.lit(1)).over(group))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    removed_units = ranked.filter(F.col("rank") > 1).select(
        "unit", F.col("sha256").alias("unit_sha256"), "kept_doc_id", "kept_unit", "copies", "files"
    )
    duplicates = _reject_rows(
        usable.join(removed_units, "unit"),
        EXACT_STAGE,
        "repo_exact_duplicate",
        F.format_string(
            "file of %s, identical to the kept %s (the same %d file contents in path order); "
            "%d copies of this repository",
            F.col("unit"),
            F.col("kept_unit"),
            F.col("files"),
            F.col("copies"),
        ),
        F.col("unit_sha256"),
        F.col("kept_doc_id"),
    )
    unusable_rows = _unusable_rejects(files)
    rejected = duplicates.unionByName(unusable_rows)
    kept = docs.join(rejected.select("doc_id"), "doc_id", "left_anti").select(*docs.columns)

    file_stats = files.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.when(F.col("problem") == "missing_content", 1).otherwise(0)).alias("missing"),
        F.sum(F.when(F.col("problem") == "empty_content", 1).otherwise(0)).alias("empty"),
    ).collect()[0]
    unit_stats = ranked.agg(
        F.count(F.lit(1)).alias("units"),
        F.sum(F.when(F.col("rank") > 1, 1).otherwise(0)).alias("removed_units"),
        F.sum(F.when(F.col("rank") > 1, F.col("files")).otherwise(0)).alias("removed_files"),
        F.sum(F.when((F.col("copies") > 1) & (F.col("rank") == 1), 1).otherwise(0)).alias("groups"),
        F.max("copies").alias("largest"),
    ).collect()[0]
    rows_in = int(file_stats["rows"])
    by_reason = {
        name: int(value or 0)
        for name, value in (
            ("repo_exact_duplicate", unit_stats["removed_files"]),
            ("missing_content", file_stats["missing"]),
            ("empty_content", file_stats["empty"]),
        )
        if value
    }
    facts = {
        "level": "repo",
        "unit": "repository (`repo`; a document without one is its own unit), id = its smallest doc_id",
        "units_in": int(unit_stats["units"] or 0),
        "units_removed": int(unit_stats["removed_units"] or 0),
        "duplicate_groups": int(unit_stats["groups"] or 0),
        "largest_group": int(unit_stats["largest"] or 1),
        "rejected_by_reason": by_reason,
        "keep_policy": "per repository: most stars, newest commit_date, permissive licence, unit hash, doc_id",
    }
    log(
        f"exact_dedup (repo level): {rows_in} files in {facts['units_in']} repositories, "
        f"{facts['duplicate_groups']} groups of identical repositories, {facts['units_removed']} repositories "
        f"({by_reason.get('repo_exact_duplicate', 0)} files) removed, "
        f"{by_reason.get('missing_content', 0) + by_reason.get('empty_content', 0)} rows without content rejected"
    )
    return DedupResult(EXACT_STAGE, kept, rejected, rows_in, facts, [files, ranked])


@lru_cache(maxsize=8)
def _arrow_schema(schema_json: str) -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(T.StructType.fromJson(json.loads(schema_json)))


def _list_array(values: np.ndarray, counts: np.ndarray) -> pa.Array:
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(values))


def signature_schema(carried: T.StructType | None = None) -> T.StructType:
    """SIGNATURE_SCHEMA followed by the `carried` input columns, passed through unchanged."""
    return T.StructType([*SIGNATURE_SCHEMA.fields, *(carried.fields if carried else [])])


def signature_batches(
    config: DedupConfig, carried: T.StructType | None = None
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The Spark task body: (doc_id, content, *carried) batches to one `signature_schema(carried)`
    row per document, the carried columns copied from the input row."""
    lsh = config.lsh()
    size, perms, seed, min_tokens, keep_sets = (
        config.shingle_size,
        config.num_perm,
        config.seed,
        config.min_tokens,
        config.verify,
    )
    schema_json = signature_schema(carried).json()

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        schema = _arrow_schema(schema_json)
        for batch in batches:
            lengths = pc.fill_null(pc.binary_length(batch.column("content")), 0).to_numpy(
                zero_copy_only=False
            )
            start = 0
            while start < batch.num_rows:
                # Slice so one pass holds at most ~_SLICE_BYTES of text (at least one document).
                budget = np.cumsum(lengths[start:])
                stop = start + max(1, int(np.searchsorted(budget, _SLICE_BYTES, side="right")))
                yield _signature_slice(
                    batch.slice(start, stop - start), schema, lsh, size, perms, seed, min_tokens, keep_sets
                )
                start = stop

    return run


def _signature_slice(batch, schema, lsh, size, perms, seed, min_tokens, keep_sets) -> pa.RecordBatch:
    shingles = minhash.shingle_batch(batch.column("content"), size)
    n = batch.num_rows
    indexed = (shingles.tokens_per_doc >= min_tokens) & (np.bincount(shingles.doc_index, minlength=n) > 0)
    signature = minhash.signatures(shingles, perms, seed)
    keys = minhash.band_keys(signature, lsh.num_bands, lsh.rows_per_band)
    band_counts = np.where(indexed, lsh.num_bands, 0)
    sig_counts = np.where(indexed, perms, 0)
    columns = [
        batch.column("doc_id"),
        pa.array(shingles.tokens_per_doc, pa.int64()),
        _list_array(keys[indexed].ravel(), band_counts),
        _list_array(signature[indexed].view(np.int32).ravel(), sig_counts),
    ]
    if keep_sets:
        sets = minhash.unique_shingles(shingles)
        kept_sets = [
            s.view(np.int64) if ok else np.zeros(0, np.int64) for s, ok in zip(sets, indexed, strict=True)
        ]
        counts = np.array([len(s) for s in kept_sets], dtype=np.int64)
        values = np.concatenate(kept_sets) if len(kept_sets) else np.zeros(0, np.int64)
        columns.append(_list_array(values, counts))
    else:
        columns.append(pa.nulls(n, pa.list_(pa.int64())))
    columns += [batch.column(f.name) for f in list(schema)[len(columns) :]]
    arrays = [
        column.cast(f.type) if column.type != f.type else column
        for column, f in zip(columns, schema, strict=True)
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _verify_pairs(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Exact Jaccard of each candidate pair from its two sorted shingle sets."""
    for batch in batches:
        left = batch.column("shingles_a")
        right = batch.column("shingles_b")
        scores = np.empty(batch.num_rows, dtype=np.float64)
        for i in range(batch.num_rows):  # one numpy set intersection per pair
            scores[i] = minhash.jaccard(left[i].values.to_numpy(), right[i].values.to_numpy())
        yield pa.RecordBatch.from_arrays(
            [batch.column("a"), batch.column("b"), pa.array(scores, pa.float64())],
            names=["a", "b", "jaccard"],
        )


def _estimated_jaccard(num_perm: int) -> Column:
    """Share of equal MinHash values between a row's signature and its kept twin's."""
    agree = (
        "aggregate(zip_with(signature, kept_signature, (x, y) -> IF(x = y, 1, 0)), 0, (acc, v) -> acc + v)"
    )
    return F.expr(agree) / F.lit(float(num_perm))


_ASSIGNED_SCHEMA = T.StructType(
    [
        T.StructField("doc_id", T.StringType(), False),
        T.StructField("cluster_id", T.StringType(), False),
        T.StructField("kept_doc_id", T.StringType(), False),
        T.StructField("is_kept", T.BooleanType(), False),
        T.StructField("estimate", T.DoubleType(), True),
        T.StructField("cluster_size", T.LongType(), False),
        T.StructField("below", T.BooleanType(), False),
    ]
)


def regroup_in_rank_order(
    signatures: np.ndarray, minimum: float, max_kept: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy pass over one component's signatures, given in keep-policy order (best first).

    Each document goes to the best-ranked kept document whose MinHash estimate with it reaches
    `minimum`; a document close to none is kept itself, up to `max_kept` per component, after
    which it goes to its most similar kept document (counted as `below`). Returns, per document,
    the position of the document kept in its place (its own when kept), the estimate with it
    (NaN when kept) and `below`.
    """
    n = len(signatures)
    leaders = np.empty(min(n, max_kept), dtype=np.int64)
    count = 0
    assigned = np.empty(n, dtype=np.int64)
    estimate = np.full(n, np.nan)
    below = np.zeros(n, dtype=bool)
    for i in range(n):
        if count:
            agree = (signatures[leaders[:count]] == signatures[i]).mean(axis=1)
            close = np.flatnonzero(agree >= minimum)
            if close.size:  # leaders are in keep order: the first close one is the best-ranked
                assigned[i], estimate[i] = leaders[close[0]], agree[close[0]]
                continue
            if count == len(leaders):
                best = int(np.argmax(agree))
                assigned[i], estimate[i], below[i] = leaders[best], agree[best], True
                continue
        leaders[count] = i
        count += 1
        assigned[i] = i
    return assigned, estimate, below


def _assigned_table(
    doc_ids: np.ndarray,
    cluster_id: str,
    assigned: np.ndarray,
    estimate: np.ndarray,
    below: np.ndarray,
) -> pa.Table:
    """One component's rows of _ASSIGNED_SCHEMA (documents in keep-policy order)."""
    n = len(doc_ids)
    return pa.table(
        {
            "doc_id": pa.array(doc_ids, pa.string()),
            "cluster_id": pa.array([cluster_id] * n, pa.string()),
            "kept_doc_id": pa.array(doc_ids[assigned], pa.string()),
            "is_kept": pa.array(assigned == np.arange(n)),
            "estimate": pa.array(estimate, pa.float64(), mask=np.isnan(estimate)),
            "cluster_size": pa.array(np.full(n, n), pa.int64()),
            "below": pa.array(below),
        }
    )


def regroup_component(minimum: float, max_kept: int) -> Callable[[pa.Table], pa.Table]:
    """`regroup_in_rank_order` as a grouped-map body over one component (doc_id, cluster_id,
    rank, signature)."""

    def run(table: pa.Table) -> pa.Table:
        order = np.argsort(table.column("rank").to_numpy())
        doc_ids = table.column("doc_id").to_numpy(zero_copy_only=False)[order]
        n = len(order)
        flat = table.column("signature").combine_chunks()
        signatures = flat.flatten().to_numpy().reshape(n, -1)[order]
        assigned, estimate, below = regroup_in_rank_order(signatures, minimum, max_kept)
        return _assigned_table(doc_ids, table.column("cluster_id")[0].as_py(), assigned, estimate, below)

    return run


def choose_kept(members: DataFrame, config: DedupConfig) -> tuple[DataFrame, dict[str, Any]]:
    """Which members of each component survive; the same keep policy as exact dedup.

    The keep policy ranks each component (in Spark). Walking a component in that order, a
    document is removed as the twin of the best-ranked kept document whose MinHash Jaccard
    estimate with it reaches `kept_twin_min_jaccard`, and kept otherwise: the far end of a chain
    A ~ B ~ C, where C shares little with A, keeps a document of its own, so every removed
    document has a near twin kept in its place. Components are independent, so this runs as one
    grouped map over all of them; components above `regroup_max_component_size` members keep
    only their best document (no regrouping), so one giant component cannot exhaust a worker.

    `members`: doc_id, cluster_id, signature and the keep-policy columns of every clustered doc.
    Returns (doc_id, cluster_id, kept_doc_id, is_kept, estimate, cluster_size) and facts.
    """
    minimum = config.effective_kept_twin_min_jaccard
    component = Window.partitionBy("cluster_id")
    ranked = (
        members.withColumn(
            "rank", F.row_number().over(component.orderBy(*keep_order(config.permissive_licences)))
        )
        .withColumn("cluster_size", F.count(F.lit(1)).over(component))
        .select("doc_id", "cluster_id", "rank", "cluster_size", "signature")
    )
    regular = (
        ranked.filter(F.col("cluster_size") <= config.regroup_max_component_size)
        .drop("cluster_size")
        .groupBy("cluster_id")
        .applyInArrow(regroup_component(minimum, config.max_kept_per_component), _ASSIGNED_SCHEMA)
    )
    giant = ranked.filter(F.col("cluster_size") > config.regroup_max_component_size)
    best = giant.filter(F.col("rank") == 1).select(
        "cluster_id", F.col("doc_id").alias("kept_doc_id"), F.col("signature").alias("kept_signature")
    )
    single = (
        giant.join(best, "cluster_id")
        .withColumn("estimate", _estimated_jaccard(config.num_perm))
        .select(
            "doc_id",
            "cluster_id",
            "kept_doc_id",
            (F.col("doc_id") == F.col("kept_doc_id")).alias("is_kept"),
            F.when(F.col("doc_id") != F.col("kept_doc_id"), F.col("estimate")).alias("estimate"),
            F.col("cluster_size").cast("long").alias("cluster_size"),
            ((F.col("doc_id") != F.col("kept_doc_id")) & (F.col("estimate") < F.lit(minimum))).alias("below"),
        )
    )
    assigned = regular.unionByName(single).withColumn(
        "estimate", F.when(~F.col("is_kept"), F.col("estimate"))
    )
    return assigned, {"kept_twin_min_jaccard": minimum}


def union_signatures(config: DedupConfig) -> Callable[[pa.Table], pa.Table]:
    """Grouped-map body of `level: repo`: the file signatures of one unit to the unit's one row.

    A unit's shingle set is the union of its files' shingle sets, and the MinHash of a union is
    the element-wise minimum of the members' signatures (compared as the unsigned 32-bit values
    they are), so no repository is ever concatenated in memory. The input rows (`unit_id`, then
    SIGNATURE_SCHEMA's columns) come from `signature_batches` run with `min_tokens = 1`, so that
    short files still count; the unit is indexed when its files hold `min_tokens` tokens together.
    """
    lsh = config.lsh()
    perms, min_tokens, keep_sets = config.num_perm, config.min_tokens, config.verify
    schema_json = SIGNATURE_SCHEMA.json()

    def run(table: pa.Table) -> pa.Table:
        schema = _arrow_schema(schema_json)
        unit_id = table.column("unit_id")[0].as_py()
        tokens = int(pc.sum(table.column("tokens")).as_py() or 0)
        values = table.column("signature").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        signed = values.astype(np.int32, copy=False).reshape(-1, perms)
        indexed = tokens >= min_tokens and len(signed) > 0
        signature = signed.view(np.uint32).min(axis=0) if indexed else np.zeros(0, np.uint32)
        keys = (
            minhash.band_keys(signature[None, :], lsh.num_bands, lsh.rows_per_band)[0]
            if indexed
            else np.zeros(0, np.int64)
        )
        if keep_sets:
            sets = table.column("shingles").combine_chunks().flatten().to_numpy(zero_copy_only=False)
            shingles = pa.array([np.unique(sets).astype(np.int64) if indexed else np.zeros(0, np.int64)])
        else:
            shingles = pa.nulls(1, pa.list_(pa.int64()))
        columns = [
            pa.array([unit_id], pa.string()),
            pa.array([tokens], pa.int64()),
            pa.array([keys.astype(np.int64)]),
            pa.array([signature.view(np.int32)]),
            shingles,
        ]
        arrays = [
            column.cast(f.type) if column.type != f.type else column
            for column, f in zip(columns, schema, strict=True)
        ]
        return pa.Table.from_arrays(arrays, schema=schema)

    return run


@dataclass
class _Clustering:
    """Steps 2-4 of near dedup over one signature row per unit (a file, or a repository).

    decisions  every unit: doc_id, indexed, cluster_id, is_kept, kept_doc_id, estimate,
               cluster_size, below
    clustered  the units in a component of two or more (_ASSIGNED_SCHEMA); units absent from it
               are kept, alone in their cluster. Small enough to broadcast when `on_driver`.
    """

    decisions: DataFrame
    clustered: DataFrame
    rows: int
    facts: dict[str, Any]
    on_driver: bool = False


def _lsh_facts(config: DedupConfig) -> dict[str, Any]:
    lsh = config.lsh()
    return {
        "level": config.level,
        "lsh": {
            "num_perm": lsh.num_perm,
            "num_bands": lsh.num_bands,
            "rows_per_band": lsh.rows_per_band,
            "threshold": lsh.threshold,
            "derived": lsh.derived,
            "s_curve_midpoint": round(lsh.s_curve_midpoint, 4),
            "explanation": lsh.explain(),
        },
        "s_curve": lsh.s_curve(21),
        "shingle_size": config.shingle_size,
        "seed": config.seed,
        "bucket_cap": config.bucket_cap,
        "bucket_cap_applies": (
            "verification pairs: buckets above the cap are verified member-to-smallest-doc_id only"
            if config.verify
            else "nothing: without verification every bucket is linked as a star (n - 1 edges)"
        ),
    }


# The keep policy's columns (`quality.dedup.keep.keep_order`), carried on every signature row so
# that ranking a component never goes back to the documents.
KEEP_COLUMNS = ("stars", "commit_date", "licence", "sha256")


def _bucket_members(signatures: DataFrame) -> DataFrame:
    """Every (band, key) bucket member of a bucket with a second document: doc_id, band, key,
    the bucket's `size` and `anchor` (its smallest doc_id, the centre of its star).

    One shuffle by bucket, sorted windows: cheaper here than a `collect_list` aggregate, whose
    object hash map falls back to sorting after 128 buckets anyway."""
    members = signatures.select("doc_id", F.posexplode("band_keys").alias("band", "key"))
    bucket = Window.partitionBy("band", "key")
    return (
        members.withColumn("size", F.count(F.lit(1)).over(bucket))
        .withColumn("anchor", F.min("doc_id").over(bucket))
        .filter(F.col("size") >= 2)
    )


def _cluster(signatures: DataFrame, config: DedupConfig, cached: list[DataFrame]) -> _Clustering:
    """Steps 2-4 of near dedup over signature rows that carry KEEP_COLUMNS.

    One Spark job signs every unit (the signatures are cached) and brings the members of the
    candidate buckets to the driver, at most 2 x `driver_graph_max_edges` of them (a bucket of n
    members has n - 1 star edges, so a graph within the bound never has more). Within the bound
    the graph is labelled there (`_cluster_on_driver`: one more job ranks the clustered units);
    beyond it, and for any graph under `verify`, everything stays in Spark (`_cluster_on_spark`).
    Same components, same keep choice, same facts either way."""
    if config.verify or config.driver_graph_max_edges == 0:
        return _cluster_on_spark(signatures, config, cached)
    # Counted while the bucket job computes (and caches) the signatures: no job of their own.
    seen = Observation("near_dedup_units")
    observed = signatures.observe(
        seen,
        F.count(F.lit(1)).alias("rows"),
        F.coalesce(F.sum(F.when(F.size("band_keys") > 0, 1).otherwise(0)), F.lit(0)).alias("indexed"),
    )
    bound = 2 * config.driver_graph_max_edges
    members = _bucket_members(observed).select("anchor", "doc_id", "size").limit(bound + 1).toArrow()
    anchors = members.column("anchor")
    is_head = pc.equal(members.column("doc_id"), anchors)  # one head row per bucket
    star_edges = members.num_rows - int(pc.sum(is_head).as_py() or 0)
    if members.num_rows > bound or star_edges > config.driver_graph_max_edges:
        return _cluster_on_spark(signatures, config, cached)
    heads = members.filter(is_head)
    sizes = heads.column("size").to_numpy()
    capped = sizes > config.bucket_cap
    counted = seen.get
    facts = {
        **_lsh_facts(config),
        "docs_indexed": int(counted["indexed"]),
        "docs_below_min_tokens": int(counted["rows"]) - int(counted["indexed"]),
        "candidate_buckets": heads.num_rows,
        "largest_bucket": int(sizes.max()) if len(sizes) else 0,
        "capped_buckets": int(capped.sum()),
        "capped_bucket_members": int(sizes[capped].sum()),
    }
    return _cluster_on_driver(signatures, members, config, int(counted["rows"]), facts)


_LABEL_SCHEMA = T.StructType(
    [T.StructField("doc_id", T.StringType(), False), T.StructField("cluster_id", T.StringType(), False)]
)


def _cluster_on_driver(
    signatures: DataFrame,
    members: pa.Table,
    config: DedupConfig,
    rows: int,
    facts: dict[str, Any],
) -> _Clustering:
    """Components and keep choice of a small candidate graph on the driver, in numpy.

    `members`: (anchor, doc_id) of every candidate bucket member. Their star edges (each member
    to its bucket's smallest doc_id, exactly the Spark path's edges) are labelled by
    `label_components`. Spark then ranks each component's members by the keep policy (the same
    `keep_order` window as everywhere) and hands their signatures over; `regroup_in_rank_order`
    does the rest. Memory on the driver: about num_perm x 4 bytes per clustered unit, bounded
    through `driver_graph_max_edges`."""
    spark = signatures.sparkSession
    nodes = members.column("doc_id")
    anchors = members.column("anchor")
    names = pc.unique(nodes) if len(nodes) else pa.array([], pa.string())
    names = names.take(pc.sort_indices(names))  # node numbers in doc_id order: minimum = smallest id
    member_node = pc.index_in(nodes, value_set=names).to_numpy(zero_copy_only=False).astype(np.int64)
    anchor_node = pc.index_in(anchors, value_set=names).to_numpy(zero_copy_only=False).astype(np.int64)
    star = member_node != anchor_node
    left, right = anchor_node[star], member_node[star]
    # Distinct edges, as the Spark path counts them (a pair sharing several bands is one edge).
    edges = len(np.unique(np.minimum(left, right) * max(len(names), 1) + np.maximum(left, right)))
    roots, rounds = label_components(left, right, len(names))
    labels = spark.createDataFrame(
        pa.table(
            {"doc_id": names.cast(pa.string()), "cluster_id": names.take(pa.array(roots)).cast(pa.string())}
        ),
        schema=_LABEL_SCHEMA,
    )
    component = Window.partitionBy("cluster_id")
    ranked = (
        F.broadcast(labels)
        .join(signatures.select("doc_id", *KEEP_COLUMNS, "signature"), "doc_id")
        .withColumn("rank", F.row_number().over(component.orderBy(*keep_order(config.permissive_licences))))
        .select("doc_id", "cluster_id", "rank", "signature")
        .toArrow()
    )
    assigned = _assign_on_driver(ranked, config)
    clustered = F.broadcast(spark.createDataFrame(assigned, schema=_ASSIGNED_SCHEMA))
    decisions = (
        signatures.select("doc_id", (F.size("band_keys") > 0).alias("indexed"))
        .join(clustered, "doc_id", "left")
        .select(
            "doc_id",
            "indexed",
            F.coalesce("cluster_id", "doc_id").alias("cluster_id"),
            F.coalesce("is_kept", F.lit(True)).alias("is_kept"),
            "kept_doc_id",
            "estimate",
            F.coalesce("cluster_size", F.lit(1)).alias("cluster_size"),
            F.coalesce("below", F.lit(False)).alias("below"),
        )
    )
    is_kept = assigned.column("is_kept").to_numpy(zero_copy_only=False)
    sizes = assigned.column("cluster_size").to_numpy()
    facts.update(
        {
            "graph_edges": edges,
            "components_computed_on": f"driver (numpy union-find, {rounds} hooking rounds)",
            "component_rounds": 0,
            "near_clusters": len(pc.unique(assigned.column("cluster_id"))),
            "docs_in_near_clusters": assigned.num_rows,
            "largest_cluster": int(sizes.max()) if len(sizes) else 1,
            "near_duplicates_removed": int((~is_kept).sum()),
            "kept_in_components": int(is_kept.sum()),
            "removed_below_min_jaccard": int(assigned.column("below").to_numpy(zero_copy_only=False).sum()),
            "docs_in_components_too_big_to_regroup": int((sizes > config.regroup_max_component_size).sum()),
            "kept_twin_min_jaccard": config.effective_kept_twin_min_jaccard,
        }
    )
    return _Clustering(decisions, clustered, rows, facts, on_driver=True)


def _assign_on_driver(ranked: pa.Table, config: DedupConfig) -> pa.Table:
    """`choose_kept` for components collected to the driver: (doc_id, cluster_id, rank, signature)
    rows in, _ASSIGNED_SCHEMA rows out."""
    minimum = config.effective_kept_twin_min_jaccard
    schema = _arrow_schema(_ASSIGNED_SCHEMA.json())
    if ranked.num_rows == 0:
        return schema.empty_table()
    order = pc.sort_indices(ranked, sort_keys=[("cluster_id", "ascending"), ("rank", "ascending")])
    ranked = ranked.take(order)
    doc_ids = ranked.column("doc_id").to_numpy(zero_copy_only=False)
    clusters = ranked.column("cluster_id").to_numpy(zero_copy_only=False)
    signatures = ranked.column("signature").combine_chunks().flatten().to_numpy().reshape(ranked.num_rows, -1)
    bounds = np.flatnonzero(clusters[1:] != clusters[:-1]) + 1
    parts = []
    for head, tail in zip(
        np.concatenate(([0], bounds)), np.concatenate((bounds, [len(clusters)])), strict=True
    ):
        group = signatures[head:tail]
        if tail - head > config.regroup_max_component_size:
            # Too big to regroup: everything goes to the best-ranked document (as on Spark).
            estimate = (group == group[0]).mean(axis=1)
            assigned = np.zeros(tail - head, dtype=np.int64)
            below = estimate < minimum
            estimate[0], below[0] = np.nan, False
        else:
            assigned, estimate, below = regroup_in_rank_order(group, minimum, config.max_kept_per_component)
        parts.append(_assigned_table(doc_ids[head:tail], clusters[head], assigned, estimate, below))
    return pa.concat_tables(parts).cast(schema)


def _cluster_on_spark(signatures: DataFrame, config: DedupConfig, cached: list[DataFrame]) -> _Clustering:
    """Steps 2-4 with Spark only: buckets by window, components in large-star / small-star
    rounds, the keep choice as a grouped map. For graphs above `driver_graph_max_edges` and for
    `verify`; nothing here is ever collected but counts."""
    # Cached for the steps below: members of buckets with a second document, with the bucket's
    # size and smallest doc_id (the anchor).
    joined = _bucket_members(signatures).persist(StorageLevel.MEMORY_AND_DISK)
    cached.append(joined)
    heads = joined.filter(F.col("doc_id") == F.col("anchor"))  # one row per candidate bucket
    bucket_facts = heads.agg(
        F.count(F.lit(1)).alias("buckets"),
        F.coalesce(F.max("size"), F.lit(0)).alias("largest"),
        F.sum(F.when(F.col("size") > config.bucket_cap, 1).otherwise(0)).alias("capped"),
        F.sum(F.when(F.col("size") > config.bucket_cap, F.col("size")).otherwise(0)).alias("capped_members"),
    ).collect()[0]

    star_edges = joined.filter(F.col("doc_id") != F.col("anchor")).select(
        F.col("anchor").alias("a"), F.col("doc_id").alias("b")
    )
    verify_facts: dict[str, Any] = {}
    if config.verify:
        small = joined.filter(F.col("size") <= config.bucket_cap).select("band", "key", "doc_id")
        all_pairs = (
            small.alias("x")
            .join(small.alias("y"), ["band", "key"])
            .filter(F.col("x.doc_id") < F.col("y.doc_id"))
            .select(F.col("x.doc_id").alias("a"), F.col("y.doc_id").alias("b"))
        )
        capped_star = joined.filter(
            (F.col("size") > config.bucket_cap) & (F.col("doc_id") != F.col("anchor"))
        ).select(F.col("anchor").alias("a"), F.col("doc_id").alias("b"))
        pairs = all_pairs.unionByName(capped_star).distinct()
        sets = signatures.select("doc_id", "shingles")
        scored = (
            pairs.join(sets.withColumnRenamed("doc_id", "a").withColumnRenamed("shingles", "shingles_a"), "a")
            .join(sets.withColumnRenamed("doc_id", "b").withColumnRenamed("shingles", "shingles_b"), "b")
            .select("a", "b", "shingles_a", "shingles_b")
            .mapInArrow(_verify_pairs, _PAIR_SCHEMA)
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        cached.append(scored)
        threshold = config.effective_verify_threshold
        counts = scored.agg(
            F.count(F.lit(1)).alias("pairs"),
            F.sum(F.when(F.col("jaccard") >= threshold, 1).otherwise(0)).alias("passed"),
        ).collect()[0]
        verify_facts = {
            "verify_threshold": threshold,
            "candidate_pairs_verified": int(counts["pairs"]),
            "candidate_pairs_passed": int(counts["passed"] or 0),
        }
        edges = scored.filter(F.col("jaccard") >= threshold).select("a", "b")
    else:
        edges = star_edges

    components = connected_components(edges, max_rounds=config.max_iterations)
    labels = components.labels.withColumnRenamed("node", "doc_id").withColumnRenamed("root", "cluster_id")
    members = labels.join(signatures.select("doc_id", *KEEP_COLUMNS, "signature"), "doc_id")
    assigned, keep_facts = choose_kept(members, config)
    decisions = (
        signatures.select("doc_id", (F.size("band_keys") > 0).alias("indexed"))
        .join(assigned, "doc_id", "left")
        .select(
            "doc_id",
            "indexed",
            F.coalesce("cluster_id", "doc_id").alias("cluster_id"),
            F.coalesce("is_kept", F.lit(True)).alias("is_kept"),
            "kept_doc_id",
            "estimate",
            F.coalesce("cluster_size", F.lit(1)).alias("cluster_size"),
            F.coalesce("below", F.lit(False)).alias("below"),
        )
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    cached.append(decisions)

    assigned = assigned.persist(StorageLevel.MEMORY_AND_DISK)
    cached.append(assigned)
    summary = decisions.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.when(F.col("indexed"), 1).otherwise(0)).alias("indexed"),
        F.sum(F.when(~F.col("is_kept"), 1).otherwise(0)).alias("removed"),
        F.sum(F.when(F.col("is_kept") & (F.col("cluster_size") > 1), 1).otherwise(0)).alias(
            "kept_in_clusters"
        ),
        F.countDistinct(F.when(F.col("cluster_size") > 1, F.col("cluster_id"))).alias("clusters"),
        F.sum(F.when(F.col("cluster_size") > 1, 1).otherwise(0)).alias("clustered_docs"),
        F.max("cluster_size").alias("largest_cluster"),
        F.sum(F.when(F.col("below"), 1).otherwise(0)).alias("below"),
        F.sum(F.when(F.col("cluster_size") > config.regroup_max_component_size, 1).otherwise(0)).alias(
            "giant"
        ),
    ).collect()[0]
    rows_in, indexed_docs = int(summary["rows"]), int(summary["indexed"] or 0)
    facts = {
        **_lsh_facts(config),
        "docs_indexed": indexed_docs,
        "docs_below_min_tokens": rows_in - indexed_docs,
        "candidate_buckets": int(bucket_facts["buckets"]),
        "largest_bucket": int(bucket_facts["largest"]),
        "capped_buckets": int(bucket_facts["capped"] or 0),
        "capped_bucket_members": int(bucket_facts["capped_members"] or 0),
        "graph_edges": components.edges_in,
        "components_computed_on": "spark (large-star / small-star rounds)",
        "component_rounds": components.rounds,
        "near_clusters": int(summary["clusters"] or 0),
        "docs_in_near_clusters": int(summary["clustered_docs"] or 0),
        "largest_cluster": int(summary["largest_cluster"] or 1),
        "near_duplicates_removed": int(summary["removed"] or 0),
        "kept_in_components": int(summary["kept_in_clusters"] or 0),
        "removed_below_min_jaccard": int(summary["below"] or 0),
        "docs_in_components_too_big_to_regroup": int(summary["giant"] or 0),
        **keep_facts,
        **verify_facts,
    }
    return _Clustering(decisions, assigned, rows_in, facts)


def near_dedup(docs: DataFrame, config: DedupConfig, log: Callable[[str], None] = print) -> DedupResult:
    """Cluster near-duplicate documents (MinHash LSH + connected components) and keep one per cluster.

    At `level: repo` the clustered unit is the repository (see `repo_near_dedup`)."""
    if config.level == "repo":
        return repo_near_dedup(docs, config, log)
    require_columns(docs, NEAR_STAGE)
    # This stage (re)assigns cluster ids; an input that already carries some gets fresh ones.
    source = docs.drop("cluster_id") if "cluster_id" in docs.columns else docs
    log(config.lsh().explain())
    cached: list[DataFrame] = []

    # Spread the MinHash work over every task slot: a stage output of one or two Parquet files
    # would otherwise be read, and hashed, by one or two tasks. Hash partitioning by doc_id keeps
    # the split independent of file layout (the signatures never depend on it anyway).
    spread = source.select("doc_id", "content", *KEEP_COLUMNS).repartition("doc_id")
    carried = T.StructType([spread.schema[name] for name in KEEP_COLUMNS])
    signatures = spread.mapInArrow(signature_batches(config, carried), signature_schema(carried))
    signatures = signatures.persist(StorageLevel.MEMORY_AND_DISK)
    cached.append(signatures)
    clustering = _cluster(signatures, config, cached)
    rows_in, facts = clustering.rows, clustering.facts
    clustered = clustering.clustered
    # Only clustered documents carry a decision: a broadcast table when they sit on the driver,
    # so neither output shuffles the documents' content.
    rejected = _reject_rows(
        clustered.filter(~F.col("is_kept")).join(
            source.select("doc_id", "path", "lang", "size_bytes"), "doc_id"
        ),
        NEAR_STAGE,
        "near_duplicate",
        F.format_string(
            "near duplicate of the kept doc (MinHash Jaccard estimate %.3f); component of %d docs",
            F.col("estimate"),
            F.col("cluster_size"),
        ),
        F.col("cluster_id"),
        F.col("kept_doc_id"),
    )
    decided = clustered.select(
        "doc_id", F.col("cluster_id").alias("_cluster_id"), F.col("is_kept").alias("_is_kept")
    )
    kept = (
        source.join(decided, "doc_id", "left")
        .filter(F.coalesce(F.col("_is_kept"), F.lit(True)))
        .select(*source.columns, F.coalesce(F.col("_cluster_id"), F.col("doc_id")).alias("cluster_id"))
    )
    log(
        f"near_dedup: {rows_in} rows ({facts['docs_indexed']} indexed), {facts['candidate_buckets']} candidate "
        f"buckets (largest {facts['largest_bucket']}, {facts['capped_buckets']} over the cap of "
        f"{config.bucket_cap}), {facts['graph_edges']} edges, {facts['component_rounds']} component rounds, "
        f"{facts['near_clusters']} clusters, {facts['near_duplicates_removed']} near duplicates removed"
    )
    return DedupResult(NEAR_STAGE, kept, rejected, rows_in, facts, cached)


def repo_near_dedup(docs: DataFrame, config: DedupConfig, log: Callable[[str], None] = print) -> DedupResult:
    """`level: repo`: near-duplicate repositories removed whole; files are never compared alone.

    Unit: `quality.dedup.keep.unit_key` (the repository, or the document when it has none); its
    id is its smallest doc_id. Its shingles are the union of its files' shingles, i.e. the
    shingles of its files concatenated (in any order: no shingle spans two files), and its MinHash
    the element-wise minimum of its files' (`union_signatures`). Units then go through the same
    LSH buckets, components and keep choice as files do at `level: file`; the keep policy ranks
    units by their most-starred file, newest date, licence, a hash of their file hashes, and id.

    Every file of a removed unit is a `repo_near_duplicate` reject whose `kept_doc_id` is the
    kept unit's id (its smallest doc_id, a kept row) and whose `cluster_id` is the component's
    smallest unit id; the files of a kept unit keep every column plus that `cluster_id` (their
    unit's id when it has no near twin). Facts count units (repositories), bar
    `near_duplicates_removed` and `files_*`, which count files."""
    require_columns(docs, NEAR_STAGE, (*NEEDED_COLUMNS, "repo"))
    source = docs.drop("cluster_id") if "cluster_id" in docs.columns else docs
    log(config.lsh().explain())
    cached: list[DataFrame] = []
    licences = config.permissive_licences

    files = (
        source.select(
            "doc_id",
            "path",
            "repo",
            "stars",
            "commit_date",
            "licence",
            F.coalesce(F.col("sha256"), F.sha2(F.col("content"), 256)).alias("sha256"),
            unit_key().alias("unit"),
        )
        .withColumn("unit_id", F.min("doc_id").over(Window.partitionBy("unit")))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    cached.append(files)
    units = files.groupBy("unit").agg(*unit_keep_columns(licences), _unit_hash().alias("sha256"))
    spread = source.select("doc_id", "content").repartition("doc_id")
    file_signatures = spread.mapInArrow(signature_batches(replace(config, min_tokens=1)), SIGNATURE_SCHEMA)
    signatures = (
        file_signatures.join(files.select("doc_id", "unit_id"), "doc_id")
        .select("unit_id", *SIGNATURE_SCHEMA.fieldNames())
        .groupBy("unit_id")
        .applyInArrow(union_signatures(config), SIGNATURE_SCHEMA)
        .join(units.select("doc_id", *KEEP_COLUMNS), "doc_id")  # a unit's id is its smallest doc_id
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    cached.append(signatures)
    clustering = _cluster(signatures, config, cached)
    decisions, facts, units_in = clustering.decisions, clustering.facts, clustering.rows
    per_file = (
        files.select("doc_id", "unit", "unit_id")
        .join(decisions.withColumnRenamed("doc_id", "unit_id"), "unit_id")
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    cached.append(per_file)
    rejected = _reject_rows(
        per_file.filter(~F.col("is_kept")).join(
            source.select("doc_id", "path", "lang", "size_bytes"), "doc_id"
        ),
        NEAR_STAGE,
        "repo_near_duplicate",
        F.format_string(
            "file of %s, a near duplicate of the kept repository (MinHash Jaccard estimate %.3f over "
            "all their files); component of %d repositories",
            F.col("unit"),
            F.col("estimate"),
            F.col("cluster_size"),
        ),
        F.col("cluster_id"),
        F.col("kept_doc_id"),
    )
    kept = source.join(per_file.filter(F.col("is_kept")).select("doc_id", "cluster_id"), "doc_id").select(
        *source.columns, "cluster_id"
    )
    counts = per_file.agg(
        F.count(F.lit(1)).alias("files"),
        F.sum(F.when(~F.col("is_kept"), 1).otherwise(0)).alias("removed"),
        F.sum(F.when(F.col("cluster_size") > 1, 1).otherwise(0)).alias("clustered"),
    ).collect()[0]
    rows_in = int(counts["files"])
    facts.update(
        units_in=units_in,
        units_removed=facts["near_duplicates_removed"],
        near_duplicates_removed=int(counts["removed"] or 0),
        files_in_near_clusters=int(counts["clustered"] or 0),
        unit="repository (`repo`; a document without one is its own unit), id = its smallest doc_id",
    )
    log(
        f"near_dedup (repo level): {rows_in} files in {units_in} repositories ({facts['docs_indexed']} indexed), "
        f"{facts['candidate_buckets']} candidate buckets, {facts['graph_edges']} edges, "
        f"{facts['near_clusters']} clusters of repositories, {facts['units_removed']} repositories removed "
        f"({facts['near_duplicates_removed']} files)"
    )
    return DedupResult(NEAR_STAGE, kept, rejected, rows_in, facts, cached)
