"""`tokenizer`, `token_shards`, `checkpoint`: from the final data mix to a trained model.

The work lives in `training/` (Dagster-free); these adapters read the recipe, call it, log to
MLflow and return metadata. `checkpoint` runs `python -m training.entrypoint` through Dagster
Pipes: a local subprocess by default, a Kubernetes GPU pod when the recipe says
`training.launcher: k8s`. The training process reports its log lines and its materialization
(final loss, tokens, MFU, MLflow run) back through Pipes.
"""

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import dagster as dg

from assets._stage import GROUP_MODEL, OWNER, as_json, markdown_table, reuse_key, stage_store
from contracts.progress import Progress
from orchestration.resources import MLflowResource, RecipeResource, StorageResource
from quality.recipe import Recipe
from quality.storage import StorageLayout, write_json_atomic
from training.config import (
    DataPaths,
    RunConfig,
    TokenizerConfig,
    TrackingConfig,
    TrainConfig,
    dump_run_config,
    load_run_config,
    settings_of,
)

TOKENIZER, SHARDS, CHECKPOINT = "tokenizer", "token_shards", "checkpoint"
# The final mix of the code branch and of the web recall branch; the recipe's `tokenizer.inputs`
# may name others (they are read the same way), these are the declared upstream assets.
DEFAULT_INPUTS = ("code_mix", "code_web_pages")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def counted_bytes(texts, progress: Progress):
    """The texts, unchanged, with their UTF-8 bytes counted into `progress` as they are consumed."""
    for text in texts:
        progress.advance(len(text.encode("utf-8", "surrogatepass")))
        yield text


def tokenizer_config(recipe: Recipe) -> TokenizerConfig:
    from training.config import from_dict

    return from_dict(TokenizerConfig, recipe.document.get("tokenizer"), f"{recipe.path.name}: tokenizer")


def train_config(recipe: Recipe) -> TrainConfig:
    from training.config import from_dict

    return from_dict(TrainConfig, recipe.document.get("training"), f"{recipe.path.name}: training")


def stage_dirs(layout: StorageLayout, config: TokenizerConfig) -> dict[str, str]:
    names = set(config.inputs) | set(config.anneal.inputs if config.anneal else ())
    return {name: layout.stage(name).data_dir for name in names}


def present_inputs(layout: StorageLayout, config: TokenizerConfig) -> tuple[str, ...]:
    """The input stages that have an output (optional ones may not), in a stable order."""
    names = sorted(set(config.inputs) | set(config.anneal.inputs if config.anneal else ()))
    return tuple(name for name in names if Path(layout.stage(name).manifest_path).exists())


def reuse_stored(context, name: str, loaded: Recipe, layout: StorageLayout, upstream: tuple[str, ...]):
    """With a stage store (an ablation), the stored output of this stage's key put in place and its
    MaterializeResult; None when there is no store or no such output (then compute it)."""
    store = stage_store()
    if store is None:
        return None
    key, _ = reuse_key(name, "tokenizer", upstream, loaded, layout)
    found = store.lookup(name, key)
    if found is None:
        return None
    paths = layout.stage(name)
    store.restore(name, key, paths)
    manifest = json.loads(Path(paths.manifest_path).read_text(encoding="utf-8"))
    context.log.info(f"{name}: reused stored output {key} (computed by {found['computed_by']})")
    return dg.MaterializeResult(
        metadata={
            "stage_key": key,
            "reused": True,
            "reused_from": found["computed_by"],
            "path": dg.MetadataValue.path(paths.data_dir),
        },
        data_version=dg.DataVersion(manifest["checksum"]),
    )


def publish_stored(name: str, loaded: Recipe, layout: StorageLayout, upstream: tuple[str, ...]) -> None:
    store = stage_store()
    if store is not None:
        key, made_of = reuse_key(name, "tokenizer", upstream, loaded, layout)
        store.publish(name, key, layout.stage(name), {"computed_by": layout.root, **made_of})


# --------------------------------------------------------------------------------------------------


