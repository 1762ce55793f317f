"""PII engine against a labelled set of snippets, per type, with same-run baselines.

    .venv/bin/python -m benchmarks.pii [--stdlib-files N] [--show-misses]

The set is `benchmarks/data/pii/snippets.yaml` (its README says how it is written): real-looking
code and configuration in several languages, each snippet labelled with a type, the secrets that
must be replaced and the look-alikes that must survive. Scoring is by span: a labelled secret is
found (true positive) when a finding overlaps it; a finding that overlaps no labelled secret is a
false positive. Per type the table prints recall, false positives and precision for

- codecook: `quality.pii.scan` as it is now;
- previous: the engine as it was before issue 13 (`quality/pii.py` at commit PREVIOUS_COMMIT,
  read with `git show`, so the baseline is the real earlier code, not a description of it);
- detect-secrets: Yelp's scanner, `scan_file` with its default plugins and filters (it has no
  email or IP rule, and it reports a private key on its BEGIN line, which scores as a miss of
  the labelled key body plus a false positive).

Then the speed of codecook and the previous engine on real files (standard library modules), and
how many findings each makes there.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import subprocess
import sys
import sysconfig
import time
import types
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from quality import pii
from quality.recipe import PROJECT_ROOT

SNIPPETS = PROJECT_ROOT / "benchmarks/data/pii/snippets.yaml"
# The last commit of quality/pii.py before issue 13's rules.
PREVIOUS_COMMIT = "0bcd662ade174d44ec786d2a8663808ad5628bfe"
STDLIB = Path(sysconfig.get_paths()["stdlib"])

_ALPHABETS = {
    "A": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    "a": "abcdefghijklmnopqrstuvwxyz0123456789",
    "U": "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    "L": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    "H": "0123456789abcdef",
    "N": "0123456789",
    "B": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
    "S": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
}


@dataclass
class Snippet:
    id: str
    type: str
    lang: str
    text: str
    secrets: list[str]
    keep: list[str]


def _expand(value: str, snippet_id: str) -> str:
    """Replace each {{gen:PREFIX:CLASS:LENGTH}} with PREFIX + LENGTH seeded random characters."""
    out, position = [], 0
    while (start := value.find("{{gen:", position)) >= 0:
        end = value.index("}}", start)
        prefix, alphabet, length = value[start + 6 : end].rsplit(":", 2)
        seed = hashlib.sha256(f"{snippet_id}\0{value[start:end]}".encode()).digest()
        rng = random.Random(seed)
        chars = _ALPHABETS[alphabet]
        out += [value[position:start], prefix, "".join(rng.choice(chars) for _ in range(int(length)))]
        position = end + 2
    out.append(value[position:])
    return "".join(out)


def load_snippets(path: Path = SNIPPETS) -> list[Snippet]:
    rows = yaml.safe_load(path.read_text(encoding="utf-8"))
    snippets = []
    for row in rows:
        snippet = Snippet(
            id=row["id"],
            type=row["type"],
            lang=row["lang"],
            text=_expand(row["text"], row["id"]),
            secrets=[_expand(s, row["id"]) for s in row.get("secrets") or []],
            keep=[str(k) for k in row.get("keep") or []],
        )
        for needle in snippet.secrets + snippet.keep:
            if needle not in snippet.text:
                raise ValueError(f"{snippet.id}: labelled string {needle!r} is not in the snippet")
        snippets.append(snippet)
    if len({s.id for s in snippets}) != len(snippets):
        raise ValueError("duplicate snippet ids")
    return snippets


# ---- engines: each returns the (start, end) spans it would replace ---------------------------------
Spans = list[tuple[int, int]]


def codecook_spans(text: str, lang: str) -> Spans:
    return [(f.start, f.end) for f in pii.scan(text, lang)]


def previous_engine() -> types.ModuleType:
    source = subprocess.run(
        ["git", "show", f"{PREVIOUS_COMMIT}:quality/pii.py"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType("pii_previous")
    module.__file__ = f"pii_previous@{PREVIOUS_COMMIT[:7]}.py"
    sys.modules["pii_previous"] = module
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


_EXTENSIONS = {
    "python": "py", "shell": "sh", "javascript": "js", "typescript": "ts", "java": "java", "go": "go",
    "yaml": "yaml", "ini": "ini", "json": "json", "xml": "xml", "ruby": "rb", "php": "php",
    "csharp": "cs", "kotlin": "kt", "c": "c", "cpp": "cpp", "css": "css", "html": "html",
    "groovy": "groovy", "powershell": "ps1", "makefile": "mk", "dockerfile": "dockerfile",
    "dotenv": "env", "text": "txt",
}  # fmt: skip


def detect_secrets_spans(text: str, lang: str) -> Spans:
    """detect-secrets' own file scan (`scan_file`: its default plugins and default filters, the
    keyword rules chosen by file extension), the snippet written to a file named for its language;
    each reported secret value located on its line."""
    import tempfile

    from detect_secrets.core.scan import scan_file
    from detect_secrets.settings import default_settings

    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    spans: set[tuple[int, int]] = set()
    with tempfile.TemporaryDirectory() as folder, default_settings():
        path = Path(folder) / f"snippet.{_EXTENSIONS.get(lang, 'txt')}"
        path.write_text(text, encoding="utf-8")
        for found in scan_file(str(path)):
            line = lines[found.line_number - 1]
            value = found.secret_value
            if value and (at := line.find(value)) >= 0:
                start = offsets[found.line_number - 1] + at
                spans.add((start, start + len(value)))
    return sorted(spans)


# ---- scoring ----------------------------------------------------------------------------------------
@dataclass
class Score:
    secrets: int = 0
    found: int = 0
    false_positives: int = 0
    keep_damaged: int = 0
    misses: list[str] = field(default_factory=list)
    false_hits: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float | None:
        return self.found / self.secrets if self.secrets else None

    @property
    def precision(self) -> float | None:
        return self.found / (self.found + self.false_positives) if self.found + self.false_positives else None


def _occurrences(text: str, needle: str) -> Spans:
    spans, at = [], text.find(needle)
    while at >= 0:
        spans.append((at, at + len(needle)))
        at = text.find(needle, at + 1)
    return spans


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def score(snippets: list[Snippet], engine: Callable[[str, str], Spans]) -> dict[str, Score]:
    scores: dict[str, Score] = defaultdict(Score)
    for snippet in snippets:
        s = scores[snippet.type]
        spans = engine(snippet.text, snippet.lang)
        secret_spans = [span for secret in snippet.secrets for span in _occurrences(snippet.text, secret)]
        for secret in snippet.secrets:
            s.secrets += 1
            if any(_overlaps(span, o) for o in _occurrences(snippet.text, secret) for span in spans):
                s.found += 1
            else:
                s.misses.append(f"{snippet.id}: {secret[:40]}")
        for span in spans:
            if not any(_overlaps(span, o) for o in secret_spans):
                s.false_positives += 1
                s.false_hits.append(f"{snippet.id}: {snippet.text[span[0] : span[1]][:40]!r}")
        for keep in snippet.keep:
            if any(_overlaps(span, o) for o in _occurrences(snippet.text, keep) for span in spans):
                s.keep_damaged += 1
    return scores


def _fmt(value: float | None) -> str:
    return "   -" if value is None else f"{value:.2f}"


def _total(scores: dict[str, Score]) -> Score:
    total = Score()
    for s in scores.values():
        total.secrets += s.secrets
        total.found += s.found
        total.false_positives += s.false_positives
        total.keep_damaged += s.keep_damaged
    return total


def report(snippets: list[Snippet], engines: dict[str, Callable[[str, str], Spans]], show: bool) -> None:
    results = {name: score(snippets, engine) for name, engine in engines.items()}
    types_ = sorted(
        {s.type for s in snippets}, key=lambda t: (not any(x.secrets for x in snippets if x.type == t), t)
    )
    counts = defaultdict(int)
    for snippet in snippets:
        counts[snippet.type] += 1
    languages = sorted({s.lang for s in snippets})
    print(
        f"labelled set: {len(snippets)} snippets in {len(languages)} languages ({', '.join(languages)}); "
        f"{sum(len(s.secrets) for s in snippets)} secrets, {sum(len(s.keep) for s in snippets)} look-alikes to keep"
    )
    header = f"{'type':20s} {'snip':>4s} {'secr':>4s}"
    for name in engines:
        header += f" | {name[:14]:>14s} R    P   FP"
    print(header)
    for type_ in types_:
        line = f"{type_:20s} {counts[type_]:4d} {results[next(iter(engines))][type_].secrets:4d}"
        for name in engines:
            s = results[name][type_]
            line += f" | {'':>14s} {_fmt(s.recall)} {_fmt(s.precision)} {s.false_positives:3d}"
        print(line)
    line = f"{'ALL':20s} {len(snippets):4d} {_total(results[next(iter(engines))]).secrets:4d}"
    for name in engines:
        t = _total(results[name])
        line += f" | {'':>14s} {_fmt(t.recall)} {_fmt(t.precision)} {t.false_positives:3d}"
    print(line)
    for name in engines:
        t = _total(results[name])
        print(
            f"  {name:15s} recall {t.found}/{t.secrets} = {_fmt(t.recall)}, precision {_fmt(t.precision)}, "
            f"{t.false_positives} false positives, {t.keep_damaged} labelled look-alikes damaged"
        )
    first = next(iter(engines))
    if show:
        for type_ in types_:
            for miss in results[first][type_].misses:
                print(f"  {first} missed [{type_}] {miss}")
            for hit in results[first][type_].false_hits:
                print(f"  {first} false hit [{type_}] {hit}")


def speed(files: int, old: types.ModuleType) -> None:
    paths = sorted(p for p in STDLIB.rglob("*.py") if "site-packages" not in p.parts)
    step = max(1, len(paths) // files)
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in paths[::step][:files]]
    mb = sum(len(t) for t in texts) / 1e6
    for name, scan in (("codecook", pii.scan), ("previous", old.scan)):
        scan(texts[0], "python")  # warm up (compiles, imports plugins)
        started, started_cpu = time.perf_counter(), time.process_time()
        findings = sum(len(scan(t, "python")) for t in texts)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - started_cpu
        print(
            f"  {name:9s} {len(texts) / elapsed:7.1f} files/s wall, {mb / cpu:5.2f} MB per CPU second "
            f"on {len(texts)} stdlib modules ({mb:.1f} MB); {findings} findings"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stdlib-files", type=int, default=400, help="stdlib modules for the speed run")
    parser.add_argument("--show-misses", action="store_true", help="list codecook's misses and false hits")
    args = parser.parse_args()
    snippets = load_snippets()
    old = previous_engine()
    engines = {
        "codecook": codecook_spans,
        f"previous@{PREVIOUS_COMMIT[:7]}": lambda text, lang: [
            (f.start, f.end) for f in old.scan(text, lang)
        ],
        "detect-secrets": detect_secrets_spans,
    }
    report(snippets, engines, args.show_misses)
    print(f"speed, one process (load average {os.getloadavg()[0]:.1f}):")
    speed(args.stdlib_files, old)


if __name__ == "__main__":
    main()
