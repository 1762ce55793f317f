"""Reusing a stage's output across recipe variants: every output is keyed by what made it.

A stage's key is a hash of its name, its effective settings (deployment fields left out, see
`contracts.config.settings_of`) and the content checksums of its inputs (the upstream manifests'
`checksum`, or a fingerprint of the source files for the first stage). Two variants of a recipe
that agree on all of that would compute the same rows, so the second takes the first's output
instead of recomputing it: an ablation that changes only `code_mix` does not rerun dedup.

The store is a local folder shared by the variants (`<ablation>/stages` by default):

    <store>/<stage>/<key>/data/         the stage's kept rows (or its files) with `_manifest.json`
    <store>/<stage>/<key>/rejected/     its reject rows (may be empty)
    <store>/<stage>/<key>/_entry.json   key, settings, inputs, who computed it; written last

An entry is complete exactly when `_entry.json` exists (it is published by one rename). A variant
gets an entry's files as hard links in its own storage root, so every variant has a complete,
independent root that `codecook status` and DuckDB read as usual, at no copy cost; across
filesystems the files are copied. Hard links are safe because no stage edits a file in place:
every write makes new files and renames folders (`contracts.storage`).
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fsspec.implementations.local import LocalFileSystem

from contracts.storage import MANIFEST, StagePaths, swap_into_place, write_json_atomic

ENTRY = "_entry.json"
REUSE_SCHEME = "stage-key-v1"
"""Bumped when the meaning of a stage's output changes in code, so old entries stop matching."""


ENGINE_PACKAGES = ("contracts", "quality", "training")
"""The code a stage's rows depend on (engines, profiles, shipped data); the orchestration layer
only wires them and is left out."""


@functools.cache
def engine_fingerprint() -> str:
    """A hash of the engine packages' source and data files: edited engine code or a changed
    profile makes every key new, so the store never hands out rows an older engine computed."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for package in ENGINE_PACKAGES:
        for path in sorted((root / package).rglob("*")):
            if path.suffix in (".py", ".yaml", ".yml", ".json", ".jsonl") and "__pycache__" not in path.parts:
                digest.update(f"{path.relative_to(root)}\0".encode())
                digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def stage_key(stage: str, settings: Any, inputs: dict[str, str]) -> str:
    """The hash that names a stage's output: stage, settings (plain data), input checksums, engine code."""
    payload = {
        "scheme": REUSE_SCHEME,
        "engine": engine_fingerprint(),
        "stage": stage,
        "settings": settings,
        "inputs": inputs,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]


def files_fingerprint(paths: list[str]) -> str:
    """A cheap fingerprint of local files or folders: every file's relative path, size and mtime.

    Reading the sources through would cost as much as ingesting them; a changed file changes its
    size or mtime. URLs (object stores) are fingerprinted by their address only, since listing a
    bucket may cost more than the stage: a reused `raw_code` over a changed bucket is possible
    there, so ablations over object stores should pin their inputs.
    """
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"\x00{path}\x00".encode())
        if "://" in path:
            continue
        root = Path(path)
        if root.is_file():
            stat = root.stat()
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
            continue
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                full = Path(folder, name)
                try:
                    stat = full.stat()
                except FileNotFoundError:  # a dangling symlink: its name still counts
                    stat = None
                size = f"{stat.st_size}:{stat.st_mtime_ns}" if stat else "dangling"
                digest.update(f"{full.relative_to(root)}\x00{size}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:24]


def _link_tree(source: Path, target: Path) -> None:
    """Recreate `source` at `target` with hard links (copies across filesystems)."""
    target.mkdir(parents=True, exist_ok=True)
    for folder, dirs, files in os.walk(source):
        relative = Path(folder).relative_to(source)
        for name in dirs:
            (target / relative / name).mkdir(exist_ok=True)
        for name in files:
            src, dst = Path(folder, name), target / relative / name
            try:
                os.link(src, dst)
            except OSError as error:
                if error.errno != errno.EXDEV:
                    raise
                shutil.copy2(src, dst)


class StageStore:
    """Complete stage outputs by key, shared by the variants of an ablation."""

    def __init__(self, root: str | os.PathLike[str]):
        if "://" in str(root):
            raise ValueError(f"the stage store must be a local folder (hard links), got {root}")
        self.root = Path(root).resolve()

    def entry_dir(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def lookup(self, stage: str, key: str) -> dict[str, Any] | None:
        """The entry's record if the store holds a complete output for `key`, else None."""
        record = self.entry_dir(stage, key) / ENTRY
        if not record.is_file():
            return None
        return json.loads(record.read_text(encoding="utf-8"))

    def publish(self, stage: str, key: str, paths: StagePaths, record: dict[str, Any]) -> None:
        """Take a finished output (its manifest exists) into the store under `key`.

        A concurrent variant may publish the same key first: both computed the same rows, so the
        first entry stays and this call does nothing.
        """
        data = Path(paths.data_dir)
        if not (data / MANIFEST).is_file():
            raise FileNotFoundError(f"{stage}: {data} has no {MANIFEST}; only finished outputs are stored")
        final = self.entry_dir(stage, key)
        if (final / ENTRY).is_file():
            return
        building = final.parent / f".building-{key}-{uuid.uuid4().hex[:8]}"
        _link_tree(data, building / "data")
        rejected = Path(paths.rejected_dir)
        if rejected.is_dir():
            _link_tree(rejected, building / "rejected")
        else:
            (building / "rejected").mkdir()
        entry = {
            "stage": stage,
            "key": key,
            "stored_at": datetime.now(UTC).isoformat(timespec="seconds"),
            **record,
        }
        write_json_atomic(str(building / ENTRY), entry)
        try:
            building.rename(final)
        except OSError as error:
            # Lost a race to an identical entry (ENOTEMPTY/EEXIST): keep the first one.
            shutil.rmtree(building, ignore_errors=True)
            if not (final / ENTRY).is_file():
                raise RuntimeError(f"could not publish {stage} entry {key} into {final}: {error}") from error

    def restore(self, stage: str, key: str, paths: StagePaths) -> dict[str, Any]:
        """Put the stored output for `key` at `paths` (hard links), replacing what was there.

        Returns the entry's record. The manifest comes last, so the output reads as complete only
        once both folders are in place.
        """
        record = self.lookup(stage, key)
        if record is None:
            raise KeyError(f"the stage store holds no {stage} output with key {key}")
        entry = self.entry_dir(stage, key)
        data, rejected = Path(paths.data_dir), Path(paths.rejected_dir)
        scratch = data.parent / f".restore-{stage}-{uuid.uuid4().hex[:8]}"
        _link_tree(entry / "data", scratch / "data")
        _link_tree(entry / "rejected", scratch / "rejected")
        manifest = scratch / "data" / MANIFEST
        held = scratch / MANIFEST
        manifest.rename(held)
        fs = LocalFileSystem()
        if (data / MANIFEST).exists():
            (data / MANIFEST).unlink()
        swap_into_place(fs, str(scratch / "rejected"), str(rejected))
        swap_into_place(fs, str(scratch / "data"), str(data))
        held.rename(data / MANIFEST)
        shutil.rmtree(scratch, ignore_errors=True)
        return record