@dg.asset(
    name=TOKENIZER,
    group_name=GROUP_MODEL,
    kinds={"tokenizers", "huggingface"},
    owners=[OWNER],
    deps=[dg.AssetKey(name) for name in DEFAULT_INPUTS],
    description=(
        "Byte-level BPE trained with Hugging Face tokenizers on the final code mix (and the recalled "
        "web pages), with StarCoder's special tokens (FIM, file metadata, issues, notebooks, commits). "
        "Saved as tokenizer.json + transformers config in data/tokenizer and logged to MLflow. With "
        "`tokenizer.from_pretrained` the base model's tokenizer is exported instead (plus any missing "
        "FIM token)."
    ),
)
def tokenizer(
    context: dg.AssetExecutionContext,
    recipe: RecipeResource,
    storage: StorageResource,
    mlflow: MLflowResource,
) -> dg.MaterializeResult:
    from training.shards import iter_texts, resolve_inputs
    from training.tokenizer import (
        pretrained_chat_template,
        pretrained_tokenizer,
        round_trip_failures,
        save_tokenizer,
        train_bpe,
    )

    loaded, layout = recipe.load(), storage.layout()
    config = tokenizer_config(loaded)
    target = layout.stage(TOKENIZER).data_dir
    reused = reuse_stored(context, TOKENIZER, loaded, layout, present_inputs(layout, config))
    if reused is not None:
        return reused
    with mlflow.run(
        context, loaded, layout, vocab_size=config.vocab_size, from_pretrained=config.from_pretrained
    ) as run:
        stages, missing = resolve_inputs(
            config.main_mix, stage_dirs(layout, config), warn=context.log.warning
        )
        sample = list(iter_texts(stages, min(config.train_sample_bytes, 2_000_000)))[:200]
        if config.from_pretrained:
            bpe = pretrained_tokenizer(config.from_pretrained)
        else:
            texts = iter_texts(stages, config.train_sample_bytes, holdout_fraction=config.holdout_fraction)
            # No total: train_sample_bytes is a cap the inputs may not reach, so a share or an ETA
            # against it would mislead. The ticker goes on while the merges are computed.
            with Progress(
                "tokenizer: BPE sample read",
                unit="bytes",
                log=context.log.info,
            ) as progress:
                bpe = train_bpe(
                    counted_bytes(texts, progress),
                    vocab_size=config.vocab_size,
                    min_frequency=config.min_frequency,
                )
        staging = Path(f"{target}.tmp-{context.run_id[:8]}")
        shutil.rmtree(staging, ignore_errors=True)
        template = pretrained_chat_template(config.from_pretrained) if config.from_pretrained else None
        facts = save_tokenizer(bpe, staging, chat_template=template)
        failures = round_trip_failures(bpe, sample)
        encoded = bpe.encode_batch_fast(sample, add_special_tokens=False)
        sample_bytes = sum(len(text.encode("utf-8", "surrogatepass")) for text in sample)
        bytes_per_token = sample_bytes / max(1, sum(len(e.ids) for e in encoded))
        manifest = {
            "stage": TOKENIZER,
            **facts,
            "inputs": [s.name for s in stages],
            "inputs_missing": missing,
            "from_pretrained": config.from_pretrained,
            "train_sample_bytes": config.train_sample_bytes,
            "bytes_per_token": bytes_per_token,
            "round_trip_failures": len(failures),
            "recipe_hash": loaded.hash,
            "checksum": f"sha256:{facts['sha256']}",
        }
        # Swap in the finished folder, then the manifest: a reader sees the old tokenizer or the new.
        final = Path(target)
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
        write_json_atomic(layout.fs, f"{target}/_manifest.json", manifest)
        import mlflow as mlflow_module

        mlflow_module.log_metrics({"vocab_size": facts["vocab_size"], "bytes_per_token": bytes_per_token})
        mlflow_module.log_artifacts(str(final), artifact_path="tokenizer")
    publish_stored(TOKENIZER, loaded, layout, present_inputs(layout, config))
    return dg.MaterializeResult(
        metadata={
            "vocab_size": dg.MetadataValue.int(facts["vocab_size"]),
            "bytes_per_token": dg.MetadataValue.float(bytes_per_token),
            "special_ids": as_json(facts["special_ids"]),
            "round_trip_failures": dg.MetadataValue.int(len(failures)),
            "path": dg.MetadataValue.path(target),
            "mlflow_run_id": run.info.run_id,
        },
        data_version=dg.DataVersion(manifest["checksum"]),
    )


