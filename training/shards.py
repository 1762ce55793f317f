"""Documents to packed, memory-mappable token shards, and the reader training uses.

    document rows (Parquet) -> metadata prefix + FIM (training.fim) -> token ids + EOS
        -> one stream per shard -> rows of seq_len + 1 tokens -> shard-NNNNN.bin (uint16/uint32)

A *shard set* is a folder:

    shard-00000.bin ...   raw little-endian token ids, shape (rows, seq_len + 1), np.memmap-able
    index.json            per shard: rows, tokens, documents, first global row, sha256
    _manifest.json        totals (tokens, documents, FIM and SPM shares, ...); written last

The work unit is a shard: a fixed run of consecutive documents in input order (stages in recipe
order, Parquet parts by name, rows in file order). Which shard a document lands in depends only on
`docs_per_shard`, and every random draw on (seed, doc_id), so any number of worker processes
produce byte-identical shards.

Only the last row of each shard can be short; it is filled with `<fim_pad>`, which the loss ignores
(the pipeline encodes document text with special-token matching off, so the pad id never occurs
in real text).

This module reads Parquet with pyarrow and never imports pyspark or Dagster (slim GPU image).
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pyarrow.parquet as pq

from contracts.doc_formats import MARKERS, split_markers
from contracts.progress import DEFAULT_EVERY_SECONDS, Progress
from contracts.storage import MANIFEST, publish_folder, write_json_atomic
from training import fim
from training.config import MixConfig, TokenizerConfig
from training.evaluation.fim import is_held_out
from training.tokenizer import EOS, FIM_PAD, file_sha256, marker_ids, special_ids

INDEX = "index.json"
READ_COLUMNS = ("doc_id", "content", "repo", "path", "stars", "lang", "size_bytes", "doc_format")


class ShardInputError(RuntimeError):
    """An input stage the shards need has no complete output."""


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 holds ids below 65,536 (half the disk and page cache of uint32)."""
    return np.dtype("<u2") if vocab_size <= 2**16 else np.dtype("<u4")


# --------------------------------------------------------------------------------------------------
# Inputs


@dataclass(frozen=True)
class InputStage:
    """One stage output read into a mix."""

    name: str
    data_dir: str
    weight: float = 1.0
    require_manifest: bool = True


def stage_files(data_dir: str, require_manifest: bool = True) -> list[str]:
    """The Parquet parts of a complete stage output, sorted by name (refuses a half-written one).

    With `require_manifest=False` (the CLI on arbitrary Parquet) any folder of Parquet files, or a
    single Parquet file, is accepted.
    """
    fs, path = fsspec.core.url_to_fs(data_dir)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if not require_manifest and fs.isfile(path):
        return [data_dir]
    if require_manifest and not fs.exists(f"{path}/{MANIFEST}"):
        raise ShardInputError(f"{data_dir} has no {MANIFEST}: the stage is not materialized")
    files = sorted(fs.glob(f"{path}/*.parquet"))
    if not files and not require_manifest:
        raise ShardInputError(f"{data_dir} holds no Parquet files")
    return files if protocol in ("file", "local") else [f"{protocol}://{f}" for f in files]


def resolve_inputs(
    mix: MixConfig, stage_dirs: dict[str, str], warn=print, require_manifest: bool = True
) -> tuple[list[InputStage], list[str]]:
    """The mix's stages that exist, with weights; and the optional ones skipped as missing."""
    found, missing = [], []
    for name in mix.inputs:
        directory = stage_dirs[name]
        try:
            stage_files(directory, require_manifest)
        except ShardInputError:
            if name in mix.optional_inputs:
                warn(f"input stage {name!r} has no output yet; it is optional and skipped")
                missing.append(name)
                continue
            raise
        found.append(InputStage(name, directory, float(mix.weights.get(name, 1.0)), require_manifest))
    if not found:
        raise ShardInputError(f"none of the inputs {list(mix.inputs)} has an output")
    return found, missing


