"""What stage reuse saves an ablation, and how much a proxy metric moves with the seed alone.

    .venv/bin/python -m benchmarks.ablate [--steps 10] [--out DIR]

Three variants of a small recipe (the ablation baseline on the standard library's top-level
modules): the baseline, one that keeps 80% of the Python files in `code_mix` (every stage before
code_mix is shared), and one with the quality filters off (shared up to quality_signals). Each
changes the training data, so tokenizer, shards and models differ between variants, as in a real
ablation; only their seeds share those. The same ablation runs twice in
this process's run, interleaved in one series:

  independent   no stage store: each variant and seed computes every stage (3 separate runs)
  reuse         the stage store: a stage whose settings and inputs another run already had is
                taken from the store (hard links), not recomputed

Printed: wall time of each, the ratio, per-phase timings, and from the reuse run's comparison the
seed-to-seed spread (std of per-seed means) of each proxy metric per variant next to the smallest
difference between variants, which says how large an effect 2 seeds can resolve at this scale.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
BASE = PROJECT / "recipes" / "ablations" / "base.yaml"


def write_variants(folder: Path, steps: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    common = (
        f"training.steps: {steps}\ntraining.checkpoint_every: {steps}\n"
        "ablation.seeds: [1, 2]\nablation.holdout_fraction: 0.2\nablation.max_eval_docs: 40\n"
        # The standard library's top-level modules (~200 files): the benchmark measures what reuse
        # saves of the orchestration, not corpus size.
        "sources: [{name: stdlib, kind: folder, path: '${stdlib}', repo: cpython, stars: 60000,"
        " include: ['*.py']}]\n"
    )
    bodies = {
        "bench-base": "",
        "bench-mix-python-80": "code_mix.targets: {python: {downsample: 0.8}}\n",
        "bench-no-filters": "quality_filter.enabled: false\n",
    }
    paths = []
    for name, body in bodies.items():
        path = folder / f"{name}.yaml"
        path.write_text(f"extends: {BASE}\nname: {name}\n{common}{body}", encoding="utf-8")
        paths.append(str(path))
    return paths


def run(recipes: list[str], out: Path, reuse: bool) -> tuple[float, dict]:
    from orchestration.ablation import ablate, plan_ablation

    shutil.rmtree(out, ignore_errors=True)
    plan = plan_ablation(recipes, str(out), reuse=reuse)
    started = time.monotonic()
    comparison = ablate(plan, log=lambda line: print(f"  [{'reuse' if reuse else 'independent'}] {line}"))
    return time.monotonic() - started, comparison


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="Training steps per run (proxy size).")
    parser.add_argument("--out", default=None, help="Work folder (default: a temporary one).")
    args = parser.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="codecook-bench-ablate-")).resolve()
    recipes = write_variants(work / "recipes", args.steps)
    print(f"3 variants x 2 seeds, {args.steps} steps each, in {work}; load average {os.getloadavg()}")
    independent, _ = run(recipes, work / "independent", reuse=False)
    reused, comparison = run(recipes, work / "reuse", reuse=True)
    print(f"\nload average {os.getloadavg()}")
    print(f"independent runs: {independent:7.1f} s")
    print(
        f"with stage reuse: {reused:7.1f} s   ({reused / independent:.2f}x the time, {independent / reused:.2f}x faster)"
    )
    print("\nseed-to-seed spread (std of per-seed means) per metric and variant:")
    for variant in comparison["variants"]:
        for metric, values in (variant.get("metrics") or {}).items():
            print(
                f"  {variant['name']:<18} {metric:<20} mean {values['mean']:.4f}  seed std {values['seed_std']}"
            )
    for variant in comparison["variants"][1:]:
        for metric, diff in (variant.get("difference_vs_baseline") or {}).items():
            print(
                f"  {variant['name']:<18} {metric:<20} difference {diff.get('difference')}  ci {diff.get('ci')}"
            )
    (work / "benchmark.json").write_text(
        json.dumps(
            {"independent_s": independent, "reuse_s": reused, "comparison": comparison}, indent=1, default=str
        )
    )


if __name__ == "__main__":
    main()
