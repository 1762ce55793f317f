"""Seed functions for Self-OSS-Instruct: documented, self-contained, type-checked Python functions.

    decontaminated_code (documents) -> top-level functions with a docstring + the imports they use
        -> docstring rule -> size rule -> self-containment -> mypy -> benchmark match -> MinHash 0.5
        -> seed_functions (one row per kept function, a document row whose content is the snippet)

The unit of this stage: a *candidate* is a top-level `def` with a docstring; a document that yields
none (not Python, not parseable, no documented function, outside the sample) is one reject row
itself. So rows in = candidates + documents without a candidate, and every one of them is either a
kept seed or a reject row naming the rule (`docstring_quality`, `unresolved_names`, `type_error`,
`benchmark_exact`, `near_duplicate`...).

Why these rules: a seed is shown to a model that must invent a task from it. A function whose
docstring says nothing, that calls helpers defined elsewhere in its file, or that does not even
type-check, gives the model nothing true to build on; a near-copy of another seed or of a benchmark
item gives it the same (or a contaminated) task twice.

The extraction and the checks are plain Python (`extract_candidates`, `judge_docstring`,
`type_check`); `seed_functions_frame` runs them over a Spark frame and reuses the decontamination
engine (`quality.decontaminate`) and the near-dedup engine (`quality.dedup.engine.near_dedup`).
Dagster-free.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STAGE = "seed_functions"
_BUILTINS = frozenset(dir(builtins)) | {"__name__", "__file__", "__doc__", "__debug__"}


@dataclass(frozen=True, kw_only=True)
class SeedFunctionsConfig:
    """Recipe section `seed_functions`: which functions become seeds for instruction generation."""

    document_fraction: float = 1.0
    """Share of the Python documents read, chosen by a hash of (seed, doc_id); the others are
    `not_sampled` reject rows. The demo takes a small slice so that a few dozen seeds result."""
    seed: int = 0
    """Mixed into the document sample's hash."""
    min_docstring_words: int = 5
    """A docstring with fewer words says too little to derive a task from."""
    max_docstring_words: int = 400
    """Longer docstrings are manuals, not task statements."""
    min_body_statements: int = 2
    """Statements in the body besides the docstring: `return x` alone is no task."""
    max_function_lines: int = 60
    """Longer functions make prompts the generator cannot hold."""
    type_check: bool = True
    """Run mypy over every candidate (with the imports it needs); errors reject it (`type_error`)."""
    mypy_flags: tuple[str, ...] = ("--check-untyped-defs", "--ignore-missing-imports")
    """Flags given to mypy besides the ones that make its output parseable. `--check-untyped-defs`
    makes the check bite on unannotated functions, which most real code is."""
    benchmarks: tuple[str, ...] = ("humaneval", "mbpp")
    """Benchmarks a seed must not match (the decontamination engine's exact and n-gram tests)."""
    dedup_threshold: float = 0.5
    """MinHash Jaccard above which two seeds are near duplicates (StarCoder2-Instruct: 0.5)."""
    num_bands: int = 32
    """LSH bands of the near dedup; with `rows_per_band` 4, P(candidate) is 0.87 at Jaccard 0.5."""
    rows_per_band: int = 4
    """LSH rows per band."""
    shingle_size: int = 5
    """Token n-grams hashed by MinHash."""

    def __post_init__(self) -> None:
        if not 0.0 < self.document_fraction <= 1.0:
            raise ValueError(f"document_fraction must lie in (0, 1], got {self.document_fraction}")
        if not 0.0 < self.dedup_threshold < 1.0:
            raise ValueError(f"dedup_threshold must lie in (0, 1), got {self.dedup_threshold}")
        if self.min_docstring_words > self.max_docstring_words:
            raise ValueError("min_docstring_words exceeds max_docstring_words")


@dataclass(frozen=True)
class Candidate:
    """One documented top-level function with the import lines it needs."""

    name: str
    snippet: str
    """The imports it uses (as written in its file), a blank line, then the function's source."""
    docstring: str
    reason: str | None = None
    """Rule that rejects it (None while it passes)."""
    detail: str | None = None


# --------------------------------------------------------------------------------------------------
# Docstring rule


_PLACEHOLDER = re.compile(r"^\s*(todo|fixme|xxx|tbd|docstring|description|no description|deprecated)\b", re.I)
_WORD = re.compile(r"[A-Za-z]{2,}")