def _open(file: str):
    fs, path = fsspec.core.url_to_fs(file)
    return fs.open(path, "rb")


def _read_rows(file: str, start: int, stop: int) -> dict[str, list]:
    with _open(file) as handle:
        parquet = pq.ParquetFile(handle)
        present = [c for c in READ_COLUMNS if c in parquet.schema_arrow.names]
        missing = [c for c in ("doc_id", "content") if c not in present]
        if missing:
            raise ShardInputError(f"{file} lacks column(s) {missing}")
        table = parquet.read(columns=present).slice(start, stop - start)
    columns = {name: table.column(name).to_pylist() for name in present}
    rows = stop - start
    for name in READ_COLUMNS:
        columns.setdefault(name, [None] * rows)
    return columns


def iter_texts(
    stages: list[InputStage], max_bytes: int, batch_rows: int = 1024, holdout_fraction: float = 0.0
):
    """Document contents in input order until `max_bytes` UTF-8 bytes: the BPE training sample.

    Documents held out of the shards (`is_held_out(doc_id, holdout_fraction)`) are left out of the
    sample too, so not even the tokenizer's merges have seen the evaluation set."""
    taken = 0
    columns = ["doc_id", "content"] if holdout_fraction > 0 else ["content"]
    for stage in stages:
        for file in stage_files(stage.data_dir, stage.require_manifest):
            with _open(file) as handle:
                for batch in pq.ParquetFile(handle).iter_batches(batch_size=batch_rows, columns=columns):
                    texts = batch.column("content").to_pylist()
                    ids = batch.column("doc_id").to_pylist() if holdout_fraction > 0 else [None] * len(texts)
                    for doc_id, text in zip(ids, texts, strict=True):
                        if text is None or (doc_id is not None and is_held_out(doc_id, holdout_fraction)):
                            continue
                        yield text
                        taken += len(text.encode("utf-8", "surrogatepass"))
                        if taken >= max_bytes:
                            return


# --------------------------------------------------------------------------------------------------
# Planning


@dataclass(frozen=True)
class Slice:
    """Rows [start, stop) of one Parquet file."""

    stage: str
    file: str
    start: int
    stop: int
    weight: float


@dataclass(frozen=True)
class ShardTask:
    index: int
    slices: tuple[Slice, ...]


def plan_shards(stages: list[InputStage], docs_per_shard: int) -> list[ShardTask]:
    """Cut the input into shards of `docs_per_shard` consecutive rows, from file footers only."""
    tasks: list[ShardTask] = []
    current: list[Slice] = []
    room = docs_per_shard
    for stage in stages:
        for file in stage_files(stage.data_dir, stage.require_manifest):
            with _open(file) as handle:
                rows = pq.ParquetFile(handle).metadata.num_rows
            start = 0
            while start < rows:
                stop = min(rows, start + room)
                current.append(Slice(stage.name, file, start, stop, stage.weight))
                room -= stop - start
                start = stop
                if room == 0:
                    tasks.append(ShardTask(len(tasks), tuple(current)))
                    current, room = [], docs_per_shard
    if current:
        tasks.append(ShardTask(len(tasks), tuple(current)))
    return tasks


# --------------------------------------------------------------------------------------------------
# Encoding one shard


@dataclass(frozen=True)
class SampleSettings:
    """What a worker needs besides the tokenizer; plain data so it crosses process boundaries."""

    seed: int
    fim_rate: float
    spm_rate: float
    metadata_rate: float
    seq_len: int
    batch_docs: int
    languages: tuple[str, ...] = ()
    holdout_fraction: float = 0.0

    @classmethod
    def from_config(cls, config: TokenizerConfig, mix: MixConfig) -> SampleSettings:
        return cls(
            seed=config.seed,
            fim_rate=config.fim_rate,
            spm_rate=config.fim_spm_rate,
            metadata_rate=config.metadata_rate,
            seq_len=config.seq_len,
            batch_docs=config.batch_docs,
            languages=tuple(sorted(lang.lower() for lang in mix.languages)),
            holdout_fraction=config.holdout_fraction,
        )


