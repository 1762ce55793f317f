"""Near dedup measured against exact Jaccard, and against datasketch on the same data.

    .venv/bin/python benchmarks/dedup.py                 # 1x, 4x, 16x; ~10-20 minutes on 2 cores
    .venv/bin/python benchmarks/dedup.py --scales 1      # quick look

The corpus is real code from this machine with a known truth:
  * the standard library's top-level modules of every Python under ~/.pyenv (2.7 to 3.13), i.e. the
    same modules in up to nine versions (falls back to this interpreter's stdlib alone);
  * vendored copies of the same packages (packaging, idna, tomli, platformdirs, requests, ...)
    inside pip, setuptools, pkg_resources and wheel of every environment found;
  * mutated copies (lines dropped or duplicated, identifiers renamed) of a fifth of the files.
Byte-identical files are dropped first (exact dedup is not what is measured here). For 4x and 16x
every document gets 3 or 15 further mutated copies.

The truth is the exact Jaccard of every pair of documents on the same token 5-gram shingles
(a sparse documents x shingles matrix multiplied by its transpose: exact, all pairs), leaving out
documents under `min_tokens` tokens, which near dedup leaves to exact dedup by design.

Printed, in one run, for codecook (Spark, `quality.dedup.engine.near_dedup`) and for datasketch
(MinHash.generator + MinHashLSH with the same bands x rows + union-find in Python, one process):
  * recall: share of pairs with J >= 0.7 / 0.8 / 0.9 that end in the same cluster, and the share
    of which at most one document survives ("one_survives");
  * removal precision: share of removed documents with a kept document at J >= 0.5;
  * docs/s over the dedup itself (from a started session to every decision on the driver), Spark
    start-up (the session alone) reported separately. codecook runs twice, each in a child of its
    own: `codecook` in a fresh session, which pays for its JVM's first planning and code
    generation and for starting its Python workers inside the dedup time; and
    `codecook-shared-session` in a session that has already run the stage once on 200 other
    documents, as the session of a pipeline run, or the one Spark Connect server of
    `codecook ui`, has when dedup's turn comes;
  * cpu_s: CPU seconds of the child's whole process tree, start-up, dedup and (codecook) the
    write included, and the earlier stage of the shared session: what machine load does not
    inflate;
  * peak memory: proportional set size (PSS) of the whole process tree (JVM, Python driver and
    workers), sampled every 0.2 s.
  * end to end docs/s: the same with the Spark session's start-up included (datasketch has none).
Goals (issues 3 and 13): recall >= 0.99 at J >= 0.8, removal precision >= 0.99; docs/s >= 2x
datasketch without Spark's start-up, >= 1x with it at 4x; dedup time growing linearly from 1x to
16x with bounded peak memory. `--no-shared-session` skips the shared-session child.

    .venv/bin/python -m benchmarks.dedup --compare-ref HEAD~1    # also the engine as of a commit:
                                                                 # before / after in one run
"""

# ruff: noqa: E402  (sys.path is fixed before the imports, see below)
from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this folder comes first on sys.path, where benchmarks/tokenize.py would shadow
# the standard library's tokenize module (which pandas and inspect import); the project root
# replaces it.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(PROJECT_ROOT))
# `--engine-root DIR` (a child measuring an older commit, see `--compare-ref`): that tree's
# `quality` and `contracts` packages must win over this checkout's, so it goes first, before any
# project import below.
if "--engine-root" in sys.argv:
    sys.path.insert(0, sys.argv[sys.argv.index("--engine-root") + 1])

import argparse
import glob
import json
import os
import random
import re
import subprocess
import tempfile
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from quality.dedup import minhash
from quality.dedup.config import DedupConfig
from quality.dedup.keep import keep_key
from quality.schema import content_sha256, make_doc_id

