"""raw_code ingest on a real corpus: a slice of this interpreter's standard library plus planted bad files."""

from __future__ import annotations

import json
import shutil
import sysconfig
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from quality.ingest import SourceError, glob_to_regex, ingest_sources
from quality.languages import STARCODER_LANGUAGES, language_of
from quality.recipe import IngestConfig, SourceConfig
from quality.schema import make_doc_id
from quality.storage import StorageLayout, read_manifest, write_stage

STDLIB = Path(sysconfig.get_paths()["stdlib"])
SLICE = ["json", "email", "http", "urllib", "logging"]


def _copy_stdlib_slice(target: Path) -> tuple[int, int]:
    """Copies the slice; returns (files with text, empty files such as bare __init__.py)."""
    copied = empty = 0
    for package in SLICE:
        for file in sorted((STDLIB / package).rglob("*.py")):
            if "__pycache__" in file.parts:
                continue
            destination = target / package / file.relative_to(STDLIB / package)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, destination)
            copied += 1
            empty += not file.read_bytes().strip()
    return copied - empty, empty


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, int, int]:
    root = tmp_path_factory.mktemp("corpus")
    copied, empty = _copy_stdlib_slice(root)
    planted = root / "planted"
    planted.mkdir()
    (planted / "nul.py").write_bytes(b"x = 1\n\x00\x01\x02binary tail\n")
    (planted / "latin1.py").write_bytes("name = 'Müller café'\n".encode("latin-1"))
    (planted / "latin1_declared.py").write_bytes(
        "# -*- coding: latin-1 -*-\nname = 'Müller café'\n".encode("latin-1")
    )
    (planted / "huge.py").write_bytes(b"# filler\n" + b"x = 1\n" * (9 * 1024 * 1024 // 6))
    (planted / "empty.py").write_bytes(b"")
    (planted / "notes.weird").write_text("what language is this?\n")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "skip.py").write_text("excluded by glob\n")
    return root, copied, empty


def _ingest(spark, root: Path, out: Path):
    source = SourceConfig(
        name="slice", kind="folder", path=str(root), exclude=("**/__pycache__/**",), repo="cpython", stars=7
    )
    result = ingest_sources(spark, (source,), IngestConfig())
    try:
        return write_stage(
            result.kept,
            result.rejected,
            paths=StorageLayout(str(out)).stage("raw_code"),
            rows_in=result.rows_in,
            recipe_hash="test",
        )
    finally:
        result.release()


def test_counts_and_reasons_are_exact(spark, corpus, tmp_path):
    root, copied, empty_stdlib = corpus
    assert empty_stdlib >= 1  # urllib/__init__.py is empty in CPython 3.11
    manifest = _ingest(spark, root, tmp_path / "a")
    # Every stdlib file plus the latin-1 file that declares its encoding survive; each bad file
    # is rejected once, for its own reason; the glob-excluded file is not an input at all.
    assert manifest["rows_in"] == copied + empty_stdlib + 6
    assert manifest["rows_out"] == copied + 1
    assert manifest["rejected_by_reason"] == {
        "binary": 1,
        "empty": 1 + empty_stdlib,
        "too_large": 1,
        "undecodable": 1,
        "unknown_extension": 1,
    }
    kept = spark.read.parquet(str(tmp_path / "a" / "data" / "raw_code"))
    declared = kept.filter("path = 'planted/latin1_declared.py'").collect()[0]
    assert "Müller café" in declared["content"]
    row = kept.filter("path = 'json/decoder.py'").collect()[0]
    assert row["doc_id"] == make_doc_id("slice", "json/decoder.py")
    assert (row["lang"], row["ext"], row["repo"], row["stars"]) == ("python", ".py", "cpython", 7)
    assert row["content"] == (STDLIB / "json" / "decoder.py").read_text(encoding="utf-8")
    rejected = {
        r["path"]: r
        for r in spark.read.parquet(str(tmp_path / "a" / "data" / "rejected" / "raw_code")).collect()
    }
    assert rejected["planted/huge.py"]["reason"] == "too_large"
    assert rejected["planted/nul.py"]["detail"] == "NUL byte at offset 6"
    assert all(r["stage"] == "raw_code" for r in rejected.values())


def test_rerun_is_byte_identical(spark, corpus, tmp_path):
    root, _, _ = corpus
    first = _ingest(spark, root, tmp_path / "one")
    second = _ingest(spark, root, tmp_path / "two")
    assert first["checksum"] == second["checksum"]
    for sub in ("data/raw_code", "data/rejected/raw_code"):
        names = sorted(p.name for p in (tmp_path / "one" / sub).glob("*.parquet"))
        assert names and names == sorted(p.name for p in (tmp_path / "two" / sub).glob("*.parquet"))
        for name in names:
            assert (tmp_path / "one" / sub / name).read_bytes() == (
                tmp_path / "two" / sub / name
            ).read_bytes()


def test_jsonl_and_parquet_sources_quarantine_bad_rows(spark, tmp_path):
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text(
        json.dumps({"content": "def f():\n    return 1\n", "path": "a/f.py", "repo": "org/a", "stars": 3})
        + "\n"
        + "{not json\n"
        + json.dumps({"content": None, "path": "a/g.py"})
        + "\n"
        + json.dumps({"content": "SELECT 1;\n", "path": "q.sql"})
        + "\n"
    )
    good = tmp_path / "pq"
    good.mkdir()
    import pyarrow as pa

    pq.write_table(pa.table({"content": ["fn main() {}\n"], "path": ["src/main.rs"]}), good / "good.parquet")
    (good / "broken.parquet").write_bytes(b"PAR1 this is not a parquet file")
    sources = (
        SourceConfig(name="j", kind="jsonl", path=str(jsonl)),
        SourceConfig(name="p", kind="parquet", path=str(good)),
    )
    result = ingest_sources(spark, sources, IngestConfig())
    manifest = write_stage(
        result.kept,
        result.rejected,
        paths=StorageLayout(str(tmp_path / "h")).stage("raw_code"),
        rows_in=result.rows_in,
        recipe_hash="t",
    )
    result.release()
    assert manifest["rows_in"] == 6
    assert manifest["rows_out"] == 3
    assert manifest["rejected_by_reason"] == {"corrupt_file": 1, "malformed_json": 1, "missing_content": 1}
    langs = {
        r["path"]: (r["lang"], r["repo"], r["stars"])
        for r in spark.read.parquet(str(tmp_path / "h" / "data" / "raw_code")).collect()
    }
    assert langs == {
        "a/f.py": ("python", "org/a", 3),
        "q.sql": ("sql", None, None),
        "src/main.rs": ("rust", None, None),
    }


def test_table_sources_keep_their_own_columns_and_ids(spark, tmp_path):
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text(
        json.dumps({"id": "a1", "path": "x.py", "content": "x = 1\n", "reason": "mine", "tags": ["t"]})
        + "\n"
        + json.dumps({"id": "a2", "content": "SELECT 1;\n", "lang": "SQL"})
        + "\n"
        + json.dumps({"content": "y = 2\n", "path": "y.py", "tags": []})
        + "\n"
    )
    folder = tmp_path / "pq"
    folder.mkdir()
    import pyarrow as pa

    pq.write_table(
        pa.table({"text": ["fn main() {}\n"], "path": ["m.rs"], "score": [0.5]}), folder / "a.parquet"
    )
    sources = (
        SourceConfig(name="j", kind="jsonl", path=str(jsonl)),
        SourceConfig(name="p", kind="parquet", path=str(folder)),
    )
    result = ingest_sources(spark, sources, IngestConfig())
    try:
        # The input's own columns ride along (an own `reason` too); the `text` column became content.
        assert {"id", "reason", "tags", "score"} <= set(result.kept.columns)
        assert "text" not in result.kept.columns
        rows = {r["doc_id"]: r for r in result.kept.collect()}
        assert result.rejected.count() == 0
    finally:
        result.release()
    first = rows[make_doc_id("j", "id:a1")]
    assert (first["id"], first["reason"], first["tags"], first["lang"]) == ("a1", "mine", ["t"], "python")
    assert rows[make_doc_id("j", "id:a2")]["lang"] == "sql"
    assert rows[make_doc_id("j", "path:y.py")]["id"] is None
    rust = rows[make_doc_id("p", "path:m.rs")]
    assert (rust["score"], rust["content"], rust["reason"]) == (0.5, "fn main() {}\n", None)


def test_bad_sources_fail_clearly(spark, tmp_path):
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(SourceError, match="no file"):
        ingest_sources(
            spark, (SourceConfig(name="e", kind="folder", path=str(tmp_path / "empty_dir")),), IngestConfig()
        )
    no_content = tmp_path / "no_content.jsonl"
    no_content.write_text(json.dumps({"body": "x"}) + "\n")
    with pytest.raises(SourceError, match="no 'content' column"):
        ingest_sources(spark, (SourceConfig(name="n", kind="jsonl", path=str(no_content)),), IngestConfig())


def test_failed_write_leaves_previous_output_intact(spark, corpus, tmp_path):
    root, _, _ = corpus
    before = _ingest(spark, root, tmp_path / "h")
    layout = StorageLayout(str(tmp_path / "h"))
    from pyspark.sql import functions as F

    exploding = spark.read.parquet(layout.stage("raw_code").data_dir).withColumn(
        "content", F.udf(lambda text: 1 // 0 if text else text)("content")
    )
    with pytest.raises(Exception, match="ZeroDivisionError"):
        write_stage(
            exploding,
            spark.read.parquet(layout.stage("raw_code").rejected_dir),
            paths=layout.stage("raw_code"),
            rows_in=1,
            recipe_hash="x",
        )
    assert read_manifest(layout.stage("raw_code"))["checksum"] == before["checksum"]
    assert not list((tmp_path / "h" / "data" / ".tmp").glob("*"))


def test_language_table_covers_starcoder():
    assert len(STARCODER_LANGUAGES) >= 86
    assert language_of("pkg/module.py") == ("python", ".py")
    assert language_of("build/CMakeLists.txt")[0] == "cmake"
    assert language_of("Dockerfile")[0] == "dockerfile"
    assert language_of("lib/x.min.js")[0] == "javascript"
    assert language_of("archive.tar.gz")[0] is None


def test_globs_span_folders():
    assert glob_to_regex("**/__pycache__/**").match("a/b/__pycache__/x.pyc")
    assert glob_to_regex("**/__pycache__/**").match("__pycache__/x.pyc")
    assert glob_to_regex("pip/**").match("pip/_vendor/x.py")
    assert not glob_to_regex("*.py").match("a/b.py")
