"""Self-OSS-Instruct: seeds -> instructions -> responses with their own tests -> verified pairs.

    seed function --few-shot--> concepts + instruction          (`write_instructions`)
    instruction  --few-shot--> n x (response + tests) --sandbox--> one passing response chosen
                                                                  (`write_responses`)

Everything that can go wrong is a reject row with a reason, and the run goes on: an endpoint that
times out or answers garbage (`generation_error`, for that batch's prompts only), a reply without
the asked-for sections (`unparseable_instruction`, `no_code`), a response without tests
(`no_tests`), tests that never call the solution (`tests_do_not_call_solution`), code that does not
parse (`syntax_error`), fails its tests (`tests_failed`), hangs or forks until the deadline
(`timed_out`, the sandbox kills the whole process tree). Only a response whose own tests ran to
their end in the sandbox can be kept; of several passing responses to one instruction, one is
chosen by a hash of (seed, its id), the others are `not_chosen`.

Plain Python over lists of row dicts; the generation backend (`training.evaluation.generation`),
the sandbox (`training.sandbox`) and the benchmark matcher are passed in, so the same functions serve
the Dagster assets, `codecook self-align`, the tests and the benchmark. No Dagster, no Spark.
"""

from __future__ import annotations

import ast
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.instruct import prompts
from training.instruct.config import GeneratorConfig, InstructionConfig, ResponseConfig, SelfAlignConfig

log = logging.getLogger(__name__)

INSTRUCTIONS_STAGE = "instructions"
RESPONSES_STAGE = "responses"

Matcher = Callable[[str], "tuple[str, str] | None"]
"""Benchmark contamination test: (reason, detail) when a text matches a benchmark item."""


def no_benchmark_check(text: str) -> tuple[str, str] | None:
    return None


