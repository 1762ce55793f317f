"""Model, schedule, training loop, exact resume, Hugging Face export, SmolLM2, and the Dagster asset."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tests._training_data import stdlib_documents, write_stage_output
from training.config import (
    PRESETS,
    DataPaths,
    MixConfig,
    ModelConfig,
    RunConfig,
    TokenizerConfig,
    TrackingConfig,
    TrainConfig,
    dump_run_config,
    load_run_config,
)
from training.loop import batch_indices, train
from training.model import LlamaLM, flops_per_token, parameter_counts
from training.schedule import Schedule
from training.shards import iter_texts, resolve_inputs, write_token_shards
from training.tokenizer import save_tokenizer, train_bpe

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# A model small enough that a step takes milliseconds on one core.
SMALL = {"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2}


def curve(run_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> dict:
    """Tokenizer + main and anneal shard sets from 160 stdlib modules (vocab 512, 64-token context)."""
    root = tmp_path_factory.mktemp("train")
    write_stage_output(root, "code_mix", stdlib_documents(160, max_bytes=20_000))
    dirs = {"code_mix": str(root / "data/code_mix"), "code_web_pages": str(root / "data/code_web_pages")}
    config = TokenizerConfig(
        vocab_size=512, seq_len=64, docs_per_shard=100, workers=1,
        anneal=MixConfig(inputs=("code_mix",), optional_inputs=(), languages=("python",), weights={"code_mix": 2.0}),
    )  # fmt: skip
    stages, _ = resolve_inputs(config.main_mix, dirs, warn=lambda _: None)
    save_tokenizer(train_bpe(iter_texts(stages, 2_000_000), vocab_size=512), root / "data/tokenizer")
    write_token_shards(config=config, stage_dirs=dirs, tokenizer_dir=str(root / "data/tokenizer"),
                       output_dir=str(root / "data/token_shards"), log=lambda _: None)  # fmt: skip
    return {"root": root, "dirs": dirs}


def run_config(shards: dict, out: Path, **training) -> RunConfig:
    settings = dict(
        steps=24, micro_batch_size=4, grad_accum=2, lr=3e-3, min_lr=3e-4, warmup_steps=4, decay_fraction=0.25,
        checkpoint_every=4, log_every=4, model=SMALL, cpu_threads=1, log_checkpoint_artifacts=False,
    )  # fmt: skip
    settings.update(training)
    root = shards["root"]
    return RunConfig(
        training=TrainConfig(**settings),
        data=DataPaths(
            train_shards=str(root / "data/token_shards/main"),
            anneal_shards=str(root / "data/token_shards/anneal"),
            tokenizer_dir=str(root / "data/tokenizer"),
        ),
        output_dir=str(out),
        tracking=TrackingConfig(tracking_uri=None),
    )


# --------------------------------------------------------------------------------------------------
# Schedule and model


def test_wsd_schedule_warms_up_holds_and_decays_to_min_lr():
    wsd = Schedule(kind="wsd", steps=100, lr=1.0, min_lr=0.1, warmup_steps=10, decay_fraction=0.2)
    lrs = [wsd.lr_at(s) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(lr == 1.0 for lr in lrs[10:80]) and wsd.decay_start == 80
    assert all(a > b for a, b in zip(lrs[80:], lrs[81:], strict=False)) and lrs[99] == pytest.approx(0.1)
    assert [wsd.phase(s) for s in (0, 10, 79, 80, 99)] == ["warmup", "stable", "stable", "decay", "decay"]
    cosine = Schedule(kind="cosine", steps=100, lr=1.0, min_lr=0.1, warmup_steps=10)
    assert cosine.lr_at(10) == pytest.approx(1.0) and cosine.lr_at(99) == pytest.approx(0.1)
    assert cosine.lr_at(54) == pytest.approx(0.55, abs=0.02)  # halfway down the cosine
    sqrt = Schedule(
        kind="wsd", steps=100, lr=1.0, min_lr=0.0, warmup_steps=0, decay_fraction=0.5, decay_shape="sqrt"
    )
    linear = replace(sqrt, decay_shape="linear")
    assert sqrt.lr_at(62) < linear.lr_at(62) - 0.2  # 1 - sqrt falls fast first
    assert sqrt.lr_at(99) == linear.lr_at(99) == 0.0


@pytest.mark.parametrize("kv_heads", [4, 2, 1])  # multi-head, grouped-query, multi-query
def test_attention_variants_are_causal(kv_heads):
    torch.manual_seed(0)
    model = LlamaLM(
        ModelConfig(dim=64, n_layers=2, n_heads=4, n_kv_heads=kv_heads, vocab_size=100, max_seq_len=32)
    )
    ids = torch.randint(0, 100, (2, 16))
    changed = ids.clone()
    changed[:, 10:] = (changed[:, 10:] + 1) % 100
    with torch.no_grad():
        before, after = model(ids)[0], model(changed)[0]
    assert torch.allclose(before[:, :10], after[:, :10], atol=1e-6)  # the future does not leak back
    assert not torch.allclose(before[:, 10:], after[:, 10:])
    assert model.model.layers[0].self_attn.k_proj.weight.shape == (kv_heads * 16, 64)


def test_rope_base_changes_the_model_and_presets_build():
    torch.manual_seed(0)
    a = LlamaLM(ModelConfig(dim=64, n_layers=1, n_heads=4, vocab_size=50, max_seq_len=64, rope_theta=10000.0))
    b = LlamaLM(
        ModelConfig(dim=64, n_layers=1, n_heads=4, vocab_size=50, max_seq_len=64, rope_theta=500000.0)
    )
    b.load_state_dict(a.state_dict())
    ids = torch.arange(40).unsqueeze(0)
    with torch.no_grad():
        assert not torch.allclose(a(ids)[0], b(ids)[0])
    with torch.device("meta"):  # shapes only: no memory, no init time
        sizes = {
            name: parameter_counts(LlamaLM(replace(PRESETS[name], vocab_size=49152)))["total"]
            for name in PRESETS
        }
    assert 5e6 < sizes["tiny"] < 8e6 and 100e6 < sizes["125M"] < 150e6
    assert 300e6 < sizes["350M"] < 450e6 and 1.3e9 < sizes["1.5B"] < 1.8e9


def test_flops_formula_matches_a_hand_count():
    config = ModelConfig(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_hidden=128, vocab_size=100)
    # Per layer: q 64*64, k and v 64*32 each, o 64*64, SwiGLU 3*64*128; plus the 100 x 64 head.
    matmul = 2 * (64 * 64 + 2 * 64 * 32 + 64 * 64 + 3 * 64 * 128) + 100 * 64
    assert flops_per_token(config, seq_len=32) == 6 * matmul + 12 * 2 * 64 * 32


def test_batches_are_a_pure_function_of_the_sample_number():
    first = batch_indices(counter=0, batch_size=10, num_rows=7, seed=1)
    assert sorted(first[:7].tolist()) == list(range(7))  # one epoch is a permutation
    assert batch_indices(counter=5, batch_size=5, num_rows=7, seed=1).tolist() == first[5:10].tolist()


# --------------------------------------------------------------------------------------------------
# Training


def test_loss_falls_on_real_shards_and_the_export_loads_in_transformers(shards, tmp_path):
    config = run_config(shards, tmp_path / "run", steps=40, checkpoint_every=20, log_every=10, lr=5e-3)
    summary = train(config, echo=lambda _: None)
    losses = curve(tmp_path / "run")
    assert len(losses) == 40 and summary["finished"]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5  # from ~ln(512) = 6.2, half a nat down at least
    assert summary["tokens"] == 40 * 4 * 64 * 2 and 0 < summary["mfu"] < 1
    # Annealing: the decay steps read the Python-only mix.
    mixes = [json.loads(line)["mix"] for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert mixes[:30] == ["main"] * 30 and mixes[30:] == ["anneal"] * 10

    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf = AutoModelForCausalLM.from_pretrained(summary["hf_model_dir"])
    tokenizer = AutoTokenizer.from_pretrained(summary["tokenizer_dir"])
    ids = tokenizer("def main():\n    return 0\n", return_tensors="pt")["input_ids"]
    from training.hf_export import load_pretrained

    ours = load_pretrained(summary["hf_model_dir"])
    with torch.no_grad():
        assert torch.allclose(hf(ids).logits, ours(ids)[0], atol=1e-4)
    assert tokenizer.convert_tokens_to_ids("<fim_middle>") == 2


@pytest.mark.slow
def test_a_killed_run_resumes_on_the_same_loss_curve(shards, tmp_path):
    steps = 40
    reference = run_config(shards, tmp_path / "reference", steps=steps)
    train(reference, echo=lambda _: None)

    killed_dir = tmp_path / "killed"
    config = run_config(shards, killed_dir, steps=steps)
    killed_dir.mkdir()
    dump_run_config(config, killed_dir / "run.yaml")
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "OMP_WAIT_POLICY": "PASSIVE"}
    process = subprocess.Popen(
        [sys.executable, "-m", "training.entrypoint", "--config", str(killed_dir / "run.yaml")],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    metrics = killed_dir / "metrics.jsonl"
    deadline = time.monotonic() + 120
    # Kill between checkpoints: after step 6 was logged (checkpoint 4 is on disk, 8 is not yet).
    while time.monotonic() < deadline and process.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 6:
            break
        time.sleep(0.005)
    assert process.poll() is None, process.stderr.read().decode()[-2000:]
    process.send_signal(signal.SIGKILL)
    process.wait()
    logged = len(metrics.read_text().splitlines())
    assert logged < steps and not (killed_dir / "summary.json").exists()

    summary = train(load_run_config(killed_dir / "run.yaml"), echo=lambda _: None)
    assert summary["finished"]
    assert curve(killed_dir) == curve(tmp_path / "reference")  # bit-identical, step for step


@pytest.mark.slow
def test_smollm2_loads_from_the_installed_gguf_and_trains_one_step():
    from training.hf_export import load_pretrained
    from training.tokenizer import FIM_MIDDLE, pretrained_chat_template, pretrained_tokenizer, special_ids

    # The export keeps the base model's chat template, so chat-prompted evaluation works on it.
    assert "<|im_start|>" in pretrained_chat_template("smollm2")

    tokenizer = pretrained_tokenizer("smollm2")  # its vocabulary plus the FIM tokens it lacks
    model = load_pretrained("smollm2")
    assert model.config.dim == 576 and model.config.n_layers == 30 and model.config.kv_heads == 3
    assert model.config.rope_theta == 100000.0
    model.resize_vocab(tokenizer.get_vocab_size())
    assert special_ids(tokenizer)[FIM_MIDDLE] >= 49152
    text = Path(json.__file__).read_text()[:3000]
    ids = torch.tensor([tokenizer.encode(text).ids[:64]])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.95))
    _, loss = model(ids[:, :-1], ids[:, 1:])
    # A real code model, not random weights: random would sit near ln(49152) = 10.8.
    assert loss.item() < 4.0
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        _, after = model(ids[:, :-1], ids[:, 1:])
    assert math.isfinite(after.item()) and after.item() < loss.item()


# --------------------------------------------------------------------------------------------------
# Dagster


def test_only_the_main_rank_of_a_pipes_launched_process_opens_pipes(tmp_path, monkeypatch):
    """`accelerate launch` gives every rank the launcher's environment; only RANK 0 may write."""
    import warnings

    from dagster_pipes import (
        DAGSTER_PIPES_CONTEXT_ENV_VAR,
        DAGSTER_PIPES_MESSAGES_ENV_VAR,
        PipesContext,
        encode_param,
    )

    from training import entrypoint

    monkeypatch.setattr(PipesContext, "_instance", None)  # open_dagster_pipes keeps a singleton
    messages = tmp_path / "messages.jsonl"
    launched = {
        DAGSTER_PIPES_CONTEXT_ENV_VAR: encode_param({"data": {"asset_keys": ["checkpoint"], "extras": {}}}),
        DAGSTER_PIPES_MESSAGES_ENV_VAR: encode_param({"path": str(messages)}),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # by hand: no "not launched by Dagster" warning either
        with entrypoint.pipes_session({}) as pipes:
            assert pipes is None
    with entrypoint.pipes_session({**launched, "RANK": "1"}) as pipes:
        assert pipes is None
    assert not messages.exists()
    with entrypoint.pipes_session({**launched, "RANK": "0"}) as pipes:
        pipes.log.info("rank 0 speaks")
    sent = [json.loads(line) for line in messages.read_text().splitlines()]
    assert [m["method"] for m in sent] == ["opened", "log", "closed"]
    assert sent[1]["params"] == {"message": "rank 0 speaks", "level": "INFO"}


def test_the_entrypoint_run_by_hand_trains_and_prints_without_pipes(shards, tmp_path, monkeypatch, capsys):
    from training import entrypoint

    monkeypatch.delenv("DAGSTER_PIPES_CONTEXT", raising=False)
    monkeypatch.delenv("DAGSTER_PIPES_MESSAGES", raising=False)
    config = run_config(shards, tmp_path / "run", steps=4, checkpoint_every=4, log_every=2)
    dump_run_config(config, tmp_path / "run.yaml")
    assert entrypoint.main(["--config", str(tmp_path / "run.yaml")]) == 0
    out = capsys.readouterr()
    assert "step 2/4 loss " in out.out and "__dagster_pipes_version" not in out.out + out.err


@pytest.mark.slow
def test_checkpoint_asset_materializes_through_pipes_with_an_mlflow_run(home, tmp_path):
    """Subprocess launcher: the loop's log lines and the summary arrive through Pipes (see
    `tests._pipes.assert_reported_through_pipes`), and the MLflow run is the one Pipes named."""
    import mlflow

    from tests._pipes import assert_reported_through_pipes, materialize_checkpoint, write_recipe

    recipe = write_recipe(tmp_path / "recipe.yaml", "pipes-test", steps=16)
    result, instance = materialize_checkpoint(home, recipe)
    assert len(result.get_asset_check_evaluations()) == 3
    reported = assert_reported_through_pipes(result, instance, steps=16)

    manifest = json.loads((home / "data/checkpoint/_manifest.json").read_text())
    for key in ("hf_model_dir", "tokenizer_dir", "mlflow_run_id", "final_loss", "steps", "tokens", "mfu"):
        assert manifest[key] == reported[key], key
    assert manifest["preset"] == "tiny"
    mlflow.set_tracking_uri(f"sqlite:///{home}/mlflow.db")
    runs = mlflow.search_runs(
        experiment_names=["codecook-pipes-test"], filter_string="tags.`dagster.asset_key` = 'checkpoint'"
    )
    assert list(runs["run_id"]) == [manifest["mlflow_run_id"]]
    assert runs.iloc[0]["tags.dagster.run_id"] == result.run_id
    assert runs.iloc[0]["metrics.final_loss"] == pytest.approx(manifest["final_loss"])
    assert runs.iloc[0]["status"] == "FINISHED"
    history = mlflow.MlflowClient().get_metric_history(manifest["mlflow_run_id"], "mfu")
    assert len(history) == 4 and all(0 < point.value < 1 for point in history)


def test_object_store_paths_train_in_scratch_and_a_new_pod_resumes_from_the_bucket(
    shards, tmp_path, monkeypatch
):
    """fsspec URLs (file:// here, s3:// on a cluster): inputs are staged to local scratch, every
    checkpoint is mirrored to the output URL, and a replacement pod with empty scratch resumes."""
    root = shards["root"]
    bucket = tmp_path / "bucket"
    config = run_config(shards, tmp_path / "unused", steps=6, checkpoint_every=2, log_every=2)
    config = replace(
        config,
        data=DataPaths(
            train_shards=f"file://{root}/data/token_shards/main",
            anneal_shards=None,
            tokenizer_dir=f"file://{root}/data/tokenizer",
        ),
        output_dir=f"file://{bucket}/run",
    )
    monkeypatch.setenv("CODECOOK_SCRATCH", str(tmp_path / "scratch-pod-1"))
    first = train(config, stop_after_steps=4, echo=lambda _: None)
    assert not first["finished"] and (bucket / "run/checkpoints/step-00000004/COMPLETE").exists()
    monkeypatch.setenv("CODECOOK_SCRATCH", str(tmp_path / "scratch-pod-2"))  # a new pod, empty disk
    logs = []
    summary = train(config, echo=logs.append)
    assert "resumed at step 4" in logs[0] and summary["finished"]
    assert (bucket / "run/hf/model.safetensors").exists() and (bucket / "run/summary.json").exists()
    assert len(curve(bucket / "run")) == 6
