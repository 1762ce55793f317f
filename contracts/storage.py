"""The storage root: its layout, stage manifests, atomic writes and content checksums.

Layout under the root (`CODECOOK_HOME`, default `.codecook/` in the working directory):

    dagster/                    the Dagster instance (SQLite)
    mlflow.db, mlflow-artifacts/  MLflow tracking store and artifacts
    data/<stage>/               kept rows as Parquet parts + `_manifest.json`
    data/rejected/<stage>/      every rejected row (the reject row contract) as Parquet parts
    data/.tmp/                  work in progress; never read

A stage's output is complete exactly when its `_manifest.json` exists: the manifest is written last,
by atomic rename, after the kept and rejected folders were swapped into place. A crash at any point
leaves no manifest, so no reader mistakes half an output for a whole one.

A stage's `checksum` is computed over its decoded rows (`RowDigest`), never over file bytes: two
writes of the same rows give the same checksum whatever Parquet encodings, compression, footer
metadata, row-group sizes or part-file boundaries they used, so Dagster's data versions change only
when the data does.

Spark-free and Dagster-free (stdlib, pyarrow, fsspec): `quality/` writes stages through it, and
`training/` (the slim GPU image) reads and writes beside them with the same rules.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, overload

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

MANIFEST = "_manifest.json"
DEFAULT_HOME = ".codecook"


def default_home() -> str:
    """`$CODECOOK_HOME`, else `.codecook` in the working directory, as an absolute path or URL."""
    home = os.environ.get("CODECOOK_HOME") or DEFAULT_HOME
    return home if "://" in home else str(Path(home).resolve())


class StageNotMaterialized(RuntimeError):
    """A stage's input has no complete output yet."""


@dataclass(frozen=True)
class StagePaths:
    """Where one stage's kept and rejected rows live."""

    stage: str
    data_dir: str
    rejected_dir: str

    @property
    def manifest_path(self) -> str:
        return f"{self.data_dir}/{MANIFEST}"


@dataclass(frozen=True)
class StorageLayout:
    """The folders under one storage root (a local path or an fsspec URL)."""

    root: str

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        return fsspec.core.url_to_fs(self.root)[0]

    @property
    def data_root(self) -> str:
        return f"{self.root}/data"

    @property
    def dagster_home(self) -> str:
        return f"{self.root}/dagster"

    @property
    def mlflow_uri(self) -> str:
        return f"sqlite:///{self.root}/mlflow.db"

    @property
    def mlflow_artifacts(self) -> str:
        return f"{self.root}/mlflow-artifacts"

    def stage(self, name: str) -> StagePaths:
        return StagePaths(name, f"{self.data_root}/{name}", f"{self.data_root}/rejected/{name}")

    def scratch(self, name: str) -> str:
        """A fresh folder for work in progress under `data/.tmp`."""
        return f"{self.data_root}/.tmp/{name}-{uuid.uuid4().hex[:12]}"

    def manifests(self) -> list[dict[str, Any]]:
        """Every complete stage's manifest, for status reports."""
        fs = self.fs
        found = []
        for path in sorted(fs.glob(f"{self.data_root}/*/{MANIFEST}")):
            with fs.open(path, "r") as handle:
                found.append(json.load(handle))
        return found


def spark_path(url: str) -> str:
    """The same location as Spark's Hadoop filesystem names it (s3:// is s3a:// there)."""
    return "s3a://" + url[len("s3://") :] if url.startswith("s3://") else url