MAX_BYTES = 100_000
# `SHARED`: codecook in a session that has already run the stage once, on the first WARMUP_DOCS
# documents of the 1x corpus (as a pipeline's or `codecook ui`'s shared session has).
SHARED = "codecook-shared-session"
WARMUP_DOCS = 200
VENDORED = (
    "pip/_vendor/packaging",
    "setuptools/_vendor/packaging",
    "pkg_resources/_vendor/packaging",
    "wheel/vendored/packaging",
    "pip/_vendor/idna",
    "pip/_vendor/tomli",
    "setuptools/_vendor/tomli",
    "pip/_vendor/platformdirs",
    "setuptools/_vendor/platformdirs",
    "pip/_vendor/certifi",
    "pip/_vendor/requests",
    "pip/_vendor/cachecontrol",
    "pip/_vendor/resolvelib",
    "pip/_vendor/distro",
)
LICENCES = ("MIT", "Apache-2.0", "GPL-3.0", "PSF-2.0", None)


# --------------------------------------------------------------------------------------- corpus
def _stdlib_roots() -> list[str]:
    import sysconfig

    roots = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/*/lib/python[23].*")))
    roots = [r for r in roots if os.path.isfile(os.path.join(r, "os.py"))]
    return roots or [sysconfig.get_paths()["stdlib"]]


def _site_roots() -> list[str]:
    import sysconfig

    found = glob.glob(os.path.expanduser("~/.pyenv/versions/*/lib/python*/site-packages"))
    found += ["/usr/lib/python3/dist-packages", sysconfig.get_paths()["purelib"]]
    return sorted({r for r in found if os.path.isdir(r)})


def _version_date(path: str) -> str:
    """Newer Python, newer commit date: so the keep policy has real dates to order by."""
    match = re.search(r"python(\d)\.(\d+)", path)
    major, minor = (int(match.group(1)), int(match.group(2))) if match else (3, 11)
    return f"{2008 + (major - 2) * 6 + minor:04d}-06-01T00:00:00Z"


def mutate(text: str, rng: random.Random) -> str:
    """A fork's edits: drop and duplicate lines, rename an identifier; strength varies per copy."""
    rate = rng.uniform(0.01, 0.3)
    lines = text.split("\n")
    out: list[str] = []
    for line in lines:
        roll = rng.random()
        if roll < rate / 2:
            continue
        out.append(line)
        if roll > 1 - rate / 4:
            out.append(rng.choice(lines))
    mutated = "\n".join(out)
    names = [t for t in set(re.findall(r"\b[a-z_][a-z0-9_]{4,}\b", mutated)) if mutated.count(t) >= 3]
    if names and rng.random() < 0.6:
        old = sorted(names)[rng.randrange(len(names))]
        mutated = re.sub(rf"\b{old}\b", old + "_renamed", mutated)
    return mutated


def base_corpus(seed: int = 7) -> tuple[list[dict], dict]:
    rng = random.Random(seed)
    files: list[str] = []
    for root in _stdlib_roots():
        files += [f for f in glob.glob(f"{root}/*.py") if os.path.basename(f)[0] in "abcdefghijklm"]
    for root in _site_roots():
        for folder in VENDORED:
            files += glob.glob(f"{root}/{folder}/**/*.py", recursive=True)
    files = sorted(f for f in set(files) if 0 < os.path.getsize(f) <= MAX_BYTES)
    docs, seen = [], set()
    for path in files:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
        sha = content_sha256(text)
        if sha in seen or not text.strip():
            continue
        seen.add(sha)
        docs.append(_doc(path, text, rng))
    originals = len(docs)
    for doc in list(docs):
        if rng.random() < 0.2:
            text = mutate(doc["content"], rng)
            if content_sha256(text) not in seen:
                seen.add(content_sha256(text))
                docs.append(_doc(doc["path"] + "#fork", text, rng))
    return docs, {"files": len(files), "distinct_files": originals, "mutated_copies": len(docs) - originals}


def _doc(path: str, text: str, rng: random.Random) -> dict:
    return {
        "doc_id": make_doc_id("bench", path),
        "content": text,
        "path": path,
        "lang": "python",
        "size_bytes": len(text.encode("utf-8", "surrogatepass")),
        "sha256": content_sha256(text),
        "stars": None if rng.random() < 0.1 else rng.randrange(0, 2000),
        "commit_date": _version_date(path),
        "licence": rng.choice(LICENCES),
    }


