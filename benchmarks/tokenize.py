"""Shard pipeline throughput against raw `encode_batch` on the same text, in the same run.

    .venv/bin/python benchmarks/tokenize.py [--mb 24] [--vocab 8192] [--repeats 3]

The corpus is the standard library's Python files, written as a stage output (Parquet + manifest)
exactly as the data stages leave `code_mix`. Then, interleaved and repeated:

  raw        Tokenizer.encode_batch(all contents), the tokenizer's own thread pool on every core
  raw_fast   Tokenizer.encode_batch_fast (no offsets): the call the pipeline itself uses
  raw_serial encode_batch with the tokenizer's thread pool off: one core (per-core baseline)
  pipeline   training.shards.build_shard_set with one worker process per core: Parquet reading,
             metadata prefixes, FIM, encoding, EOS, packing, uint16 shard files, sha256, manifest

Every measurement starts from a fresh tokenizer (a cold BPE cache, as each pipeline worker has).
Throughput is MB of document text per second, divided by the cores used; the goal is a pipeline
overhead of at most 20% against `raw`.
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

        def raw() -> float:
            fresh = Tokenizer.from_str(serialized)
            started = time.perf_counter()
            fresh.encode_batch(texts, add_special_tokens=False)
            return time.perf_counter() - started

        def raw_fast() -> float:
            fresh = Tokenizer.from_str(serialized)
            started = time.perf_counter()
            fresh.encode_batch_fast(texts, add_special_tokens=False)
            return time.perf_counter() - started

        def raw_serial() -> float:
            # The same call with the tokenizer's thread pool off: one core, no shared BPE cache.
            fresh = Tokenizer.from_str(serialized)
            os.environ["TOKENIZERS_PARALLELISM"] = "false"
            try:
                started = time.perf_counter()
                fresh.encode_batch(texts, add_special_tokens=False)
                return time.perf_counter() - started
            finally:
                os.environ.pop("TOKENIZERS_PARALLELISM")

        def pipeline() -> float:
            target = work / "shards"
            shutil.rmtree(target, ignore_errors=True)
            started = time.perf_counter()
            build_shard_set(stage, tokenizer_dir=str(work / "tok"), settings=settings, target_dir=str(target),
                            docs_per_shard=per_shard, workers=args.workers)  # fmt: skip
            return time.perf_counter() - started

        timings: dict[str, list[float]] = {"raw": [], "raw_fast": [], "raw_serial": [], "pipeline": []}
        for _ in range(args.repeats):
            for name, run in (
                ("raw", raw),
                ("raw_fast", raw_fast),
                ("raw_serial", raw_serial),
                ("pipeline", pipeline),
            ):
                timings[name].append(run())
        used = {"raw": cores, "raw_fast": cores, "raw_serial": 1, "pipeline": min(cores, args.workers)}
        rates = {name: megabytes / statistics.median(values) / used[name] for name, values in timings.items()}
        for name, values in timings.items():
            print(f"  {name:<9} median {statistics.median(values):6.2f} s  ({', '.join(f'{v:.2f}' for v in values)})"
                  f"  -> {rates[name]:.2f} MB/s per core")  # fmt: skip
        overhead = rates["raw"] / rates["pipeline"] - 1
        print(f"pipeline overhead vs raw encode_batch: {overhead:+.1%} (goal <= +20%)")
        print(f"pipeline overhead vs raw encode_batch_fast: {rates['raw_fast'] / rates['pipeline'] - 1:+.1%}")
        print(
            f"pipeline overhead vs single-threaded encode_batch: {rates['raw_serial'] / rates['pipeline'] - 1:+.1%}"
        )
        print(
            f"load average at the end: {os.getloadavg()[0]:.1f} (other work on the machine skews every figure)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
