"""Expectations over a stage's output, shared by the Dagster asset checks and any notebook.

Each function reads the files on disk (not the manifest's claims) with DuckDB and returns
`(passed, facts)`, where `facts` is a flat dict fit for check metadata. Great Expectations runs a
suite on a sample as a second, independent opinion; it is imported lazily because its import
alone costs seconds that the rest of the project should not pay.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import types as T

from quality.schema import DOCUMENT_FIELDS
from quality.storage import StagePaths, read_manifest

_DUCKDB_TYPES = {
    T.StringType: "VARCHAR",
    T.LongType: "BIGINT",
    T.IntegerType: "INTEGER",
    T.DoubleType: "DOUBLE",
    T.BooleanType: "BOOLEAN",
}

# What a document output must carry: name -> DuckDB type.
DOCUMENT_TYPES: dict[str, str] = {f.name: _DUCKDB_TYPES[type(f.dataType)] for f in DOCUMENT_FIELDS}


def _parquet_glob(folder: str) -> str:
    return f"{folder}/*.parquet"


def count_rows(connection, folder: str) -> int:
    return int(
        connection.execute("SELECT count(*) FROM read_parquet(?)", [_parquet_glob(folder)]).fetchone()[0]
    )


def conservation(connection, paths: StagePaths) -> tuple[bool, dict[str, Any]]:
    """rows_in (from the manifest) == kept rows + rejected rows counted in the files themselves."""
    manifest = read_manifest(paths)
    kept = count_rows(connection, paths.data_dir)
    rejected = count_rows(connection, paths.rejected_dir)
    facts = {
        "rows_in": int(manifest["rows_in"]),
        "rows_kept": kept,
        "rows_rejected": rejected,
        "difference": int(manifest["rows_in"]) - kept - rejected,
        "manifest_agrees": kept == manifest["rows_out"] and rejected == manifest["rows_rejected"],
    }
    return facts["difference"] == 0 and facts["manifest_agrees"], facts


def schema_conformance(
    connection, paths: StagePaths, required: dict[str, str] | None = None, key: str = "doc_id"
) -> tuple[bool, dict[str, Any]]:
    """Required columns exist with their types; the key is never null and never repeated."""
    required = DOCUMENT_TYPES if required is None else required
    described = connection.execute(
        "DESCRIBE SELECT * FROM read_parquet(?)", [_parquet_glob(paths.data_dir)]
    ).fetchall()
    actual = {row[0]: row[1] for row in described}
    missing = sorted(c for c in required if c not in actual)
    wrong = {c: f"{actual[c]} (want {t})" for c, t in required.items() if c in actual and actual[c] != t}
    nulls = duplicates = 0
    if key in actual:
        nulls, duplicates = connection.execute(
            f'SELECT count(*) FILTER (WHERE "{key}" IS NULL), count(*) - count(DISTINCT "{key}") FROM read_parquet(?)',
            [_parquet_glob(paths.data_dir)],
        ).fetchone()
    facts = {
        "missing_columns": ", ".join(missing) or "none",
        "wrong_types": "; ".join(f"{c}: {t}" for c, t in wrong.items()) or "none",
        f"null_{key}": int(nulls),
        f"duplicate_{key}": int(duplicates),
        "columns": len(actual),
    }
    return not missing and not wrong and nulls == 0 and duplicates == 0, facts


def rejected_schema_conformance(connection, paths: StagePaths) -> tuple[bool, dict[str, Any]]:
    """Every reject row names its stage and a reason."""
    unnamed = connection.execute(
        "SELECT count(*) FROM read_parquet(?) WHERE reason IS NULL OR reason = '' OR stage IS NULL",
        [_parquet_glob(paths.rejected_dir)],
    ).fetchone()[0]
    return unnamed == 0, {"rejects_without_reason": int(unnamed)}


def great_expectations_on_sample(
    connection, paths: StagePaths, sample_rows: int = 2000, seed: int = 7
) -> tuple[bool, dict[str, Any]]:
    """A Great Expectations 1.x suite on a reproducible sample of a document output."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    frame = connection.execute(
        f"SELECT doc_id, lang, size_bytes, sha256, source, length(content) AS chars "
        f"FROM read_parquet(?) USING SAMPLE reservoir({int(sample_rows)} ROWS) REPEATABLE ({int(seed)})",
        [_parquet_glob(paths.data_dir)],
    ).df()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # The check reports its own result; GX's per-metric progress bars would only flood the run log.
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch = (
        context.data_sources.add_pandas("codecook")
        .add_dataframe_asset(paths.stage)
        .add_batch_definition_whole_dataframe("sample")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    suite = gx.ExpectationSuite(
        name=f"{paths.stage}_documents",
        expectations=[
            gxe.ExpectColumnValuesToNotBeNull(column="doc_id"),
            gxe.ExpectColumnValuesToBeUnique(column="doc_id"),
            gxe.ExpectColumnValuesToMatchRegex(column="doc_id", regex=r"^[0-9a-f]{32}$"),
            gxe.ExpectColumnValuesToMatchRegex(column="sha256", regex=r"^[0-9a-f]{64}$"),
            gxe.ExpectColumnValuesToNotBeNull(column="lang"),
            gxe.ExpectColumnValuesToBeInSet(column="source", value_set=["code", "web"]),
            gxe.ExpectColumnValuesToBeBetween(column="size_bytes", min_value=1, max_value=64 * 1024 * 1024),
            gxe.ExpectColumnValuesToBeBetween(column="chars", min_value=1),
        ],
    )
    result = batch.validate(suite)
    failed = [r.expectation_config.type for r in result.results if not r.success]
    return bool(result.success), {
        "sample_rows": len(frame),
        "expectations": len(suite.expectations),
        "failed": ", ".join(failed) or "none",
    }