def judge_docstring(docstring: str, config: SeedFunctionsConfig) -> str | None:
    """Why a docstring is not good enough to derive a task from (None: it is).

    Heuristics, each a rule name in the detail: a summary line that is prose (letters, not a
    placeholder or a bare signature), enough words to say what the function does, not so many that
    it is a manual, and mostly natural language (not a block of doctest or code)."""
    text = docstring.strip()
    summary = text.splitlines()[0].strip() if text else ""
    words = _WORD.findall(text)
    if not summary or _PLACEHOLDER.match(summary):
        return f"placeholder_summary: {summary[:60]!r}"
    if re.fullmatch(r"[\w.]+\(.*\)(\s*->.*)?", summary):
        return f"signature_only: {summary[:60]!r}"
    if len(words) < config.min_docstring_words:
        return f"too_few_words: {len(words)} < {config.min_docstring_words}"
    if len(words) > config.max_docstring_words:
        return f"too_many_words: {len(words)} > {config.max_docstring_words}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    code_like = sum(line.startswith((">>>", "...")) or line.endswith((":", ";", ")")) for line in lines)
    if lines and code_like / len(lines) > 0.6:
        return f"mostly_code: {code_like} of {len(lines)} lines"
    return None


# --------------------------------------------------------------------------------------------------
# Extraction


def _import_bindings(tree: ast.Module) -> tuple[dict[str, ast.stmt], bool]:
    """Top-level names bound by imports -> a one-name import statement binding it; and whether the
    module has a star import (whose names cannot be known)."""
    bindings: dict[str, ast.stmt] = {}
    star = False
    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                # `import a.b` binds `a`; keep the statement as written so `a.b` stays importable.
                bindings[bound] = ast.Import(names=[alias])
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    star = True
                    continue
                bindings[alias.asname or alias.name] = ast.ImportFrom(
                    module=node.module, names=[alias], level=node.level
                )
    return bindings, star


def _free_names(function: ast.FunctionDef) -> set[str]:
    """Names the function (decorators, defaults, annotations and body) reads but does not bind."""
    bound: set[str] = set()
    args = function.args
    for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
        if arg is not None:
            bound.add(arg.arg)
    loaded: set[str] = set()
    shared: set[str] = set()
    for node in ast.walk(function):
        if isinstance(node, ast.Name):
            (bound if isinstance(node.ctx, (ast.Store, ast.Del)) else loaded).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node is not function:
            bound.add(node.name)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            shared.update(node.names)  # module state: never self-contained, even when assigned
    return (loaded - bound - _BUILTINS - {function.name}) | shared


def extract_candidates(content: str, config: SeedFunctionsConfig) -> tuple[list[Candidate], str | None]:
    """The documented top-level functions of one Python file, each judged by the rules that need no
    other file (docstring, size, self-containment); and, when there are none, why (a reject reason)."""
    try:
        tree = ast.parse(content)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        return [], f"unparseable: {type(error).__name__}: {str(error)[:120]}"
    lines = content.splitlines()
    bindings, star = _import_bindings(tree)
    found: list[Candidate] = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        docstring = ast.get_docstring(node, clean=True)
        if not docstring:
            continue
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        source = "\n".join(lines[first - 1 : node.end_lineno])
        free = _free_names(node)
        needed = sorted(name for name in free if name in bindings)
        imports = [ast.unparse(bindings[name]) for name in needed]
        snippet = ("\n".join(dict.fromkeys(imports)) + "\n\n\n" if imports else "") + source + "\n"
        candidate = Candidate(node.name, snippet, docstring)
        reason = None
        unresolved = sorted(free - set(bindings))
        body = node.body[1:]  # the docstring is the first statement
        length = (node.end_lineno or node.lineno) - first + 1
        problem = judge_docstring(docstring, config)
        if problem:
            reason = ("docstring_quality", problem)
        elif len(body) < config.min_body_statements:
            reason = ("function_too_short", f"{len(body)} statements < {config.min_body_statements}")
        elif length > config.max_function_lines:
            reason = ("function_too_long", f"{length} lines > {config.max_function_lines}")
        elif any(isinstance(bindings[name], ast.ImportFrom) and bindings[name].level for name in needed):
            reason = ("relative_import", "needs a relative import from its package: not self-contained")
        elif unresolved:
            star_note = " (the file has a star import)" if star else ""
            reason = (
                "unresolved_names",
                f"uses names defined elsewhere in its file{star_note}: {unresolved[:8]}",
            )
        if reason:
            candidate = Candidate(node.name, snippet, docstring, *reason)
        found.append(candidate)
    if not found:
        return [], "no_documented_function: no top-level function with a docstring"
    return found, None


# --------------------------------------------------------------------------------------------------
# Type check


