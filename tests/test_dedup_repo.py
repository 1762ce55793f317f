"""`dedup.level: repo` (OpenCoder's repository-level dedup ablation) against `file`, on small repos.

The repositories are made of standard-library files:
  alpha, alpha-copy  byte-identical repositories        -> repo level: the less starred one goes whole
  beta, beta-fork    one file edited in the fork         -> repo level (near): the fork goes whole
  gamma, delta       different repos sharing one near-duplicate file (feedparser.py and an edit)
                                                        -> repo level: both kept whole;
                                                           file level: one feedparser copy goes
  a loose file without a repo, identical to a gamma file -> its own unit: kept at repo level
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import types as T

from contracts.config import RecipeError, build_config
from quality.dedup import minhash
from quality.dedup.config import DedupConfig
from quality.dedup.engine import exact_dedup, near_dedup, union_signatures
from quality.schema import DOCUMENT_FIELDS, content_sha256, make_doc_id
from quality.storage import StorageLayout, write_stage

STDLIB = Path(sysconfig.get_paths()["stdlib"])
DOCUMENT_SCHEMA = T.StructType([T.StructField(f.name, f.dataType, True) for f in DOCUMENT_FIELDS])
FILE = DedupConfig(num_bands=32, rows_per_band=8)
REPO = DedupConfig(num_bands=32, rows_per_band=8, level="repo")


def _text(name: str) -> str:
    return (STDLIB / name).read_text()


def _edit(text: str, every: int = 30) -> str:
    """A fork's edit: some lines dropped, a name changed (Jaccard with the original ~0.8-0.9)."""
    lines = [line for i, line in enumerate(text.split("\n")) if i % every != 7]
    return "\n".join(lines).replace("self._cur", "self._current_message")


def _doc(repo: str | None, name: str, content: str, stars: int | None) -> dict:
    path = f"{repo or 'loose'}/{name}"
    return {
        "doc_id": make_doc_id("test", path),
        "content": content,
        "path": path,
        "repo": repo,
        "lang": "python",
        "ext": ".py",
        "size_bytes": len(content.encode()),
        "sha256": content_sha256(content),
        "stars": stars,
        "licence": "MIT",
        "commit_date": None,
        "source": "code",
        "url": None,
    }


def _repo(name: str, stars: int, files: dict[str, str]) -> list[dict]:
    return [_doc(name, path, text, stars) for path, text in files.items()]


@pytest.fixture(scope="module")
def rows() -> dict[str, list[dict]]:
    alpha = {"decoder.py": _text("json/decoder.py"), "encoder.py": _text("json/encoder.py")}
    beta = {"cookies.py": _text("http/cookies.py"), "server.py": _text("http/server.py")}
    feed = _text("email/feedparser.py")
    gamma = {"feedparser.py": feed, "charset.py": _text("email/charset.py")}
    delta = {"feedparser.py": _edit(feed), "parse.py": _text("urllib/parse.py")}
    return {
        "alpha": _repo("alpha", 10, alpha),
        "alpha-copy": _repo("alpha-copy", 50, alpha),
        "beta": _repo("beta", 100, beta),
        "beta-fork": _repo("beta-fork", 3, {**beta, "server.py": _edit(beta["server.py"], 25)}),
        "gamma": _repo("gamma", 7, gamma),
        "delta": _repo("delta", 8, delta),
        "loose": [_doc(None, "charset.py", gamma["charset.py"], None)],
    }


def _all(rows: dict[str, list[dict]]) -> list[dict]:
    return [row for group in rows.values() for row in group]


def _run(spark, engine, docs, config, tmp_path: Path, name: str):
    frame = docs if not isinstance(docs, list) else spark.createDataFrame(docs, DOCUMENT_SCHEMA)
    result = engine(frame, config, log=lambda _: None)
    try:
        paths = StorageLayout(str(tmp_path / name)).stage(result.stage)
        manifest = write_stage(
            result.kept,
            result.rejected,
            paths=paths,
            rows_in=result.rows_in,
            recipe_hash="t",
            extra=result.facts,
        )
    finally:
        result.release()
    kept = pq.read_table(paths.data_dir).to_pylist()
    rejected = pq.read_table(paths.rejected_dir).to_pylist()
    assert manifest["rows_in"] == manifest["rows_out"] + manifest["rows_rejected"] == result.rows_in
    return manifest, kept, rejected


def _ids(rows: list[dict]) -> set[str]:
    return {row["doc_id"] for row in rows}


def test_level_is_a_validated_recipe_knob():
    assert DedupConfig().level == "file"
    assert build_config(DedupConfig, {"level": "repo"}, "dedup").level == "repo"
    with pytest.raises(RecipeError, match="level"):
        build_config(DedupConfig, {"level": "directory"}, "dedup")
    assert REPO.as_params()["level"] == "repo"