def scaled(docs: list[dict], factor: int, seed: int = 11) -> list[dict]:
    """The corpus with factor - 1 more mutated copies of every document."""
    rng = random.Random(seed)
    out, seen = list(docs), {d["sha256"] for d in docs}
    for copy in range(1, factor):
        for doc in docs:
            text = mutate(doc["content"], rng)
            if content_sha256(text) not in seen:  # exact copies are exact dedup's job, not measured here
                seen.add(content_sha256(text))
                out.append(_doc(f"{doc['path']}#copy{copy}", text, rng))
    return out


# ---------------------------------------------------------------------------------------- truth
def exact_similarity(docs: list[dict], shingle_size: int, min_tokens: int):
    """Sparse matrix of the exact Jaccard of every pair sharing at least one shingle (upper triangle)."""
    from scipy import sparse

    sets, tokens = [], []
    for start in range(0, len(docs), 500):
        texts = [d["content"] for d in docs[start : start + 500]]
        shingles = minhash.shingle_batch(pa.array(texts, pa.large_string()), shingle_size)
        sets += minhash.unique_shingles(shingles)
        tokens += shingles.tokens_per_doc.tolist()
    # Documents under `min_tokens` tokens are left to exact dedup by design: not part of the truth.
    sets = [s if n >= min_tokens else s[:0] for s, n in zip(sets, tokens, strict=True)]
    sizes = np.array([len(s) for s in sets], dtype=np.int64)
    values, columns = np.unique(np.concatenate(sets), return_inverse=True)
    rows = np.repeat(np.arange(len(sets)), sizes)
    matrix = sparse.csr_matrix(
        (np.ones(len(columns), dtype=np.int32), (rows, columns)), shape=(len(sets), len(values))
    )
    shared = sparse.triu(matrix @ matrix.T, k=1).tocoo()
    jaccard = shared.data / (sizes[shared.row] + sizes[shared.col] - shared.data)
    return shared.row, shared.col, jaccard


def quality(docs, truth, decisions) -> dict:
    """Recall per threshold and removal precision from (cluster_id, kept) per doc_id."""
    rows, cols, jaccard = truth
    index = {d["doc_id"]: i for i, d in enumerate(docs)}
    cluster = np.empty(len(docs), dtype=object)
    kept = np.zeros(len(docs), dtype=bool)
    for doc_id, (cluster_id, is_kept) in decisions.items():
        cluster[index[doc_id]] = cluster_id
        kept[index[doc_id]] = is_kept
    same = cluster[rows] == cluster[cols]
    # A pair is deduplicated when at most one of its two documents survives.
    not_both = ~(kept[rows] & kept[cols])
    report = {}
    for threshold in (0.7, 0.8, 0.9):
        mask = jaccard >= threshold
        report[f"pairs_J>={threshold}"] = int(mask.sum())
        report[f"recall_J>={threshold}"] = float(same[mask].mean()) if mask.any() else float("nan")
        report[f"one_survives_J>={threshold}"] = float(not_both[mask].mean()) if mask.any() else float("nan")
    removed = ~kept
    twin = np.zeros(len(docs), dtype=bool)
    close = jaccard >= 0.5
    np.logical_or.at(twin, rows[close & kept[cols]], True)
    np.logical_or.at(twin, cols[close & kept[rows]], True)
    report["removed"] = int(removed.sum())
    report["removal_precision"] = float(twin[removed].mean()) if removed.any() else float("nan")
    # The empirical S-curve: share of pairs in the same cluster, per Jaccard bin.
    bins = np.arange(0.3, 1.01, 0.1)
    curve = []
    for low in bins[:-1]:
        mask = (jaccard >= low) & (jaccard < low + 0.1 if low < 0.85 else jaccard <= 1.0)
        if mask.any():
            curve.append((round(float(low), 1), int(mask.sum()), round(float(same[mask].mean()), 4)))
    report["same_cluster_by_jaccard"] = curve
    return report


