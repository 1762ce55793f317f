"""`codecook dedup --input PATH --output DIR [--config FILE]`: exact then near dedup outside Dagster.

The input is a JSONL or Parquet file or folder (or a stage output such as DIR/data/raw_code) with
at least a `content` column. Document columns it lacks are filled in (`sha256`, `size_bytes` from
the content; `lang` = `unknown`; stars, dates and licences unknown), every other column, such as an
`id`, is carried through unchanged, and `doc_id` is made stable from `id`, else `path`, else the
content hash. Outputs land in DIR used as a storage root: DIR/data/exact_dedup,
DIR/data/near_dedup and their rejected rows in DIR/data/rejected/<stage>.

Rows the stage cannot use become reject rows of `exact_dedup`, never silent drops: malformed JSON
lines (`malformed_json`), null content (`missing_content`), blank content (`empty_content`).
An input without a `content` column at all is refused with a message naming its columns.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import asdict
from pathlib import Path

import yaml
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from quality.dedup.config import DedupConfig
from quality.dedup.engine import EXACT_STAGE, NEAR_STAGE, DedupInputError, exact_dedup, near_dedup
from quality.languages import language_of
from quality.recipe import RecipeError, SparkConfig, config_from_dict
from quality.schema import DOCUMENT_FIELDS, REJECT_COLUMNS
from quality.storage import StorageLayout, read_stage, spark_path, write_stage

_JSON_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")


def load_config(path: str | None) -> DedupConfig:
    """DedupConfig from a YAML file holding the recipe's `dedup:` keys (or a whole recipe)."""
    if not path:
        return DedupConfig()
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if isinstance(data, dict) and isinstance(data.get("dedup"), dict):
        data = data["dedup"]
    return config_from_dict(DedupConfig, data, f"{path}: dedup")


def read_table(spark: SparkSession, path: str) -> tuple[DataFrame, bool]:
    """The input rows and whether they came from JSON (whose malformed lines need handling)."""
    target = Path(path)
    remote = "://" in path
    if not remote and not target.exists():
        raise DedupInputError(f"input not found: {path}")
    if not remote and target.is_dir():
        files = sorted(p.name for p in target.rglob("*") if p.is_file())
        if any(name.endswith(_PARQUET_SUFFIXES) for name in files):
            return spark.read.parquet(spark_path(path)), False
        if any(name.endswith(_JSON_SUFFIXES) for name in files):
            return _read_json(spark, path), True
        raise DedupInputError(f"{path} holds neither Parquet nor JSONL files")
    if path.endswith(_PARQUET_SUFFIXES):
        return spark.read.parquet(spark_path(path)), False
    if path.endswith(_JSON_SUFFIXES):
        return _read_json(spark, path), True
    raise DedupInputError(f"cannot tell the format of {path}: name it .jsonl / .json / .parquet")


def _read_json(spark: SparkSession, path: str) -> DataFrame:
    frame = (
        spark.read.option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", "_corrupt_record")
        .json(spark_path(path))
    )
    # Spark refuses queries over the corrupt-record column of a raw JSON scan; a cached copy is fine.
    return frame.persist(StorageLevel.MEMORY_AND_DISK)


def prepare_documents(frame: DataFrame, source_name: str) -> tuple[DataFrame, DataFrame, int]:
    """(document rows, reject rows for malformed JSON lines, rows in) from arbitrary input rows."""
    columns = frame.columns
    if "content" not in columns:
        shown = [c for c in columns if c != "_corrupt_record"]
        raise DedupInputError(
            f"input has no 'content' column (columns: {shown}); dedup needs the text of each document"
        )
    rows_in = frame.count()
    corrupt = F.col("_corrupt_record").isNotNull() if "_corrupt_record" in columns else F.lit(False)
    key_source = next((c for c in ("id", "path") if c in columns), None)
    content = F.col("content").cast("string")
    if "doc_id" in columns:
        doc_id = F.col("doc_id").cast("string")
    else:
        # Stable ids: hash of the source name and the row's key, as quality.schema.make_doc_id.
        key = (
            F.concat(F.lit(f"{key_source}:"), F.col(key_source).cast("string")) if key_source else F.lit(None)
        )
        key = F.coalesce(key, F.concat(F.lit("sha256:"), F.sha2(F.coalesce(content, F.lit("")), 256)))
        # Two rows with the same key get #2, #3... in an order fixed by their whole content, so the
        # ids do not depend on which row Spark happened to read first.
        whole_row = F.to_json(F.struct(*[F.col(c) for c in columns]))
        rank = F.row_number().over(Window.partitionBy(key).orderBy(whole_row))
        full_key = F.when(rank > 1, F.concat(key, F.lit("#"), rank.cast("string"))).otherwise(key)
        doc_id = F.substring(F.sha2(F.concat(F.lit(source_name), F.lit("\x00"), full_key), 256), 1, 32)
    shaped = frame.withColumn("doc_id", doc_id)
    malformed = shaped.filter(corrupt).select(
        "doc_id",
        F.lit(EXACT_STAGE).alias("stage"),
        F.lit("malformed_json").alias("reason"),
        (F.substring("_corrupt_record", 1, 200) if "_corrupt_record" in columns else F.lit(None))
        .cast("string")
        .alias("detail"),
        *[
            F.lit(None).cast("long" if name == "size_bytes" else "string").alias(name)
            for name in REJECT_COLUMNS[4:]
        ],
    )
    if "_corrupt_record" in columns:
        shaped = shaped.filter(~corrupt).drop("_corrupt_record")
    fill = {
        "content": content,
        "path": F.lit(None).cast("string"),
        "repo": F.lit(None).cast("string"),
        "lang": F.lit("unknown"),
        "ext": F.lit(None).cast("string"),
        "size_bytes": F.octet_length(content).cast("long"),
        "sha256": F.sha2(content, 256),
        "stars": F.lit(None).cast("long"),
        "licence": F.lit(None).cast("string"),
        "commit_date": F.lit(None).cast("string"),
        "source": F.lit("code"),
        "url": F.lit(None).cast("string"),
    }
    if "path" in columns:
        # The language table decides from the file name, as ingest does.
        language = F.udf(lambda path: (language_of(path)[0] or "unknown") if path else "unknown", "string")
        extension = F.udf(lambda path: (language_of(path)[1] or None) if path else None, "string")
        fill["lang"], fill["ext"] = language(F.col("path")), extension(F.col("path"))
    for spec in DOCUMENT_FIELDS:
        name = spec.name
        if name == "doc_id":
            continue
        if name not in columns:
            shaped = shaped.withColumn(name, fill[name])
        elif name in ("sha256", "size_bytes"):
            # Derived values are recomputed where missing, never trusted blindly when absent.
            shaped = shaped.withColumn(name, F.coalesce(F.col(name).cast(spec.dataType), fill[name]))
        elif name in ("stars",):
            shaped = shaped.withColumn(name, F.expr(f"try_cast({name} AS BIGINT)"))
        else:
            shaped = shaped.withColumn(name, F.col(name).cast(spec.dataType))
    document_names = [f.name for f in DOCUMENT_FIELDS]
    ordered = document_names + [c for c in shaped.columns if c not in document_names]
    return shaped.select(*ordered), malformed, rows_in


