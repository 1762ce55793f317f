"""Decontamination on edited copies of HumanEval and MBPP solutions, against the previous engine.

    .venv/bin/python -m benchmarks.decontam [--limit-clean N] [--show-misses]

Edited copies are generated from the benchmark solutions themselves, one set per edit kind, plus
copies edited by hand (`benchmarks/data/decontam/hand_edits.yaml`):

- exact:              the solution as published (HumanEval prompt + canonical solution; MBPP code);
- rename_entry:       the function renamed everywhere (calls, docstring examples);
- rename_variables:   every parameter and local variable renamed (Python's tokenizer rewrites
                      the names the AST binds, attributes and builtins untouched);
- add_helper:         a small unrelated helper function and an import added in front;
- reorder_helpers:    the top-level functions in reverse order, a helper appended;
- docstring_space:    the docstring re-indented and re-wrapped (HumanEval) / the MBPP statement
                      added as a docstring with odd whitespace;
- combined:           all of the above, and re-indented with 2 spaces;
- combined_in_host:   `combined` appended to a real standard-library module;
- by_hand:            copies edited by hand.

A copy counts as removed when the engine rejects it naming the item it came from. False positives
are counted on every standard-library module and on the demo corpus (the demo recipe's sources:
the standard library plus the site-packages slices, all languages). Both engines run in the same
process: "codecook" is `quality.decontaminate` as it is; "previous" is the same module at
PREVIOUS_COMMIT (read with `git show`), i.e. exact substring + word 13-grams only.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import hashlib
import io
import json
import os
import random
import re
import subprocess
import sys
import sysconfig
import textwrap
import time
import tokenize
import types
from collections import Counter, defaultdict
from pathlib import Path

import yaml

from quality import decontaminate
from quality.recipe import PROJECT_ROOT

PREVIOUS_COMMIT = "0bcd662ade174d44ec786d2a8663808ad5628bfe"
HAND_EDITS = PROJECT_ROOT / "benchmarks/data/decontam/hand_edits.yaml"
STDLIB = Path(sysconfig.get_paths()["stdlib"])
KINDS = (
    "exact",
    "rename_entry",
    "rename_variables",
    "add_helper",
    "reorder_helpers",
    "docstring_space",
    "combined",
    "combined_in_host",
    "by_hand",
)
HELPERS = (
    "import math\n\n\ndef _clamp(value, low, high):\n    return max(low, min(high, value))\n",
    "from functools import reduce\n\n\ndef _product(values):\n    return reduce(lambda a, b: a * b, values, 1)\n",
    "import sys\n\n\ndef _log(*parts):\n    print(*parts, file=sys.stderr)\n",
    "def _is_even(number):\n    return number % 2 == 0\n\n\ndef _pairs(items):\n    return list(zip(items, items[1:]))\n",
    "from typing import List\n\n\ndef _flatten(rows: List[list]) -> list:\n    return [x for row in rows for x in row]\n",
)
NEW_NAMES = (
    "value item elem data arr seq nums xs result out acc total count idx pos cur nxt tmp buf "
    "left right lo hi first second key val res ans memo cache chars word text parts piece token"
).split()


# ---- the items ------------------------------------------------------------------------------------
def humaneval_items() -> list[dict]:
    path = decontaminate.humaneval_path(decontaminate.DecontaminationConfig())
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    return [
        {
            "benchmark": "humaneval",
            "id": r["task_id"],
            "code": r["prompt"] + r["canonical_solution"],
            "entry": r["entry_point"],
            "statement": None,
        }
        for r in rows
    ]


def mbpp_items() -> list[dict]:
    rows = [
        json.loads(line)
        for line in (PROJECT_ROOT / "training/data/mbpp_sanitized.jsonl")
        .read_text(encoding="utf-8")
        .splitlines()
        if line.strip()
    ]
    items = []
    for r in rows:
        code = r["code"].replace("\r\n", "\n")
        entry = re.search(r"^def (\w+)", code, re.M)
        items.append(
            {
                "benchmark": "mbpp",
                "id": str(r["task_id"]),
                "code": code,
                "entry": entry.group(1) if entry else None,
                "statement": r["prompt"],
            }
        )
    return items


# ---- edits ------------------------------------------------------------------------------------
def _rng(item: dict, kind: str) -> random.Random:
    return random.Random(hashlib.sha256(f"{item['id']}\0{kind}".encode()).digest())


def rename_names(code: str, mapping: dict[str, str]) -> str:
    """Rename NAME tokens (not attributes) with Python's tokenizer, keeping the layout."""
    lines = code.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    edits = []
    previous = None
    for token in tokenize.generate_tokens(io.StringIO(code).readline):
        if token.type == tokenize.NAME and token.string in mapping and previous != ".":
            start = offsets[token.start[0] - 1] + token.start[1]
            edits.append((start, start + len(token.string), mapping[token.string]))
        if token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT):
            previous = token.string
    for start, end, new in reversed(edits):
        code = code[:start] + new + code[end:]
    return code


