"""`codecook STAGE --input --output`: every command on plain JSONL, ids and own columns carried,
bad inputs as one line on stderr and exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import duckdb
import pytest

from orchestration.cli import main
from quality.schema import make_doc_id

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STDLIB = Path(sysconfig.get_paths()["stdlib"])
CODECOOK = [sys.executable, "-m", "orchestration.cli"]


def plain_rows() -> list[dict]:
    """Real files with only `id`, `path`, `content` and columns codecook does not know."""
    rows = [
        {"id": 100 + i, "path": f"json/{p.name}", "content": p.read_text(), "team": "core", "meta": {"n": i}}
        for i, p in enumerate(sorted((STDLIB / "json").glob("*.py")))
    ]
    rows.append({"id": 200, "content": (STDLIB / "json" / "decoder.py").read_text()})  # exact copy, no path
    rows.append({"id": 201, "path": "gone.py", "content": None})
    rows.append({"id": 202, "path": "blank.py", "content": "  \n"})
    return rows


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("plain") / "docs.jsonl"
    with path.open("w") as handle:
        for row in plain_rows():
            handle.write(json.dumps(row) + "\n")
        handle.write("{this is not json\n")
    return path


def _manifest(out: Path, stage: str) -> dict:
    return json.loads((out / "data" / stage / "_manifest.json").read_text())


COMMANDS = {
    "dedup": ("exact_dedup", "near_dedup"),
    "filter": ("quality_signals", "filtered_code"),
    "redact": ("redacted_code",),
    "decontaminate": ("decontaminated_code",),
    "mix": ("code_mix",),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_stage_command_on_plain_jsonl(spark, docs, tmp_path, command, capsys):
    out = tmp_path / "out"
    assert main([command, "--input", str(docs), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = plain_rows()
    first, *_ = stages = COMMANDS[command]
    for stage in stages:
        manifest = _manifest(out, stage)
        assert f"{stage}: {manifest['rows_in']} in" in printed
        assert manifest["rows_in"] == manifest["rows_out"] + manifest["rows_rejected"], stage
    # Every input line is accounted for by the first stage: the unusable ones as reject rows.
    manifest = _manifest(out, first)
    assert manifest["rows_in"] == len(rows) + 1
    reasons = manifest["rejected_by_reason"]
    assert (reasons["malformed_json"], reasons["missing_content"], reasons["empty_content"]) == (1, 1, 1)
    # Reject rows carry the input's own id too (null only where the line had none to read).
    rejected = duckdb.sql(
        f"SELECT reason, source_id FROM read_parquet('{out}/data/rejected/{first}/*.parquet')"
    ).fetchall()
    by_reason = {reason: source_id for reason, source_id in rejected if reason in reasons}
    assert (by_reason["missing_content"], by_reason["empty_content"], by_reason["malformed_json"]) == (
        "201",
        "202",
        None,
    )
    # Kept rows keep the input's id and its own columns; doc_ids are stable, made from the id.
    documents = stages[-1] if command != "filter" else "filtered_code"
    kept = duckdb.sql(f"SELECT * FROM read_parquet('{out}/data/{documents}/*.parquet')")
    assert {"doc_id", "content", "lang", "sha256", "id", "team", "meta"} <= set(kept.columns)
    if command != "filter":  # the toy corpus may not pass the filters; the others keep most rows
        found = {
            (row[0], row[1], row[2]) for row in duckdb.sql("SELECT id, doc_id, lang FROM kept").fetchall()
        }
        assert found
        for id_, doc_id, lang in found:
            assert doc_id == make_doc_id("docs", f"id:{id_}")
            assert lang == ("python" if id_ < 200 else "unknown")


def test_ingest_keeps_ids_and_own_columns_and_chains_into_dedup(spark, docs, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["ingest", "--input", str(docs), "--output", str(out)]) == 0
    raw = _manifest(out, "raw_code")
    assert raw["rows_in"] == len(plain_rows()) + 1
    kept = duckdb.sql(
        f"SELECT id, team, meta, doc_id, path FROM read_parquet('{out}/data/raw_code/*.parquet')"
    )
    rows = {row[0]: row for row in kept.fetchall()}
    assert rows[100][1] == "core" and rows[100][2] == {"n": 0}
    assert rows[100][3] == make_doc_id("docs", "id:100")
    # A stage folder is an input like any other: its doc_ids are kept.
    assert main(["dedup", "--input", str(out / "data" / "raw_code"), "--output", str(out)]) == 0
    exact = _manifest(out, "exact_dedup")
    assert exact["rows_in"] == raw["rows_out"] and exact["rejected_by_reason"] == {"exact_duplicate": 1}
    near = duckdb.sql(f"SELECT id, doc_id FROM read_parquet('{out}/data/near_dedup/*.parquet')").fetchall()
    assert {doc_id for _, doc_id in near} <= {row[3] for row in rows.values()}


def test_ingest_web_on_plain_jsonl(spark, tmp_path, capsys):
    pages = tmp_path / "pages.jsonl"
    html = "<html><head><title>t</title></head><body><main><p>How to add numbers:</p><pre><code>print(1 + 2)\nprint(3)</code></pre></main></body></html>"
    pages.write_text(json.dumps({"url": "https://docs.example.org/add.html", "html": html}) + "\n")
    out = tmp_path / "out"
    assert main(["ingest-web", "--input", str(pages), "--output", str(out)]) == 0
    manifest = _manifest(out, "web_pages")
    assert (
        manifest["rows_in"] == 1 and manifest["rows_in"] == manifest["rows_out"] + manifest["rows_rejected"]
    )


def test_tokenize_on_plain_jsonl_makes_documents_then_shards(spark, docs, tmp_path, capsys):
    config = tmp_path / "tokenizer.yaml"
    config.write_text("vocab_size: 400\nseq_len: 32\ntrain_sample_bytes: 200000\nworkers: 1\nanneal: null\n")
    out = tmp_path / "out"
    assert main(["tokenize", "--input", str(docs), "--output", str(out), "--config", str(config)]) == 0
    documents = _manifest(out, "documents")
    assert documents["rows_in"] == len(plain_rows()) + 1
    assert documents["rejected_by_reason"] == {"malformed_json": 1, "missing_content": 1, "empty_content": 1}
    shards = json.loads((out / "data" / "token_shards" / "_manifest.json").read_text())
    assert shards["documents"] == documents["rows_out"] and shards["tokens"] > 0


def test_json_without_objects_is_one_line_and_exit_code_2(spark, tmp_path, capsys):
    junk = tmp_path / "junk.jsonl"
    junk.write_text("not json\nalso not json\n")
    assert main(["redact", "--input", str(junk), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"codecook redact: {junk}: no line is a JSON object with a 'content' field"]


def test_rows_without_text_content_are_reject_rows(spark, tmp_path, capsys):
    numbers = tmp_path / "numbers.jsonl"
    numbers.write_text(
        json.dumps({"id": 1, "content": 42}) + "\n" + json.dumps({"id": 2, "content": 7}) + "\n"
    )
    out = tmp_path / "out"
    assert main(["redact", "--input", str(numbers), "--output", str(out)]) == 0
    manifest = _manifest(out, "redacted_code")
    assert (manifest["rows_in"], manifest["rows_out"]) == (2, 0)
    assert manifest["rejected_by_reason"] == {"content_not_text": 2}


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CODECOOK, *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)


def test_bad_inputs_fail_with_one_line_before_spark_starts(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    corrupt = tmp_path / "broken.parquet"
    corrupt.write_bytes(b"PAR1 not really parquet")
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")
    config = tmp_path / "bad.yaml"
    config.write_text("num_bandz: 3\n")
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"content": "x = 1\n"}) + "\n")
    cases = {
        ("filter", str(tmp_path / "missing.jsonl")): "input not found",
        ("filter", str(empty)): "is empty",
        ("decontaminate", str(corrupt)): "not a readable Parquet file",
        ("mix", str(notes)): "cannot tell the format",
        ("ingest", str(tmp_path / "missing")): "input not found",
        ("ingest-web", str(tmp_path / "missing")): "missing",
        ("tokenize", str(empty)): "is empty",
    }
    for (command, path), expected in cases.items():
        done = _run(command, "--input", path, "--output", str(tmp_path / "out"))
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2, (command, done.stderr[-2000:])
        assert len(lines) == 1 and lines[0].startswith(f"codecook {command}: ") and expected in lines[0], (
            lines
        )
    done = _run("dedup", "--input", str(good), "--output", str(tmp_path / "out"), "--config", str(config))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "num_bandz" in lines[0], done.stderr[-2000:]


@pytest.mark.slow
def test_no_content_column_is_one_line_without_a_jvm_trace(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"id": 1, "body": "x = 1"}) + "\n")
    done = _run("filter", "--input", str(rows), "--output", str(tmp_path / "out"))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-3000:]
    assert lines == [
        f"codecook filter: {rows}: no 'content' column (columns: ['body', 'id']); a document is the text in 'content'"
    ]
    assert (tmp_path / "out" / "logs" / "filter.log").exists()


def test_every_declared_stage_names_its_recipe_sections_class():
    from contracts.recipe import section_class
    from orchestration.stages import COMMANDS as DECLARED

    for command in DECLARED.values():
        for stage in command.stages:
            if stage.section:
                assert section_class(stage.section) is stage.config, stage.name