def _duplicate_ids(docs: DataFrame) -> list[str]:
    repeated = docs.groupBy("doc_id").count().filter("count > 1").orderBy("doc_id").limit(5).collect()
    return [row["doc_id"] for row in repeated]


def settings_hash(config: DedupConfig) -> str:
    return hashlib.sha256(json.dumps(asdict(config), sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_dedup(
    spark: SparkSession, input_path: str, output: str, config: DedupConfig, log=print
) -> dict[str, dict]:
    """Both stages on one input; returns the two manifests."""
    frame, _ = read_table(spark, input_path)
    source_name = Path(input_path.rstrip("/")).name.split(".")[0] or "input"
    docs, malformed, rows_in = prepare_documents(frame, source_name)
    repeated = _duplicate_ids(docs)
    if repeated:
        raise DedupInputError(f"doc_id must be unique, but these repeat: {repeated}")
    root = output if "://" in output else str(Path(output).resolve())
    layout = StorageLayout(root)
    digest = settings_hash(config)
    exact = exact_dedup(docs, config, log=log)
    try:
        exact_manifest = write_stage(
            exact.kept,
            exact.rejected.unionByName(malformed),
            paths=layout.stage(EXACT_STAGE),
            rows_in=rows_in,
            recipe_hash=digest,
            extra={"input": input_path, "dedup": exact.facts},
        )
    finally:
        exact.release()
        frame.unpersist()
    near = near_dedup(read_stage(spark, layout.stage(EXACT_STAGE)), config, log=log)
    try:
        near_manifest = write_stage(
            near.kept,
            near.rejected,
            paths=layout.stage(NEAR_STAGE),
            rows_in=near.rows_in,
            recipe_hash=digest,
            extra={"input": input_path, "dedup": near.facts},
        )
    finally:
        near.release()
    for manifest in (exact_manifest, near_manifest):
        reasons = ", ".join(f"{r}={n}" for r, n in sorted(manifest["rejected_by_reason"].items())) or "none"
        log(
            f"{manifest['stage']}: {manifest['rows_in']} in, {manifest['rows_out']} kept, {manifest['rows_rejected']} rejected ({reasons})"
        )
    log(
        f"near_dedup: {near.facts['near_clusters']} clusters of near duplicates, largest {near.facts['largest_cluster']} docs, "
        f"{near.facts['component_rounds']} component rounds\n"
        f"  kept:     {layout.stage(NEAR_STAGE).data_dir}\n  rejected: {layout.data_root}/rejected/{{{EXACT_STAGE},{NEAR_STAGE}}}"
    )
    return {EXACT_STAGE: exact_manifest, NEAR_STAGE: near_manifest}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments beyond --input/--output/--config."""
    parser.add_argument("--master", default=None, help="Spark master (default: local[*]).")


def run(args: argparse.Namespace) -> int:
    """Entry point registered in `orchestration.cli` as the `dedup` stage command."""
    from quality.spark_session import build_spark_session

    try:
        config = load_config(args.config)
        spark = build_spark_session(
            SparkConfig(master=getattr(args, "master", None) or "local[*]"), app_name="codecook-dedup"
        )
        run_dedup(spark, args.input, args.output, config)
    except (DedupInputError, RecipeError) as error:
        print(f"codecook dedup: {error}", file=sys.stderr)
        return 2
    return 0