@dataclass
class ShardStats:
    """Counts of one shard (summed into the set's manifest)."""

    index: int = 0
    file: str = ""
    documents_in: int = 0
    held_out_docs: int = 0
    """Documents in the evaluation bucket (`is_held_out(doc_id, holdout_fraction)`), never encoded."""
    documents_excluded_language: int = 0
    documents_dropped_by_weight: int = 0
    documents_used: int = 0
    samples: int = 0
    fim_samples: int = 0
    spm_samples: int = 0
    reponame_prefixes: int = 0
    filename_prefixes: int = 0
    stars_prefixes: int = 0
    structured_samples: int = 0
    """Samples of a structured format (notebook chain, commit, issue): markers as special tokens,
    no FIM and no metadata header (a cut could land inside the structure)."""
    content_bytes: int = 0
    tokens: int = 0
    padding_tokens: int = 0
    rows: int = 0
    first_row: int = 0
    sha256: str = ""
    by_stage: dict[str, int] = field(default_factory=dict)


class SampleEncoder:
    """Turns document rows into one token stream: sample ids, then EOS, per sample."""

    def __init__(self, tokenizer, settings: SampleSettings):
        self.tokenizer = tokenizer
        # Text that happens to spell a special token ("<|endoftext|>" inside a Python string, as in
        # this very project) is encoded as ordinary text: only the pipeline places sentinels.
        self.tokenizer.encode_special_tokens = True
        ids = special_ids(tokenizer)
        self.ids = fim.SpecialIds.from_mapping(ids)
        self.eos = ids[EOS]
        self.pad = ids[FIM_PAD]
        self.settings = settings
        self.markers = marker_ids(tokenizer)

    def structured_pieces(self, content: str, doc_format: str) -> list[int | str]:
        """A structured document's pieces: its format's markers as their ids, the rest as text."""
        markers = set(MARKERS[doc_format])
        missing = markers - set(self.markers)
        if missing:
            raise KeyError(f"tokenizer has no {sorted(missing)} for {doc_format} documents")
        return [self.markers[p] if p in markers else p for p in split_markers(content, doc_format)]

    def encode_rows(self, rows: dict[str, list], weight: float, stage: str, stats: ShardStats) -> list[int]:
        """Token ids of every sample the rows give (after the language filter and the weight)."""
        settings = self.settings
        languages = set(settings.languages)
        samples: list[list[int | str]] = []
        for position, doc_id in enumerate(rows["doc_id"]):
            stats.documents_in += 1
            if settings.holdout_fraction > 0 and is_held_out(doc_id, settings.holdout_fraction):
                stats.held_out_docs += 1
                continue
            content = rows["content"][position] or ""
            lang = rows["lang"][position]
            if languages and (lang or "").lower() not in languages:
                stats.documents_excluded_language += 1
                continue
            repeats = _repeats(weight, settings.seed, doc_id, stage)
            if repeats == 0:
                stats.documents_dropped_by_weight += 1
                continue
            stats.documents_used += 1
            stats.by_stage[stage] = stats.by_stage.get(stage, 0) + 1
            size = rows["size_bytes"][position]
            stats.content_bytes += repeats * (
                size if size is not None else len(content.encode("utf-8", "surrogatepass"))
            )
            # Rows from plain code stages carry no doc_format column: they are ordinary files.
            doc_format = rows["doc_format"][position] if "doc_format" in rows else None
            if doc_format and MARKERS.get(doc_format):
                pieces = self.structured_pieces(content, doc_format)
                stats.samples += repeats
                stats.structured_samples += repeats
                samples.extend(list(pieces) for _ in range(repeats))
                continue
            for repeat in range(repeats):
                choice = fim.draw(
                    seed=settings.seed,
                    doc_id=doc_id,
                    repeat=repeat,
                    length=len(content),
                    fim_rate=settings.fim_rate,
                    spm_rate=settings.spm_rate,
                    metadata_rate=settings.metadata_rate,
                )
                stats.samples += 1
                stats.fim_samples += choice.mode != "plain"
                stats.spm_samples += choice.mode == "spm"
                pieces = fim.sample_pieces(
                    content,
                    repo=rows["repo"][position],
                    path=rows["path"][position],
                    stars=rows["stars"][position],
                    choice=choice,
                    ids=self.ids,
                )
                stats.reponame_prefixes += self.ids.reponame in pieces
                stats.filename_prefixes += self.ids.filename in pieces
                stats.stars_prefixes += self.ids.gh_stars in pieces
                samples.append(pieces)
        texts = [piece for pieces in samples for piece in pieces if isinstance(piece, str)]
        encoded = iter(self.tokenizer.encode_batch_fast(texts, add_special_tokens=False))
        stream: list[int] = []
        for pieces in samples:
            for piece in pieces:
                if isinstance(piece, str):
                    stream.extend(next(encoded).ids)
                else:
                    stream.append(piece)
            stream.append(self.eos)
        return stream