def rename_entry(item: dict, code: str) -> str | None:
    if not item["entry"]:
        return None
    new = (
        f"{item['entry']}_v2"
        if _rng(item, "entry").random() < 0.5
        else f"solve_{_rng(item, 'e').randrange(99)}"
    )
    return re.sub(rf"\b{re.escape(item['entry'])}\b", new, code)


def local_names(code: str) -> set[str]:
    """Parameters and variables the code binds (not functions, imports or builtins)."""
    tree = ast.parse(code)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return {n for n in names if n not in dir(__builtins__) and n not in ("self", "cls")}


def rename_variables(item: dict, code: str) -> str | None:
    try:
        names = sorted(local_names(code))
    except SyntaxError:
        return None
    if not names:
        return None
    rng = _rng(item, "vars")
    pool = [n for n in NEW_NAMES if n not in code]
    rng.shuffle(pool)
    mapping = {name: pool[i] if i < len(pool) else f"{name}_{i}" for i, name in enumerate(names)}
    try:
        return rename_names(code, mapping)
    except (tokenize.TokenError, IndentationError):
        return None


def add_helper(item: dict, code: str) -> str:
    return HELPERS[_rng(item, "helper").randrange(len(HELPERS))] + "\n\n" + code


def top_level_blocks(code: str) -> list[str]:
    """The code split before each top-level statement that starts a line without indentation."""
    blocks: list[list[str]] = [[]]
    for line in code.splitlines(keepends=True):
        if (
            line[:1] not in (" ", "\t", "\n", "#", ")", "]", "}", "")
            and blocks[-1]
            and not line.startswith(('"""', "'''"))
        ):
            blocks.append([])
        blocks[-1].append(line)
    return ["".join(b) for b in blocks if "".join(b).strip()]


def reorder_helpers(item: dict, code: str) -> str:
    blocks = top_level_blocks(code)
    imports = [b for b in blocks if b.startswith(("import ", "from "))]
    rest = [b for b in blocks if not b.startswith(("import ", "from "))]
    helper = HELPERS[_rng(item, "tail").randrange(len(HELPERS))]
    return "".join(imports) + "\n" + "\n\n".join(b.rstrip() + "\n" for b in reversed(rest)) + "\n\n" + helper


_DOCSTRING = re.compile(r'(?P<indent>[ \t]*)(?P<quote>"""|\'\'\')(?P<body>.*?)(?P=quote)', re.S)