@dg.asset_check(
    asset=TOKENIZER,
    name="special_tokens_and_round_trip",
    blocking=True,
    description="Every FIM/metadata token has an id and decode(encode(x)) == x on real documents.",
)
def tokenizer_round_trip_check(recipe: RecipeResource, storage: StorageResource) -> dg.AssetCheckResult:
    from training.shards import iter_texts, resolve_inputs
    from training.tokenizer import load_tokenizer, round_trip_failures, special_ids

    loaded, layout = recipe.load(), storage.layout()
    config = tokenizer_config(loaded)
    folder = layout.stage(TOKENIZER).data_dir
    if not Path(folder, "_manifest.json").exists():
        return dg.AssetCheckResult(passed=False, metadata={"error": f"{folder} has no manifest"})
    bpe = load_tokenizer(folder)
    try:
        ids = special_ids(bpe)
    except KeyError as missing:
        return dg.AssetCheckResult(passed=False, metadata={"error": str(missing)})
    stages, _ = resolve_inputs(config.main_mix, stage_dirs(layout, config), warn=lambda _: None)
    sample = list(iter_texts(stages, 1_000_000))[:300]
    failures = round_trip_failures(bpe, sample)
    return dg.AssetCheckResult(
        passed=not failures,
        metadata={"documents_checked": len(sample), "failures": len(failures), "special_ids": as_json(ids)},
    )


# --------------------------------------------------------------------------------------------------


@dg.asset(
    name=SHARDS,
    group_name=GROUP_MODEL,
    kinds={"numpy"},
    owners=[OWNER],
    deps=[dg.AssetKey(TOKENIZER), *(dg.AssetKey(name) for name in DEFAULT_INPUTS)],
    description=(
        "Documents -> optional <reponame>/<filename>/<gh_stars> prefix (p=0.2 each) -> FIM (rate 0.5, "
        "half PSM, half SPM, character cuts) -> token ids + EOS -> packed rows of seq_len + 1 in "
        "memory-mappable uint16/uint32 shards with an index and a manifest. Deterministic (every draw "
        "is seeded by doc_id) and built by parallel workers. A second shard set holds the annealing mix."
    ),
)
def token_shards(
    context: dg.AssetExecutionContext,
    recipe: RecipeResource,
    storage: StorageResource,
    mlflow: MLflowResource,
) -> dg.MaterializeResult:
    from training.shards import write_token_shards

    loaded, layout = recipe.load(), storage.layout()
    config = tokenizer_config(loaded)
    target = layout.stage(SHARDS).data_dir
    upstream = (TOKENIZER, *present_inputs(layout, config))
    reused = reuse_stored(context, SHARDS, loaded, layout, upstream)
    if reused is not None:
        return reused
    with mlflow.run(
        context, loaded, layout, seq_len=config.seq_len, fim_rate=config.fim_rate, seed=config.seed
    ) as run:
        summary = write_token_shards(
            config=config,
            stage_dirs=stage_dirs(layout, config),
            tokenizer_dir=layout.stage(TOKENIZER).data_dir,
            output_dir=target,
            log=context.log.info,
        )
        import mlflow as mlflow_module

        mix_rows = []
        for name, mix in summary["mixes"].items():
            mlflow_module.log_metrics({
                f"{name}.tokens": mix["tokens"], f"{name}.documents": mix["documents_used"],
                f"{name}.fim_share": mix["fim_share"], f"{name}.spm_share": mix["spm_share"],
                f"{name}.rows": mix["rows"], f"{name}.tokens_per_byte": mix["tokens_per_byte"],
            })  # fmt: skip
            mix_rows.append({
                "mix": name, "documents": mix["documents_used"], "excluded (language)": mix["documents_excluded_language"],
                "tokens": mix["tokens"], "rows": mix["rows"], "shards": mix["shards"],
                "FIM": f"{mix['fim_share']:.3f}", "SPM of FIM": f"{mix['spm_share']:.3f}",
            })  # fmt: skip
        mlflow_module.log_dict(summary, "manifests/token_shards.json")
    publish_stored(SHARDS, loaded, layout, upstream)
    return dg.MaterializeResult(
        metadata={
            "tokens": dg.MetadataValue.int(summary["tokens"]),
            "documents": dg.MetadataValue.int(summary["documents"]),
            "rows": dg.MetadataValue.int(summary["rows"]),
            "fim_share": dg.MetadataValue.float(summary["fim_share"]),
            "spm_share": dg.MetadataValue.float(summary["spm_share"]),
            "anneal_tokens": dg.MetadataValue.int(summary["anneal_tokens"]),
            "dtype": summary["dtype"],
            "mixes": dg.MetadataValue.md(markdown_table(mix_rows)),
            "path": dg.MetadataValue.path(target),
            "mlflow_run_id": run.info.run_id,
        },
        data_version=dg.DataVersion(summary["checksum"]),
    )