def _repeats(weight: float, seed: int, doc_id: str, stage: str) -> int:
    whole = math.floor(weight)
    fraction = weight - whole
    return whole + (1 if fraction > 0 and fim.unit_draw(seed, doc_id, f"weight:{stage}") < fraction else 0)


def build_shard(
    task: ShardTask, tokenizer_json: str, settings: SampleSettings, out_dir: str, dtype: str
) -> ShardStats:
    """Encode and pack one shard into `out_dir/shard-NNNNN.bin`; returns its counts."""
    from tokenizers import Tokenizer

    encoder = SampleEncoder(Tokenizer.from_str(tokenizer_json), settings)
    row_len = settings.seq_len + 1
    stats = ShardStats(index=task.index, file=f"shard-{task.index:05d}.bin")
    path = Path(out_dir) / stats.file
    carry = np.empty(0, dtype=dtype)
    with open(path, "wb") as handle:
        for piece in task.slices:
            for start in range(piece.start, piece.stop, settings.batch_docs):
                rows = _read_rows(piece.file, start, min(piece.stop, start + settings.batch_docs))
                ids = np.asarray(encoder.encode_rows(rows, piece.weight, piece.stage, stats), dtype=dtype)
                stats.tokens += len(ids)
                stream = np.concatenate([carry, ids]) if len(carry) else ids
                full = len(stream) // row_len * row_len
                stream[:full].tofile(handle)
                carry = stream[full:].copy()
        if len(carry):
            pad = np.full(row_len - len(carry), encoder.pad, dtype=dtype)
            stats.padding_tokens = len(pad)
            np.concatenate([carry, pad]).tofile(handle)
    stats.rows = (stats.tokens + stats.padding_tokens) // row_len
    stats.sha256 = file_sha256(path)
    return stats


def _worker_init(serial_tokenizer: bool) -> None:
    # With several worker processes the processes are the parallelism; the tokenizer's own thread
    # pool in each would only oversubscribe the cores.
    if serial_tokenizer:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"


# --------------------------------------------------------------------------------------------------
# A whole shard set


