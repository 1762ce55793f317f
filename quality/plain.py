"""Plain rows in, document rows out: what every `codecook STAGE --input PATH` reads.

PATH is one of
  * a stage output folder (DIR/data/<stage>, holding `_manifest.json`): its rows as they are;
  * a JSONL file, or a folder of them (`.jsonl`, `.json`, optionally `.gz`);
  * a Parquet file, or a folder of them.

Rows need only `content`. The document columns they lack are filled in (DESIGN.md, "Contracts"):
`doc_id` is the row's own `doc_id`, else a stable hash of the input's name and a key: `id:<id>`
when the row has an `id`, else `path:<path>`, else `sha256:<content hash>` (rows sharing a key
get `#2`, `#3`... in an order fixed by the whole row, never by arrival; `codecook ingest` names
JSONL and Parquet rows by the same keys); `lang` and `ext`
come from `path` by the language table (else `unknown`); `size_bytes` and `sha256` from the
content; `source` is `code`; the rest are null. Every other column, such as the input's own `id`,
is carried through unchanged, so a stage's results join back to the input data.

Rows that cannot be documents become reject rows of the stage that reads them, never silent
drops: `malformed_json` (a line that is not a JSON object), `missing_content` (null content),
`content_not_text` (a number, a list...), `empty_content` (empty or whitespace only).

An input that cannot be read at all raises `InputError`, whose message is one line saying what
is wrong: not found, empty, neither JSONL nor Parquet, a corrupt Parquet file, no `content`
column, repeated doc_ids. `locate_input` finds most of these before Spark starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath

import fsspec
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from quality.languages import language_of
from quality.schema import DOCUMENT_FIELDS, SOURCE_ID, reject_rows

JSON_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
MANIFEST = "_manifest.json"
CORRUPT = "_corrupt_record"


class InputError(ValueError):
    """An input a stage cannot read at all; the message is one line naming the input and why."""


@dataclass(frozen=True)
class InputSpec:
    """Where an input's rows are: `kind` is `stage`, `jsonl` or `parquet`."""

    path: str
    kind: str
    files: tuple[str, ...]
    name: str
    """The input's base name (`docs` for docs.jsonl): part of every doc_id made for its rows."""


@dataclass
class PlainInput:
    """Document rows, reject rows and counts of one input; `release()` once both are written."""

    documents: DataFrame
    rejected: DataFrame
    rows_in: int
    """Every input row: rows of `documents` + rows of `rejected`."""
    rows_rejected: int
    _cached: list[DataFrame] = field(default_factory=list, repr=False)

    @property
    def documents_in(self) -> int:
        return self.rows_in - self.rows_rejected

    def release(self) -> None:
        for frame in self._cached:
            frame.unpersist()
        self._cached.clear()


def _visible(path: str) -> bool:
    return not PurePosixPath(path).name.startswith((".", "_"))


def locate_input(path: str) -> InputSpec:
    """The input's kind and files, checked without Spark: raises `InputError` when there is
    nothing to read (missing, empty, unknown format) or a Parquet file's footer is unreadable."""
    if not path:
        raise InputError("no input given")
    fs, root = fsspec.core.url_to_fs(path)
    name = PurePosixPath(path.rstrip("/")).name.split(".")[0] or "input"
    if not fs.exists(root):
        raise InputError(f"input not found: {path}")
    if fs.isdir(root):
        if fs.exists(f"{root}/{MANIFEST}"):
            return InputSpec(path, "stage", (path,), name)
        found = sorted(p for p in fs.find(root) if _visible(p))
        files = [p for p in found if p.endswith(PARQUET_SUFFIXES)]
        kind = "parquet"
        if not files:
            files, kind = [p for p in found if p.endswith(JSON_SUFFIXES)], "jsonl"
        if not files:
            raise InputError(f"{path}: the folder holds no .jsonl, .json or .parquet file")
    elif root.endswith(PARQUET_SUFFIXES):
        files, kind = [root], "parquet"
    elif root.endswith(JSON_SUFFIXES):
        files, kind = [root], "jsonl"
    else:
        raise InputError(f"{path}: cannot tell the format; name it .jsonl, .json or .parquet")
    if all(fs.size(f) == 0 for f in files):
        raise InputError(f"{path}: is empty" if len(files) == 1 else f"{path}: every file in it is empty")
    if kind == "parquet":
        import pyarrow.parquet as pq

        for file in files:
            try:
                with fs.open(file, "rb") as handle:
                    pq.ParquetFile(handle).metadata  # noqa: B018  (reads and checks the footer)
            except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
                raise InputError(
                    f"{file}: not a readable Parquet file ({error})".replace("\n", " ")
                ) from None
    urls = tuple(fs.unstrip_protocol(f) if "://" in path else f for f in files)
    return InputSpec(path, kind, urls, name)


