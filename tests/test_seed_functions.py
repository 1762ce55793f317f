"""Seed functions: extraction with the imports they need, the docstring rule, mypy, the benchmark
match and near dedup at Jaccard 0.5, on real code (this machine's standard library) and HumanEval."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest

from quality.seed_functions import (
    SeedFunctionsConfig,
    extract_candidates,
    judge_docstring,
    seed_functions_frame,
    type_check,
)

CONFIG = SeedFunctionsConfig()
MODULE = '''
import os
import re as regex
from collections import Counter
from . import sibling

LIMIT = 3


def word_counts(text):
    """Count how often each word occurs in a text, ignoring case."""
    words = regex.findall(r"\\w+", text.lower())
    return Counter(words)


def uses_constant(values):
    """Keep the first few values of a list, up to the module limit."""
    head = values[:LIMIT]
    return head


def relative(x):
    """Ask the sibling module of this package for an answer about x."""
    value = sibling.answer(x)
    return value


def vague(x):
    """TODO"""
    y = x
    return y


def no_docstring(x):
    y = x + 1
    return y
'''


def by_name(content: str) -> dict:
    candidates, why = extract_candidates(content, CONFIG)
    assert why is None
    return {c.name: c for c in candidates}


def test_extraction_takes_needed_imports_and_names_rejections():
    found = by_name(MODULE)
    assert set(found) == {"word_counts", "uses_constant", "relative", "vague"}  # undocumented: no candidate
    counts = found["word_counts"]
    assert counts.reason is None
    assert counts.snippet.startswith("from collections import Counter\nimport re as regex\n\n\n")
    assert "import os" not in counts.snippet
    assert found["uses_constant"].reason == "unresolved_names" and "LIMIT" in found["uses_constant"].detail
    assert found["relative"].reason == "relative_import"
    assert found["vague"].reason == "docstring_quality"
    assert extract_candidates("def f(:\n", CONFIG)[1].startswith("unparseable")
    assert extract_candidates("x = 1\n", CONFIG)[1].startswith("no_documented_function")


def test_docstring_rule():
    assert judge_docstring("Return the checksum of a file, read in blocks.", CONFIG) is None
    assert judge_docstring("parse(text) -> Node", CONFIG).startswith("signature_only")
    assert judge_docstring("Short one.", CONFIG).startswith("too_few_words")
    assert judge_docstring(">>> f(1)\n2\n>>> f(2)\n3;", CONFIG) is not None


def test_mypy_rejects_what_does_not_type_check_and_keeps_going_after_a_blocking_error():
    snippets = [
        'def ok(x: int) -> int:\n    """Doc."""\n    return x + 1\n',
        'def bad(text):\n    """Doc."""\n    return len(5)\n',
        'from . import nothing\n\n\ndef rel():\n    """Doc."""\n    return nothing\n',
        'def fine(items):\n    """Doc."""\n    return sorted(items)\n',
    ]
    errors = type_check(snippets, CONFIG.mypy_flags)
    assert errors[0] is None and errors[3] is None
    assert "len" in errors[1] or "Sized" in errors[1]
    assert errors[2] is not None  # a blocking error in one file does not stop the others


def test_stdlib_functions_and_a_humaneval_copy_through_the_spark_stage(spark):
    from training.evaluation.problems import load_humaneval

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    rows = [
        {"doc_id": f"std-{p.name}", "content": p.read_text(encoding="utf-8"), "path": p.name, "lang": "python",
         "size_bytes": p.stat().st_size, "sha256": p.name, "stars": 1, "licence": "PSF-2.0", "commit_date": None}
        for p in (stdlib / "textwrap.py", stdlib / "bisect.py", stdlib / "base64.py")
    ]  # fmt: skip
    problem = load_humaneval()["HumanEval/0"]
    leaked = problem.prompt + problem.canonical_solution
    rows.append({**rows[0], "doc_id": "leak", "content": leaked, "path": "leak.py"})
    # A near copy of bisect (one function renamed): its seeds must go as near duplicates.
    copy = rows[1]["content"].replace("def bisect_left(", "def bisect_left_copy(")
    rows.append({**rows[1], "doc_id": "zz-copy", "content": copy, "path": "bisect_copy.py"})
    rows.append({**rows[0], "doc_id": "readme", "content": "hello", "path": "README.md", "lang": "markdown"})
    frame = spark.createDataFrame(rows, "doc_id string, content string, path string, lang string, size_bytes long, "
                                        "sha256 string, stars long, licence string, commit_date string")  # fmt: skip
    result = seed_functions_frame(frame, SeedFunctionsConfig(), log=lambda line: None)
    try:
        kept = result.kept.collect()
        rejected = result.rejected.collect()
    finally:
        result.release()
    assert len(kept) + len(rejected) == result.rows_in  # nothing lost
    reasons = {}
    for row in rejected:
        reasons.setdefault(row["reason"], []).append(row)
    assert {r["doc_id"] for r in reasons["not_python"]} == {"readme"}
    assert any(r["path"] == "leak.py::has_close_elements" for r in reasons["benchmark_exact"])
    duplicates = {r["path"] for r in reasons["near_duplicate"]}
    assert duplicates and all(p.startswith("bisect") for p in duplicates)
    names = {row["function_name"] for row in kept}
    assert {"indent", "b64encode"} <= names and len(
        names & {"bisect_left", "bisect_right", "bisect_left_copy"}
    ) >= 1
    for row in kept:
        assert row["docstring"] and row["content"].count("def ") >= 1 and row["cluster_id"]
    with pytest.raises(ValueError, match="dedup_threshold"):
        SeedFunctionsConfig(dedup_threshold=1.5)