_MYPY_LINE = re.compile(r"^(?P<file>[^:]+\.py):(?P<line>\d+): error: (?P<message>.*)$")


def type_check(snippets: list[str], flags: tuple[str, ...]) -> list[str | None]:
    """mypy's first error for each snippet (None: no error), one mypy run for the whole batch.

    Each snippet is its own module (`seed_<i>.py`) in a scratch folder, so errors map back by file
    name. `mypy.api` is the checker's own entry point; a missing mypy is an ImportError here, where
    the check is asked for, never a silent pass."""
    from mypy import api

    errors: list[str | None] = [None] * len(snippets)
    pending = list(range(len(snippets)))
    with tempfile.TemporaryDirectory(prefix="codecook-mypy-") as folder:
        for index, snippet in enumerate(snippets):
            Path(folder, f"seed_{index}.py").write_text(snippet, encoding="utf-8")
        while pending:
            stdout, stderr, status = api.run(
                [
                    *flags,
                    "--no-error-summary",
                    "--show-error-codes",
                    "--no-color-output",
                    "--hide-error-context",
                    "--cache-dir",
                    str(Path(folder, ".mypy_cache")),
                    # Each seed is its own module, never imported by another: no package structure.
                    "--explicit-package-bases",
                    *(str(Path(folder, f"seed_{index}.py")) for index in pending),
                ]
            )
            found = set()
            for line in stdout.splitlines():
                match = _MYPY_LINE.match(line)
                if not match:
                    continue
                index = int(Path(match["file"]).stem.split("_")[-1])
                found.add(index)
                if errors[index] is None:
                    errors[index] = f"line {match['line']}: {match['message'][:300]}"
            if status in (0, 1):
                break
            # Exit 2: a blocking error in some file stopped the whole run (the rest unchecked).
            # Those files have their error; the others are checked again without them.
            if status != 2 or not found:
                raise RuntimeError(f"mypy could not run (exit {status}): {(stderr or stdout)[:500]}")
            pending = [index for index in pending if index not in found]
    return errors


# --------------------------------------------------------------------------------------------------
# Over a Spark frame


