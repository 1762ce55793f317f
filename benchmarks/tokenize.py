"""Shard pipeline throughput against raw `encode_batch` on the same text, in the same run.

    .venv/bin/python -m benchmarks.tokenize [--mb 24] [--vocab 8192] [--repeats 3]

The corpus is the standard library's Python files, written as a stage output (Parquet + manifest)
exactly as the data stages leave `code_mix`. Then, interleaved and repeated:

  raw        Tokenizer.encode_batch(all contents), the tokenizer's own thread pool on every core
  raw_fast   Tokenizer.encode_batch_fast (no offsets): the call the pipeline itself uses
  raw_serial encode_batch with the tokenizer's thread pool off: one core (per-core baseline)
  pipeline   training.shards.build_shard_set with one worker process per core: Parquet reading,
             metadata prefixes, FIM, encoding, EOS, packing, uint16 shard files, sha256, manifest

Every measurement starts from a fresh tokenizer (a cold BPE cache, as each pipeline worker has).
Throughput is MB of document text per second divided by the cores used, and MB per CPU-second
(this process's threads plus the pipeline's worker processes), which other jobs on a shared machine
disturb far less; the goal is a pipeline overhead of at most 20% against `raw`.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder heads sys.path and this module would shadow the standard
# library's `tokenize` (which linecache, inspect and pandas import): take the folder out first.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=24.0, help="Megabytes of stdlib source to tokenize.")
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    from tokenizers import Tokenizer

    from tests._training_data import stdlib_documents, write_stage_output
    from training.shards import InputStage, SampleSettings, build_shard_set
    from training.tokenizer import save_tokenizer, train_bpe

    work = Path(tempfile.mkdtemp(prefix="bench-tokenize-"))
    try:
        documents, total = [], 0
        for doc in stdlib_documents(100_000, max_bytes=400_000):
            documents.append(doc)
            total += doc["size_bytes"]
            if total >= args.mb * 1e6:
                break
        write_stage_output(work, "code_mix", documents, files=4)
        texts = [d["content"] for d in documents]
        megabytes = sum(len(t.encode()) for t in texts) / 1e6
        tokenizer = train_bpe(texts[: max(1, len(texts) // 4)], vocab_size=args.vocab)
        save_tokenizer(tokenizer, work / "tok")
        serialized = tokenizer.to_str()
        cores = os.cpu_count() or 1
        print(f"corpus: {len(texts)} stdlib files, {megabytes:.1f} MB; vocab {args.vocab}; {cores} cores; "
              f"pipeline workers {args.workers}")  # fmt: skip

        settings = SampleSettings(
            seed=1, fim_rate=0.5, spm_rate=0.5, metadata_rate=0.2, seq_len=2048, batch_docs=512
        )
        stage = [InputStage("code_mix", str(work / "data/code_mix"))]
        per_shard = -(-len(texts) // (args.workers * 2))  # two shards per worker balance the load

        def clock(work_fn) -> tuple[float, float]:
            """Wall seconds and CPU seconds (this process's threads plus finished child processes)."""
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            started, cpu_started = time.perf_counter(), time.process_time()
            work_fn()
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu += (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
            return wall, cpu

        def raw() -> tuple[float, float]:
            fresh = Tokenizer.from_str(serialized)
            return clock(lambda: fresh.encode_batch(texts, add_special_tokens=False))

        def raw_fast() -> tuple[float, float]:
            fresh = Tokenizer.from_str(serialized)
            return clock(lambda: fresh.encode_batch_fast(texts, add_special_tokens=False))

        def raw_serial() -> tuple[float, float]:
            # The same call with the tokenizer's thread pool off: one core, no shared BPE cache.
            fresh = Tokenizer.from_str(serialized)
            os.environ["TOKENIZERS_PARALLELISM"] = "false"
            try:
                return clock(lambda: fresh.encode_batch(texts, add_special_tokens=False))
            finally:
                os.environ.pop("TOKENIZERS_PARALLELISM")

        def pipeline() -> tuple[float, float]:
            target = work / "shards"
            shutil.rmtree(target, ignore_errors=True)
            return clock(
                lambda: build_shard_set(stage, tokenizer_dir=str(work / "tok"), settings=settings,
                                        target_dir=str(target), docs_per_shard=per_shard, workers=args.workers)
            )  # fmt: skip

        names = ("raw", "raw_fast", "raw_serial", "pipeline")
        walls: dict[str, list[float]] = {name: [] for name in names}
        cpus: dict[str, list[float]] = {name: [] for name in names}
        runners = {"raw": raw, "raw_fast": raw_fast, "raw_serial": raw_serial, "pipeline": pipeline}
        for _ in range(args.repeats):
            for name in names:
                wall, cpu = runners[name]()
                walls[name].append(wall)
                cpus[name].append(cpu)
        used = {"raw": cores, "raw_fast": cores, "raw_serial": 1, "pipeline": min(cores, args.workers)}
        per_core = {name: megabytes / statistics.median(walls[name]) / used[name] for name in names}
        per_cpu_second = {name: megabytes / statistics.median(cpus[name]) for name in names}
        for name in names:
            print(f"  {name:<10} wall median {statistics.median(walls[name]):6.2f} s -> {per_core[name]:.2f} MB/s per core;"
                  f"  CPU median {statistics.median(cpus[name]):6.2f} s -> {per_cpu_second[name]:.2f} MB per CPU-second")  # fmt: skip
        print("pipeline overhead, per core of wall time (assumes every core was ours) / per CPU-second:")
        for name in ("raw", "raw_fast", "raw_serial"):
            print(f"  vs {name:<10} {per_core[name] / per_core['pipeline'] - 1:+7.1%} / "
                  f"{per_cpu_second[name] / per_cpu_second['pipeline'] - 1:+7.1%}   (goal <= +20%)")  # fmt: skip
        print(
            f"load average at the end: {os.getloadavg()[0]:.1f} (other work on the machine skews wall time)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