def single_core_signatures(docs: list[dict], config: DedupConfig) -> dict:
    """CPU seconds (this process, one core) to sign the same documents both ways: load-independent."""
    from datasketch import MinHash

    lsh = config.lsh()
    texts = [d["content"] for d in docs]
    started = time.process_time()
    for start in range(0, len(texts), 500):
        shingles = minhash.shingle_batch(
            pa.array(texts[start : start + 500], pa.large_string()), config.shingle_size
        )
        signature = minhash.signatures(shingles, config.num_perm, config.seed)
        minhash.band_keys(signature, lsh.num_bands, lsh.rows_per_band)
    ours = time.process_time() - started
    separator, size = re.compile(r"[^\w]+"), config.shingle_size
    started = time.process_time()
    for text in texts:
        tokens = [t for t in separator.split(text) if t]
        grams = {" ".join(tokens[i : i + size]).encode() for i in range(len(tokens) - size + 1)}
        MinHash(num_perm=config.num_perm, seed=config.seed).update_batch(list(grams))
    theirs = time.process_time() - started
    megabytes = sum(d["size_bytes"] for d in docs) / 1e6
    return {
        "codecook_MB_per_cpu_s": megabytes / ours,
        "datasketch_MB_per_cpu_s": megabytes / theirs,
        "ratio": theirs / ours,
    }


# ------------------------------------------------------------------------------------ children
def child_codecook(args) -> dict:
    """The engine as a stage runs it: a session, near_dedup, decisions back on the driver.

    `startup_s` is the session alone (JVM launch and SparkContext). With `--warmup FILE` the
    session first runs the same stage on that small corpus (`warmup_s`, not counted anywhere),
    as a session shared by a pipeline's stages or by `codecook ui` has when it reaches dedup:
    Python workers up, the JVM's code compiled. Everything after that, the first jobs' planning
    included (and, without a warm-up, the Python workers' start), counts as dedup time."""
    started = time.perf_counter()
    from quality.dedup.engine import near_dedup
    from quality.recipe import SparkConfig
    from quality.spark_session import build_spark_session
    from quality.storage import StorageLayout, write_stage

    spark = build_spark_session(
        SparkConfig(
            master=args.master,
            driver_memory="4g",
            shuffle_partitions=8,
            conf={"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false"},
        ),
        app_name="codecook-bench",
    )
    spark.sparkContext.setLogLevel("ERROR")
    config = _config(args)
    startup = time.perf_counter() - started
    warmup = 0.0
    if args.warmup:
        began = time.perf_counter()
        earlier = near_dedup(spark.read.parquet(args.warmup), config, log=lambda _: None)
        earlier.kept.select("doc_id", "cluster_id").toArrow()
        earlier.rejected.select("doc_id", "cluster_id").toArrow()
        earlier.release()
        warmup = time.perf_counter() - began
    begin = time.perf_counter()
    result = near_dedup(spark.read.parquet(args.input), config, log=lambda _: None)
    decisions = {
        r["doc_id"]: (r["cluster_id"], True)
        for r in result.kept.select("doc_id", "cluster_id").toArrow().to_pylist()
    }
    decisions.update(
        {
            r["doc_id"]: (r["cluster_id"], False)
            for r in result.rejected.select("doc_id", "cluster_id").toArrow().to_pylist()
        }
    )
    dedup_seconds = time.perf_counter() - begin
    begin = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        write_stage(
            result.kept,
            result.rejected,
            paths=StorageLayout(scratch).stage("near_dedup"),
            rows_in=result.rows_in,
            recipe_hash="bench",
        )
    write_seconds = time.perf_counter() - begin
    result.release()
    spark.stop()
    return {
        "startup_s": startup,
        "warmup_s": warmup,
        "dedup_s": dedup_seconds,
        "write_s": write_seconds,
        "decisions": decisions,
        "rounds": result.facts["component_rounds"],
        "components_on": result.facts.get("components_computed_on", "spark"),
        "removed_below_min_jaccard": result.facts["removed_below_min_jaccard"],
        "kept_in_components": result.facts["kept_in_components"],
        "capped_buckets": result.facts["capped_buckets"],
        "largest_bucket": result.facts["largest_bucket"],
    }


