"""`codecook`: the recipe from the command line.

    codecook demo                      materialize the whole graph on the demo recipe, print a summary
    codecook ui                        Dagster UI and MLflow UI on 127.0.0.1
    codecook status                    per stage: last write, rows, rejects by reason (DuckDB over manifests)
    codecook STAGE --input PATH --output DIR [--config FILE] [--master URL]
                                       one engine stage outside Dagster; DIR is a storage root

The stage commands are made from the stage declarations (`orchestration.stages.COMMANDS`); the few
not declared yet are registered in STAGE_COMMANDS below as "module:function", imported only when
run. Every stage command takes the same flags and fails the same way: a bad input or setting is
one line on stderr, `codecook STAGE: what is wrong`, and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path

# Stage commands not (yet) declared as stages in `orchestration.stages`, with the same flags and
# error handling: name -> (help, "module:function(args) -> exit code", "module:function(parser)"
# adding arguments beyond --input/--output/--config/--master). Imported only when run.
STAGE_COMMANDS: dict[str, tuple[str, str, str | None]] = {
    "tokenize": (
        "Train the BPE (or take --tokenizer) and write FIM-ed, packed token shards.",
        "orchestration.stages:tokenize_command",
        "training.commands:tokenize_arguments",
    ),
    "self-align": (
        "Seed functions (rows with `content`) to execution-verified pairs: instructions, responses "
        "with their own tests run in the sandbox, DIR/pairs.jsonl (instruction/response/tests).",
        "orchestration.instruct_stages:self_align_command",
        None,
    ),
}
# Commands with their own arguments (not the --input/--output stage pattern).
OTHER_COMMANDS: dict[str, tuple[str, str, str | None]] = {
    "train": (
        "Train (or resume) a model from a run config: python -m training.entrypoint.",
        "training.commands:train",
        "training.commands:train_arguments",
    ),
    "eval": (
        "Execute HumanEval/MBPP samples (or generate them with a model) in the sandbox; pass@k.",
        "training.evaluation.cli:run_eval",
        "training.evaluation.cli:eval_arguments",
    ),
    "compare": (
        "Table and plot of an experiment's runs: data settings, model, loss, pass@1.",
        "training.evaluation.cli:run_compare",
        "training.evaluation.cli:compare_arguments",
    ),
    "ablate": (
        "Run recipe variants end to end as proxy models and compare them with confidence intervals.",
        "orchestration.ablation:ablate_command",
        "orchestration.ablation:ablate_arguments",
    ),
}


def _resolve(ref: str):
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def _home(args: argparse.Namespace) -> str:
    from quality.storage import default_home

    if getattr(args, "home", None):
        os.environ["CODECOOK_HOME"] = str(Path(args.home).resolve())
    return default_home()


def cmd_demo(args: argparse.Namespace) -> int:
    """Materialize every asset (and its checks) on the recipe in one process, then summarize."""
    if args.recipe:
        os.environ["CODECOOK_RECIPE"] = str(Path(args.recipe).resolve())
    from contracts.recipe import RecipeError, load_recipe

    try:
        load_recipe()  # every section validated before Dagster starts anything
    except RecipeError as error:
        print(f"codecook demo: {error}", file=sys.stderr)
        return 2
    home = _home(args)
    from orchestration.resources import ensure_dagster_home
    from quality.storage import StorageLayout

    layout = StorageLayout(home)
    ensure_dagster_home(layout)
    import dagster as dg

    from orchestration.definitions import defs

    started = time.monotonic()
    job = defs.resolve_job_def("demo")
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(instance=instance, raise_on_error=False)
    elapsed = time.monotonic() - started
    print_status(layout)
    failed = [event.step_key for event in result.all_events if event.is_step_failure]
    print(
        f"\n{'demo finished' if result.success else 'demo FAILED'} in {elapsed:.0f}s (Dagster run {result.run_id})"
    )
    if failed:
        print("failed steps: " + ", ".join(failed))
    print(
        f"storage root: {home}\n  data: {layout.data_root}\n  rejected rows: {layout.data_root}/rejected/<stage>"
    )
    print(f"  MLflow: {layout.mlflow_uri}\nBrowse both UIs: make ui")
    return 0 if result.success else 1


def print_status(layout) -> None:
    import duckdb

    manifests = layout.manifests()
    if not manifests:
        print(f"no stage has been materialized under {layout.root}")
        return
    print(f"{'stage':<24}{'written (UTC)':<28}{'in':>10}{'kept':>10}{'rejected':>10}  rejects by reason")
    for m in manifests:
        reasons = ", ".join(
            f"{k}={v}" for k, v in sorted(m.get("rejected_by_reason", {}).items(), key=lambda kv: -kv[1])
        )
        print(
            f"{m['stage']:<24}{m.get('written_at', '?'):<28}{m.get('rows_in', ''):>10}{m.get('rows_out', ''):>10}"
            f"{m.get('rows_rejected', ''):>10}  {reasons}"
        )
    # The same facts, straight from the files, for anyone who wants to query further.
    pattern = f"{layout.data_root}/*/_manifest.json"
    with duckdb.connect() as connection:
        total = connection.execute(
            "SELECT count(*), sum(rows_rejected) FROM read_json_auto(?, union_by_name=true)", [pattern]
        ).fetchone()
    print(
        f"({total[0]} stages, {int(total[1] or 0)} rejected rows; query: duckdb \"SELECT * FROM read_json_auto('{pattern}')\")"
    )


def cmd_status(args: argparse.Namespace) -> int:
    from quality.storage import StorageLayout

    print_status(StorageLayout(_home(args)))
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    """Start one Spark Connect server, the Dagster UI and the MLflow UI on loopback (orchestration.ui);
    Ctrl-C stops all three."""
    if getattr(args, "recipe", None):
        os.environ["CODECOOK_RECIPE"] = str(Path(args.recipe).resolve())
    from contracts.recipe import RecipeError, load_recipe

    try:
        recipe = load_recipe()  # a typo stops here, not in the first run launched from the UI
    except RecipeError as error:
        print(f"codecook ui: {error}", file=sys.stderr)
        return 2
    from orchestration.resources import ensure_dagster_home
    from orchestration.ui import Ports, UiError, run_ui
    from quality.storage import StorageLayout

    layout = StorageLayout(_home(args))
    ensure_dagster_home(layout)
    Path(layout.mlflow_artifacts).mkdir(parents=True, exist_ok=True)
    ports = Ports(dagster=args.dagster_port, mlflow=args.mlflow_port, spark_connect=args.spark_connect_port)
    try:
        return run_ui(
            layout, ports, recipe.spark, recipe.mlflow.tracking_uri, start_timeout_s=args.start_timeout
        )
    except UiError as error:
        print(f"codecook ui: {error}", file=sys.stderr)
        return 2


def _stage_parser(sub, name: str, help_text: str) -> argparse.ArgumentParser:
    """A stage command's parser with the flags every stage command shares."""
    stage = sub.add_parser(name, help=help_text, description=help_text)
    stage.add_argument(
        "--input",
        required=True,
        help="A stage output folder, or JSONL / Parquet (file or folder) whose rows need only `content`.",
    )
    stage.add_argument(
        "--output",
        required=True,
        help="Output storage root: writes DIR/data/<stage> and DIR/data/rejected/<stage>.",
    )
    stage.add_argument("--config", help="YAML file with this stage's settings (its recipe section's keys).")
    stage.add_argument("--master", help="Spark master URL (default: local[*]).")
    stage.set_defaults(stage_command=True)
    return stage


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="codecook", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo", help="Materialize the whole graph on a recipe (default: recipes/demo.yaml)."
    )
    demo.add_argument("--recipe", help="Recipe YAML (default: $CODECOOK_RECIPE or recipes/demo.yaml).")
    demo.add_argument("--home", help="Storage root (default: $CODECOOK_HOME or ./.codecook).")
    demo.set_defaults(func=cmd_demo)

    ui = sub.add_parser(
        "ui", help="Start Spark Connect, the Dagster UI and the MLflow UI on 127.0.0.1 (Ctrl-C stops all)."
    )
    ui.add_argument("--home")
    ui.add_argument("--dagster-port", type=int, default=3000)
    ui.add_argument("--mlflow-port", type=int, default=5000)
    ui.add_argument("--spark-connect-port", type=int, default=15002)
    ui.add_argument("--recipe", help="Recipe YAML (default: $CODECOOK_RECIPE or recipes/demo.yaml).")
    ui.add_argument(
        "--start-timeout", type=float, default=180.0, help="Seconds each service may take to start."
    )
    ui.set_defaults(func=cmd_ui)

    status = sub.add_parser("status", help="Rows, rejects and last write per stage.")
    status.add_argument("--home")
    status.set_defaults(func=cmd_status)

    from orchestration.stage import run_command
    from orchestration.stages import COMMANDS

    for name, command in COMMANDS.items():
        stage = _stage_parser(sub, name, command.help)
        if command.arguments:
            command.arguments(stage)
        stage.set_defaults(func=lambda args, command=command: run_command(command, args))
    for name, (help_text, run_ref, arguments_ref) in STAGE_COMMANDS.items():
        stage = _stage_parser(sub, name, help_text)
        if arguments_ref:
            _resolve(arguments_ref)(stage)
        stage.set_defaults(func=lambda args, ref=run_ref: _resolve(ref)(args))
    for name, (help_text, run_ref, arguments_ref) in OTHER_COMMANDS.items():
        other = sub.add_parser(name, help=help_text, description=help_text)
        if arguments_ref:
            _resolve(arguments_ref)(other)
        other.set_defaults(func=lambda args, ref=run_ref: _resolve(ref)(args))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not getattr(args, "stage_command", False):
        return int(args.func(args) or 0)
    from orchestration.stage import input_errors, one_line

    try:
        return int(args.func(args) or 0)
    except input_errors() as error:
        # A bad input or setting, not a bug: one line, no traceback (Spark's log is in DIR/logs).
        print(f"codecook {args.command}: {one_line(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
