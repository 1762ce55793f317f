"""Instruction tuning: Self-OSS-Instruct data, two-stage SFT, and the before/after comparison.

    decontaminated_code -> seed_functions -> instructions -> responses     (declared stages)
    responses -> sft_data (stage 1 + stage 2 shard sets with loss masks)
              -> sft_checkpoint (python -m training.entrypoint under Dagster Pipes)
              -> instruct_eval (HumanEval + MBPP test split, base vs tuned, paired CI, one MLflow run)

The three data stages are made from their declarations (`orchestration.instruct_stages`); the
model assets are thin adapters over `training.instruct` and reuse the pretraining launcher
(`assets.training.launch_training`: a local subprocess, or a Kubernetes GPU pod).
"""

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from assets._stage import OWNER, as_json, markdown_table, stage_asset, stage_asset_checks
from assets.training import train_or_reuse
from orchestration.instruct_stages import (
    GROUP_INSTRUCT,
    INSTRUCTIONS,
    MODEL_CACHE,
    RESPONSES,
    SEED_FUNCTIONS_STAGE,
    benchmark_matcher,
)
from orchestration.resources import MLflowResource, RecipeResource, StorageResource
from quality.recipe import Recipe
from quality.storage import StorageLayout, read_manifest, write_json_atomic
from training.config import DataPaths, RunConfig, TrackingConfig, TrainConfig, settings_of
from training.instruct.config import SFTConfig

seed_functions = stage_asset(SEED_FUNCTIONS_STAGE)
seed_functions_checks = stage_asset_checks(SEED_FUNCTIONS_STAGE)
instructions = stage_asset(INSTRUCTIONS)
instructions_checks = stage_asset_checks(INSTRUCTIONS)
responses = stage_asset(RESPONSES)
responses_checks = stage_asset_checks(RESPONSES)

SFT_DATA, SFT_CHECKPOINT, INSTRUCT_EVAL = "sft_data", "sft_checkpoint", "instruct_eval"


def sft_config(loaded: Recipe) -> SFTConfig:
    return loaded.section("sft", SFTConfig)


def base_model_folder(config: SFTConfig, layout: StorageLayout) -> str:
    """The model tuned as a Hugging Face folder: `smollm2` de-quantized once under the storage root."""
    if config.init_from == "smollm2":
        from training.instruct.self_align import dequantized_smollm2

        return str(dequantized_smollm2(Path(layout.root) / MODEL_CACHE))
    return config.init_from


def _read_rows(layout: StorageLayout, stage: str) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    paths = layout.stage(stage)
    read_manifest(paths)
    rows: list[dict[str, Any]] = []
    for part in sorted(Path(paths.data_dir).glob("*.parquet")):
        rows.extend(pq.read_table(part).to_pylist())
    return rows


# --------------------------------------------------------------------------------------------------
# sft_data