def default_file_count(rows: int, rows_per_file: int = 25_000) -> int:
    """How many Parquet parts a stage writes: from the row count, never from the core count,
    so that the same input gives the same files on any machine."""
    return max(1, min(64, -(-rows // rows_per_file)))


def read_manifest(paths: StagePaths) -> dict[str, Any]:
    """The manifest of a complete stage; `StageNotMaterialized` when there is none."""
    fs = fsspec.core.url_to_fs(paths.data_dir)[0]
    if not fs.exists(paths.manifest_path):
        raise StageNotMaterialized(
            f"stage '{paths.stage}' has no complete output at {paths.data_dir}; materialize it first"
        )
    with fs.open(paths.manifest_path, "r") as handle:
        return json.load(handle)


# --------------------------------------------------------------------------------------------------
# Atomic writes: a reader sees the old file or folder, or the new one, never half of either.


def _fs_and_path(path: str | os.PathLike[str], fs: fsspec.AbstractFileSystem | None):
    if fs is not None:
        return fs, str(path)
    return fsspec.core.url_to_fs(str(path))


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str], mode: str = "w", *, fs: fsspec.AbstractFileSystem | None = None
) -> Iterator[IO]:
    """Open a temporary name beside `path` for writing; rename it over `path` when the block ends
    without an error, else delete it. `path` is a local path or an fsspec URL (or a path in `fs`)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write opens for writing only ('w' or 'wb'), not {mode!r}")
    fs, target = _fs_and_path(path, fs)
    parent = posixpath.dirname(target)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    tmp = f"{target}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with fs.open(tmp, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as handle:
            yield handle
        fs.mv(tmp, target)
    finally:
        if fs.exists(tmp):
            fs.rm(tmp)


@overload
def write_json_atomic(fs: fsspec.AbstractFileSystem, path: str, payload: Any) -> None: ...
@overload
def write_json_atomic(path: str | os.PathLike[str], payload: Any) -> None: ...
def write_json_atomic(*args: Any) -> None:
    """Write JSON (sorted keys, indented) to a temporary name beside the target, then rename it over.

    Two call forms, one contract: `write_json_atomic(fs, path, payload)` with a path inside `fs`,
    and `write_json_atomic(path_or_url, payload)`.
    """
    if len(args) == 3:
        fs, path, payload = args
    elif len(args) == 2:
        fs, (path, payload) = None, args
    else:
        raise TypeError("write_json_atomic(fs, path, payload) or write_json_atomic(path, payload)")
    with atomic_write(path, "w", fs=fs) as handle:
        json.dump(payload, handle, indent=2, sort_keys=True, default=str)


def swap_into_place(fs: fsspec.AbstractFileSystem, new_dir: str, final_dir: str) -> None:
    """Move the finished folder `new_dir` to `final_dir` (both in `fs`), replacing what was there.

    The old folder is first renamed aside and deleted only after the new one is in place, so a
    crash leaves at `final_dir` the old folder, the new one or (between the two renames) nothing,
    with the old one beside it as `.old-*`; never a mix of the two. On object stores `mv` copies
    object by object, which is why callers that publish a manifest remove it before the swap and
    write it after: the folder reads as incomplete in between.
    """
    if fs.exists(final_dir):
        trash = f"{final_dir}.old-{uuid.uuid4().hex[:8]}"
        fs.mv(final_dir, trash, recursive=True)
        fs.mv(new_dir, final_dir, recursive=True)
        fs.rm(trash, recursive=True)
    else:
        parent = posixpath.dirname(final_dir.rstrip("/"))
        if parent:
            fs.makedirs(parent, exist_ok=True)
        fs.mv(new_dir, final_dir, recursive=True)


def publish_folder(build_dir: str, target: str, *, last: str = MANIFEST) -> None:
    """Publish a folder built on local disk at `target`, a local path or an fsspec URL.

    Locally this is `swap_into_place` (renames). Remote stores have no folder rename: the old
    folder is deleted and the files uploaded in name order, `last` (the manifest) at the very end,
    so readers that wait for the manifest never see half a folder.
    """
    if "://" not in target:
        swap_into_place(fsspec.filesystem("file"), build_dir, target)
        return
    fs, path = fsspec.core.url_to_fs(target)
    if fs.exists(path):
        fs.rm(path, recursive=True)
    names = sorted(os.listdir(build_dir))
    for name in [n for n in names if n != last] + [n for n in names if n == last]:
        fs.put_file(os.path.join(build_dir, name), f"{path}/{name}")


# --------------------------------------------------------------------------------------------------
# Content checksums
#
# What is hashed: the column names, their logical types, the row count, and every value, as the
# Arrow arrays that Parquet decodes to. Each column (and each nested child) feeds three running
# hashes, one entry per row in order: validity (1 byte), length (int64, variable-width and list
# types) and value bytes. Because every stream is a plain concatenation over rows, the result does
# not depend on how rows are cut into batches, row groups or part files, nor on Parquet encodings,
# compression, statistics or footer metadata. Type spellings that differ only in physical layout
# are folded together (large_string = string, dictionary<string> = string, timestamps in
# microseconds), since different writers pick them freely for the same data.
#
# Row order counts. `quality.storage.write_stage` makes it deterministic: rows are hash-partitioned
# by doc_id into a file count fixed by the row count (Spark's Murmur3 hash is seeded, the same in
# every JVM), sorted by doc_id within each part, and parts are renamed part-00000... in partition
# order. And order matters downstream: token shards take documents in file and row order, so the
# same rows in another order make other shards, and the data version should say so. (Rows with
# equal doc_ids can swap places between runs; stages keep doc_id unique.)

CHECKSUM_SCHEME = "rows-sha256-v1"
BATCH_ROWS = 2048  # rows decoded at a time: memory is one batch plus one row group's compressed bytes


def canonical_type(arrow_type: pa.DataType) -> str:
    """The logical type a column is hashed under (layout-only differences folded together)."""
    t = arrow_type
    if pa.types.is_dictionary(t):
        return canonical_type(t.value_type)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or _is_view(t, "string_view"):
        return "string"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or _is_view(t, "binary_view"):
        return "binary"
    if pa.types.is_timestamp(t):
        return "timestamp[us]"
    if pa.types.is_map(t):
        return f"map<{canonical_type(t.key_type)}, {canonical_type(t.item_type)}>"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"list<{canonical_type(t.value_type)}>"
    if pa.types.is_fixed_size_list(t):
        return f"list<{canonical_type(t.value_type)}>[{t.list_size}]"
    if pa.types.is_struct(t):
        return "struct<" + ", ".join(f"{f.name}: {canonical_type(f.type)}" for f in t) + ">"
    return str(t)


def _is_view(arrow_type: pa.DataType, name: str) -> bool:
    check = getattr(pa.types, f"is_{name}", None)
    return bool(check and check(arrow_type))


class _ColumnDigest:
    """The running hashes of one column (or nested child), fed array by array in row order."""

    def __init__(self, arrow_type: pa.DataType):
        self.type = canonical_type(arrow_type)
        self.valid = hashlib.sha256()
        self.lengths = hashlib.sha256()
        self.values = hashlib.sha256()
        self.children: list[_ColumnDigest] = []

    def update(self, array: pa.Array) -> None:
        if pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
        if array.null_count:
            self.valid.update(_fixed_bytes(pc.cast(array.is_valid(), pa.uint8()), 1))
        else:
            self.valid.update(b"\x01" * len(array))
        t = array.type
        if pa.types.is_null(t) or len(array) == 0:
            return
        if pa.types.is_timestamp(t):
            array = array.cast(pa.timestamp("us", tz=t.tz))
            t = array.type
        if _is_view(t, "string_view"):
            array, t = array.cast(pa.large_string()), pa.large_string()
        elif _is_view(t, "binary_view"):
            array, t = array.cast(pa.large_binary()), pa.large_binary()
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            self._update_variable(array, "")
        elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
            self._update_variable(array, b"")
        elif pa.types.is_boolean(t):
            values = pc.fill_null(array, False) if array.null_count else array
            self.values.update(_fixed_bytes(pc.cast(values, pa.uint8()), 1))
        elif pa.types.is_map(t):
            self._update_list(array.cast(pa.list_(pa.struct([t.key_field, t.item_field]))))
        elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
            self._update_list(array)
        elif pa.types.is_struct(t):
            self._update_children(array.flatten())
        elif _fixed_width(t):
            width = t.bit_width // 8
            if array.null_count:  # the bytes under a null are unspecified: zero them
                as_bytes = array.view(pa.binary(width))
                array = pc.fill_null(as_bytes, pa.scalar(b"\x00" * width, pa.binary(width)))
            self.values.update(_fixed_bytes(array, width))
        else:  # unions, extension types...: slow but exact
            for value in array.to_pylist():
                encoded = repr(value).encode("utf-8", "surrogatepass")
                self.lengths.update(len(encoded).to_bytes(8, "little"))
                self.values.update(encoded)

    def _update_variable(self, array: pa.Array, empty: str | bytes) -> None:
        if array.null_count:  # the bytes under a null are unspecified; its validity byte says null
            array = pc.fill_null(array, pa.scalar(empty, array.type))
        lengths = pc.cast(pc.binary_length(array), pa.int64())
        self.lengths.update(_fixed_bytes(lengths, 8))
        _, offsets_buffer, data = array.buffers()
        large = pa.types.is_large_string(array.type) or pa.types.is_large_binary(array.type)
        offsets = pa.Array.from_buffers(
            pa.int64() if large else pa.int32(), len(array) + 1, [None, offsets_buffer], offset=array.offset
        )
        start, stop = offsets[0].as_py(), offsets[-1].as_py()
        if stop > start:
            self.values.update(data[start:stop])

    def _update_list(self, array: pa.Array) -> None:
        lengths = pc.cast(pc.fill_null(pc.list_value_length(array), 0), pa.int64())
        self.lengths.update(_fixed_bytes(lengths, 8))
        self._update_children([array.flatten()])

    def _update_children(self, arrays: list[pa.Array]) -> None:
        if not self.children:
            self.children = [_ColumnDigest(a.type) for a in arrays]
        for child, array in zip(self.children, arrays, strict=True):
            child.update(array)

    def digest(self) -> bytes:
        parts = [self.type.encode(), self.valid.digest(), self.lengths.digest(), self.values.digest()]
        parts += [child.digest() for child in self.children]
        return hashlib.sha256(b"\x00".join(parts)).digest()


def _fixed_bytes(array: pa.Array, width: int) -> pa.Buffer:
    """The value bytes of a fixed-width array without nulls (its slice only, no padding)."""
    return array.buffers()[1][array.offset * width : (array.offset + len(array)) * width]


def _fixed_width(arrow_type: pa.DataType) -> bool:
    try:
        return arrow_type.bit_width % 8 == 0
    except ValueError:
        return False


class RowDigest:
    """A checksum of a sequence of rows, fed batch by batch (see the comment above)."""

    def __init__(self) -> None:
        self.rows = 0
        self._names: list[str] | None = None
        self._columns: list[_ColumnDigest] = []

    def update(self, batch: pa.RecordBatch | pa.Table) -> None:
        names = list(batch.schema.names)
        types = [canonical_type(t) for t in batch.schema.types]
        if self._names is None:
            self._names = names
            self._columns = [_ColumnDigest(t) for t in batch.schema.types]
        elif names != self._names or types != [c.type for c in self._columns]:
            raise ValueError(
                f"rows of another schema in one checksum: {list(zip(names, types, strict=True))} "
                f"after {list(zip(self._names, [c.type for c in self._columns], strict=True))}"
            )
        for column, values in zip(self._columns, batch.columns, strict=True):
            chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
            for chunk in chunks:
                column.update(chunk)
        self.rows += batch.num_rows

    def update_parquet(self, file: str, *, fs: fsspec.AbstractFileSystem | None = None) -> None:
        """Feed every row of one Parquet file, one batch of `BATCH_ROWS` at a time."""
        fs, path = _fs_and_path(file, fs)
        with fs.open(path, "rb") as handle:
            parquet = pq.ParquetFile(handle)
            if parquet.metadata.num_rows == 0:
                # No batch comes out of an empty file, but its columns still name the output.
                self.update(parquet.schema_arrow.empty_table())
                return
            for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
                self.update(batch)

    def hexdigest(self) -> str:
        header = json.dumps(
            {
                "scheme": CHECKSUM_SCHEME,
                "rows": self.rows,
                "columns": [[n, c.type] for n, c in zip(self._names or [], self._columns, strict=True)],
            },
            sort_keys=True,
        ).encode()
        digest = hashlib.sha256(header)
        for column in self._columns:
            digest.update(column.digest())
        return digest.hexdigest()


def parquet_files(fs: fsspec.AbstractFileSystem, folder: str) -> list[str]:
    """The Parquet files of a folder in `fs`, in name order (the order their rows are read in)."""
    return sorted(p for p in fs.ls(folder, detail=False) if p.endswith(".parquet"))


def rows_checksum(files: Iterable[str], *, fs: fsspec.AbstractFileSystem | None = None) -> tuple[str, int]:
    """(hex digest, row count) of the rows of Parquet `files`, read in the order given."""
    digest = RowDigest()
    for file in files:
        digest.update_parquet(file, fs=fs)
    return digest.hexdigest(), digest.rows


@dataclass(frozen=True)
class StageChecksum:
    checksum: str  # "sha256:<hex>" over kept and rejected rows
    rows_out: int
    rows_rejected: int


def stage_checksum(
    fs: fsspec.AbstractFileSystem, data_dir: str, rejected_dir: str | None = None
) -> StageChecksum:
    """The content checksum of a stage output (kept rows, then rejected rows) and its row counts.

    Works on a finished stage (`StagePaths.data_dir`, `.rejected_dir`) and on the temporary folders
    a writer fills before swapping them into place.
    """
    kept, rows_out = rows_checksum(parquet_files(fs, data_dir), fs=fs)
    rejected, rows_rejected = ("", 0)
    if rejected_dir is not None:
        rejected, rows_rejected = rows_checksum(parquet_files(fs, rejected_dir), fs=fs)
    combined = hashlib.sha256(f"kept:{kept}\nrejected:{rejected}\n".encode()).hexdigest()
    return StageChecksum(f"sha256:{combined}", rows_out, rows_rejected)
