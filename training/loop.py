"""The training loop: accelerate for devices, precision and accumulation; exact resume; MLflow.

Exact resume rests on one rule: **everything a step does is a function of the step number**.
The learning rate (`training.schedule`), the phase (and so the data mix), and the rows of every
micro-batch (`batch_indices`) are computed from the step; the model, optimizer and RNG states come
from `accelerator.save_state`. A run killed at any moment and restarted from its last checkpoint
therefore retraces the same loss curve as a run that was never interrupted.

Only the main process writes metrics.jsonl, talks to MLflow and reports to Dagster Pipes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from contracts.progress import format_duration
from training.config import RunConfig, TrainConfig, dump_run_config, flatten, to_dict
from training.instruct.sft import open_loss_masks
from training.model import LlamaLM, flops_per_token, parameter_counts
from training.schedule import Schedule
from training.shards import ShardReader

CHECKPOINTS = "checkpoints"
COMPLETE = "COMPLETE"  # written after save_state returns: a checkpoint without it is ignored
STATE = "trainer_state.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
HF_EXPORT = "hf"

# Dense bf16 peak FLOP/s per GPU from the vendors' data sheets, matched on the device name.
GPU_PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12}


def make_schedule(config: TrainConfig) -> Schedule:
    return Schedule(
        kind=config.schedule,
        steps=config.steps,
        lr=config.lr,
        min_lr=config.min_lr,
        warmup_steps=config.warmup_steps,
        decay_fraction=config.decay_fraction,
        decay_shape=config.decay_shape,
    )


def batch_indices(*, counter: int, batch_size: int, num_rows: int, seed: int) -> np.ndarray:
    """Rows for the micro-batch starting at sample number `counter` of a shard set.

    Samples are read in epochs; each epoch is a permutation of all rows seeded by (seed, epoch),
    so any sample's row is known without replaying the ones before it.
    """
    picks = np.empty(batch_size, dtype=np.int64)
    for offset in range(batch_size):
        number = counter + offset
        epoch, position = divmod(number, num_rows)
        picks[offset] = _permutation(seed, epoch, num_rows)[position]
    return picks


_PERMUTATIONS: dict[tuple[int, int, int], np.ndarray] = {}


def _permutation(seed: int, epoch: int, rows: int) -> np.ndarray:
    key = (seed, epoch, rows)
    if key not in _PERMUTATIONS:
        if len(_PERMUTATIONS) > 4:
            _PERMUTATIONS.clear()
        _PERMUTATIONS[key] = np.random.default_rng([seed, epoch]).permutation(rows)
    return _PERMUTATIONS[key]


def measured_cpu_peak_flops(size: int = 1024, repeats: int = 12) -> float:
    """FLOP/s of an fp32 matmul on this CPU with torch's threads: the CPU 'peak' MFU is taken
    against (CPUs have no single published dense-matmul figure the way GPUs do)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm up the BLAS threads
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best


def peak_flops(config: TrainConfig, device: torch.device) -> tuple[float, str]:
    if config.peak_flops:
        return float(config.peak_flops), "recipe"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, value in GPU_PEAK_BF16.items():
            if key in name:
                return value, f"datasheet bf16 {name}"
    return measured_cpu_peak_flops(), "measured fp32 matmul"


class Mirror:
    """Keeps a local working folder in step with a remote output folder (fsspec URL).

    Local outputs need nothing; for `s3://...` the run trains in local scratch, pulls the last
    checkpoint before starting and pushes every checkpoint, so a replaced pod resumes.
    """

    def __init__(self, output_dir: str):
        self.remote = output_dir if "://" in output_dir else None
        if self.remote:
            scratch = os.environ.get("CODECOOK_SCRATCH", "/tmp/codecook-train")
            self.local = Path(scratch) / hashlib.sha256(output_dir.encode()).hexdigest()[:16]
        else:
            self.local = Path(output_dir)
        self.local.mkdir(parents=True, exist_ok=True)

    def pull(self) -> None:
        if not self.remote:
            return
        import fsspec

        fs, root = fsspec.core.url_to_fs(self.remote)
        if not fs.exists(root):
            return
        for name in (METRICS, "run.yaml"):
            if fs.exists(f"{root}/{name}"):
                fs.get_file(f"{root}/{name}", str(self.local / name))
        done = sorted(p.rsplit("/", 2)[-2] for p in fs.glob(f"{root}/{CHECKPOINTS}/*/{COMPLETE}"))
        if done:
            fs.get(
                f"{root}/{CHECKPOINTS}/{done[-1]}", str(self.local / CHECKPOINTS / done[-1]), recursive=True
            )

    def push(self, relative: str) -> None:
        if not self.remote:
            return
        import fsspec

        fs, root = fsspec.core.url_to_fs(self.remote)
        source = self.local / relative
        if source.is_dir():
            fs.put(str(source), f"{root}/{relative}", recursive=True)
        elif source.exists():
            fs.put_file(str(source), f"{root}/{relative}")