def read_rows(spark: SparkSession, spec: InputSpec) -> DataFrame:
    """The input's rows as Spark reads them (JSON lines that do not parse carry `_corrupt_record`)."""
    from quality.storage import spark_path

    if spec.kind == "stage":
        return spark.read.parquet(spark_path(spec.path))
    if spec.kind == "parquet":
        return spark.read.parquet(*[spark_path(f) for f in spec.files])
    frame = (
        spark.read.option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT)
        .json([spark_path(f) for f in spec.files])
    )
    # Spark refuses queries over the corrupt-record column of a raw JSON scan; a cached copy is fine.
    return frame.persist(StorageLevel.MEMORY_AND_DISK)


def read_documents(spark: SparkSession, spec: InputSpec, *, stage: str) -> PlainInput:
    """`spec`'s rows as document rows plus the reject rows (of `stage`) of those that cannot be."""
    frame = read_rows(spark, spec)
    try:
        return prepare_documents(frame, spec.name, stage=stage, allow_empty=spec.kind == "stage")
    except InputError as error:
        frame.unpersist()
        raise InputError(f"{spec.path}: {error}") from None


def document_key(id_column: str | None, path_column: str | None, text: Column) -> Column:
    """A row's key for its doc_id: `id:<id>`, else `path:<path>`, else `sha256:<content hash>`
    (ingest's table sources and plain inputs name their rows alike)."""
    keys = [
        F.concat(F.lit(f"{kind}:"), F.col(f"`{name}`").cast("string"))
        for kind, name in (("id", id_column), ("path", path_column))
        if name
    ]
    return F.coalesce(*keys, F.concat(F.lit("sha256:"), F.sha2(F.coalesce(text, F.lit("")), 256)))


def _generated_ids(frame: DataFrame, source_name: str, text: Column) -> Column:
    """Stable ids from the source name and each row's key, as `quality.schema.make_doc_id`."""
    columns = frame.columns
    key = document_key("id" if "id" in columns else None, "path" if "path" in columns else None, text)
    # Two rows with the same key get #2, #3... in an order fixed by their whole content, so the
    # ids do not depend on which row Spark happened to read first.
    whole_row = F.to_json(F.struct(*[F.col(f"`{c}`") for c in columns]))
    rank = F.row_number().over(Window.partitionBy(key).orderBy(whole_row))
    full_key = F.when(rank > 1, F.concat(key, F.lit("#"), rank.cast("string"))).otherwise(key)
    return F.substring(F.sha2(F.concat(F.lit(source_name), F.lit("\x00"), full_key), 256), 1, 32)


def _problem(frame: DataFrame) -> tuple[Column, Column]:
    """(reason, detail) of a row that cannot be a document; null for a good row."""
    corrupt = F.col(CORRUPT) if CORRUPT in frame.columns else F.lit(None).cast("string")
    content_type = frame.schema["content"].dataType
    is_text = isinstance(content_type, T.StringType)
    blank = F.coalesce(F.col("content").cast("string"), F.lit("")).rlike(r"^\s*$")
    reason = (
        F.when(corrupt.isNotNull(), F.lit("malformed_json"))
        .when(F.col("content").isNull(), F.lit("missing_content"))
        .when(F.lit(not is_text), F.lit("content_not_text"))
        .when(blank, F.lit("empty_content"))
    )
    detail = (
        F.when(corrupt.isNotNull(), F.substring(corrupt, 1, 200))
        .when(F.col("content").isNull(), F.lit("content is null"))
        .when(F.lit(not is_text), F.lit(f"content is {content_type.simpleString()}, not text"))
        .when(blank, F.lit("content is empty or whitespace only"))
    )
    return reason, detail


