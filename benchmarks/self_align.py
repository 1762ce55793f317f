"""Self-OSS-Instruct end to end on a slice of this machine's standard library, measured.

    python -m benchmarks.self_align [--files 300] [--max-seeds 6] [--samples 2] [--sft-steps 2,2]
                                    [--eval-limit 4] [--keep DIR]

Runs the real chain as Dagster assets on a private storage root: `codecook decontaminate` on a
hash-sample of stdlib .py files, then seed_functions -> instructions -> responses -> sft_data ->
sft_checkpoint -> instruct_eval with SmolLM2-135M-Instruct (the installed GGUF) as generator and as
the model tuned, on CPU. Prints per-asset wall time, the funnel, pairs per minute of generation,
the pass rate of executed responses, the sandbox's share of the response step's time, and base vs
tuned pass@1 (HumanEval, MBPP test split) with the paired bootstrap interval: the base model is the
baseline the tuned one is compared with, in the same run. The load average is printed beside the
times, since other jobs on the machine change them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ASSETS = ("seed_functions", "instructions", "responses", "sft_data", "sft_checkpoint", "instruct_eval")


def stdlib_sample(count: int) -> list[dict[str, str]]:
    """`count` stdlib modules, the lowest hashes of their paths (stable across runs)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(
        p for p in stdlib.rglob("*.py") if "site-packages" not in p.parts and "test" not in p.parts
    )
    ranked = sorted(files, key=lambda p: hashlib.sha256(str(p.relative_to(stdlib)).encode()).hexdigest())
    return [
        {"path": str(p.relative_to(stdlib)), "content": p.read_text(encoding="utf-8", errors="replace")}
        for p in ranked[:count]
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=300, help="stdlib modules read")
    parser.add_argument("--max-seeds", type=int, default=6, help="seeds prompted for instructions")
    parser.add_argument("--samples", type=int, default=2, help="responses per instruction")
    parser.add_argument("--sft-steps", default="2,2", help="stage-1,stage-2 optimizer steps")
    parser.add_argument("--eval-limit", type=int, default=4, help="problems per benchmark, base and tuned")
    parser.add_argument("--keep", help="storage root to use and keep (default: a temporary folder)")
    args = parser.parse_args(argv)
    stage1, stage2 = (int(x) for x in args.sft_steps.split(","))

    root = Path(args.keep or tempfile.mkdtemp(prefix="codecook-self-align-")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    rows = stdlib_sample(args.files)
    source = root / "stdlib_sample.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    recipe = {
        "extends": str(PROJECT_ROOT / "recipes" / "demo.yaml"),
        "name": "bench-self-align",
        "seed_functions": {"document_fraction": 1.0},
        "self_align": {"instructions": {"max_seeds": args.max_seeds}, "responses": {"samples": args.samples}},
        "sft": {"stage1_steps": stage1, "stage2_steps": stage2, "eval_limit": args.eval_limit},
    }
    recipe_path = root / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    os.environ["CODECOOK_RECIPE"] = str(recipe_path)
    os.environ["CODECOOK_HOME"] = str(root)

    from orchestration.cli import main as codecook

    began = time.monotonic()
    status = codecook(["decontaminate", "--input", str(source), "--output", str(root)])
    if status:
        return status
    print(f"decontaminated_code from {len(rows)} stdlib modules in {time.monotonic() - began:.0f}s")

    import dagster as dg

    from orchestration.definitions import defs
    from orchestration.resources import ensure_dagster_home
    from quality.storage import StorageLayout, read_manifest

    layout = StorageLayout(str(root))
    ensure_dagster_home(layout)
    job = defs.get_implicit_global_asset_job_def()
    load_before = os.getloadavg()
    began = time.monotonic()
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance, asset_selection=[dg.AssetKey(a) for a in ASSETS], raise_on_error=False
        )
        seconds = {
            event.step_key: event.event_specific_data.duration_ms / 1000
            for event in result.all_events
            if event.event_type_value == "STEP_SUCCESS"
        }
    total = time.monotonic() - began
    load_after = os.getloadavg()
    failed = [e.step_key for e in result.all_events if e.is_step_failure]
    print(f"\nassets {'finished' if result.success else 'FAILED: ' + ', '.join(failed)} in {total:.0f}s "
          f"(load average {load_before[0]:.1f} before, {load_after[0]:.1f} after; {os.cpu_count()} cores)")  # fmt: skip
    for step, spent in seconds.items():
        print(f"  {step:<16} {spent:7.1f}s")
    if not result.success:
        return 1

    seeds = read_manifest(layout.stage("seed_functions"))
    responses = read_manifest(layout.stage("responses"))
    facts = responses["self_align"]
    print(
        f"\nseed_functions: {seeds['rows_in']} units in, {seeds['rows_out']} seeds; rejected {seeds['rejected_by_reason']}"
    )
    instructions = read_manifest(layout.stage("instructions"))
    print(
        f"instructions: {instructions['rows_out']} of {instructions['rows_in']}; rejected {instructions['rejected_by_reason']}"
    )
    print(f"responses: rejected {responses['rejected_by_reason']}")
    funnel = [("seeds", instructions["rows_in"]), ("instructions", instructions["rows_out"]),
              ("responses", facts["responses"]), ("passed", facts["passed"]), ("kept", facts["kept"])]  # fmt: skip
    print("funnel: " + " -> ".join(f"{name} {count}" for name, count in funnel))
    generation_minutes = (instructions["generation_seconds"] + responses["generation_seconds"]) / 60
    pass_rate = facts["passed"] / facts["executed"] if facts["executed"] else 0.0
    sandbox_share = responses["sandbox_seconds"] / max(
        responses["generation_seconds"] + responses["sandbox_seconds"], 1e-9
    )
    print(f"pairs per minute of generation: {facts['kept'] / max(generation_minutes, 1e-9):.3f} "
          f"({facts['kept']} pairs, {generation_minutes:.1f} generation minutes)")  # fmt: skip
    print(f"pass rate of executed responses: {pass_rate:.3f} ({facts['passed']}/{facts['executed']}; "
          f"{facts['responses']} generated)")  # fmt: skip
    print(f"sandbox share of the response step: {sandbox_share:.4f} ({responses['sandbox_seconds']:.2f}s "
          f"sandbox vs {responses['generation_seconds']:.1f}s generation)")  # fmt: skip
    sft = read_manifest(layout.stage("sft_checkpoint"))
    print(f"SFT: {sft['steps']} steps, loss {sft['first_loss']:.4f} -> {sft['final_loss']:.4f}")
    evaluation = read_manifest(layout.stage("instruct_eval"))
    print("\nbenchmark        problems  base   tuned  tuned-base  95% CI            significant")
    for name, c in evaluation["comparisons"].items():
        print(f"{name:<16} {c['problems']:>8}  {c['base']:.3f}  {c['tuned']:.3f}  {c['difference']:+.3f}      "
              f"[{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]  {c['significant']}")  # fmt: skip
    print(f"\nstorage root: {root} (MLflow: sqlite:///{root}/mlflow.db, run {evaluation['mlflow_run_id']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