def stage_input(path: str | None, cache: Path) -> str | None:
    """A local copy of a remote shard set or tokenizer folder (memory mapping needs local files)."""
    if path is None or "://" not in path:
        return path
    import fsspec

    fs, remote = fsspec.core.url_to_fs(path)
    local = cache / remote.strip("/").replace("/", "_")
    if not (local / "_manifest.json").exists() and not (local / "tokenizer.json").exists():
        fs.get(remote, str(local), recursive=True)
    return str(local)


def latest_checkpoint(folder: Path) -> Path | None:
    done = sorted(p.parent for p in (folder / CHECKPOINTS).glob(f"*/{COMPLETE}"))
    return done[-1] if done else None


@dataclass
class Reporter:
    """Where the main process reports: stdout, metrics.jsonl, MLflow and Dagster Pipes (each optional)."""

    metrics_path: Path
    mlflow: Any = None
    pipes: Any = None
    echo: Callable[[str], None] = print

    def log(self, message: str) -> None:
        self.echo(message)
        if self.pipes is not None:
            self.pipes.log.info(message)

    def step(self, record: dict[str, Any]) -> None:
        with open(self.metrics_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def metrics(self, values: dict[str, float], step: int) -> None:
        if self.mlflow is not None:
            self.mlflow.log_metrics(values, step=step)


def _truncate_metrics(path: Path, last_step: int) -> None:
    """Drop records of steps after the checkpoint being resumed (they will be redone)."""
    if not path.exists():
        return
    kept = [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if line and json.loads(line)["step"] <= last_step
    ]
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def _start_mlflow(config: RunConfig, run_id: str | None):
    tracking = config.tracking
    if tracking.tracking_uri is None:
        return None, None
    import mlflow

    mlflow.set_tracking_uri(tracking.tracking_uri)
    if run_id is None:
        experiment = mlflow.get_experiment_by_name(tracking.experiment)
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else mlflow.create_experiment(tracking.experiment, artifact_location=tracking.artifact_location)
        )
        run = mlflow.start_run(
            experiment_id=experiment_id, run_name=tracking.run_name, tags=dict(tracking.tags)
        )
    else:
        # A resumed run continues the MLflow run it started, so one run holds the whole curve.
        run = mlflow.start_run(run_id=run_id)
    return mlflow, run


def _optimizer(model: torch.nn.Module, config: TrainConfig, fused: bool) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for parameter in model.parameters():
        if not parameter.requires_grad:
            continue
        # Matrices decay; norms' gains (1-D) do not: shrinking them toward 0 only hurts.
        (decay if parameter.ndim >= 2 else no_decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        groups, lr=config.lr, betas=(config.beta1, config.beta2), eps=config.eps, fused=fused
    )


def build_model(config: TrainConfig, vocab_size: int, seq_len: int) -> LlamaLM:
    if config.init_from:
        from training.hf_export import load_pretrained

        model = load_pretrained(config.init_from)
        if vocab_size < model.config.vocab_size:
            raise ValueError(
                f"the shards' tokenizer has {vocab_size} entries but {config.init_from} has "
                f"{model.config.vocab_size}: tokenize with the base model's tokenizer (tokenizer.from_pretrained)"
            )
        model.resize_vocab(vocab_size)
        if seq_len > model.config.max_seq_len:
            raise ValueError(
                f"seq_len {seq_len} exceeds {config.init_from}'s context {model.config.max_seq_len}"
            )
        return model
    return LlamaLM(config.model_config(vocab_size, seq_len))


