"""Our training loop against a bare torch loop (same model, batches, optimizer), and MFU's FLOPs.

    .venv/bin/python -m benchmarks.train [--steps 30] [--preset tiny] [--batch 8] [--seq 256]

Part 1, tokens/s on CPU, interleaved and repeated in one run:
  bare   a plain loop: rows gathered from the same memory-mapped shards, forward, backward,
         gradient clipping, AdamW step; learning rate set by hand
  ours   training.loop.train: accelerate (prepare, accumulate, backward, clip), schedule, the
         (step -> rows) data order, loss reduction, metrics.jsonl; MLflow off, no checkpoint inside
         the timed steps (the per-step wall time is recorded by the loop itself)
Both skip the first steps (warm-up); each repeat gives the median step, by wall time and by the
process's CPU time (steadier when other jobs share the machine); the figure is the median over
repeats. Goal: ours at most 5% slower.

Part 2, the FLOPs behind MFU: `flops_per_token` (6 N + 12 L D T, PaLM appendix B) against a count
by hand of every matmul, and against torch's FlopCounterMode on a real forward + backward.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder heads sys.path, and benchmarks/tokenize.py there would shadow
# the standard library's `tokenize` (linecache needs it): take the folder out first.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402


def build_shards(work: Path, vocab: int, seq: int) -> dict[str, str]:
    from tests._training_data import stdlib_documents, write_stage_output
    from training.config import TokenizerConfig
    from training.shards import iter_texts, resolve_inputs, write_token_shards
    from training.tokenizer import save_tokenizer, train_bpe

    write_stage_output(work, "code_mix", stdlib_documents(400, max_bytes=40_000))
    dirs = {"code_mix": str(work / "data/code_mix"), "code_web_pages": str(work / "x")}
    config = TokenizerConfig(vocab_size=vocab, seq_len=seq, docs_per_shard=1000, workers=1)
    stages, _ = resolve_inputs(config.main_mix, dirs, warn=lambda _: None)
    save_tokenizer(train_bpe(iter_texts(stages, 4_000_000), vocab_size=vocab), work / "tok")
    write_token_shards(config=config, stage_dirs=dirs, tokenizer_dir=str(work / "tok"), output_dir=str(work / "shards"),
                       log=lambda _: None)  # fmt: skip
    return {"train": str(work / "shards/main"), "tokenizer": str(work / "tok")}


def bare_loop(train_config, reader, steps: int) -> tuple[list[float], list[float]]:
    """The reference: the same model, init, rows and optimizer, nothing else."""
    import torch

    from training.loop import batch_indices, make_schedule
    from training.model import LlamaLM

    torch.manual_seed(train_config.seed)
    model = LlamaLM(train_config.model_config(int(reader.manifest["vocab_size"]), reader.row_len - 1))
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": train_config.weight_decay}, {"params": rest, "weight_decay": 0.0}],
        lr=train_config.lr, betas=(train_config.beta1, train_config.beta2),
    )  # fmt: skip
    schedule = make_schedule(train_config)
    batch = train_config.micro_batch_size
    seconds, cpu_seconds = [], []
    for step in range(steps):
        started, cpu_started = time.perf_counter(), time.process_time()
        rows = torch.from_numpy(reader.rows(batch_indices(counter=step * batch, batch_size=batch,
                                                          num_rows=len(reader), seed=train_config.seed)))  # fmt: skip
        for group in optimizer.param_groups:
            group["lr"] = schedule.lr_at(step)
        _, loss = model(rows[:, :-1], rows[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train_config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()
        seconds.append(time.perf_counter() - started)
        cpu_seconds.append(time.process_time() - cpu_started)
    return seconds, cpu_seconds


def our_loop(run_config, steps: int) -> tuple[list[float], list[float]]:
    from training.loop import train

    shutil.rmtree(run_config.output_dir, ignore_errors=True)
    train(run_config, echo=lambda _: None)
    records = [
        json.loads(line) for line in Path(run_config.output_dir, "metrics.jsonl").read_text().splitlines()
    ]
    assert len(records) == steps
    return [r["seconds"] for r in records], [r["cpu_seconds"] for r in records]


def flops_check(config, seq: int, batch: int) -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from training.model import LlamaLM, flops_per_token

    d, f, v, layers = config.dim, config.ffn_dim, config.vocab_size, config.n_layers
    q, kv = config.n_heads * config.head_dim, config.kv_heads * config.head_dim
    # By hand, per token, forward: 2 FLOPs per multiply-add of every projection; attention's scores
    # and weighted sum take 2 * T * q each (full T x T, as the formula counts); backward doubles.
    linear = layers * (d * q + 2 * d * kv + q * d + 3 * d * f) + d * v
    attention = layers * 2 * 2 * seq * q
    by_hand = 3 * (2 * linear + attention)
    formula = flops_per_token(config, seq)
    model = LlamaLM(config)
    ids = torch.randint(0, v, (batch, seq))
    from torch.nn.attention import SDPBackend, sdpa_kernel

    # The math backend spells attention out as matmuls, which the counter sees; the fused CPU
    # kernel is invisible to it (it would report only the 6 N part).
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        _, loss = model(ids, ids)
        loss.backward()
    counted = counter.get_total_flops() / (batch * seq)
    print(f"FLOPs per token, {seq}-token context: formula 6N+12LDT = {formula / 1e6:.3f} M, "
          f"by hand = {by_hand / 1e6:.3f} M (ratio {formula / by_hand:.4f}), "
          f"torch FlopCounterMode fwd+bwd = {counted / 1e6:.3f} M (ratio {formula / counted:.4f})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5, help="First steps left out of the timing.")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default).")
    args = parser.parse_args()

    import torch

    from training.config import DataPaths, RunConfig, TrackingConfig, TrainConfig
    from training.shards import ShardReader

    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}"
    )
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    try:
        paths = build_shards(work, args.vocab, args.seq)
        reader = ShardReader(paths["train"])
        train_config = TrainConfig(
            preset=args.preset, steps=args.steps, micro_batch_size=args.batch, warmup_steps=5,
            checkpoint_every=10 * args.steps, log_every=args.steps, cpu_threads=args.threads,
            log_checkpoint_artifacts=False, anneal=False,
        )  # fmt: skip
        run_config = RunConfig(
            training=train_config,
            data=DataPaths(train_shards=paths["train"], tokenizer_dir=paths["tokenizer"]),
            output_dir=str(work / "run"),
            tracking=TrackingConfig(tracking_uri=None),
        )
        model_config = train_config.model_config(args.vocab, args.seq)
        tokens_per_step = args.batch * args.seq
        # Per repeat: the median step of each loop, by wall time and by this process's CPU time.
        # On a machine other jobs share, wall time swings with their load; CPU time much less.
        medians: dict[str, list[float]] = {"bare": [], "ours": [], "bare_cpu": [], "ours_cpu": []}
        for repeat in range(args.repeats):
            wall, cpu = bare_loop(train_config, reader, args.steps)
            medians["bare"].append(statistics.median(wall[args.warmup :]))
            medians["bare_cpu"].append(statistics.median(cpu[args.warmup :]))
            wall, cpu = our_loop(replace(run_config, output_dir=str(work / f"run{repeat}")), args.steps)
            medians["ours"].append(statistics.median(wall[args.warmup :]))
            medians["ours_cpu"].append(statistics.median(cpu[args.warmup :]))
            print(f"  repeat {repeat + 1}: wall bare {tokens_per_step / medians['bare'][-1]:,.0f} tok/s, "
                  f"ours {tokens_per_step / medians['ours'][-1]:,.0f} tok/s; CPU time bare "
                  f"{tokens_per_step / medians['bare_cpu'][-1]:,.0f} tok/s, ours {tokens_per_step / medians['ours_cpu'][-1]:,.0f} tok/s")  # fmt: skip
        rate = {name: tokens_per_step / statistics.median(values) for name, values in medians.items()}
        print(f"{args.preset} ({model_config.dim}d x {model_config.n_layers}L, vocab {args.vocab}), batch {args.batch} x "
              f"{args.seq}, median of {args.repeats} repeats:")  # fmt: skip
        print(f"  wall time: bare torch {rate['bare']:,.0f} tok/s, our loop {rate['ours']:,.0f} tok/s -> ours is "
              f"{1 - rate['ours'] / rate['bare']:+.1%} slower (goal <= 5%)")  # fmt: skip
        print(f"  CPU time:  bare torch {rate['bare_cpu']:,.0f} tok/s, our loop {rate['ours_cpu']:,.0f} tok/s -> ours is "
              f"{1 - rate['ours_cpu'] / rate['bare_cpu']:+.1%} slower (goal <= 5%)")  # fmt: skip
        print(f"  load average now {os.getloadavg()[0]:.1f}")
        flops_check(replace(model_config, vocab_size=args.vocab), args.seq, 2)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
