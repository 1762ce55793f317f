"""contracts.storage: content checksums, atomic writes and folder swaps, and the import boundary.

The checksum tests write the same rows in many Parquet layouts with pyarrow (no JVM); one test
reruns a Spark stage write (`quality.storage.write_stage`) in two fresh JVMs and compares the
manifests: parquet-mr orders footer lists differently per JVM, so the files' bytes may differ.
"""

from __future__ import annotations

import datetime
import decimal
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from contracts.storage import (
    MANIFEST,
    RowDigest,
    atomic_write,
    publish_folder,
    rows_checksum,
    stage_checksum,
    swap_into_place,
    write_json_atomic,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOCAL = fsspec.filesystem("file")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    return env


# --------------------------------------------------------------------------------------------------
# The import boundary


def test_contracts_and_shards_import_neither_spark_nor_dagster():
    probe = (
        "import json, sys\n"
        "import contracts.storage, training.shards\n"
        "heavy = {'pyspark', 'py4j', 'dagster', 'dagster_pipes'}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=_env(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


# --------------------------------------------------------------------------------------------------
# Content checksums


def _table() -> pa.Table:
    """Document-like rows with every column kind the stages write (and nulls in each)."""
    rows = 300
    return pa.table(
        {
            "doc_id": [f"{i:032x}" for i in range(rows)],
            "content": [None if i % 37 == 0 else ("x = 1\n" * (i % 11)) + f"# {i} é" for i in range(rows)],
            "size_bytes": pa.array([None if i % 41 == 0 else i * 3 for i in range(rows)], pa.int64()),
            "score": [None if i % 43 == 0 else i / 7 for i in range(rows)],
            "code_blocks": pa.array([i % 5 for i in range(rows)], pa.int32()),
            "recalled": [None if i % 47 == 0 else i % 2 == 0 for i in range(rows)],
            "seen_at": pa.array(
                [
                    None if i % 53 == 0 else datetime.datetime(2024, 1, 1) + datetime.timedelta(seconds=i)
                    for i in range(rows)
                ],
                pa.timestamp("us"),
            ),
            "price": pa.array([decimal.Decimal(i) / 100 for i in range(rows)], pa.decimal128(10, 2)),
            "band_keys": pa.array(
                [None if i % 59 == 0 else list(range(i % 4)) for i in range(rows)], pa.list_(pa.int64())
            ),
            "counts": pa.array(
                [None if i % 61 == 0 else [("email", i % 3), ("key", i % 2)][: i % 3] for i in range(rows)],
                pa.map_(pa.string(), pa.int64()),
            ),
            "origin": pa.array(
                [
                    None if i % 67 == 0 else {"repo": f"r{i % 9}", "stars": None if i % 2 else i}
                    for i in range(rows)
                ]
            ),
        }
    )


def _write_parts(folder: Path, table: pa.Table, cuts: list[int], **options) -> list[str]:
    folder.mkdir(parents=True)
    bounds = [0, *cuts, len(table)]
    names = []
    for index, (start, stop) in enumerate(zip(bounds, bounds[1:], strict=False)):
        name = str(folder / f"part-{index:05d}.parquet")
        pq.write_table(table.slice(start, stop - start), name, **options)
        names.append(name)
    return names


def test_checksum_ignores_parquet_layout_and_part_boundaries(tmp_path):
    table = _table()
    layouts = {
        "zstd, one file": ([], {"compression": "zstd"}),
        "snappy, small row groups, three files": ([17, 200], {"compression": "snappy", "row_group_size": 23}),
        "no compression, no dictionary, v2 pages": (
            [150],
            {"compression": "none", "use_dictionary": False, "data_page_version": "2.0"},
        ),
        "no statistics, no Arrow schema (as Spark writes), format 2.4, one row per group": (
            [1, 2, 299],
            {"write_statistics": False, "store_schema": False, "version": "2.4", "row_group_size": 1},
        ),
    }
    sums = {}
    for index, (label, (cuts, options)) in enumerate(layouts.items()):
        files = _write_parts(tmp_path / f"layout{index}", table, cuts, **options)
        sums[label] = rows_checksum(files)
    assert len(set(sums.values())) == 1, sums
    assert next(iter(sums.values()))[1] == len(table)
    # The footer differs between layouts, but the rows do not.
    assert pq.ParquetFile(tmp_path / "layout0" / "part-00000.parquet").metadata.num_row_groups == 1


def test_checksum_folds_physical_type_spellings_together():
    table = _table()
    plain = RowDigest()
    plain.update(table)
    spelled = table.cast(
        pa.schema(
            [
                pa.field("doc_id", pa.large_string()),
                pa.field("content", pa.large_string()),
                *[table.schema.field(name) for name in table.column_names[2:6]],
                pa.field("seen_at", pa.timestamp("ns")),
                *[table.schema.field(name) for name in table.column_names[7:8]],
                pa.field("band_keys", pa.large_list(pa.int64())),
                *[table.schema.field(name) for name in table.column_names[9:]],
            ]
        )
    )
    spelled = spelled.set_column(0, "doc_id", spelled["doc_id"].cast(pa.string()).dictionary_encode())
    other = RowDigest()
    for batch in spelled.to_batches(max_chunksize=7):
        other.update(batch)
    assert other.hexdigest() == plain.hexdigest()


@pytest.mark.parametrize(
    "change",
    [
        "one character",
        "null for empty",
        "two rows swapped",
        "column renamed",
        "value moved across rows",
        "int type",
    ],
)
def test_checksum_sees_every_content_change(change):
    table = _table()
    before = RowDigest()
    before.update(table)
    content = table["content"].to_pylist()
    if change == "one character":
        content[5] = content[5].replace("é", "e")
        changed = table.set_column(1, "content", pa.array(content))
    elif change == "null for empty":
        content[0] = ""
        changed = table.set_column(1, "content", pa.array(content))
    elif change == "two rows swapped":
        changed = table.take([1, 0, *range(2, len(table))])
    elif change == "column renamed":
        changed = table.rename_columns(["doc_id", "text", *table.column_names[2:]])
    elif change == "value moved across rows":
        content[1], content[2] = content[1] + content[2][:1], content[2][1:]
        changed = table.set_column(1, "content", pa.array(content))
    else:
        changed = table.set_column(4, "code_blocks", table["code_blocks"].cast(pa.int64()))
    after = RowDigest()
    after.update(changed)
    assert after.hexdigest() != before.hexdigest()


def test_checksum_refuses_parts_of_different_schemas(tmp_path):
    table = _table()
    first = str(tmp_path / "a.parquet")
    second = str(tmp_path / "b.parquet")
    pq.write_table(table.slice(0, 10), first)
    pq.write_table(table.slice(10).drop_columns(["score"]), second)
    with pytest.raises(ValueError, match="another schema"):
        rows_checksum([first, second])


def test_stage_checksum_counts_kept_and_rejected_rows(tmp_path):
    table = _table()
    rejects = pa.table(
        {"doc_id": ["a", "b"], "stage": ["s", "s"], "reason": ["r", "q"], "detail": [None, "d"]}
    )
    _write_parts(tmp_path / "kept", table, [100])
    _write_parts(tmp_path / "rejected", rejects, [])
    result = stage_checksum(LOCAL, str(tmp_path / "kept"), str(tmp_path / "rejected"))
    assert (result.rows_out, result.rows_rejected) == (len(table), 2)
    assert result.checksum.startswith("sha256:")
    pq.write_table(rejects.slice(0, 1), tmp_path / "rejected" / "part-00000.parquet")
    assert (
        stage_checksum(LOCAL, str(tmp_path / "kept"), str(tmp_path / "rejected")).checksum != result.checksum
    )


# --------------------------------------------------------------------------------------------------
# A Spark stage rerun in two fresh JVMs


# One stage write in its own process, so in its own JVM: the input rows split into kept and
# rejected, written by `quality.storage.write_stage` as every Spark stage writes.
STAGE_SCRIPT = """
import sys
from pyspark.sql import functions as F
from quality.recipe import SparkConfig
from quality.spark_session import build_spark_session
from quality.storage import StorageLayout, write_stage

source, root = sys.argv[1], sys.argv[2]
spark = build_spark_session(
    SparkConfig(master="local[1]", driver_memory="1g", shuffle_partitions=1, conf={"spark.ui.enabled": "false"}),
    app_name="codecook-checksum-test",
)
rows = spark.read.parquet(source)
bad = F.col("lang") == "unknown"
rejected = rows.filter(bad).select(
    "doc_id",
    F.lit("raw_code").alias("stage"),
    F.lit("unknown_extension").alias("reason"),
    F.concat(F.lit("extension "), F.col("ext")).alias("detail"),
    "path",
    "lang",
    "size_bytes",
    F.lit(None).cast("string").alias("cluster_id"),
    F.lit(None).cast("string").alias("kept_doc_id"),
)
write_stage(
    rows.filter(~bad), rejected, paths=StorageLayout(root).stage("raw_code"), rows_in=rows.count(), recipe_hash="t"
)
spark.stop()
"""


@pytest.mark.slow  # two JVMs at once: 72 s on 2 shared cores at load 6-9, over 2 min at load 13+
def test_spark_stage_rerun_in_fresh_jvms_has_the_same_checksum(tmp_path):
    from quality.schema import content_sha256, make_doc_id

    files = {
        "pkg/a.py": "def add(a, b):\n    return a + b\n",
        "pkg/b.py": "import os\n\nprint(os.getcwd())\n",
        "c.js": "export const c = () => 42;\n",
        "notes.xyz": "rejected: no language for this extension\n",
    }
    documents = [
        {
            "doc_id": make_doc_id("test", path),
            "content": text,
            "path": path,
            "lang": {".py": "python", ".js": "javascript"}.get(Path(path).suffix, "unknown"),
            "ext": Path(path).suffix,
            "size_bytes": len(text.encode()),
            "sha256": content_sha256(text),
            "stars": None if path.endswith(".js") else 3,
        }
        for path, text in files.items()
    ]
    source = tmp_path / "source.parquet"
    pq.write_table(pa.Table.from_pylist(documents), source)
    # Two JVMs at once, each in its own process: nothing (hash seeds, class loading) is shared.
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", STAGE_SCRIPT, str(source), str(tmp_path / f"out{i}")],
            cwd=tmp_path,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in (1, 2)
    ]
    for run in runs:
        output, _ = run.communicate(timeout=300)
        assert run.returncode == 0, output[-3000:]
    stage = [tmp_path / f"out{i}" / "data" / "raw_code" for i in (1, 2)]
    manifests = [json.loads((folder / MANIFEST).read_text()) for folder in stage]
    assert manifests[0]["rows_out"] == 3 and manifests[0]["rows_rejected"] == 1
    assert manifests[0]["checksum"] == manifests[1]["checksum"]
    # Recomputed from the files, the checksum is the manifest's...
    rejected = str(tmp_path / "out1" / "data" / "rejected" / "raw_code")
    assert stage_checksum(LOCAL, str(stage[0]), rejected).checksum == manifests[0]["checksum"]
    # ...and one changed character in one value changes it.
    part = stage[0] / manifests[0]["files"][0]
    table = pq.read_table(part)
    content = table["content"].to_pylist()
    content[0] = content[0][:-1] + "!"  # the trailing newline becomes "!"
    index = table.column_names.index("content")
    pq.write_table(table.set_column(index, table.schema.field(index), pa.array(content)), part)
    assert stage_checksum(LOCAL, str(stage[0]), rejected).checksum != manifests[0]["checksum"]


# --------------------------------------------------------------------------------------------------
# Atomic writes and swaps


def test_write_json_atomic_both_call_forms(tmp_path):
    write_json_atomic(LOCAL, str(tmp_path / "a" / "one.json"), {"b": 1, "a": [1]})
    write_json_atomic(tmp_path / "b" / "two.json", {"when": datetime.date(2024, 1, 2)})
    write_json_atomic("memory://codecook-test/three.json", {"x": 3})
    assert json.loads((tmp_path / "a" / "one.json").read_text()) == {"a": [1], "b": 1}
    assert json.loads((tmp_path / "b" / "two.json").read_text()) == {"when": "2024-01-02"}
    with fsspec.open("memory://codecook-test/three.json", "r") as handle:
        assert json.load(handle) == {"x": 3}
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "one.json", "two.json"]


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "pool.bin"
    target.write_bytes(b"old")
    with pytest.raises(ZeroDivisionError), atomic_write(target, "wb") as handle:
        handle.write(b"half of the new")
        1 // 0  # noqa: B018
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["pool.bin"]