@dg.asset(
    name=SFT_DATA,
    group_name=GROUP_INSTRUCT,
    kinds={"python", "mlflow"},
    owners=[OWNER],
    deps=[dg.AssetKey(RESPONSES.name)],
    description=(
        "The two SFT stages as shard sets: each pair through the tuned model's chat template, one "
        "row per example with a loss mask on the response tokens only. Stage 1 and stage 2 are the "
        "mixtures `sft.stage1` / `sft.stage2` name (the execution-verified pairs of `responses`, "
        "MBPP's train/prompt/validation splits); every pair is checked against HumanEval and the "
        "MBPP test split by the decontamination engine first, and dropped pairs are listed with reasons."
    ),
)
def sft_data(
    context: dg.AssetExecutionContext,
    recipe: RecipeResource,
    storage: StorageResource,
    mlflow: MLflowResource,
) -> dg.MaterializeResult:
    from training.instruct.sft import build_sft_sets, sft_tokenizer

    loaded, layout = recipe.load(), storage.layout()
    config = sft_config(loaded)
    pairs = _read_rows(layout, RESPONSES.name)
    folder = Path(layout.stage(SFT_DATA).data_dir)
    tokenizer_dir = folder / "tokenizer"
    tokenizer_dir.mkdir(parents=True, exist_ok=True)
    sft_tokenizer(base_model_folder(config, layout), tokenizer_dir)
    with mlflow.run(
        context, loaded, layout, **{f"sft.{k}": v for k, v in settings_of(config).items()}
    ) as run:
        summary = build_sft_sets(
            config, pairs, tokenizer_dir, folder, matcher=benchmark_matcher(mbpp_test_only=True)
        )
        import mlflow as mlflow_module

        for stage, facts in summary["sets"].items():
            mlflow_module.log_metrics(
                {f"{stage}.examples": facts["examples"], f"{stage}.response_tokens": facts["response_tokens"]}
            )
        mlflow_module.log_dict(summary, "sft_data/summary.json")
    checksum = hashlib.sha256(
        json.dumps({k: v for k, v in summary.items() if k != "dropped"}, sort_keys=True).encode()
        + b"".join(Path(folder, stage, "shard-00000.bin").read_bytes() for stage in sorted(summary["sets"]))
    ).hexdigest()
    manifest = {
        "stage": SFT_DATA,
        "sets": summary["sets"],
        "sources": summary["sources"],
        "dropped_by_reason": summary["dropped_by_reason"],
        "tokenizer_dir": str(tokenizer_dir),
        "recipe_hash": loaded.hash,
        "checksum": f"sha256:{checksum}",
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_json_atomic(layout.fs, layout.stage(SFT_DATA).manifest_path, manifest)
    write_json_atomic(layout.fs, f"{folder}/dropped.json", summary["dropped"])
    rows = [
        {"stage": stage, "examples": facts["examples"], "by source": facts["examples_by_source"],
         "response tokens": facts["response_tokens"], "too long": facts["rejected"]}
        for stage, facts in summary["sets"].items()
    ]  # fmt: skip
    context.log.info(f"sft_data: {json.dumps(rows)}; dropped {summary['dropped_by_reason']}")
    return dg.MaterializeResult(
        metadata={
            "stages": dg.MetadataValue.md(markdown_table(rows)),
            "sources": as_json(summary["sources"]),
            "dropped_by_reason": as_json(summary["dropped_by_reason"]),
            "path": dg.MetadataValue.path(str(folder)),
            "mlflow_run_id": run.info.run_id,
        },
        data_version=dg.DataVersion(manifest["checksum"]),
    )


@dg.asset_check(
    asset=SFT_DATA,
    name="masks_cover_responses_only",
    blocking=True,
    description="Every example row has response targets, and no prompt or padding position is a target.",
)
def sft_data_masks_check(storage: StorageResource) -> dg.AssetCheckResult:
    import numpy as np

    from training.instruct.sft import LossMasks
    from training.shards import ShardReader

    layout = storage.layout()
    manifest = read_manifest(layout.stage(SFT_DATA))
    facts: dict[str, Any] = {}
    passed = True
    for stage in manifest["sets"]:
        folder = f"{layout.stage(SFT_DATA).data_dir}/{stage}"
        reader, masks = ShardReader(folder), LossMasks(folder)
        rows = np.arange(len(reader))
        tokens, mask = reader.rows(rows), masks.rows(rows)
        no_target = int((mask[:, 1:].sum(axis=1) == 0).sum())
        masked_pads = int(((tokens == reader.pad_id) & (mask == 1)).sum())
        facts[stage] = {"rows": len(reader), "rows_without_targets": no_target, "pad_targets": masked_pads}
        passed = passed and no_target == 0 and masked_pads == 0
    return dg.AssetCheckResult(passed=passed, metadata={"sets": as_json(facts)})


# --------------------------------------------------------------------------------------------------
# sft_checkpoint


def sft_run_config(
    context, loaded: Recipe, layout: StorageLayout, mlflow: MLflowResource
) -> tuple[RunConfig, Path]:
    """The entry point's config for the two-stage SFT: stage 1 is the main shard set, stage 2 the
    anneal set read during the WSD decay, whose length is stage 2's steps. Launch settings (local
    process or GPU pod) come from the recipe's `training` section."""
    config = sft_config(loaded)
    data = read_manifest(layout.stage(SFT_DATA))
    launch = loaded.section("training", TrainConfig)
    folder = layout.stage(SFT_DATA).data_dir
    steps = config.stage1_steps + config.stage2_steps
    has_two = "stage1" in data["sets"] and "stage2" in data["sets"] and config.stage2_steps > 0
    train = TrainConfig(
        init_from=base_model_folder(config, layout),
        steps=steps,
        micro_batch_size=config.micro_batch_size,
        grad_accum=config.grad_accum,
        lr=config.lr,
        min_lr=config.min_lr,
        schedule="wsd",
        # The warmup ends within stage 1: the loop reads the stage-2 set only in the decay phase,
        # and a warmup running into it would take stage-2 steps for stage 1.
        warmup_steps=min(config.warmup_steps, config.stage1_steps if has_two else max(0, steps - 1)),
        decay_fraction=config.stage2_steps / steps if has_two else 0.2,
        anneal=has_two,
        weight_decay=0.0,
        seed=config.seed,
        checkpoint_every=max(1, steps // 2),
        keep_checkpoints=1,  # a 135M model's full state is ~1.6 GB per checkpoint
        log_every=1,
        log_checkpoint_artifacts=False,
        cpu_threads=launch.cpu_threads,
        launcher=launch.launcher,
        k8s=launch.k8s,
    )
    key = hashlib.sha256(
        json.dumps(
            {"sft": settings_of(train), "data": data["checksum"]}, sort_keys=True, default=str
        ).encode()
    ).hexdigest()[:16]
    run_dir = f"{layout.stage(SFT_CHECKPOINT).data_dir}/runs/{key}"
    uri = launch.k8s.mlflow_tracking_uri if launch.launcher == "k8s" else mlflow.resolve_uri(loaded, layout)
    if launch.launcher != "k8s":
        mlflow.experiment_id(loaded, layout)
    main = "stage1" if "stage1" in data["sets"] else "stage2"
    run = RunConfig(
        training=train,
        data=DataPaths(
            train_shards=f"{folder}/{main}",
            anneal_shards=f"{folder}/stage2" if has_two else None,
            tokenizer_dir=data["tokenizer_dir"],
        ),
        output_dir=run_dir,
        tracking=TrackingConfig(
            tracking_uri=uri,
            experiment=loaded.experiment_name,
            run_name=SFT_CHECKPOINT,
            tags={
                "dagster.run_id": context.run_id,
                "dagster.asset_key": SFT_CHECKPOINT,
                "codecook.recipe": loaded.name,
                "codecook.recipe_hash": loaded.hash,
                "codecook.sft": "two-stage" if has_two else "one-stage",
            },
        ),
    )
    return run, Path(run_dir)


@dg.asset(
    name=SFT_CHECKPOINT,
    group_name=GROUP_INSTRUCT,
    kinds={"pytorch", "mlflow"},
    owners=[OWNER],
    deps=[dg.AssetKey(SFT_DATA)],
    retry_policy=dg.RetryPolicy(max_retries=1, delay=5),
    description=(
        "Two-stage SFT of `sft.init_from` (SmolLM2-135M-Instruct in the demo) by the same "
        "`python -m training.entrypoint` as pretraining, under Dagster Pipes (a local subprocess or "
        "a Kubernetes GPU pod per `training.launcher`): stage 1 for `sft.stage1_steps`, then stage 2 "
        "while the learning rate decays; loss on response tokens only; checkpoints with exact resume."
    ),
)
def sft_checkpoint(
    context: dg.AssetExecutionContext,
    recipe: RecipeResource,
    storage: StorageResource,
    mlflow: MLflowResource,
) -> dg.MaterializeResult:
    loaded, layout = recipe.load(), storage.layout()
    run, run_dir = sft_run_config(context, loaded, layout, mlflow)
    # The run folder is keyed by every SFT setting and the data checksum: a finished one is the
    # same model, whichever Dagster run asks.
    summary, _, _ = train_or_reuse(context, run, run_dir, layout, what="SFT", reuse_across_runs=True)
    manifest = {
        "stage": SFT_CHECKPOINT,
        "hf_model_dir": summary["hf_model_dir"],
        "tokenizer_dir": summary["tokenizer_dir"],
        "base_model": run.training.init_from,
        "mlflow_run_id": summary["mlflow_run_id"],
        "mlflow_tracking_uri": run.tracking.tracking_uri,
        "first_loss": summary["first_loss"],
        "final_loss": summary["final_loss"],
        "steps": summary["steps"],
        "run_dir": str(run_dir),
        "recipe_hash": loaded.hash,
        "checksum": f"mlflow:{summary['mlflow_run_id']}",
    }
    write_json_atomic(layout.fs, layout.stage(SFT_CHECKPOINT).manifest_path, manifest)
    return dg.MaterializeResult(
        metadata={
            "first_loss": dg.MetadataValue.float(float(summary["first_loss"])),
            "final_loss": dg.MetadataValue.float(float(summary["final_loss"])),
            "steps": dg.MetadataValue.int(int(summary["steps"])),
            "hf_model_dir": dg.MetadataValue.path(summary["hf_model_dir"]),
            "mlflow_run_id": summary["mlflow_run_id"],
        }
    )


# --------------------------------------------------------------------------------------------------
# instruct_eval


@dg.asset(
    name=INSTRUCT_EVAL,
    group_name=GROUP_INSTRUCT,
    kinds={"python", "mlflow"},
    owners=[OWNER],
    deps=[dg.AssetKey(SFT_CHECKPOINT)],
    description=(
        "Before and after: HumanEval and the MBPP test split, pass@1 with the chat template, for the "
        "base model and the SFT model on the same problems (`sft.eval_limit`), executed in the "
        "sandbox; tuned - base with a paired bootstrap 95% interval per benchmark, all in one MLflow run."
    ),
)
def instruct_eval(
    context: dg.AssetExecutionContext,
    recipe: RecipeResource,
    storage: StorageResource,
    mlflow: MLflowResource,
) -> dg.MaterializeResult:
    from training.evaluation.generation import HFBackend
    from training.instruct.before_after import BENCHMARKS, evaluation_problems, paired_difference, score
    from training.sandbox import Sandbox, SandboxConfig

    loaded, layout = recipe.load(), storage.layout()
    config = sft_config(loaded)
    tuned_manifest = read_manifest(layout.stage(SFT_CHECKPOINT))
    threads = loaded.section("self_align").generator.cpu_threads
    models = {
        "base": HFBackend(tuned_manifest["base_model"], cpu_threads=threads),
        "tuned": HFBackend(tuned_manifest["hf_model_dir"], cpu_threads=threads),
    }
    scores: dict[str, dict[str, Any]] = {}
    comparisons: dict[str, dict[str, Any]] = {}
    with Sandbox(SandboxConfig(timeout_s=10.0)) as sandbox:
        for benchmark in BENCHMARKS:
            problems = evaluation_problems(benchmark, config.eval_limit)
            for name, backend in models.items():
                scores[f"{name}.{benchmark}"] = score(
                    backend, benchmark, problems, max_new_tokens=config.eval_max_new_tokens,
                    sandbox=sandbox, timeout_s=10.0,
                )  # fmt: skip
                context.log.info(f"{name} {benchmark}: pass@1 {scores[f'{name}.{benchmark}']['pass@1']:.3f}")
            comparisons[benchmark] = paired_difference(
                scores[f"base.{benchmark}"]["passed"],
                scores[f"tuned.{benchmark}"]["passed"],
                seed=config.seed,
            )
    rows = [
        {"benchmark": b, "problems": c["problems"], "base pass@1": round(c["base"], 4), "tuned pass@1": round(c["tuned"], 4),
         "difference": round(c["difference"], 4), "95% CI": f"[{c['ci_low']:.3f}, {c['ci_high']:.3f}]",
         "significant": c["significant"]}
        for b, c in comparisons.items()
    ]  # fmt: skip
    with mlflow.run(
        context,
        loaded,
        layout,
        base_model=tuned_manifest["base_model"],
        sft_run=tuned_manifest["mlflow_run_id"],
    ) as run:
        import mlflow as mlflow_module

        metrics = {}
        for benchmark, c in comparisons.items():
            for key in ("base", "tuned", "difference", "ci_low", "ci_high"):
                metrics[f"{benchmark}.{key}"] = c[key]
        mlflow_module.log_metrics(metrics)
        mlflow_module.log_dict(
            {"comparisons": comparisons, "scores": scores}, "instruct_eval/before_after.json"
        )
        mlflow_module.log_text(markdown_table(rows), "instruct_eval/before_after.md")
    folder = layout.stage(INSTRUCT_EVAL)
    write_json_atomic(
        layout.fs,
        folder.manifest_path,
        {
            "stage": INSTRUCT_EVAL,
            "comparisons": comparisons,
            "mlflow_run_id": run.info.run_id,
            "sft_mlflow_run_id": tuned_manifest["mlflow_run_id"],
            "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    context.log.info(markdown_table(rows))
    return dg.MaterializeResult(
        metadata={
            "before_after": dg.MetadataValue.md(markdown_table(rows)),
            **{f"{b}.difference": dg.MetadataValue.float(c["difference"]) for b, c in comparisons.items()},
            "mlflow_run_id": run.info.run_id,
        }
    )


# --------------------------------------------------------------------------------------------------
# Checks


@dg.asset_check(
    asset=SFT_CHECKPOINT,
    name="tuned_model_complete",
    blocking=True,
    description="The SFT run finished every step of both stages with finite losses, and its Hugging Face "
    "export (weights, config, tokenizer with the chat template) is on disk.",
)
def sft_checkpoint_check(storage: StorageResource) -> dg.AssetCheckResult:
    import math

    manifest = read_manifest(storage.layout().stage(SFT_CHECKPOINT))
    folder = Path(manifest["hf_model_dir"])
    files = {
        name: (folder / name).is_file()
        for name in ("config.json", "model.safetensors", "tokenizer_config.json")
    }
    template = files["tokenizer_config.json"] and (
        "chat_template" in json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        or (folder / "chat_template.jinja").is_file()
    )
    finite = all(math.isfinite(float(manifest[k])) for k in ("first_loss", "final_loss"))
    return dg.AssetCheckResult(
        passed=all(files.values()) and template and finite,
        metadata={"files": as_json(files), "chat_template": bool(template), "losses_finite": finite},
    )


@dg.asset_check(
    asset=INSTRUCT_EVAL,
    name="both_models_scored",
    blocking=True,
    description="Base and tuned model were scored on the same problems of both benchmarks, and every "
    "difference lies inside its own bootstrap interval.",
)
def instruct_eval_check(storage: StorageResource) -> dg.AssetCheckResult:
    manifest = read_manifest(storage.layout().stage(INSTRUCT_EVAL))
    comparisons = manifest["comparisons"]
    facts = {
        name: {"problems": c["problems"], "inside": c["ci_low"] <= c["difference"] <= c["ci_high"]}
        for name, c in comparisons.items()
    }
    passed = len(comparisons) == 2 and all(f["problems"] > 0 and f["inside"] for f in facts.values())
    return dg.AssetCheckResult(passed=passed, metadata={"benchmarks": as_json(facts)})