def train(
    config: RunConfig,
    *,
    pipes: Any = None,
    stop_after_steps: int | None = None,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train (or resume) the run described by `config`; returns the summary written to summary.json.

    `stop_after_steps` ends this invocation after that many optimizer steps (after a checkpoint),
    as a preemption would; a later call resumes.
    """
    from accelerate import Accelerator

    train_config = config.training
    mirror = Mirror(config.output_dir)
    out = mirror.local
    cuda = torch.cuda.is_available()
    precision = train_config.mixed_precision
    if precision == "auto":
        precision = "bf16" if cuda else "no"
    if not cuda and train_config.cpu_threads:
        torch.set_num_threads(train_config.cpu_threads)
    accelerator = Accelerator(
        gradient_accumulation_steps=train_config.grad_accum, mixed_precision=precision, cpu=not cuda
    )
    main = accelerator.is_main_process
    cache = out / "inputs"
    if main:
        # One process downloads; the others find the copies after the barrier.
        mirror.pull()
        for path in (config.data.train_shards, config.data.anneal_shards, config.data.tokenizer_dir):
            stage_input(path, cache)
    accelerator.wait_for_everyone()
    train_dir = stage_input(config.data.train_shards, cache)
    anneal_dir = stage_input(config.data.anneal_shards, cache)
    tokenizer_dir = stage_input(config.data.tokenizer_dir, cache)
    reader = ShardReader(train_dir)
    # SFT shard sets (training.instruct.sft) carry a loss mask: only response tokens are targets.
    masks = open_loss_masks(train_dir)
    schedule = make_schedule(train_config)
    anneal_reader = anneal_masks = None
    if (
        anneal_dir
        and train_config.anneal
        and schedule.kind == "wsd"
        and Path(anneal_dir, "_manifest.json").exists()
    ):
        anneal_reader = ShardReader(anneal_dir)
        anneal_masks = open_loss_masks(anneal_dir)
        if (anneal_masks is None) != (masks is None):
            raise ValueError(
                "the main and the anneal shards must both be SFT sets (with loss masks) or neither"
            )
        if anneal_reader.row_len != reader.row_len:
            raise ValueError("anneal shards were packed to a different sequence length than the main shards")
    seq_len = reader.row_len - 1
    vocab_size = int(reader.manifest["vocab_size"])

    torch.manual_seed(train_config.seed)
    model = build_model(train_config, vocab_size, seq_len)
    model_config = model.config
    counts = parameter_counts(model)
    flops_token = flops_per_token(model_config, seq_len)
    if train_config.compile:
        model = torch.compile(model)
    optimizer = _optimizer(model, train_config, fused=cuda)
    model, optimizer = accelerator.prepare(model, optimizer)

    start_step, state = 0, {}
    checkpoint = latest_checkpoint(out)
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))
        state = json.loads((checkpoint / STATE).read_text(encoding="utf-8"))
        start_step = int(state["step"])
    if main:
        _truncate_metrics(out / METRICS, start_step)
        dump_run_config(config, out / "run.yaml")

    mlflow_module, run = (None, None)
    if main:
        mlflow_module, run = _start_mlflow(config, state.get("mlflow_run_id"))
    reporter = Reporter(
        out / METRICS,
        mlflow=mlflow_module if main else None,
        pipes=pipes if main else None,
        echo=echo if main else (lambda _: None),
    )
    device = accelerator.device
    peak, peak_source = peak_flops(train_config, device)
    world = accelerator.num_processes
    batch = train_config.micro_batch_size
    tokens_per_step = batch * seq_len * train_config.grad_accum * world
    if main and mlflow_module is not None and checkpoint is None:
        params = flatten({"training": to_dict(train_config)})
        params.update(flatten({"model": to_dict(model_config)}, ""))
        params.update(
            {
                "params.total": counts["total"],
                "params.matmul": counts["matmul"],
                "flops_per_token": flops_token,
                "mfu.formula": "(6*N_matmul + 12*L*D*T) * tokens/s / peak",
                "mfu.peak_flops": peak,
                "mfu.peak_source": peak_source,
                "data.train_shards": config.data.train_shards,
                "data.anneal_shards": config.data.anneal_shards if anneal_reader else None,
                "data.tokens": reader.manifest["tokens"],
                "data.fim_share": reader.manifest["fim_share"],
                "data.vocab_size": vocab_size,
                "seq_len": seq_len,
                "tokens_per_step": tokens_per_step,
                "world_size": world,
                "mixed_precision": precision,
            }
        )
        # MLflow keeps parameter values up to 6,000 characters and rejects None.
        mlflow_module.log_params({k: str(v)[:500] for k, v in params.items() if v is not None})
    reporter.log(
        f"training {counts['total'] / 1e6:.2f}M parameters ({'resumed at step ' + str(start_step) if start_step else 'new run'}"
        f"{', init ' + train_config.init_from if train_config.init_from else ''}) on {world} x {device.type}, "
        f"{tokens_per_step} tokens/step, {train_config.steps} steps, precision {precision}"
    )

    def micro_batch(step: int, micro: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        phase = schedule.phase(step)
        use_anneal = anneal_reader is not None and phase == "decay"
        source, first = (anneal_reader, schedule.decay_start) if use_anneal else (reader, 0)
        counter = (
            ((step - first) * train_config.grad_accum + micro) * world + accelerator.process_index
        ) * batch
        indices = batch_indices(
            counter=counter, batch_size=batch, num_rows=len(source), seed=train_config.seed
        )
        rows = torch.from_numpy(source.rows(indices))
        inputs, targets = rows[:, :-1], rows[:, 1:].clone()
        targets[targets == source.pad_id] = -100  # packing pad: no loss
        loss_masks = anneal_masks if use_anneal else masks
        if loss_masks is not None:
            # SFT: prompt turns and padding are context, never targets.
            targets[torch.from_numpy(loss_masks.rows(indices)[:, 1:]) == 0] = -100
        return inputs.to(device), targets.to(device), ("anneal" if use_anneal else "main")

    model.train()
    window_tokens, window_time, window_steps, window_loss = 0, 0.0, 0, 0.0
    mfu_sum, mfu_points = float(state.get("mfu_sum", 0.0)), int(state.get("mfu_points", 0))
    last_loss = state.get("last_loss")
    first_loss = state.get("first_loss")
    tokens_seen = int(state.get("tokens_seen", 0))
    step = start_step
    stop_at = (
        train_config.steps
        if stop_after_steps is None
        else min(train_config.steps, start_step + stop_after_steps)
    )
    # Wall time of this session's steps (checkpoints included): the ETA of the step lines.
    session_started = time.perf_counter()
    while step < stop_at:
        started = time.perf_counter()
        cpu_started = time.process_time()
        lr = schedule.lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        step_loss = torch.zeros((), device=device)
        mix = "main"
        for micro in range(train_config.grad_accum):
            inputs, targets, mix = micro_batch(step, micro)
            with accelerator.accumulate(model):
                _, loss = model(inputs, targets)
                accelerator.backward(loss)
                if accelerator.sync_gradients and train_config.grad_clip > 0:
                    accelerator.clip_grad_norm_(model.parameters(), train_config.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            step_loss += loss.detach() / train_config.grad_accum
        loss_value = float(accelerator.reduce(step_loss, reduction="mean").item())
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"loss became {loss_value} at step {step + 1}")
        elapsed = time.perf_counter() - started
        # CPU seconds of this process: steadier than wall time when other jobs share the machine.
        cpu_elapsed = time.process_time() - cpu_started
        step += 1
        tokens_seen += tokens_per_step
        first_loss = loss_value if first_loss is None else first_loss
        last_loss = loss_value
        window_tokens += tokens_per_step
        window_time += elapsed
        window_steps += 1
        window_loss += loss_value
        if main:
            reporter.step(
                {
                    "step": step,
                    "loss": loss_value,
                    "lr": lr,
                    "phase": schedule.phase(step - 1),
                    "mix": mix,
                    "seconds": elapsed,
                    "cpu_seconds": cpu_elapsed,
                }
            )
        if step % train_config.log_every == 0 or step == stop_at:
            tokens_per_s = window_tokens / max(window_time, 1e-9)
            # MFU = achieved model FLOP/s / peak FLOP/s, with model FLOPs per token from
            # flops_per_token(): 6 * N_matmul + 12 * L * D * T (PaLM, appendix B).
            mfu = tokens_per_s * flops_token / (peak * world)
            mfu_sum, mfu_points = mfu_sum + mfu, mfu_points + 1
            reporter.metrics(
                {
                    "loss": window_loss / window_steps,
                    "lr": lr,
                    "tokens_per_s": tokens_per_s,
                    "mfu": mfu,
                    "tokens_seen": tokens_seen,
                    "annealing": float(mix == "anneal"),
                },
                step,
            )
            per_step = (time.perf_counter() - session_started) / (step - start_step)
            reporter.log(
                f"step {step}/{train_config.steps} loss {window_loss / window_steps:.4f} lr {lr:.2e} "
                f"{tokens_per_s:,.0f} tok/s MFU {mfu:.2%} [{schedule.phase(step - 1)}, {mix} mix] "
                f"{1 / per_step:.2f} steps/s ETA {format_duration(per_step * (stop_at - step))}"
            )
            window_tokens, window_time, window_steps, window_loss = 0, 0.0, 0, 0.0
        if step % train_config.checkpoint_every == 0 or step == stop_at:
            _save_checkpoint(
                accelerator, out, mirror, reporter, train_config, step,
                {
                    "step": step, "tokens_seen": tokens_seen, "first_loss": first_loss, "last_loss": last_loss,
                    "mfu_sum": mfu_sum, "mfu_points": mfu_points,
                    "mlflow_run_id": run.info.run_id if run is not None else state.get("mlflow_run_id"),
                },
            )  # fmt: skip

    summary: dict[str, Any] = {
        "steps": step,
        "finished": step >= train_config.steps,
        "tokens": tokens_seen,
        "first_loss": first_loss,
        "final_loss": last_loss,
        "mfu": mfu_sum / max(1, mfu_points),
        "mfu_formula": "(6*N_matmul + 12*L*D*T) * tokens_per_s / peak_flops",
        "peak_flops": peak,
        "peak_source": peak_source,
        "flops_per_token": flops_token,
        "params": counts["total"],
        "preset": train_config.preset
        if not train_config.init_from
        else f"init_from:{train_config.init_from}",
        "mlflow_run_id": run.info.run_id if run is not None else state.get("mlflow_run_id"),
        "output_dir": config.output_dir,
    }
    if step >= train_config.steps and main:
        hf_dir = _export(accelerator, model, out, tokenizer_dir, reader)
        mirror.push(HF_EXPORT)
        summary["hf_model_dir"] = f"{config.output_dir}/{HF_EXPORT}"
        summary["tokenizer_dir"] = f"{config.output_dir}/{HF_EXPORT}"
        if mlflow_module is not None:
            mlflow_module.log_metrics({"final_loss": last_loss, "mfu_mean": summary["mfu"]}, step=step)
            mlflow_module.log_artifacts(str(hf_dir), artifact_path="hf_model")
            mlflow_module.log_artifact(str(out / METRICS))
            mlflow_module.log_artifact(str(out / "run.yaml"))
    if main:
        (out / SUMMARY).write_text(json.dumps(summary, indent=2), encoding="utf-8")
        mirror.push(SUMMARY)
        if mlflow_module is not None:
            # A run stopped early stays open in MLflow's eyes: the resumed run continues it.
            mlflow_module.end_run(status="FINISHED" if summary["finished"] else "RUNNING")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return summary


def _save_checkpoint(
    accelerator, out: Path, mirror: Mirror, reporter: Reporter, config: TrainConfig, step: int, state: dict
) -> None:
    folder = out / CHECKPOINTS / f"step-{step:08d}"
    if folder.exists() and accelerator.is_main_process:
        shutil.rmtree(folder)  # an incomplete leftover of a killed save
    accelerator.wait_for_everyone()
    accelerator.save_state(str(folder))
    if accelerator.is_main_process:
        (folder / STATE).write_text(json.dumps(state, indent=2), encoding="utf-8")
        (folder / COMPLETE).write_text("", encoding="utf-8")
        mirror.push(f"{CHECKPOINTS}/{folder.name}")
        mirror.push(METRICS)
        done = sorted(p.parent for p in (out / CHECKPOINTS).glob(f"*/{COMPLETE}"))
        for old in done[: -max(1, config.keep_checkpoints)]:
            shutil.rmtree(old, ignore_errors=True)
        if reporter.mlflow is not None and config.log_checkpoint_artifacts:
            reporter.mlflow.log_artifacts(str(folder), artifact_path=f"checkpoints/{folder.name}")
        reporter.log(f"checkpoint saved: {folder}")
    accelerator.wait_for_everyone()


def _export(accelerator, model, out: Path, tokenizer_dir: str, reader: ShardReader) -> Path:
    from training.hf_export import export_hf

    unwrapped = accelerator.unwrap_model(model)
    unwrapped = getattr(unwrapped, "_orig_mod", unwrapped)  # torch.compile wrapper
    return export_hf(
        unwrapped, out / HF_EXPORT, tokenizer_dir=tokenizer_dir, eos_id=reader.eos_id, pad_id=reader.pad_id
    )