def test_swap_into_place_replaces_a_folder_whole(tmp_path):
    final = tmp_path / "data" / "stage"
    for version in ("old", "new"):
        build = tmp_path / f"build-{version}"
        build.mkdir()
        (build / f"{version}.parquet").write_text(version)
        swap_into_place(LOCAL, str(build), str(final))
    assert [p.name for p in final.iterdir()] == ["new.parquet"]
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["stage"]


@pytest.mark.parametrize("remote", [False, True])
def test_publish_folder_puts_the_manifest_last(tmp_path, remote, monkeypatch):
    target = "memory://codecook-publish/set" if remote else str(tmp_path / "set")
    from fsspec.implementations.memory import MemoryFileSystem

    uploaded: list[str] = []
    put_file = MemoryFileSystem.put_file

    def recording(self, lpath, rpath, *args, **kwargs):
        uploaded.append(os.path.basename(rpath))
        return put_file(self, lpath, rpath, *args, **kwargs)

    monkeypatch.setattr(MemoryFileSystem, "put_file", recording)
    for version in ("old", "new"):
        build = tmp_path / f"build-{version}"
        build.mkdir()
        (build / f"shard-{version}.bin").write_bytes(version.encode())
        (build / MANIFEST).write_text(json.dumps({"version": version}))
        publish_folder(str(build), target)
        if remote:
            shutil.rmtree(build)
    fs, path = fsspec.core.url_to_fs(target)
    assert sorted(os.path.basename(p) for p in fs.ls(path, detail=False)) == [MANIFEST, "shard-new.bin"]
    with fs.open(f"{path}/{MANIFEST}", "r") as handle:
        assert json.load(handle) == {"version": "new"}
    if remote:
        assert uploaded == ["shard-old.bin", MANIFEST, "shard-new.bin", MANIFEST]
        fs.rm(path, recursive=True)
