"""Generate completions for a benchmark, execute them in the sandbox, and write the results."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from contracts.progress import DEFAULT_EVERY_SECONDS, Progress, format_duration
from training.evaluation.execution import SampleResult, execute_samples, summarize, write_results
from training.evaluation.generation import CODE_BLOCK_END, Backend, GenerationConfig, extract_code
from training.evaluation.problems import Problem, load_benchmark, select
from training.sandbox import Sandbox, SandboxConfig

log = logging.getLogger(__name__)


def build_prompts(
    backend: Backend, problems: dict[str, Problem], prompt_style: str
) -> tuple[list[str], list[tuple[str, ...]]]:
    """The prompt and stop list for each problem, in the problems' order."""
    if prompt_style == "completion":
        return [p.prompt for p in problems.values()], [p.stop for p in problems.values()]
    if prompt_style == "chat":
        chat = getattr(backend, "chat_prompt", None)
        if chat is None:
            raise ValueError(f"backend {backend.name} has no chat template; use prompt_style=completion")
        # The reply is done once its first code block is closed (or at the end-of-turn token).
        return [chat(p.instruction) for p in problems.values()], [(CODE_BLOCK_END,) for _ in problems]
    raise ValueError(f"unknown prompt_style {prompt_style!r}")


def completion_from_reply(problem: Problem, reply: str, prompt_style: str) -> str:
    """What goes into the program. A chat reply's code block is a complete function (or a body):
    after the HumanEval prompt on a new line, a complete function redefines the stub, a body
    continues it; for MBPP the code is the solution."""
    if prompt_style == "completion":
        return reply
    code = extract_code(reply)
    return "\n" + code if problem.completion_continues_prompt else code


def generate_samples(
    backend: Backend,
    problems: dict[str, Problem],
    generation: GenerationConfig,
    prompt_style: str = "completion",
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """`generation.n` samples per problem as HumanEval-format rows (task_id, completion, raw)."""
    prompts, stops = build_prompts(backend, problems, prompt_style)
    replies = backend.generate(prompts, stops, generation, progress)
    samples = []
    for problem, texts in zip(problems.values(), replies, strict=True):
        for text in texts:
            samples.append(
                {
                    "task_id": problem.task_id,
                    "completion": completion_from_reply(problem, text, prompt_style),
                    "raw": text,
                }
            )
    return samples


def run_benchmark(
    backend: Backend,
    benchmark: str,
    *,
    generation: GenerationConfig,
    limit: int | None = None,
    timeout_s: float = 3.0,
    prompt_style: str = "completion",
    sandbox: Sandbox | None = None,
    sandbox_workers: int = 0,
    out_dir: str | Path | None = None,
    report: Callable[[str], None] | None = None,
    report_every: float = DEFAULT_EVERY_SECONDS,
) -> tuple[list[SampleResult], dict[str, Any]]:
    """Generate, execute and summarize one benchmark; writes results.jsonl and summary.json to
    `out_dir` when given. The summary records timings and the sandbox's isolation report.
    `report` gets a progress line (prompts done, rate, ETA) every `report_every` seconds while
    the model generates (default: this module's logger)."""
    problems = select(load_benchmark(benchmark), limit)
    report = report or log.info
    started = time.monotonic()
    with Progress(
        f"{benchmark}: generated", total=len(problems), unit="prompts", log=report, every=report_every
    ) as progress:
        samples = generate_samples(backend, problems, generation, prompt_style, progress.callback())
    generated = time.monotonic()
    report(f"{benchmark}: executing {len(samples)} programs in the sandbox")
    own_sandbox = sandbox is None
    box = sandbox or Sandbox(SandboxConfig(timeout_s=timeout_s, workers=sandbox_workers))
    try:
        results = execute_samples(samples, problems, sandbox=box, timeout_s=timeout_s)
        isolation = box.isolation
    finally:
        if own_sandbox:
            box.close()
    executed = time.monotonic()
    report(
        f"{benchmark}: executed {len(results)} programs in {format_duration(executed - generated)}, "
        f"{sum(r.passed for r in results)} passed"
    )
    summary = {
        "benchmark": benchmark,
        "backend": backend.name,
        "prompt_style": prompt_style,
        "limit": limit,
        "generation": asdict(generation),
        "timeout_s": timeout_s,
        **summarize(results, problems),
        "generation_seconds": round(generated - started, 2),
        "execution_seconds": round(executed - generated, 2),
        "sandbox_isolation": isolation,
    }
    if out_dir is not None:
        write_results(out_dir, results, summary)
    return results, summary