def build_shard_set(
    stages: list[InputStage],
    *,
    tokenizer_dir: str,
    settings: SampleSettings,
    target_dir: str,
    docs_per_shard: int,
    workers: int = 0,
    mix_name: str = "main",
    extra: dict[str, Any] | None = None,
    report: Callable[[str], None] | None = None,
    report_every: float = DEFAULT_EVERY_SECONDS,
) -> dict[str, Any]:
    """Build every shard of one mix into `target_dir` atomically; returns the set's manifest.
    `report`, when given, gets a line (shards done, rate, ETA) every `report_every` seconds."""
    tokenizer_path = Path(tokenizer_dir) / "tokenizer.json"
    tokenizer_json = tokenizer_path.read_text(encoding="utf-8")
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(tokenizer_json)
    vocab_size = tokenizer.get_vocab_size()
    ids = special_ids(tokenizer)
    dtype = token_dtype(vocab_size)
    tasks = plan_shards(stages, docs_per_shard)
    workers = workers or os.cpu_count() or 1
    workers = max(1, min(workers, len(tasks)))
    local_target = "://" not in target_dir
    build_dir = (
        f"{target_dir}.tmp-{uuid.uuid4().hex[:8]}"
        if local_target
        else tempfile.mkdtemp(prefix="codecook-shards-")
    )
    Path(build_dir).mkdir(parents=True, exist_ok=True)
    progress = (
        Progress(
            f"token_shards/{mix_name}: tokenized",
            total=len(tasks),
            unit="shards",
            log=report,
            every=report_every,
        )
        if report is not None
        else None
    )
    try:
        with progress or nullcontext():
            if workers == 1:
                results = []
                for task in tasks:
                    results.append(build_shard(task, tokenizer_json, settings, build_dir, dtype.str))
                    if progress is not None:
                        progress.advance()
            else:
                # spawn, not fork: the parent may already run the tokenizer's threads, which fork breaks.
                context = multiprocessing.get_context("spawn")
                with ProcessPoolExecutor(
                    workers, mp_context=context, initializer=_worker_init, initargs=(True,)
                ) as pool:
                    futures = [
                        pool.submit(build_shard, t, tokenizer_json, settings, build_dir, dtype.str)
                        for t in tasks
                    ]
                    for finished in as_completed(futures):
                        finished.result()  # a failed shard fails the set now, not after the rest
                        if progress is not None:
                            progress.advance()
                    results = [f.result() for f in futures]  # in task order
        first_row = 0
        for stats in results:
            stats.first_row = first_row
            first_row += stats.rows
        index = [
            {
                k: getattr(s, k)
                for k in ("file", "rows", "first_row", "tokens", "padding_tokens", "documents_used", "sha256")
            }
            for s in results
        ]
        manifest = _set_manifest(results, stages, settings, dtype, vocab_size, tokenizer_path, mix_name)
        manifest.update(pad_id=ids[FIM_PAD], eos_id=ids[EOS], special_ids=ids, **(extra or {}))
        with open(Path(build_dir) / INDEX, "w", encoding="utf-8") as handle:
            json.dump(
                {"row_len": settings.seq_len + 1, "dtype": dtype.str, "shards": index}, handle, indent=1
            )
        with open(Path(build_dir) / MANIFEST, "w", encoding="utf-8") as handle:
            json.dump(manifest, handle, indent=2, sort_keys=True)
        publish_folder(build_dir, target_dir)
        return manifest
    finally:
        if Path(build_dir).exists():
            shutil.rmtree(build_dir, ignore_errors=True)