@dg.asset_check(
    asset=SHARDS,
    name="shards_consistent",
    blocking=True,
    description="Files hold exactly the rows the index lists; every input document is accounted for; "
    "the first samples un-permute to the first input documents.",
)
def token_shards_check(storage: StorageResource) -> dg.AssetCheckResult:
    from training.shards import check_shard_set

    layout = storage.layout()
    folder = layout.stage(SHARDS).data_dir
    if not Path(folder, "_manifest.json").exists():
        return dg.AssetCheckResult(passed=False, metadata={"error": f"{folder} has no manifest"})
    problems, facts = check_shard_set(f"{folder}/main", tokenizer_dir=layout.stage(TOKENIZER).data_dir)
    return dg.AssetCheckResult(passed=not problems, metadata={**facts, "problems": as_json(problems)})


# --------------------------------------------------------------------------------------------------


def run_config_for(
    context: dg.AssetExecutionContext, loaded: Recipe, layout: StorageLayout, mlflow: MLflowResource
) -> tuple[RunConfig, Path]:
    """The entry point's config and the run folder: keyed by what determines the result, so a
    retry after a kill finds (and resumes) the same folder, and a changed recipe starts anew."""
    config = train_config(loaded)
    shards_manifest = json.loads(Path(layout.stage(SHARDS).manifest_path).read_text(encoding="utf-8"))
    key = hashlib.sha256(
        json.dumps(
            # Deployment fields (launcher, pod, threads, logging cadence) are left out: the same
            # training on other hardware resumes the same folder.
            {"training": settings_of(config), "shards": shards_manifest["checksum"]},
            sort_keys=True,
        ).encode()
    ).hexdigest()[:16]
    checkpoint_dir = layout.stage(CHECKPOINT).data_dir
    run_dir = f"{checkpoint_dir}/runs/{key}"
    k8s = config.launcher == "k8s"
    if k8s:
        tracking_uri = config.k8s.mlflow_tracking_uri
    else:
        tracking_uri = mlflow.resolve_uri(loaded, layout)
        mlflow.experiment_id(loaded, layout)  # created here, with artifacts under the storage root
    anneal = f"{layout.stage(SHARDS).data_dir}/anneal"
    run = RunConfig(
        training=config,
        data=DataPaths(
            train_shards=f"{layout.stage(SHARDS).data_dir}/main",
            anneal_shards=anneal if "anneal" in shards_manifest.get("sets", {}) else None,
            tokenizer_dir=layout.stage(TOKENIZER).data_dir,
        ),
        output_dir=run_dir,
        tracking=TrackingConfig(
            tracking_uri=tracking_uri,
            experiment=loaded.experiment_name,
            run_name=CHECKPOINT,
            tags={
                "dagster.run_id": context.run_id,
                "dagster.asset_key": CHECKPOINT,
                "codecook.recipe": loaded.name,
                "codecook.recipe_hash": loaded.hash,
                # `codecook ablate` nests each training run under its variant's run.
                **(
                    {"mlflow.parentRunId": os.environ["CODECOOK_MLFLOW_PARENT_RUN"]}
                    if os.environ.get("CODECOOK_MLFLOW_PARENT_RUN")
                    else {}
                ),
            },
        ),
    )
    return run, Path(run_dir)