def prepare_documents(
    frame: DataFrame, source_name: str, *, stage: str, allow_empty: bool = False
) -> PlainInput:
    """Document rows and reject rows (of `stage`) from arbitrary rows with a `content` column."""
    columns = frame.columns
    if "content" not in columns:
        shown = [c for c in columns if c != CORRUPT]
        if not shown:
            raise InputError("no line is a JSON object with a 'content' field")
        raise InputError(f"no 'content' column (columns: {shown}); a document is the text in 'content'")
    text = F.col("content").cast("string")
    if "doc_id" in columns:
        # Given ids are kept; a row without one gets the content-hash id.
        fallback = F.substring(
            F.sha2(
                F.concat(F.lit(source_name), F.lit("\x00sha256:"), F.sha2(F.coalesce(text, F.lit("")), 256)),
                256,
            ),
            1,
            32,
        )
        doc_id = F.coalesce(F.col("doc_id").cast("string"), fallback)
    else:
        doc_id = _generated_ids(frame, source_name, text)
    reason, detail = _problem(frame)
    shaped = frame.withColumn("doc_id", doc_id).withColumn("_reason", reason).withColumn("_detail", detail)
    fill = {
        "content": text,
        "path": F.lit(None).cast("string"),
        "repo": F.lit(None).cast("string"),
        "lang": F.lit("unknown"),
        "ext": F.lit(None).cast("string"),
        "size_bytes": F.octet_length(text).cast("long"),
        "sha256": F.sha2(text, 256),
        "stars": F.lit(None).cast("long"),
        "licence": F.lit(None).cast("string"),
        "commit_date": F.lit(None).cast("string"),
        "source": F.lit("code"),
        "url": F.lit(None).cast("string"),
    }
    if "path" in columns:
        # The language table decides from the file name, as ingest does.
        language = F.udf(lambda p: (language_of(p)[0] or "unknown") if p else "unknown", "string")
        extension = F.udf(lambda p: (language_of(p)[1] or None) if p else None, "string")
        fill["lang"] = language(F.col("path").cast("string"))
        fill["ext"] = extension(F.col("path").cast("string"))
    for spec in DOCUMENT_FIELDS:
        name = spec.name
        if name == "doc_id":
            continue
        if name not in columns:
            value = fill[name]
        elif name == "content":
            value = text
        elif name == "stars":
            value = F.expr("try_cast(stars AS BIGINT)")
        else:
            # A given value is kept; a null one is filled as if the column were absent.
            value = F.coalesce(F.col(name).cast(spec.dataType), fill[name])
        shaped = shaped.withColumn(name, value)
    names = [f.name for f in DOCUMENT_FIELDS]
    own = [c for c in shaped.columns if c not in names and c not in (CORRUPT, "_reason", "_detail")]
    shaped = shaped.select(*names, *[F.col(f"`{c}`") for c in own], "_reason", "_detail")
    shaped = shaped.persist(StorageLevel.MEMORY_AND_DISK)
    counts = {row["_reason"]: int(row["count"]) for row in shaped.groupBy("_reason").count().collect()}
    frame.unpersist()  # the raw JSON copy: `shaped` holds everything from here on
    rows_in = sum(counts.values())
    if rows_in == 0 and not allow_empty:
        shaped.unpersist()
        raise InputError("has no rows")
    if "doc_id" in columns:
        repeated = shaped.groupBy("doc_id").count().filter("count > 1").orderBy("doc_id").limit(5).collect()
        if repeated:
            shaped.unpersist()
            raise InputError(f"doc_id must be unique, but these repeat: {[r['doc_id'] for r in repeated]}")
    documents = shaped.filter(F.col("_reason").isNull()).drop("_reason", "_detail")
    unusable = shaped.filter(F.col("_reason").isNotNull())
    rejected = reject_rows(unusable, stage, F.col("_reason"), F.col("_detail"))
    if "id" in shaped.columns:  # the row's own id, as with_source_ids gives later stages' rejects
        rejected = rejected.join(
            unusable.select("doc_id", F.col("id").cast("string").alias(SOURCE_ID)), "doc_id", "left"
        )
    rows_rejected = rows_in - counts.get(None, 0)
    return PlainInput(documents, rejected, rows_in, rows_rejected, [shaped])
