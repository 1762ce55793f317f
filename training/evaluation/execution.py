"""Run completions against their problems' tests in the sandbox and score them."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from contracts.storage import atomic_write, write_json_atomic
from training.evaluation.metrics import DEFAULT_KS, pass_at_k_summary
from training.evaluation.problems import Problem
from training.sandbox import Sandbox, SandboxConfig


@dataclass(frozen=True, kw_only=True)
class SampleResult:
    """One completion's outcome (one row of the per-sample table)."""

    task_id: str
    completion_id: int
    """Position of this completion among the task's samples, in input order."""
    completion: str
    passed: bool
    result: str
    """`passed`, `timed out` or `failed: <why>`."""
    duration_s: float


def read_samples(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """HumanEval-format samples: JSON lines with `task_id` and `completion` (other keys kept)."""
    samples = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as error:
                raise ValueError(f"{path}:{number}: not JSON ({error})") from None
            if (
                not isinstance(row, dict)
                or "task_id" not in row
                or not isinstance(row.get("completion"), str)
            ):
                raise ValueError(f"{path}:{number}: a sample needs `task_id` and a string `completion`")
            samples.append(row)
    if not samples:
        raise ValueError(f"{path}: no samples")
    return samples


def execute_samples(
    samples: Sequence[dict[str, Any]],
    problems: dict[str, Problem],
    *,
    sandbox: Sandbox | None = None,
    sandbox_config: SandboxConfig | None = None,
    timeout_s: float | None = None,
) -> list[SampleResult]:
    """Run every sample's program in the sandbox (per-sample `timeout_s`, else the sandbox's
    default); results come back in input order."""
    unknown = sorted({s["task_id"] for s in samples} - set(problems))
    if unknown:
        raise ValueError(f"{len(unknown)} sample task ids are not in the benchmark, e.g. {unknown[:5]}")
    programs = [problems[s["task_id"]].program(s["completion"]) for s in samples]
    if sandbox is None:
        with Sandbox(sandbox_config) as own:
            outcomes = own.run_many(programs, timeout_s)
    else:
        outcomes = sandbox.run_many(programs, timeout_s)
    seen: Counter[str] = Counter()
    results = []
    for sample, outcome in zip(samples, outcomes, strict=True):
        task_id = sample["task_id"]
        results.append(
            SampleResult(
                task_id=task_id,
                completion_id=seen[task_id],
                completion=sample["completion"],
                passed=outcome.passed,
                result=outcome.result,
                duration_s=outcome.duration_s,
            )
        )
        seen[task_id] += 1
    return results


def summarize(
    results: Sequence[SampleResult], problems: dict[str, Problem], ks: Sequence[int] = DEFAULT_KS
) -> dict[str, Any]:
    """pass@k over the attempted tasks, with counts that show what was and was not attempted."""
    attempted = {r.task_id for r in results}
    by_result: Counter[str] = Counter(
        "passed" if r.passed else ("timed out" if r.result == "timed out" else r.result.split(":", 2)[0])
        for r in results
    )
    return {
        **pass_at_k_summary(((r.task_id, r.passed) for r in results), ks),
        "samples": len(results),
        "samples_passed": sum(r.passed for r in results),
        "tasks_attempted": len(attempted),
        "tasks_in_benchmark": len(problems),
        "tasks_solved": len({r.task_id for r in results if r.passed}),
        "outcomes": dict(sorted(by_result.items())),
    }


def write_jsonl_atomic(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> None:
    """One JSON object per line, written beside `path` and renamed over it."""
    with atomic_write(path, "w") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_results(
    out_dir: str | os.PathLike[str], results: Sequence[SampleResult], summary: dict[str, Any]
) -> None:
    """`results.jsonl` (one row per sample) and `summary.json`, each written atomically."""
    write_jsonl_atomic(Path(out_dir) / "results.jsonl", (asdict(r) for r in results))
    write_json_atomic(Path(out_dir) / "summary.json", summary)