def launch_training(
    context: dg.AssetExecutionContext, run: RunConfig, config_path: Path, layout: StorageLayout
) -> dict:
    """Run the entry point under Dagster Pipes; returns the metadata the training process reported.

    Pipes is the only channel from the training process: its log lines arrive as Dagster log events
    and its materialization carries the run's summary (the pod of the k8s launcher may share no
    filesystem with this process). A process that exits 0 without reporting is an error.
    """
    extras = {"run_dir": run.output_dir}
    if run.training.launcher == "k8s":
        from dagster_k8s import PipesK8sClient

        from training.podspec import build_pod_spec

        spec = build_pod_spec(run.training.k8s, config_path=str(config_path), storage_root=layout.root)
        invocation = PipesK8sClient().run(
            context=context, extras=extras, namespace=run.training.k8s.namespace, base_pod_spec=spec,
            base_pod_meta={"labels": {"app.kubernetes.io/name": "codecook-train"}},
        )  # fmt: skip
    else:
        env = {
            **os.environ,
            # Spinning OpenMP threads of a CPU run starve everything else sharing the cores.
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
            "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
        }
        invocation = dg.PipesSubprocessClient(cwd=str(PROJECT_ROOT)).run(
            context=context,
            extras=extras,
            command=[sys.executable, "-m", "training.entrypoint", "--config", str(config_path)],
            env=env,
        )
    # implicit_materializations=False: an empty result is not made up for a silent process.
    reported = [
        result
        for result in invocation.get_results(implicit_materializations=False)
        if isinstance(result, dg.MaterializeResult)
    ]
    if len(reported) != 1:
        # Not retried: a retry would find the finished run folder and take its summary.json,
        # hiding a broken Pipes channel behind a success.
        raise dg.Failure(
            description=(
                f"the training process ({run.training.launcher} launcher) exited successfully but "
                f"reported {len(reported)} materializations through Dagster Pipes (expected 1); "
                f"run folder {run.output_dir}"
            ),
            allow_retries=False,
        )
    return dict(reported[0].metadata or {})


def train_or_reuse(
    context: dg.AssetExecutionContext,
    run: RunConfig,
    run_dir: Path,
    layout: StorageLayout,
    *,
    what: str,
    reuse_across_runs: bool = False,
) -> tuple[dict, dict, str]:
    """Launch `python -m training.entrypoint` for `run` in `run_dir`, or take the summary of a run
    that already finished there. Returns (summary, what Pipes reported, where the summary came from).

    A finished folder is reused by a retry of the same Dagster run; another Dagster run retrains
    from scratch into a fresh MLflow run tagged with it, unless `reuse_across_runs` (the folder's
    name already holds every setting and the data checksum). An unfinished folder (killed,
    preempted) is resumed from its last checkpoint by the entry point."""
    summary_path, config_path = run_dir / "summary.json", run_dir / "run.yaml"

    def finished() -> bool:
        return summary_path.exists() and bool(
            json.loads(summary_path.read_text(encoding="utf-8")).get("finished")
        )

    if finished() and not reuse_across_runs:
        previous = (
            load_run_config(config_path).tracking.tags.get("dagster.run_id") if config_path.exists() else None
        )
        if previous != context.run_id:
            shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if finished():
        # Nothing is launched, so the run folder's summary is the only record.
        context.log.info(f"{what} already finished in {run_dir}; using its summary.json")
        return json.loads(summary_path.read_text(encoding="utf-8")), {}, "summary.json (a finished run)"
    dump_run_config(run, config_path)
    context.log.info(f"{what} run folder {run_dir} (launcher: {run.training.launcher})")
    reported = launch_training(context, run, config_path, layout)
    return {key: value.value for key, value in reported.items()}, reported, "dagster pipes"


