"""Before and after instruction tuning: HumanEval and MBPP pass@1 (chat template) of the base and the
tuned model on the same problems, and the paired difference with a bootstrap interval.

The problems are HumanEval and the MBPP *test split* (task ids 11-510 of MBPP sanitized) only: the
MBPP prompt/train/validation splits may be SFT data (`training.instruct.sft`). Each model answers
every problem once, greedily, in its chat template; both answers run in the sandbox. The
difference tuned - base is paired by problem; its 95% interval resamples problems with replacement
(`training.evaluation.ablation_stats.bootstrap_means`, the same draws for both models). Dagster-free.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from training.evaluation.execution import execute_samples, summarize
from training.evaluation.generation import GenerationConfig
from training.evaluation.problems import Problem, load_benchmark
from training.evaluation.runner import generate_samples

BENCHMARKS = ("humaneval", "mbpp_sanitized")
MBPP_TEST_IDS = range(11, 511)


def evaluation_problems(benchmark: str, limit: int | None) -> dict[str, Problem]:
    """The first `limit` problems of a benchmark, MBPP restricted to its test split."""
    problems = load_benchmark(benchmark)
    if benchmark.startswith("mbpp"):
        problems = {k: p for k, p in problems.items() if int(k.split("/")[-1]) in MBPP_TEST_IDS}
    keys = list(problems)[:limit] if limit is not None else list(problems)
    return {k: problems[k] for k in keys}


def score(backend, benchmark: str, problems: dict[str, Problem], *, max_new_tokens: int, sandbox, timeout_s: float) -> dict[str, Any]:  # fmt: skip
    """Greedy chat-template answers to `problems`, executed; per-problem verdicts and the summary."""
    generation = GenerationConfig(max_new_tokens=max_new_tokens, temperature=0.0, n=1, batch_size=8)
    began = time.perf_counter()
    samples = generate_samples(backend, problems, generation, "chat")
    generated = time.perf_counter()
    results = execute_samples(samples, problems, sandbox=sandbox, timeout_s=timeout_s)
    summary = summarize(results, problems, ks=(1,))
    return {
        "benchmark": benchmark,
        "model": backend.name,
        "passed": {r.task_id: bool(r.passed) for r in results},
        "outcomes": {r.task_id: r.result for r in results},
        "pass@1": float(summary.get("pass@1", 0.0)),
        "generation_seconds": round(generated - began, 2),
        "execution_seconds": round(time.perf_counter() - generated, 2),
    }


def paired_difference(
    base: dict[str, bool],
    tuned: dict[str, bool],
    *,
    resamples: int = 4000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """tuned - base pass@1 over the shared problems, with a paired bootstrap interval."""
    from training.evaluation.ablation_stats import bootstrap_means

    tasks = sorted(set(base) & set(tuned))
    if not tasks:
        raise ValueError("no problem was scored for both models")
    before = np.array([[float(base[t]) for t in tasks]])
    after = np.array([[float(tuned[t]) for t in tasks]])
    means = bootstrap_means([before, after], resamples=resamples, rng=np.random.default_rng(seed))
    differences = means[1] - means[0]
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(differences, [tail, 100.0 - tail])
    difference = float(after.mean() - before.mean())
    return {
        "problems": len(tasks),
        "base": float(before.mean()),
        "tuned": float(after.mean()),
        "difference": difference,
        "ci_low": float(low),
        "ci_high": float(high),
        "confidence": confidence,
        "only_base_solved": sum(base[t] and not tuned[t] for t in tasks),
        "only_tuned_solved": sum(tuned[t] and not base[t] for t in tasks),
        "significant": bool(low > 0 or high < 0),
    }
