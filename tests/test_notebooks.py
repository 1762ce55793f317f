"""Jupyter notebooks as StarCoder's two document forms (quality.notebooks), on the real notebooks
that the nbdime and papermill packages ship, plus broken ones written here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from contracts.doc_formats import EMPTY_OUTPUT, JUPYTER_CODE, JUPYTER_OUTPUT, JUPYTER_START, JUPYTER_TEXT
from quality.notebooks import (
    NotebookConfig,
    NotebookInputError,
    clean_notebooks,
    ingest_notebooks,
    list_notebooks,
    notebook_documents,
    package_folder,
)

CONFIG = NotebookConfig(max_output_chars=40, max_output_bytes=100_000)


def by_form(rows: list[dict]) -> dict[str, dict]:
    return {row["doc_format"]: row for row in rows}


def real(relative: str) -> tuple[str, bytes]:
    package, _, rest = relative.partition("/")
    path = Path(package_folder(package)) / rest
    return relative, path.read_bytes()


def test_a_python_notebook_gives_a_script_and_a_structured_chain():
    shown, data = real("nbdime/tests/files/mixed-conflicts--1.ipynb")
    notebook = json.loads(data)
    rows = by_form(notebook_documents("nbdime", shown, data, CONFIG))
    script, structured = rows["jupyter_script"], rows["jupyter_structured"]
    assert script["_reason"] is None and script["lang"] == "python" and script["path"].endswith(".py")
    assert structured["_reason"] is None and structured["lang"] == "jupyter-notebook"
    code_cells = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code" and c["source"]]
    for source in code_cells:
        assert source.strip().splitlines()[-1] in script["content"]
        assert JUPYTER_CODE + source in structured["content"]
    text = structured["content"]
    assert text.startswith(JUPYTER_START) and text.count(JUPYTER_CODE) == len(code_cells)
    assert text.count(JUPYTER_OUTPUT) == len(code_cells)
    # Every output is cut to max_output_chars (the piece after a marker up to the next one).
    for piece in text.split(JUPYTER_OUTPUT)[1:]:
        output = piece.split("<jupyter_")[0]
        assert len(output) <= CONFIG.max_output_chars or output == EMPTY_OUTPUT
    assert "{" not in script["content"][:1] and "jupytext" not in script["content"]  # no header


def test_markdown_becomes_jupyter_text_and_comments():
    shown, data = real("nbdime/tests/files/markdown-only--1.ipynb")
    rows = by_form(notebook_documents("nbdime", shown, data, CONFIG))
    assert rows["jupyter_structured"]["_reason"] is None
    assert JUPYTER_TEXT in rows["jupyter_structured"]["content"]
    assert JUPYTER_CODE not in rows["jupyter_structured"]["content"]
    assert all(line.startswith("#") for line in rows["jupyter_script"]["content"].splitlines() if line)


def test_other_languages_get_their_script_and_no_structured_form():
    shown, data = real("papermill/tests/notebooks/notimplemented_translator.ipynb")
    rows = by_form(notebook_documents("papermill", shown, data, CONFIG))
    assert rows["jupyter_script"]["lang"] == "r" and rows["jupyter_script"]["path"].endswith(".R")
    assert rows["jupyter_structured"]["_reason"] == "not_python"


def test_bad_notebooks_are_rejected_with_reasons():
    shown, data = real("nbdime/tests/files/empty.ipynb")
    assert {r["_reason"] for r in notebook_documents("nbdime", shown, data, CONFIG)} == {
        "no_code_or_markdown"
    }
    (row,) = notebook_documents("x", "x/bad.ipynb", b'{"cells": [', CONFIG)
    assert row["_reason"] == "invalid_json"
    (row,) = notebook_documents("x", "x/list.ipynb", b"[1, 2]", CONFIG)
    assert row["_reason"] == "invalid_notebook"
    notebook = json.loads(real("nbdime/tests/files/single_cell_nb.ipynb")[1])
    notebook["cells"][0]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "x" * 200_000}]
    rows = by_form(notebook_documents("x", "x/huge.ipynb", json.dumps(notebook).encode(), CONFIG))
    assert rows["jupyter_structured"]["_reason"] == "huge_outputs"
    assert rows["jupyter_script"]["_reason"] is None  # the script form has no outputs
    notebook["metadata"] = {}
    rows = by_form(notebook_documents("x", "x/nolang.ipynb", json.dumps(notebook).encode(), CONFIG))
    assert rows["jupyter_script"]["_reason"] == "no_language_metadata"


def test_machine_notebooks_are_found_and_missing_packages_fail_loudly():
    listed = list_notebooks(NotebookConfig(packages=("nbdime", "papermill")))
    assert len(listed) >= 60 and all(shown.endswith(".ipynb") for _, _, shown in listed)
    with pytest.raises(NotebookInputError, match="not installed"):
        list_notebooks(NotebookConfig(packages=("no_such_package_here",)))


def test_spark_run_then_dedup_and_filters_account_for_every_row(spark, tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    source = Path(package_folder("nbdime")) / "tests" / "files"
    names = ("single_cell_nb.ipynb", "single_cell_nb--changed_metadata.ipynb", "mixed-conflicts--1.ipynb")
    for name in (*names, "apap.ipynb", "empty.ipynb"):
        shutil.copy(source / name, folder / name)
    (folder / "broken.ipynb").write_text('{"cells": [', encoding="utf-8")
    result = ingest_notebooks(spark, NotebookConfig(paths=(str(folder),)))
    try:
        kept, rejected = result.kept.count(), result.rejected.count()
        # 5 readable notebooks give 2 candidates each, the broken file 1.
        assert result.rows_in == 11 and kept + rejected == 11
        reasons = {r["reason"] for r in result.rejected.select("reason").collect()}
        assert reasons == {"invalid_json", "no_code_or_markdown"}
        documents = result.kept.cache()
        rows_in = documents.count()
        clean, dropped, release, facts = clean_notebooks(
            documents, NotebookConfig(), rows_in, 2, log=lambda _: None
        )
        try:
            assert clean.count() + dropped.count() == rows_in
            # The two single-cell notebooks differ only in metadata: one copy of each form goes.
            assert dropped.filter("reason = 'exact_duplicate'").count() == 2
            assert {r["stage"] for r in dropped.select("stage").collect()} == {"notebooks_clean"}
        finally:
            release()
            documents.unpersist()
    finally:
        result.release()


def test_pii_is_redacted_in_both_forms():
    notebook = json.loads(real("nbdime/tests/files/single_cell_nb.ipynb")[1])
    notebook["cells"][0]["source"] = "contact = 'maria.lopez@uni-example.edu'\nprint(contact)\n"
    rows = by_form(notebook_documents("x", "x/pii.ipynb", json.dumps(notebook).encode(), CONFIG))
    for row in rows.values():
        assert "maria.lopez@" not in row["content"] and "<EMAIL>" in row["content"]