def docstring_space(item: dict, code: str) -> str | None:
    if item["statement"] is not None:  # MBPP: the statement as a docstring with odd spacing
        lines = code.split("\n", 1)
        if not lines[0].startswith("def "):
            return None
        body = "\n      ".join(textwrap.wrap(item["statement"], 30))
        return f'{lines[0]}\n    """   {body}\n\n    """\n' + (lines[1] if len(lines) > 1 else "")
    matches = list(_DOCSTRING.finditer(code))
    if not matches:
        return None
    match = matches[-1]
    paragraphs = []
    for line in match.group("body").strip("\n").split("\n"):
        stripped = line.strip()
        if stripped.startswith(">>>") or not stripped:
            paragraphs.append(("code", stripped))
        elif paragraphs and paragraphs[-1][0] == "text":
            paragraphs[-1] = ("text", paragraphs[-1][1] + " " + stripped)
        else:
            paragraphs.append(("text", stripped))
    indent = match.group("indent") + "  "
    out = []
    for kind, text in paragraphs:
        if kind == "text":
            out += [indent + w for w in textwrap.wrap(text, 50)]
        else:
            out.append(indent + text if text else "")
    new = (
        match.group("indent")
        + match.group("quote")
        + "\n"
        + "\n".join(out)
        + "\n\n"
        + indent
        + match.group("quote")
    )
    return code[: match.start()] + new + code[match.end() :]