def test_unit_signature_is_the_minhash_of_the_union_of_its_files(rows):
    files = [row["content"] for row in rows["gamma"]]
    config = DedupConfig(num_perm=64, num_bands=8, rows_per_band=8, verify=True)
    shingles = minhash.shingle_batch(pa.array(files, pa.large_string()), config.shingle_size)
    per_file = minhash.signatures(shingles, config.num_perm, config.seed).view(np.int32)
    sets = minhash.unique_shingles(shingles)
    table = pa.table(
        {
            "unit_id": ["u", "u"],
            "doc_id": ["a", "b"],
            "tokens": pa.array(shingles.tokens_per_doc, pa.int64()),
            "band_keys": pa.array([[], []], pa.list_(pa.int64())),
            "signature": pa.array(list(per_file), pa.list_(pa.int32())),
            "shingles": pa.array([s.view(np.int64) for s in sets], pa.list_(pa.int64())),
        }
    )
    unit = union_signatures(config)(table).to_pylist()[0]
    union = np.union1d(*sets)
    # The MinHash of the union, computed directly from its shingles as one document.
    direct = minhash.signatures(
        minhash.Shingles(union, np.zeros(len(union), np.int64), np.array([len(union)])),
        config.num_perm,
        config.seed,
    )[0]
    assert unit["doc_id"] == "u" and unit["tokens"] == int(shingles.tokens_per_doc.sum())
    assert np.array_equal(np.array(unit["signature"], np.int32).view(np.uint32), direct)
    assert np.array_equal(
        np.array(unit["band_keys"]),
        minhash.band_keys(direct[None, :], config.num_bands, config.rows_per_band)[0],
    )
    assert sorted(unit["shingles"]) == sorted(union.view(np.int64).tolist())


def test_exact_repo_level_removes_identical_repositories_whole_and_keeps_shared_files(spark, rows, tmp_path):
    docs = _all(rows)
    manifest, kept, rejected = _run(spark, exact_dedup, docs, REPO, tmp_path, "exact_repo")
    kept_copy = min(_ids(rows["alpha-copy"]))  # the kept repository's smallest doc_id
    assert _ids(rejected) == _ids(rows["alpha"])  # the less starred copy, every file of it
    assert {(r["reason"], r["kept_doc_id"]) for r in rejected} == {("repo_exact_duplicate", kept_copy)}
    assert len({r["cluster_id"] for r in rejected}) == 1
    assert kept_copy in _ids(kept)
    # The loose copy of gamma's charset.py is its own unit, not a copy of gamma: kept.
    assert _ids(rows["loose"]) <= _ids(kept)
    # Kept rows are the input rows, every column as it came in.
    by_id = {row["doc_id"]: row for row in docs}
    assert all(row == by_id[row["doc_id"]] for row in kept)
    assert manifest["units_in"] == 7 and manifest["units_removed"] == 1 and manifest["level"] == "repo"

    # File level on the same input: the alpha files, the loose copy and beta-fork's untouched
    # cookies.py go one by one.
    _, _, file_rejected = _run(spark, exact_dedup, docs, FILE, tmp_path, "exact_file")
    fork_cookies = {make_doc_id("test", "beta-fork/cookies.py")}
    assert _ids(file_rejected) == _ids(rows["alpha"]) | _ids(rows["loose"]) | fork_cookies
    assert {r["reason"] for r in file_rejected} == {"exact_duplicate"}


def test_near_repo_level_removes_forked_repositories_whole_but_keeps_repos_sharing_one_file(
    spark, rows, tmp_path
):
    docs = [row for name, group in rows.items() if name != "alpha" for row in group]
    manifest, kept, rejected = _run(spark, near_dedup, docs, REPO, tmp_path, "near_repo")
    beta = min(_ids(rows["beta"]))
    assert _ids(rejected) == _ids(rows["beta-fork"])  # 3 stars against beta's 100: the fork goes whole
    assert {(r["reason"], r["kept_doc_id"], r["cluster_id"]) for r in rejected} == {
        ("repo_near_duplicate", beta, min(_ids(rows["beta"]) | _ids(rows["beta-fork"])))
    }
    assert _ids(rows["gamma"]) | _ids(rows["delta"]) <= _ids(kept)  # one shared file is not enough
    # Every kept file carries its component's id; a repository without a twin: its own smallest doc_id.
    cluster = {row["doc_id"]: row["cluster_id"] for row in kept}
    for name in ("gamma", "delta", "alpha-copy"):
        assert {cluster[i] for i in _ids(rows[name])} == {min(_ids(rows[name]))}
    assert manifest["units_in"] == 6 and manifest["units_removed"] == 1
    assert manifest["near_duplicates_removed"] == len(rows["beta-fork"]) == manifest["rows_rejected"]

    # File level: every near (or identical) pair of files loses one, across repositories too:
    # beta-fork's edited server.py, and one of gamma's and delta's feedparser.py.
    _, _, file_rejected = _run(spark, near_dedup, docs, FILE, tmp_path, "near_file")
    near = {r["path"] for r in file_rejected}
    assert "beta-fork/server.py" in near and len(near & {"gamma/feedparser.py", "delta/feedparser.py"}) == 1
    assert {r["reason"] for r in file_rejected} == {"near_duplicate"}