def in_sample(doc_id: str, fraction: float, seed: int) -> bool:
    """Whether a document is in the `fraction` slice: a hash of (seed, doc_id), never a global RNG."""
    if fraction >= 1.0:
        return True
    digest = hashlib.sha256(f"{seed}\0{doc_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def seed_doc_id(source_doc_id: str, name: str) -> str:
    """A seed's id: stable across reruns (its document's id and the function's name)."""
    return hashlib.sha256(f"{source_doc_id}\0{name}".encode()).hexdigest()[:32]


# Columns of a document row carried from the source file into its seeds (content, sha256,
# size_bytes and path change: they describe the snippet).
_CARRIED = ("repo", "lang", "ext", "stars", "licence", "commit_date", "source", "url")


def _judge_rows(rows: list[dict[str, Any]], config: SeedFunctionsConfig, checker) -> Iterator[dict[str, Any]]:
    """Rows out of one batch of documents: candidates (with a verdict) and documents without one."""
    from quality.schema import content_sha256

    pending: list[dict[str, Any]] = []
    for row in rows:
        base = {key: row.get(key) for key in _CARRIED}
        document = {
            **base,
            "doc_id": row["doc_id"],
            "source_doc_id": row["doc_id"],
            "content": row["content"] or "",
            "path": row.get("path"),
            "size_bytes": int(row.get("size_bytes") or 0),
            "sha256": row.get("sha256") or "",
            "function_name": None,
            "docstring": None,
        }
        if (row.get("lang") or "") != "python":
            yield {**document, "_reason": "not_python", "_detail": f"lang {row.get('lang')!r}"}
            continue
        if not in_sample(row["doc_id"], config.document_fraction, config.seed):
            yield {
                **document,
                "_reason": "not_sampled",
                "_detail": f"outside the {config.document_fraction:g} document sample (seed {config.seed})",
            }
            continue
        candidates, why = extract_candidates(row["content"] or "", config)
        if why:
            reason, _, detail = why.partition(": ")
            yield {**document, "_reason": reason, "_detail": detail}
            continue
        for candidate in candidates:
            pending.append(
                {
                    **base,
                    "doc_id": seed_doc_id(row["doc_id"], candidate.name),
                    "source_doc_id": row["doc_id"],
                    "content": candidate.snippet,
                    "path": f"{row.get('path')}::{candidate.name}",
                    "size_bytes": len(candidate.snippet.encode("utf-8", "surrogatepass")),
                    "sha256": content_sha256(candidate.snippet),
                    "function_name": candidate.name,
                    "docstring": candidate.docstring,
                    "_reason": candidate.reason,
                    "_detail": candidate.detail,
                }
            )
    alive = [row for row in pending if row["_reason"] is None]
    if config.type_check and alive:
        for row, error in zip(
            alive, type_check([r["content"] for r in alive], config.mypy_flags), strict=True
        ):
            if error:
                row["_reason"], row["_detail"] = "type_error", error
    for row in pending:
        if row["_reason"] is None:
            verdict = checker.check(row["content"])
            if verdict:
                row["_reason"], row["_detail"] = verdict
        yield row


@dataclass
class SeedResult:
    """The stage's outputs; `release()` drops the cached intermediates once both are written."""

    kept: Any
    rejected: Any
    rows_in: int
    facts: dict[str, Any]
    judged: Any
    dedup: Any

    def release(self) -> None:
        self.dedup.release()
        self.judged.unpersist()


def seed_functions_frame(documents, config: SeedFunctionsConfig, log=print) -> SeedResult:
    """Kept seeds (document rows + `source_doc_id`, `function_name`, `docstring`, `cluster_id`) and
    reject rows of `documents` (decontaminated_code's output, or plain rows)."""
    import pyarrow as pa
    from pyspark import StorageLevel
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from quality.decontaminate import DecontaminationConfig, decontaminator_for, load_benchmarks
    from quality.dedup.config import DedupConfig
    from quality.dedup.engine import near_dedup
    from quality.schema import REJECT_COLUMNS, reject_rows

    decontamination = DecontaminationConfig(benchmarks=config.benchmarks)
    texts = load_benchmarks(decontamination)
    string, long = T.StringType(), T.LongType()
    fields = [
        ("doc_id", string), ("source_doc_id", string), ("content", string), ("path", string),
        ("repo", string), ("lang", string), ("ext", string), ("size_bytes", long), ("sha256", string),
        ("stars", long), ("licence", string), ("commit_date", string), ("source", string), ("url", string),
        ("function_name", string), ("docstring", string), ("_reason", string), ("_detail", string),
    ]  # fmt: skip
    schema = T.StructType([T.StructField(name, kind, True) for name, kind in fields])
    arrow_schema = pa.schema([(name, pa.int64() if kind == long else pa.string()) for name, kind in fields])
    wanted = [
        c for c in ("doc_id", "content", "path", "size_bytes", "sha256", *_CARRIED) if c in documents.columns
    ]

    def run(batches):
        checker = decontaminator_for(texts, decontamination)
        for batch in batches:
            out = list(_judge_rows(batch.to_pylist(), config, checker))
            if out:
                yield pa.RecordBatch.from_pylist(out, schema=arrow_schema)

    judged = documents.select(*wanted).mapInArrow(run, schema).persist(StorageLevel.MEMORY_AND_DISK)
    counts = {
        r["_reason"]: int(r["n"]) for r in judged.groupBy("_reason").agg(F.count("*").alias("n")).collect()
    }
    rows_in = sum(counts.values())
    passed = judged.filter(F.col("_reason").isNull()).drop("_reason", "_detail")
    failed = reject_rows(
        judged.filter(F.col("_reason").isNotNull()), STAGE, F.col("_reason"), F.col("_detail")
    )
    facts = {
        "candidates": sum(n for reason, n in counts.items() if reason not in _DOCUMENT_REASONS),
        "documents_without_candidate": sum(n for reason, n in counts.items() if reason in _DOCUMENT_REASONS),
        "before_dedup": counts.get(None, 0),
        "benchmark_texts": len(texts),
    }
    log(
        f"seed_functions: {rows_in} units in, {facts['candidates']} candidate functions, {facts['before_dedup']} before near dedup"
    )
    dedup = near_dedup(
        passed,
        DedupConfig(
            threshold=config.dedup_threshold,
            num_bands=config.num_bands,
            rows_per_band=config.rows_per_band,
            shingle_size=config.shingle_size,
            num_perm=config.num_bands * config.rows_per_band,
            min_tokens=1,
        ),
        log=log,
    )
    duplicates = dedup.rejected.withColumn("stage", F.lit(STAGE))
    facts["near_duplicates"] = int(dedup.facts.get("near_duplicates_removed", 0))
    rejected = failed.unionByName(duplicates.select(*REJECT_COLUMNS))
    return SeedResult(dedup.kept, rejected.select(*REJECT_COLUMNS), rows_in, facts, judged, dedup)


_DOCUMENT_REASONS = frozenset({"not_python", "not_sampled", "unparseable", "no_documented_function"})