def reindent(code: str) -> str:
    return re.sub(r"(?m)^((?:    )+)", lambda m: "  " * (len(m.group(1)) // 4), code)


def variants(item: dict, hosts: list[str]) -> dict[str, str]:
    code = item["code"]
    out = {"exact": code}
    for kind, edit in (
        ("rename_entry", rename_entry),
        ("rename_variables", rename_variables),
        ("docstring_space", docstring_space),
    ):
        edited = edit(item, code)
        if edited is not None and edited != code:
            out[kind] = edited
    out["add_helper"] = add_helper(item, code)
    out["reorder_helpers"] = reorder_helpers(item, code)
    combined = code
    for edit in (rename_variables, rename_entry, docstring_space):
        combined = edit(item, combined) or combined
    combined = reindent(add_helper(item, reorder_helpers(item, combined)))
    out["combined"] = combined
    host = hosts[_rng(item, "host").randrange(len(hosts))]
    out["combined_in_host"] = host + "\n\n" + combined
    return out


def hand_edits() -> list[dict]:
    return yaml.safe_load(HAND_EDITS.read_text(encoding="utf-8"))


# ---- engines ----------------------------------------------------------------------------------------
def previous_module() -> types.ModuleType:
    source = subprocess.run(
        ["git", "show", f"{PREVIOUS_COMMIT}:quality/decontaminate.py"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType("decontaminate_previous")
    module.__file__ = f"decontaminate_previous@{PREVIOUS_COMMIT[:7]}.py"
    sys.modules[module.__name__] = module
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def removed(verdict: tuple[str, str] | None, benchmark: str, item_id: str) -> bool:
    return verdict is not None and f"{benchmark} {item_id} " in verdict[1]


def python_files() -> list[tuple[str, str]]:
    out = []
    for path in sorted(STDLIB.rglob("*.py")):
        rel = path.relative_to(STDLIB).as_posix()
        if rel.startswith("site-packages/") or "__pycache__" in rel:
            continue
        out.append((rel, path.read_text(encoding="utf-8", errors="replace")))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit-clean", type=int, default=None, help="clean files per corpus (default: all)")
    parser.add_argument("--show-misses", action="store_true")
    parser.add_argument("--skip-demo", action="store_true", help="stdlib only (the demo corpus includes it)")
    args = parser.parse_args()

    config = decontaminate.DecontaminationConfig()
    previous = previous_module()
    started = time.perf_counter()
    ours = decontaminate.Decontaminator(decontaminate.load_benchmarks(config), config)
    build_ours = time.perf_counter() - started
    started = time.perf_counter()
    old_config = previous.DecontaminationConfig()
    theirs = previous.Decontaminator(previous.load_benchmarks(old_config), old_config)
    build_theirs = time.perf_counter() - started
    engines = {"codecook": ours.check, f"previous@{PREVIOUS_COMMIT[:7]}": theirs.check}
    print(
        f"index build: codecook {build_ours:.1f}s ({ours.shaped} solutions searched by shape), "
        f"previous {build_theirs:.1f}s"
    )

    hosts = [
        (STDLIB / n).read_text(encoding="utf-8")
        for n in ("heapq.py", "textwrap.py", "fractions.py", "calendar.py", "shlex.py", "bisect.py")
    ]
    cases: list[tuple[str, str, str, str]] = []  # (kind, benchmark, id, document)
    for item in humaneval_items() + mbpp_items():
        for kind, document in variants(item, hosts).items():
            cases.append((kind, item["benchmark"], item["id"], document))
    for edit in hand_edits():
        cases.append(("by_hand", edit["benchmark"], str(edit["id"]), edit["code"]))

    print(f"\nremoval rate per edit kind ({len(cases)} edited copies):")
    print(f"{'kind':18s} {'benchmark':9s} {'n':>5s}  " + "  ".join(f"{name:>18s}" for name in engines))
    misses: dict[str, list[str]] = defaultdict(list)
    totals: dict[str, Counter] = {name: Counter() for name in engines}
    rules: Counter = Counter()
    for kind in KINDS:
        for benchmark in ("humaneval", "mbpp"):
            chosen = [c for c in cases if c[0] == kind and c[1] == benchmark]
            if not chosen:
                continue
            line = f"{kind:18s} {benchmark:9s} {len(chosen):5d}  "
            for name, check in engines.items():
                hit = 0
                for _, bench, item_id, document in chosen:
                    verdict = check(document)
                    if removed(verdict, bench, item_id):
                        hit += 1
                        if name == "codecook":
                            rules[verdict[0]] += 1
                    elif name == "codecook":
                        misses[kind].append(f"{bench} {item_id}")
                    if kind != "exact":
                        totals[name]["edited"] += 1
                        totals[name]["edited_removed"] += removed(verdict, bench, item_id)
                line += f"  {hit / len(chosen):8.3f} ({hit:4d}/{len(chosen):4d})"
            print(line)
    for name in engines:
        t = totals[name]
        print(
            f"  {name}: edited copies removed {t['edited_removed']}/{t['edited']} = {t['edited_removed'] / t['edited']:.3f}"
        )
    print(f"  codecook rules that removed them: {dict(rules)}")
    if args.show_misses:
        for kind, items in misses.items():
            print(f"  codecook missed {kind}: {len(items)}: {' '.join(items[:40])}")

    stdlib = python_files()[: args.limit_clean]
    corpora = [("stdlib (all .py)", stdlib)]
    if not args.skip_demo:
        from benchmarks.quality import demo_corpus

        demo = [(d["path"], d["content"]) for d in demo_corpus(args.limit_clean)]
        corpora.append(("demo corpus (all languages)", demo))
    print(f"\nfalse positives and speed on clean corpora (load average {os.getloadavg()[0]:.1f}):")
    for label, documents in corpora:
        mb = sum(len(text) for _, text in documents) / 1e6
        cpu: dict[str, float] = {}
        for name, check in engines.items():
            started, started_cpu = time.perf_counter(), time.process_time()
            flagged = [(path, v) for path, text in documents if (v := check(text)) is not None]
            elapsed, cpu[name] = time.perf_counter() - started, time.process_time() - started_cpu
            print(
                f"  {label:28s} {name:18s} {len(documents):5d} files {mb:6.1f} MB: {len(flagged)} removed; "
                f"{len(documents) / elapsed:7.1f} files/s wall, {mb / cpu[name]:5.2f} MB per CPU second"
            )
            for path, verdict in flagged[:10]:
                print(f"      {path}: {verdict[0]} {verdict[1][:150]}")
        first, second = engines
        print(f"  CPU time {first} / {second}: {cpu[first] / cpu[second]:.2f}x")


if __name__ == "__main__":
    main()
