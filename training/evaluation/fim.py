"""Single-line fill-in-the-middle evaluation on held-out files of the pipeline's own data.

For each held-out file one non-blank line is masked (chosen by a generator seeded with the file's
doc_id, so reruns mask the same line). The model sees the code around it and must produce the line:

    PSM:  <fim_prefix> prefix <fim_suffix> suffix <fim_middle>            -> middle
    SPM:  <fim_prefix> <fim_suffix> suffix <fim_middle> prefix            -> middle

(SPM as in training.fim: the prefix follows <fim_middle>, so the middle continues it.) The middle
is the masked line without its newline; generation stops at the first newline. Scores are exact
match (after stripping surrounding whitespace) and edit similarity (1 - Levenshtein / longer length),
averaged over files, per mode.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from contracts.progress import DEFAULT_EVERY_SECONDS, Progress
from training.evaluation.config import FimEvalConfig
from training.evaluation.generation import GenerationConfig
from training.evaluation.metrics import edit_similarity
from training.fim import document_rng
from training.tokenizer import FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX


def holdout_score(doc_id: str) -> float:
    """A uniform number in [0, 1) fixed by the doc_id alone (no seed: training and evaluation
    must agree on the held-out pool whatever their seeds)."""
    digest = hashlib.sha256(f"fim-holdout\x00{doc_id}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "little") / 2**64


def is_held_out(doc_id: str, fraction: float) -> bool:
    """True for documents in the FIM evaluation pool; training that wants an unseen pool skips them."""
    return holdout_score(doc_id) < fraction


@dataclass(frozen=True, kw_only=True)
class FimExample:
    """One masked line of one file."""

    doc_id: str
    path: str
    line_number: int
    """1-based number of the masked line."""
    prefix: str
    middle: str
    suffix: str


def make_example(
    doc_id: str, path: str, content: str, *, seed: int, max_context_chars: int
) -> FimExample | None:
    """Mask one non-blank line of `content` (None when the file has none)."""
    lines = content.splitlines(keepends=True)
    candidates = [i for i, line in enumerate(lines) if line.strip()]
    if not candidates:
        return None
    index = document_rng(seed, doc_id, 0, "fim-eval-line").choice(candidates)
    line = lines[index]
    middle = line.rstrip("\r\n")
    prefix = "".join(lines[:index])
    suffix = line[len(middle) :] + "".join(lines[index + 1 :])
    return FimExample(
        doc_id=doc_id,
        path=path,
        line_number=index + 1,
        prefix=prefix[-max_context_chars:] if max_context_chars else prefix,
        middle=middle,
        suffix=suffix[:max_context_chars] if max_context_chars else suffix,
    )


def select_examples(documents: Iterable[dict[str, Any]], config: FimEvalConfig) -> list[FimExample]:
    """Held-out files of the configured languages, lowest hold-out score first, one example each."""
    pool = []
    languages = set(config.languages)
    for doc in documents:
        if languages and doc.get("lang") not in languages:
            continue
        score = holdout_score(doc["doc_id"])
        if score < config.holdout_fraction:
            pool.append((score, doc))
    pool.sort(key=lambda item: item[0])
    examples = []
    for _, doc in pool:
        example = make_example(
            doc["doc_id"],
            doc.get("path") or "",
            doc["content"],
            seed=config.seed,
            max_context_chars=config.max_context_chars,
        )
        if example is not None:
            examples.append(example)
        if len(examples) >= config.max_examples:
            break
    return examples


def read_stage_documents(data_dir: str | Path, languages: Sequence[str]) -> list[dict[str, Any]]:
    """doc_id, path, lang and content of a stage's Parquet output (only the wanted languages)."""
    import pyarrow.dataset as ds

    files = sorted(str(p) for p in Path(data_dir).glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no Parquet files in {data_dir}")
    dataset = ds.dataset(files, format="parquet")
    columns = [c for c in ("doc_id", "path", "lang", "content") if c in dataset.schema.names]
    missing = {"doc_id", "content"} - set(columns)
    if missing:
        raise ValueError(f"{data_dir}: Parquet lacks column(s) {sorted(missing)}")
    condition = ds.field("lang").isin(list(languages)) if languages and "lang" in columns else None
    return dataset.to_table(columns=columns, filter=condition).to_pylist()


def fim_prompt(example: FimExample, mode: str) -> str:
    if mode == "psm":
        return f"{FIM_PREFIX}{example.prefix}{FIM_SUFFIX}{example.suffix}{FIM_MIDDLE}"
    if mode == "spm":
        return f"{FIM_PREFIX}{FIM_SUFFIX}{example.suffix}{FIM_MIDDLE}{example.prefix}"
    raise ValueError(f"unknown FIM mode {mode!r}; use psm or spm")


def check_fim_tokens(tokenizer: Any) -> None:
    """Each sentinel must be one special token of the model's vocabulary, or the prompts mean nothing."""
    unknown = tokenizer.unk_token_id
    missing = []
    for token in (FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX):
        ids = tokenizer.encode(token, add_special_tokens=False)
        if len(ids) != 1 or ids[0] == unknown or tokenizer.convert_ids_to_tokens(ids[0]) != token:
            missing.append(token)
    if missing:
        raise ValueError(
            f"the tokenizer has no single-token FIM sentinel(s) {missing}; FIM evaluation needs them"
        )


def fit_to_context(example: FimExample, tokenizer: Any, budget: int) -> FimExample:
    """Shorten the prefix (from its start) and the suffix (from its end) until the longer of the two
    prompt orders fits `budget` tokens: truncating the prompt instead would cut off a sentinel."""
    fitted = example
    for _ in range(20):
        longest = max(
            len(tokenizer.encode(fim_prompt(fitted, m), add_special_tokens=False)) for m in ("psm", "spm")
        )
        if longest <= budget:
            return fitted
        keep = max(0.0, budget / longest * 0.9)
        fitted = replace(
            fitted,
            prefix=fitted.prefix[len(fitted.prefix) - int(len(fitted.prefix) * keep) :],
            suffix=fitted.suffix[: int(len(fitted.suffix) * keep)],
        )
    return fitted


def evaluate_fim(
    backend: Any,
    examples: Sequence[FimExample],
    config: FimEvalConfig,
    batch_size: int = 8,
    report: Callable[[str], None] | None = None,
    report_every: float = DEFAULT_EVERY_SECONDS,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Generate the middle of every example in every mode; per-example rows and per-mode scores.
    `report`, when given, gets a progress line (examples done, rate, ETA) every `report_every`
    seconds per mode."""
    if not examples:
        raise ValueError("no FIM examples: the source stage has no held-out files of the wanted languages")
    tokenizer = getattr(backend, "tokenizer", None)
    if tokenizer is not None:
        check_fim_tokens(tokenizer)
    generation = GenerationConfig(max_new_tokens=config.max_new_tokens, batch_size=batch_size)
    context = getattr(backend, "context_length", None)
    if tokenizer is not None and context:
        examples = [fit_to_context(e, tokenizer, context - config.max_new_tokens - 2) for e in examples]
    rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {"examples": len(examples), "modes": list(config.modes)}
    for mode in config.modes:
        prompts = [fim_prompt(e, mode) for e in examples]
        if report is None:
            outputs = backend.generate(prompts, [("\n",)] * len(prompts), generation)
        else:
            with Progress(
                f"fim/{mode}: generated", total=len(prompts), unit="examples", log=report, every=report_every
            ) as progress:
                outputs = backend.generate(prompts, [("\n",)] * len(prompts), generation, progress.callback())
        exact, similarity = [], []
        for example, texts in zip(examples, outputs, strict=True):
            predicted = texts[0]
            hit = predicted.strip() == example.middle.strip()
            score = edit_similarity(predicted.strip(), example.middle.strip())
            exact.append(hit)
            similarity.append(score)
            rows.append(
                {
                    "mode": mode,
                    **{k: v for k, v in asdict(example).items() if k not in ("prefix", "suffix")},
                    "prediction": predicted,
                    "exact_match": hit,
                    "edit_similarity": round(score, 4),
                }
            )
        summary[f"{mode}.exact_match"] = sum(exact) / len(exact)
        summary[f"{mode}.edit_similarity"] = sum(similarity) / len(similarity)
    return rows, summary