def _set_manifest(results, stages, settings, dtype, vocab_size, tokenizer_path, mix_name) -> dict[str, Any]:
    total = {k: sum(getattr(s, k) for s in results) for k in (
        "documents_in", "held_out_docs", "documents_excluded_language", "documents_dropped_by_weight",
        "documents_used",
        "samples", "fim_samples", "spm_samples", "reponame_prefixes", "filename_prefixes", "stars_prefixes",
        "structured_samples", "content_bytes", "tokens", "padding_tokens", "rows",
    )}  # fmt: skip
    by_stage: dict[str, int] = {}
    for s in results:
        for stage, count in s.by_stage.items():
            by_stage[stage] = by_stage.get(stage, 0) + count
    checksum = hashlib.sha256("".join(s.sha256 for s in results).encode()).hexdigest()
    samples = max(1, total["samples"])
    return {
        "stage": "token_shards",
        "mix": mix_name,
        "inputs": [asdict(s) for s in stages],
        "settings": asdict(settings),
        "dtype": dtype.str,
        "vocab_size": vocab_size,
        "seq_len": settings.seq_len,
        "row_len": settings.seq_len + 1,
        "shards": len(results),
        **total,
        "documents_by_stage": by_stage,
        # Every input row is accounted for: used, or held out for evaluation, or excluded by the
        # mix's language list, or dropped by a fractional weight.
        "documents_conserved": total["documents_in"]
        == total["documents_used"]
        + total["held_out_docs"]
        + total["documents_excluded_language"]
        + total["documents_dropped_by_weight"],
        "fim_share": total["fim_samples"] / samples,
        "spm_share": total["spm_samples"] / max(1, total["fim_samples"]),
        "metadata_shares": {
            "reponame": total["reponame_prefixes"] / samples,
            "filename": total["filename_prefixes"] / samples,
            "gh_stars": total["stars_prefixes"] / samples,
        },
        "tokens_per_byte": total["tokens"] / max(1, total["content_bytes"]),
        "tokenizer_sha256": file_sha256(tokenizer_path),
        "checksum": f"sha256:{checksum}",
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_token_shards(
    *,
    config: TokenizerConfig,
    stage_dirs: dict[str, str],
    tokenizer_dir: str,
    output_dir: str,
    log=print,
    require_manifest: bool = True,
) -> dict[str, Any]:
    """The token_shards stage: the main mix into `output_dir/main`, the anneal mix (if configured)
    into `output_dir/anneal`, then `output_dir/_manifest.json` summarizing both."""
    mixes = {"main": config.main_mix}
    if config.anneal is not None:
        mixes["anneal"] = config.anneal
    fs, root = fsspec.core.url_to_fs(output_dir)
    if fs.exists(f"{root}/{MANIFEST}"):
        fs.rm(f"{root}/{MANIFEST}")
    sets: dict[str, Any] = {}
    for name, mix in mixes.items():
        stages, missing = resolve_inputs(mix, stage_dirs, warn=log, require_manifest=require_manifest)
        settings = SampleSettings.from_config(config, mix)
        manifest = build_shard_set(
            stages,
            tokenizer_dir=tokenizer_dir,
            settings=settings,
            target_dir=f"{output_dir}/{name}",
            docs_per_shard=config.docs_per_shard,
            workers=config.workers,
            mix_name=name,
            extra={"inputs_missing": missing},
            report=log,
        )
        log(
            f"token_shards/{name}: {manifest['documents_used']} documents, {manifest['tokens']} tokens, "
            f"{manifest['rows']} rows of {manifest['row_len']}, FIM {manifest['fim_share']:.3f}, "
            f"SPM {manifest['spm_share']:.3f}"
        )
        sets[name] = manifest
    main = sets["main"]
    summary = {
        "stage": "token_shards",
        "sets": {name: f"{output_dir}/{name}" for name in sets},
        "tokens": main["tokens"],
        "documents": main["documents_used"],
        "documents_in": main["documents_in"],
        "held_out_docs": main["held_out_docs"],
        "rows": main["rows"],
        "fim_share": main["fim_share"],
        "spm_share": main["spm_share"],
        "dtype": main["dtype"],
        "seq_len": main["seq_len"],
        "vocab_size": main["vocab_size"],
        "anneal_tokens": sets["anneal"]["tokens"] if "anneal" in sets else 0,
        "checksum": "sha256:"
        + hashlib.sha256("".join(sets[name]["checksum"] for name in sorted(sets)).encode()).hexdigest(),
        "tokenizer_sha256": main["tokenizer_sha256"],
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mixes": sets,
    }
    write_json_atomic(f"{output_dir}/{MANIFEST}", summary)
    return summary


# --------------------------------------------------------------------------------------------------
# Reading


class ShardReader:
    """Rows of a shard set as one memory-mapped array view; `rows(indices)` gathers a batch."""

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        if not (folder / MANIFEST).is_file():
            raise ShardInputError(f"{folder} is not a complete shard set (no {MANIFEST})")
        self.folder = folder
        self.manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        index = json.loads((folder / INDEX).read_text(encoding="utf-8"))
        self.row_len = int(index["row_len"])
        self.dtype = np.dtype(index["dtype"])
        self.shards = [s for s in index["shards"] if s["rows"] > 0]
        for shard in self.shards:
            size = (folder / shard["file"]).stat().st_size
            if size != shard["rows"] * self.row_len * self.dtype.itemsize:
                raise ShardInputError(
                    f"{folder / shard['file']}: {size} bytes, the index says {shard['rows']} rows"
                )
        self._maps = [
            np.memmap(folder / s["file"], dtype=self.dtype, mode="r", shape=(s["rows"], self.row_len))
            for s in self.shards
        ]
        self._starts = np.array([s["first_row"] for s in self.shards], dtype=np.int64)
        self.num_rows = int(sum(s["rows"] for s in self.shards))
        self.pad_id = int(self.manifest["pad_id"])
        self.eos_id = int(self.manifest["eos_id"])

    def __len__(self) -> int:
        return self.num_rows

    def row(self, index: int) -> np.ndarray:
        shard = int(np.searchsorted(self._starts, index, side="right") - 1)
        return np.asarray(self._maps[shard][index - self._starts[shard]])

    def rows(self, indices) -> np.ndarray:
        """A (len(indices), row_len) int64 batch."""
        return np.stack([self.row(int(i)) for i in indices]).astype(np.int64)

    def tokens(self) -> np.ndarray:
        """Every token in order (for tests and small sets: it reads everything)."""
        return np.concatenate([np.asarray(m).reshape(-1) for m in self._maps]) if self._maps else np.empty(0)


def check_shard_set(
    folder: str, *, tokenizer_dir: str, samples: int = 50
) -> tuple[list[str], dict[str, Any]]:
    """Problems found in a shard set (empty when sound) and the facts checked.

    Files hold exactly the rows the index lists; every input document is accounted for; and the
    first samples of the first shard un-permute to the first input documents, character for
    character (when the mix neither filters, holds out nor re-weights, so the two orders coincide).
    """
    from training.tokenizer import load_tokenizer

    try:
        reader = ShardReader(folder)
    except (ShardInputError, FileNotFoundError) as error:
        return [str(error)], {}
    manifest = reader.manifest
    problems: list[str] = []
    if len(reader) != manifest["rows"]:
        problems.append(f"index lists {len(reader)} rows, manifest {manifest['rows']}")
    if not manifest["documents_conserved"]:
        problems.append("documents in != used + excluded + dropped")
    compared = 0
    settings = manifest["settings"]
    plain_mix = (
        not settings["languages"]
        and not settings.get("holdout_fraction")
        and all(s["weight"] == 1.0 for s in manifest["inputs"])
    )
    if plain_mix and reader.shards:
        tokenizer = load_tokenizer(tokenizer_dir)
        ids = fim.SpecialIds.from_mapping(manifest["special_ids"])
        first = manifest["inputs"][0]
        files = stage_files(first["data_dir"], first.get("require_manifest", True))
        documents = _read_rows(files[0], 0, samples)["content"]
        stream = np.asarray(reader._maps[0]).reshape(-1)
        stream = stream[stream != reader.pad_id]
        ends = np.flatnonzero(stream == reader.eos_id)[: len(documents)]
        start = 0
        for position, end in enumerate(ends):
            sample = fim.unpermute(
                stream[start:end].tolist(), lambda t: tokenizer.decode(t, skip_special_tokens=False), ids
            )
            start = end + 1
            compared += 1
            if sample.content != (documents[position] or ""):
                problems.append(f"sample {position} does not un-permute to input document {position}")
    facts = {"rows": len(reader), "shards": len(reader.shards), "samples_compared": compared}
    return problems, facts