def stable_hash(*parts: object) -> int:
    """A 64-bit hash of the parts: every choice here is a function of ids and the seed."""
    digest = hashlib.sha256("\0".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


# --------------------------------------------------------------------------------------------------
# The generator


def make_backend(config: GeneratorConfig, model_cache: str | Path | None = None):
    """The generation backend the config names (`training.evaluation.generation`).

    `smollm2` de-quantizes the installed GGUF; with `model_cache` (a folder) the de-quantized
    model is saved there once and later runs load the safetensors instead (seconds, not a minute)."""
    from training.evaluation.generation import HFBackend, OpenAICompletionsBackend

    if config.kind == "endpoint":
        assert config.base_url and config.model  # checked by the config
        return OpenAICompletionsBackend(
            config.base_url, model=config.model, timeout_s=config.timeout_s, retries=config.retries
        )
    if config.kind == "hf":
        assert config.path
        return HFBackend(config.path, device=config.device, cpu_threads=config.cpu_threads)
    if model_cache is None:
        return HFBackend.smollm2(device=config.device, cpu_threads=config.cpu_threads)
    folder = dequantized_smollm2(model_cache)
    return HFBackend(str(folder), device=config.device, cpu_threads=config.cpu_threads)


def dequantized_smollm2(model_cache: str | Path) -> Path:
    """A Hugging Face folder of SmolLM2-135M-Instruct de-quantized from the installed GGUF, made
    once under `model_cache` (written to a temporary name, renamed when complete)."""
    import os
    import shutil

    from training.evaluation.generation import HFBackend

    folder = Path(model_cache) / "smollm2-135m-instruct"
    if (folder / "config.json").exists() and (folder / "model.safetensors").exists():
        return folder
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    backend = HFBackend.smollm2(device="cpu")
    # The weights are de-quantized fp32 already; transformers still remembers the GGUF "quantizer"
    # and refuses to save. Forgetting it saves the fp32 weights as they are.
    backend.model.hf_quantizer = None
    if hasattr(backend.model.config, "quantization_config"):
        del backend.model.config.quantization_config
    backend.model.save_pretrained(partial)
    backend.tokenizer.save_pretrained(partial)
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return folder


def _prompt(backend, text: str, style: str) -> str:
    if style == "completion":
        return text
    chat = getattr(backend, "chat_prompt", None)
    if chat is None:
        raise ValueError(
            f"generator {backend.name} has no chat template; set generator.prompt_style: completion"
        )
    return chat(text)


@dataclass
class Timing:
    """Where the time went (benchmarks/self_align.py reports the sandbox's share)."""

    generation_s: float = 0.0
    sandbox_s: float = 0.0
    parse_s: float = 0.0


def generate_batched(
    backend,
    prompts_: Sequence[str],
    stops: Sequence[str],
    *,
    n: int,
    temperature: float,
    top_p: float,
    max_new_tokens: int,
    batch_size: int,
    seed: int,
    timing: Timing,
    echo: Callable[[str], None] = print,
) -> list[list[str] | str]:
    """Per prompt: its `n` replies, or the error that lost its batch (a string).

    Batches go one by one so a failed request (an endpoint's timeout, HTTP error or malformed
    answer: `RuntimeError` from the backend) rejects its batch only. Each batch's sampling seed is
    (seed, batch position), so a rerun draws the same samples."""  # fmt: skip
    from training.evaluation.generation import GenerationConfig

    out: list[list[str] | str] = []
    for start in range(0, len(prompts_), batch_size):
        batch = list(prompts_[start : start + batch_size])
        config = GenerationConfig(
            max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, n=n,
            batch_size=batch_size, seed=seed * 100003 + start,
        )  # fmt: skip
        began = time.perf_counter()
        try:
            replies = backend.generate(batch, [tuple(stops)] * len(batch), config)
        except RuntimeError as error:
            out.extend([f"{type(error).__name__}: {str(error)[:300]}"] * len(batch))
            echo(f"generation failed for prompts {start}..{start + len(batch) - 1}: {str(error)[:200]}")
        else:
            for texts in replies:
                if (
                    not isinstance(texts, list)
                    or len(texts) != n
                    or not all(isinstance(t, str) for t in texts)
                ):
                    out.append(f"malformed reply: expected {n} texts, got {texts!r:.120}")
                else:
                    out.append(texts)
        timing.generation_s += time.perf_counter() - began
        echo(f"generated {min(start + batch_size, len(prompts_))}/{len(prompts_)} prompts")
    return out


def _reject(doc_id: str, stage: str, reason: str, detail: str, *, path: str | None = None, size: int | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "doc_id": doc_id, "stage": stage, "reason": reason, "detail": detail[:2000], "path": path,
        "lang": "python", "size_bytes": size, "cluster_id": None, "kept_doc_id": None,
    }  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Step 1: seed -> concepts -> instruction


@dataclass
class StepResult:
    kept: list[dict[str, Any]]
    rejected: list[dict[str, Any]]
    timing: Timing = field(default_factory=Timing)
    facts: dict[str, Any] = field(default_factory=dict)


def write_instructions(
    seeds: Sequence[dict[str, Any]],
    backend,
    config: SelfAlignConfig,
    *,
    matcher: Matcher = no_benchmark_check,
    echo: Callable[[str], None] = print,
) -> StepResult:
    """One instruction per seed (a row with `doc_id`, `content`: the seed's snippet). Kept rows:
    doc_id (the seed's), seed_doc_id, seed, concepts, instruction, generator."""
    step: InstructionConfig = config.instructions
    timing = Timing()
    rejected: list[dict[str, Any]] = []
    chosen = list(seeds)
    if step.max_seeds is not None and len(chosen) > step.max_seeds:
        ranked = sorted(chosen, key=lambda s: (stable_hash(config.seed, s["doc_id"]), s["doc_id"]))
        chosen = ranked[: step.max_seeds]
        for seed in ranked[step.max_seeds :]:
            rejected.append(
                _reject(
                    seed["doc_id"],
                    INSTRUCTIONS_STAGE,
                    "over_max_seeds",
                    f"{len(seeds)} seeds, instructions.max_seeds {step.max_seeds} (lowest hashes of seed {config.seed} kept)",
                    path=seed.get("path"),
                )  # fmt: skip
            )
    chosen.sort(key=lambda s: s["doc_id"])
    style = config.generator.prompt_style
    texts = [_prompt(backend, prompts.instruction_prompt(s["content"], step.few_shot), style) for s in chosen]
    replies = generate_batched(
        backend, texts, prompts.INSTRUCTION_STOPS, n=1, temperature=step.temperature, top_p=step.top_p,
        max_new_tokens=step.max_new_tokens, batch_size=step.batch_size, seed=config.seed, timing=timing, echo=echo,
    )  # fmt: skip
    kept = []
    for seed, reply in zip(chosen, replies, strict=True):
        path = seed.get("path")
        if isinstance(reply, str):
            rejected.append(_reject(seed["doc_id"], INSTRUCTIONS_STAGE, "generation_error", reply, path=path))
            continue
        parsed = prompts.parse_instruction(reply[0])
        if parsed is None:
            rejected.append(
                _reject(
                    seed["doc_id"],
                    INSTRUCTIONS_STAGE,
                    "unparseable_instruction",
                    f"no '### Instruction' section with concepts before it: {reply[0][:300]!r}",
                    path=path,
                )  # fmt: skip
            )
            continue
        words = len(parsed.instruction.split())
        problem = None
        if words < step.min_words:
            problem = (
                "instruction_too_short",
                f"{words} words < {step.min_words}: {parsed.instruction[:200]!r}",
            )
        elif words > step.max_words:
            problem = ("instruction_too_long", f"{words} words > {step.max_words}")
        else:
            problem = matcher(parsed.instruction)
        if problem:
            rejected.append(_reject(seed["doc_id"], INSTRUCTIONS_STAGE, problem[0], problem[1], path=path))
            continue
        kept.append(
            {
                "doc_id": seed["doc_id"],
                "seed_doc_id": seed["doc_id"],
                "seed": seed["content"],
                "path": path,
                "concepts": parsed.concepts,
                "instruction": parsed.instruction,
                "generator": backend.name,
            }
        )
    return StepResult(kept, rejected, timing, {"seeds": len(seeds), "prompted": len(chosen)})


# --------------------------------------------------------------------------------------------------
# Step 2: instruction -> n x (response + tests) -> sandbox -> one chosen


def _defined_functions(code: str) -> set[str]:
    return {
        node.name
        for node in ast.walk(ast.parse(code))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    }


def _called_names(code: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Call):
            target = node.func
            names.add(target.id if isinstance(target, ast.Name) else getattr(target, "attr", ""))
    return names


def judge_response(reply: str) -> tuple[str, str] | prompts.ParsedResponse:
    """A reply's parsed response, or why it cannot be run: (reason, detail)."""
    parsed = prompts.parse_response(reply)
    if parsed is None:
        return "no_code", f"no ```python block in the reply: {reply[:200]!r}"
    if not parsed.tests or not parsed.tests.strip():
        return "no_tests", "the reply has no tests block (### Tests, or a later block with an assert)"
    for what, code in (("solution", parsed.solution), ("tests", parsed.tests)):
        try:
            # compile, not just parse: duplicate arguments, `return` outside a function and the
            # like are compile-time errors the parser lets through.
            compile(code, f"<{what}>", "exec", dont_inherit=True)
        except (SyntaxError, ValueError) as error:
            return "syntax_error", f"{what}: {type(error).__name__}: {error}"
    defined = _defined_functions(parsed.solution)
    if not defined:
        return "no_function", "the solution defines no function or class"
    if not defined & _called_names(parsed.tests):
        return "tests_do_not_call_solution", f"tests call none of {sorted(defined)}"
    return parsed


def response_id(instruction_id: str, sample: int) -> str:
    return hashlib.sha256(f"{instruction_id}\0response\0{sample}".encode()).hexdigest()[:32]


def write_responses(
    instructions: Sequence[dict[str, Any]],
    backend,
    sandbox,
    config: SelfAlignConfig,
    *,
    matcher: Matcher = no_benchmark_check,
    echo: Callable[[str], None] = print,
) -> StepResult:
    """`responses.samples` responses per instruction row (`doc_id`, `instruction`), each run with
    its own tests in `sandbox` (a training.sandbox.Sandbox). One row per sample: kept (the chosen
    passing one per instruction) or rejected. Kept rows: doc_id, instruction_id, seed_doc_id,
    instruction, response, solution, tests, sample, sandbox_seconds."""
    step: ResponseConfig = config.responses
    timing = Timing()
    ordered = sorted(instructions, key=lambda r: r["doc_id"])
    style = config.generator.prompt_style
    texts = [
        _prompt(backend, prompts.response_prompt(r["instruction"], step.few_shot), style) for r in ordered
    ]
    replies = generate_batched(
        backend, texts, prompts.RESPONSE_STOPS, n=step.samples, temperature=step.temperature, top_p=step.top_p,
        max_new_tokens=step.max_new_tokens, batch_size=step.batch_size, seed=config.seed + 1, timing=timing, echo=echo,
    )  # fmt: skip
    rejected: list[dict[str, Any]] = []
    runnable: list[tuple[dict[str, Any], int, prompts.ParsedResponse]] = []
    began = time.perf_counter()
    for row, reply in zip(ordered, replies, strict=True):
        for sample in range(step.samples):
            rid = response_id(row["doc_id"], sample)
            if isinstance(reply, str):
                rejected.append(
                    _reject(rid, RESPONSES_STAGE, "generation_error", reply, path=row.get("path"))
                )
                continue
            verdict = judge_response(reply[sample])
            if isinstance(verdict, tuple):
                rejected.append(_reject(rid, RESPONSES_STAGE, verdict[0], verdict[1], path=row.get("path")))
                continue
            contaminated = matcher(verdict.solution)
            if contaminated:
                rejected.append(_reject(rid, RESPONSES_STAGE, *contaminated, path=row.get("path")))
                continue
            runnable.append((row, sample, verdict))
    timing.parse_s += time.perf_counter() - began
    programs = [f"{parsed.solution}\n\n\n{parsed.tests}\n" for _, _, parsed in runnable]
    began = time.perf_counter()
    results = sandbox.run_many(programs, step.timeout_s) if programs else []
    timing.sandbox_s += time.perf_counter() - began
    passing: dict[str, list[dict[str, Any]]] = {}
    outcomes: Counter[str] = Counter()
    for (row, sample, parsed), result in zip(runnable, results, strict=True):
        rid = response_id(row["doc_id"], sample)
        if not result.passed:
            reason = "timed_out" if result.result == "timed out" else "tests_failed"
            outcomes[reason] += 1
            tail = result.output.strip().splitlines()[-3:] if result.output else []
            rejected.append(
                _reject(
                    rid,
                    RESPONSES_STAGE,
                    reason,
                    f"{result.result}; {' | '.join(tail)}"[:1000],
                    path=row.get("path"),
                )
            )
            continue
        outcomes["passed"] += 1
        passing.setdefault(row["doc_id"], []).append(
            {
                "doc_id": rid,
                "instruction_id": row["doc_id"],
                "seed_doc_id": row.get("seed_doc_id", row["doc_id"]),
                "path": row.get("path"),
                "instruction": row["instruction"],
                "response": parsed.response,
                "solution": parsed.solution,
                "tests": parsed.tests,
                "sample": sample,
                "sandbox_seconds": float(result.duration_s),
                "generator": backend.name,
            }
        )
    kept = []
    for _instruction_id, candidates in sorted(passing.items()):
        candidates.sort(key=lambda c: (stable_hash(config.seed, c["doc_id"]), c["doc_id"]))
        kept.append(candidates[0])
        for other in candidates[1:]:
            rejected.append(
                _reject(
                    other["doc_id"],
                    RESPONSES_STAGE,
                    "not_chosen",
                    f"passed its tests; sample {candidates[0]['sample']} was chosen for this instruction (seed {config.seed})",
                    path=other.get("path"),
                )  # fmt: skip
            )
    facts = {
        "instructions": len(ordered),
        "responses": len(ordered) * step.samples,
        "executed": len(runnable),
        "passed": outcomes["passed"],
        "kept": len(kept),
        "instructions_with_a_pass": len(passing),
    }
    return StepResult(kept, rejected, timing, facts)


def funnel(seeds: int, instructions: int, responses: int, passed: int, kept: int) -> list[dict[str, Any]]:
    """The Self-OSS-Instruct funnel as rows (stage, rows, share of the step before)."""
    rows, previous = [], None
    for stage, count in (
        ("seeds", seeds), ("instructions", instructions), ("responses", responses), ("passed", passed), ("kept", kept),
    ):  # fmt: skip
        share = None if previous in (None, 0) else round(count / previous, 4)
        rows.append({"stage": stage, "rows": int(count), "of_previous": share})
        previous = count
    return rows


def pairs_jsonl_rows(kept: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """Kept responses in the usual instruction / response / tests form (plus their ids)."""
    return [
        {"instruction": r["instruction"], "response": r["response"], "tests": r["tests"], "id": r["doc_id"]}
        for r in sorted(kept, key=lambda r: r["doc_id"])
    ]