def child_datasketch(args) -> dict:
    from datasketch import MinHash, MinHashLSH

    config = _config(args)
    lsh_params = config.lsh()
    size = config.shingle_size
    begin = time.perf_counter()
    separator = re.compile(r"[^\w]+")

    def shingles(text: str) -> list[bytes]:
        tokens = [t for t in separator.split(text) if t]
        if len(tokens) < config.min_tokens:
            return []
        return list({" ".join(tokens[i : i + size]).encode() for i in range(len(tokens) - size + 1)})

    lsh = MinHashLSH(num_perm=config.num_perm, params=(lsh_params.num_bands, lsh_params.rows_per_band))
    signatures, slim = {}, []
    # Streamed from the Parquet file like codecook reads it: one batch, one document's shingles at a time.
    for batch in pq.ParquetFile(args.input).iter_batches(batch_size=500):
        rows = batch.to_pylist()
        grams = (shingles(row["content"]) for row in rows)
        hashed = MinHash.generator(grams, num_perm=config.num_perm, seed=config.seed)
        for row, signature in zip(rows, hashed, strict=True):
            slim.append({k: v for k, v in row.items() if k != "content"})
            if not signature.is_empty():
                signatures[row["doc_id"]] = signature
                lsh.insert(row["doc_id"], signature)
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for doc_id, signature in signatures.items():
        for other in lsh.query(signature):
            a, b = find(doc_id), find(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
    members: dict[str, list[dict]] = {}
    for row in slim:
        members.setdefault(find(row["doc_id"]), []).append(row)
    decisions = {}
    for root, rows in members.items():
        winner = min(rows, key=lambda r: keep_key(r, config.permissive_licences))["doc_id"]
        for row in rows:
            decisions[row["doc_id"]] = (root, row["doc_id"] == winner)
    return {"startup_s": 0.0, "dedup_s": time.perf_counter() - begin, "write_s": 0.0, "decisions": decisions}


def _config(args) -> DedupConfig:
    return DedupConfig(num_bands=args.bands, rows_per_band=args.rows, verify=args.verify)


class PeakMemory:
    """Peak PSS of a process and all its descendants, and the CPU seconds they used, sampled in a
    thread. CPU: the last user + system time seen of each process (by pid and start time); a
    process's last interval before it exits (under 0.2 s) is missed, so the figure is a floor."""

    def __init__(self, pid: int, interval: float = 0.2):
        import psutil

        self.process, self.interval, self.peak = psutil.Process(pid), interval, 0
        self._cpu: dict[tuple[int, float], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> int:
        import psutil

        total = 0
        for proc in [self.process, *self.process.children(recursive=True)]:
            try:
                total += proc.memory_full_info().pss
                times = proc.cpu_times()
                self._cpu[(proc.pid, proc.create_time())] = times.user + times.system
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self._sample())
            except Exception:  # noqa: BLE001  (the process may exit between two samples)
                pass
            self._stop.wait(self.interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak

    @property
    def cpu_seconds(self) -> float:
        return sum(self._cpu.values())


def run_child(
    kind: str,
    parquet: Path,
    args,
    engine_root: Path | None = None,
    label: str | None = None,
    warmup: Path | None = None,
) -> dict:
    """One system on one corpus in a fresh process (its peak memory is the process tree's)."""
    label = label or kind
    output = parquet.with_suffix(f".{label}.json")
    command = [
        sys.executable, __file__, "--child", kind, "--input", str(parquet), "--output", str(output),
        "--bands", str(args.bands), "--rows", str(args.rows), "--master", args.master, "--workdir", str(args.workdir),
    ]  # fmt: skip
    if args.verify:
        command.append("--verify")
    if engine_root is not None:
        command += ["--engine-root", str(engine_root)]
    if warmup is not None:
        command += ["--warmup", str(warmup)]
    with open(parquet.with_suffix(f".{label}.log"), "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT)
        meter = PeakMemory(process.pid)
        code = process.wait()
        peak = meter.stop()
    if code != 0:
        raise RuntimeError(f"{label} child failed ({code}); see {parquet.with_suffix(f'.{label}.log')}")
    result = json.loads(output.read_text())
    result["decisions"] = {k: tuple(v) for k, v in result["decisions"].items()}
    result["peak_pss_mib"] = peak / 2**20
    # CPU seconds of the whole child tree (JVM, Python driver and workers): what machine load does
    # not inflate. (Not RUSAGE_CHILDREN: the JVM outlives its Python parent and is never reaped by it.)
    result["cpu_s"] = meter.cpu_seconds
    return result


def _engine_tree(ref: str, workdir: Path) -> Path:
    """The engine packages (`quality`, `contracts`) as of git commit `ref`, unpacked under workdir."""
    target = workdir / f"engine-{ref.replace('/', '_').replace('~', '-')}"
    if not target.exists():
        target.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "archive", ref, "quality", "contracts"], cwd=PROJECT_ROOT, check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


# --------------------------------------------------------------------------------------- report
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="1,4,16")
    parser.add_argument(
        "--truth-max-scale", type=int, default=4, help="Exact all-pairs Jaccard up to this scale."
    )
    parser.add_argument("--baseline-max-scale", type=int, default=16, help="Run datasketch up to this scale.")
    parser.add_argument("--bands", type=int, default=25)
    parser.add_argument("--rows", type=int, default=10)
    parser.add_argument(
        "--verify", action="store_true", help="codecook: exact-Jaccard verification of candidates."
    )
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--workdir", default=None)
    parser.add_argument(
        "--compare-ref",
        default=None,
        help="Also run codecook as of this git commit (e.g. HEAD~3), side by side: before / after.",
    )
    parser.add_argument(
        "--no-shared-session",
        action="store_true",
        help="Skip the run of codecook in a session that has already run a stage.",
    )
    parser.add_argument("--engine-root", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=("codecook", "datasketch"), help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = (child_codecook if args.child == "codecook" else child_datasketch)(args)
        Path(args.output).write_text(json.dumps(result))
        return

    args.workdir = Path(args.workdir or tempfile.mkdtemp(prefix="codecook-dedup-bench-"))
    args.workdir.mkdir(parents=True, exist_ok=True)
    config = _config(args)
    # (name, engine tree or None for this checkout, warm-up corpus or None for a fresh session)
    engines: list[tuple[str, Path | None, Path | None]] = [("codecook", None, None)]
    if not args.no_shared_session:
        engines.append((SHARED, None, args.workdir / "warmup.parquet"))
    if args.compare_ref:
        engines.append((f"codecook@{args.compare_ref}", _engine_tree(args.compare_ref, args.workdir), None))
    print(config.lsh().explain())
    print(
        f"load average at start: {os.getloadavg()}  (2 cores; other work on the machine slows every figure)"
    )
    built = time.perf_counter()
    base, composition = base_corpus()
    print(
        f"corpus 1x: {len(base)} docs, {sum(d['size_bytes'] for d in base) / 1e6:.1f} MB "
        f"({composition['files']} files found, {composition['distinct_files']} distinct, "
        f"{composition['mutated_copies']} mutated copies; {len(_stdlib_roots())} stdlib versions) "
        f"built in {time.perf_counter() - built:.0f}s"
    )
    core = single_core_signatures(base, config)
    print(
        f"single core, signatures only (CPU time, so machine load does not enter): codecook "
        f"{core['codecook_MB_per_cpu_s']:.1f} MB/cpu-s, datasketch {core['datasketch_MB_per_cpu_s']:.1f} MB/cpu-s "
        f"= {core['ratio']:.1f}x"
    )
    # The earlier stage of the shared session: the same stage on a few hundred other documents.
    pq.write_table(pa.Table.from_pylist(base[:WARMUP_DOCS]), args.workdir / "warmup.parquet")
    rows = []
    for factor in [int(s) for s in args.scales.split(",")]:
        docs = scaled(base, factor)
        parquet = args.workdir / f"corpus_{factor}x.parquet"
        pq.write_table(pa.Table.from_pylist(docs), parquet, compression="zstd")
        megabytes = sum(d["size_bytes"] for d in docs) / 1e6
        truth = None
        if factor <= args.truth_max_scale:
            began = time.perf_counter()
            truth = exact_similarity(docs, config.shingle_size, config.min_tokens)
            print(
                f"\n[{factor}x] {len(docs)} docs, {megabytes:.0f} MB; exact Jaccard of all pairs: "
                f"{len(truth[2])} pairs share a shingle, {int((truth[2] >= 0.7).sum())} at J>=0.7 "
                f"({time.perf_counter() - began:.0f}s)"
            )
        else:
            print(f"\n[{factor}x] {len(docs)} docs, {megabytes:.0f} MB; no exact truth at this scale")
        systems = [(name, "codecook", root, warm) for name, root, warm in engines]
        if factor <= args.baseline_max_scale:
            systems.append(("datasketch", "datasketch", None, None))
        for name, kind, root, warm in systems:
            label = re.sub(r"[^\w.-]+", "-", name)
            result = run_child(kind, parquet, args, engine_root=root, label=label, warmup=warm)
            end_to_end = result["startup_s"] + result["dedup_s"]
            row = {
                "scale": f"{factor}x",
                "system": name,
                "docs": len(docs),
                "MB": round(megabytes),
                "dedup_s": round(result["dedup_s"], 1),
                "docs_per_s": round(len(docs) / result["dedup_s"], 1),
                # A shared session's start was paid by the stages before: no end-to-end figure.
                "e2e_docs_per_s": None if warm else round(len(docs) / end_to_end, 1),
                "startup_s": round(result["startup_s"], 1),
                "write_s": round(result["write_s"], 1),
                "peak_pss_mib": round(result["peak_pss_mib"]),
                "cpu_s": round(result["cpu_s"], 1),
            }
            if truth is not None:
                found = quality(docs, truth, result["decisions"])
                row.update({k: (round(v, 4) if isinstance(v, float) else v) for k, v in found.items()})
            rows.append(row)
            print(json.dumps(row))
    print("\nsummary (docs_per_s: dedup alone; e2e_docs_per_s: Spark start-up included)")
    header = ["scale", "system", "docs", "docs_per_s", "e2e_docs_per_s", "dedup_s", "startup_s", "write_s",
              "cpu_s", "peak_pss_mib", "recall_J>=0.7", "recall_J>=0.8", "recall_J>=0.9", "one_survives_J>=0.8", "removed",
              "removal_precision"]  # fmt: skip
    print(" | ".join(header))
    for row in rows:
        print(" | ".join(str(row.get(h, "-")) for h in header))
    scales = sorted({r["scale"] for r in rows}, key=lambda s: int(s[:-1]))
    for name, _, warm in engines:
        print(f"\n{name}")
        for factor in scales:
            ours = next(r for r in rows if r["scale"] == factor and r["system"] == name)
            theirs = next((r for r in rows if r["scale"] == factor and r["system"] == "datasketch"), None)
            if theirs:
                excluding = ours["docs_per_s"] / theirs["docs_per_s"]
                end_to_end = (
                    "(none: its start was paid by the earlier stage)"
                    if warm
                    else f"{ours['e2e_docs_per_s'] / theirs['docs_per_s']:.2f}x (goal >= 1x at 4x)"
                )
                print(
                    f"  {factor}: vs datasketch, excluding Spark start {excluding:.2f}x (goal >= 2x), end to end "
                    f"{end_to_end}; peak PSS {ours['peak_pss_mib']} vs {theirs['peak_pss_mib']} MiB; CPU seconds "
                    f"of the whole child {ours['cpu_s']} vs {theirs['cpu_s']}"
                )
        first = next(r for r in rows if r["scale"] == scales[0] and r["system"] == name)
        for factor in scales[1:]:
            ours = next(r for r in rows if r["scale"] == factor and r["system"] == name)
            print(
                f"  growth {scales[0]} -> {factor}: {ours['docs'] / first['docs']:.1f}x docs took "
                f"{ours['dedup_s'] / first['dedup_s']:.1f}x the dedup time (linear: equal), peak PSS "
                f"{first['peak_pss_mib']} -> {ours['peak_pss_mib']} MiB"
            )
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