@dg.asset(
    name=CHECKPOINT,
    group_name=GROUP_MODEL,
    kinds={"pytorch", "mlflow"},
    owners=[OWNER],
    deps=[dg.AssetKey(SHARDS), dg.AssetKey(TOKENIZER)],
    retry_policy=dg.RetryPolicy(max_retries=2, delay=5),
    description=(
        "Trains the Llama-style model of the recipe (a preset, or continued pretraining from a base "
        "model) with `python -m training.entrypoint` under Dagster Pipes: a local subprocess by default, "
        "a Kubernetes GPU pod with `training.launcher: k8s`. WSD schedule with the annealing mix in the "
        "decay, AdamW (0.9, 0.95), checkpoints with exact resume (a retried run continues), MLflow "
        "metrics incl. MFU, and a Hugging Face export. Writes data/checkpoint/_manifest.json."
    ),
)
def checkpoint(
    context: dg.AssetExecutionContext,
    recipe: RecipeResource,
    storage: StorageResource,
    mlflow: MLflowResource,
) -> dg.MaterializeResult:
    loaded, layout = recipe.load(), storage.layout()
    run, run_dir = run_config_for(context, loaded, layout, mlflow)
    summary, reported, source = train_or_reuse(context, run, run_dir, layout, what="training")
    hf_dir = summary["hf_model_dir"]
    weights = Path(hf_dir) / "model.safetensors"
    digest = (
        hashlib.sha256(weights.read_bytes()).hexdigest() if weights.exists() else summary["mlflow_run_id"]
    )
    manifest = {
        "stage": CHECKPOINT,
        "hf_model_dir": hf_dir,
        "tokenizer_dir": summary["tokenizer_dir"],
        "mlflow_run_id": summary["mlflow_run_id"],
        "mlflow_tracking_uri": run.tracking.tracking_uri,
        "mlflow_experiment": run.tracking.experiment,
        "final_loss": summary["final_loss"],
        "first_loss": summary["first_loss"],
        "steps": summary["steps"],
        "preset": summary["preset"],
        "tokens": summary["tokens"],
        "mfu": summary["mfu"],
        "mfu_formula": summary["mfu_formula"],
        "params": summary["params"],
        "run_dir": str(run_dir),
        "recipe_hash": loaded.hash,
        "checksum": f"sha256:{digest}",
    }
    write_json_atomic(layout.fs, layout.stage(CHECKPOINT).manifest_path, manifest)
    link = f"{run.tracking.tracking_uri} run {summary['mlflow_run_id']}"
    return dg.MaterializeResult(
        metadata={
            **reported,
            "summary_source": source,
            "final_loss": dg.MetadataValue.float(summary["final_loss"]),
            "first_loss": dg.MetadataValue.float(summary["first_loss"]),
            "tokens": dg.MetadataValue.int(summary["tokens"]),
            "mfu": dg.MetadataValue.float(summary["mfu"]),
            "mfu_formula": summary["mfu_formula"],
            "steps": dg.MetadataValue.int(summary["steps"]),
            "preset": summary["preset"],
            "hf_model_dir": dg.MetadataValue.path(hf_dir),
            "mlflow_run_id": summary["mlflow_run_id"],
            "mlflow_run": link,
        },
        data_version=dg.DataVersion(manifest["checksum"]),
    )


@dg.asset_check(
    asset=CHECKPOINT,
    name="loss_fell_and_export_loads",
    blocking=True,
    description="The final loss is below the first, and the Hugging Face export loads with "
    "AutoModelForCausalLM and AutoTokenizer and produces finite logits.",
)
def checkpoint_check(storage: StorageResource) -> dg.AssetCheckResult:
    import math

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    layout = storage.layout()
    path = Path(layout.stage(CHECKPOINT).manifest_path)
    if not path.exists():
        return dg.AssetCheckResult(passed=False, metadata={"error": f"{path} is missing"})
    manifest = json.loads(path.read_text(encoding="utf-8"))
    model = AutoModelForCausalLM.from_pretrained(manifest["hf_model_dir"])
    tokens = AutoTokenizer.from_pretrained(manifest["tokenizer_dir"])
    ids = tokens("def add(a, b):\n    return a + b\n", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(ids).logits
    finite = bool(torch.isfinite(logits).all())
    fell = manifest["final_loss"] < manifest["first_loss"]
    return dg.AssetCheckResult(
        passed=fell and finite and model.config.vocab_size >= len(tokens),
        metadata={
            "first_loss": manifest["first_loss"],
            "final_loss": manifest["final_loss"],
            "loss_ratio": manifest["final_loss"] / manifest["first_loss"]
            if manifest["first_loss"]
            else math.nan,
            "logits_finite": finite,
            "model_vocab": model.config.vocab_size,
            "tokenizer_size": len(tokens),
        },
    )
