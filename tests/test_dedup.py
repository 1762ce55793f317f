"""Exact and near dedup on real code: this interpreter's standard library plus planted copies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from itertools import combinations
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from quality.dedup import minhash
from quality.dedup.cli import prepare_documents, run_dedup
from quality.dedup.components import connected_components, label_components
from quality.dedup.config import DedupConfig, derive_lsh_params
from quality.dedup.engine import DedupInputError, exact_dedup, near_dedup
from quality.dedup.keep import keep_key, keep_order
from quality.schema import DOCUMENT_FIELDS, content_sha256, make_doc_id
from quality.storage import StorageLayout, write_stage

STDLIB = Path(sysconfig.get_paths()["stdlib"])
PROJECT_ROOT = Path(__file__).resolve().parent.parent
UNRELATED = sorted(
    p
    for package in ("json", "http", "logging", "urllib", "email/mime")
    for p in (STDLIB / package).glob("*.py")
)
FAMILY_BASE = STDLIB / "email" / "feedparser.py"
CONFIG = DedupConfig(num_bands=25, rows_per_band=10)
# The document schema with every column nullable, so tests can plant rows without content.
DOCUMENT_SCHEMA = T.StructType([T.StructField(f.name, f.dataType, True) for f in DOCUMENT_FIELDS])


def _doc(path: str, content: str | None, *, stars=None, commit_date=None, licence=None, repo="repo") -> dict:
    return {
        "doc_id": make_doc_id("test", path),
        "content": content,
        "path": path,
        "repo": repo,
        "lang": "python",
        "ext": ".py",
        "size_bytes": len((content or "").encode()),
        "sha256": content_sha256(content) if content is not None else None,
        "stars": stars,
        "licence": licence,
        "commit_date": commit_date,
        "source": "code",
        "url": None,
    }


def _mutations(text: str) -> list[str]:
    """Edits a fork or a vendored copy typically carries: removed lines, a renamed name, new code."""
    lines = text.split("\n")
    return [
        "\n".join(line for i, line in enumerate(lines) if i % 25 != 7),
        text.replace("self._cur", "self._current_message").replace("_factory", "_make_message"),
        "\n".join(lines[:300] + ["def extra_helper(value):", "    return value * 2", ""] + lines[300:]),
        "\n".join(line for i, line in enumerate(lines) if i % 40 != 3).replace("headers", "header_lines"),
    ]


@pytest.fixture(scope="module")
def corpus() -> dict:
    base = FAMILY_BASE.read_text()
    family = [_doc("family/feedparser.py", base, stars=10, commit_date="2023-01-01T00:00:00Z")]
    for index, text in enumerate(_mutations(base)):
        # The most-starred member is a mutated fork: the keep policy must prefer it.
        family.append(_doc(f"family/fork{index}.py", text, stars=500 if index == 2 else index))
    unrelated = [_doc(f"unrelated/{p.relative_to(STDLIB)}", p.read_text(), stars=1) for p in UNRELATED]
    unrelated = [d for d in unrelated if d["content"].strip()]
    return {"family": family, "unrelated": unrelated}


def test_lsh_parameters_are_explicit_or_derived_and_printed():
    derived = DedupConfig().lsh()
    assert (derived.num_bands, derived.rows_per_band, derived.derived) == (25, 10, True)
    assert "25 bands x 10 rows" in derived.explain() and "derived from threshold 0.7" in derived.explain()
    explicit = DedupConfig(num_bands=32, rows_per_band=8).lsh()
    assert not explicit.derived and abs(explicit.s_curve_midpoint - (1 / 32) ** (1 / 8)) < 1e-12
    # OpenCoder's "16 bands x 128 rows" read literally only catches near-identical files.
    assert derive_lsh_params(2048, 0.98).s_curve_midpoint > 0.9
    assert DedupConfig(num_perm=2048, num_bands=16, rows_per_band=128).lsh().probability(0.9) < 0.01
    with pytest.raises(ValueError, match="exceeds num_perm"):
        DedupConfig(num_bands=32, rows_per_band=9)
    with pytest.raises(ValueError, match="give both"):
        DedupConfig(num_bands=32)


def test_vectorised_shingles_and_signatures_match_a_plain_python_reference():
    import re

    texts = [p.read_text() for p in UNRELATED[:12]] + ["a b", "", "  !! ", "x y z w v u"]
    sets = minhash.shingle_sets(texts, 5)
    for text, hashes in zip(texts, sets, strict=True):
        tokens = [t for t in re.split(r"[^\w]+", text) if t]
        grams = (
            {tuple(tokens[i : i + 5]) for i in range(len(tokens) - 4)}
            if len(tokens) >= 5
            else {tuple(tokens)}
        )
        assert len(hashes) == (len(grams) if tokens else 0)
    # The MinHash estimate follows the exact Jaccard within a few standard errors.
    base = FAMILY_BASE.read_text()
    variants = [base, *_mutations(base), UNRELATED[3].read_text()]
    exact = minhash.shingle_sets(variants, 5)
    signature = minhash.signatures(minhash.shingle_batch(pa.array(variants, pa.large_string()), 5), 256, 7)
    for i in range(1, len(variants)):
        truth = minhash.jaccard(exact[0], exact[i])
        estimate = float((signature[0] == signature[i]).mean())
        assert abs(estimate - truth) < 4 * max(np.sqrt(truth * (1 - truth) / 256), 0.01), (i, truth, estimate)


def test_keep_policy_is_one_total_order_in_spark_and_python(spark):
    rows = [
        _doc("a", "same", stars=5, commit_date="2020-01-01T00:00:00Z", licence="GPL-3.0"),
        _doc("b", "same", stars=5, commit_date="2021-06-01T10:00:00+02:00", licence="gpl-3.0"),
        _doc("c", "same", stars=5, commit_date="2021-06-01T08:00:00Z", licence=" MIT "),
        _doc("d", "same", stars=None, commit_date="2030-01-01", licence="MIT"),
        _doc("e", "same", stars=5, commit_date="not a date", licence="MIT"),
        _doc("f", "same", stars=5, commit_date="2021-06-01T08:00:00Z", licence="Apache-2.0"),
    ]
    frame = spark.createDataFrame(rows, DOCUMENT_SCHEMA)
    order = keep_order(CONFIG.permissive_licences)
    spark_order = [r["doc_id"] for r in frame.orderBy(*order).collect()]
    python_order = [r["doc_id"] for r in sorted(rows, key=lambda r: keep_key(r, CONFIG.permissive_licences))]
    assert spark_order == python_order
    by_path = {r["doc_id"]: r["path"] for r in rows}
    # Same stars and instant: the permissive licences c and f lead (tie-broken by doc_id), then b,
    # then the older a, then the unparseable date, then unknown stars last despite the newest date.
    assert [by_path[d] for d in spark_order][2:] == ["b", "a", "e", "d"]
    window = Window.partitionBy("sha256").orderBy(*order)
    picked = frame.withColumn("rank", F.row_number().over(window)).filter("rank = 1").collect()[0]["doc_id"]
    assert picked == spark_order[0]


def test_exact_duplicates_keep_the_starred_copy_and_reject_rows_without_content(spark, corpus, tmp_path):
    original = corpus["unrelated"][0]["content"]
    copies = [
        _doc("copy/low.py", original, stars=3),
        _doc("copy/top.py", original, stars=900),
        _doc("copy/none.py", original, stars=None, commit_date="2031-01-01T00:00:00Z"),
        _doc("bad/null.py", None),
        _doc("bad/blank.py", "  \n\t"),
    ]
    rows = corpus["unrelated"] + copies
    result = exact_dedup(spark.createDataFrame(rows, DOCUMENT_SCHEMA), CONFIG, log=lambda _: None)
    try:
        paths = StorageLayout(str(tmp_path)).stage("exact_dedup")
        manifest = write_stage(
            result.kept, result.rejected, paths=paths, rows_in=result.rows_in, recipe_hash="t"
        )
    finally:
        result.release()
    assert manifest["rows_in"] == manifest["rows_out"] + manifest["rows_rejected"] == len(rows)
    assert manifest["rejected_by_reason"] == {"exact_duplicate": 3, "missing_content": 1, "empty_content": 1}
    kept = {r["path"] for r in pq.read_table(paths.data_dir).to_pylist()}
    assert "copy/top.py" in kept and not kept & {
        "copy/low.py",
        "copy/none.py",
        corpus["unrelated"][0]["path"],
    }
    rejected = {r["path"]: r for r in pq.read_table(paths.rejected_dir).to_pylist()}
    top_id = make_doc_id("test", "copy/top.py")
    for path in ("copy/low.py", "copy/none.py", corpus["unrelated"][0]["path"]):
        assert rejected[path]["kept_doc_id"] == top_id
        assert rejected[path]["cluster_id"] == content_sha256(original)


def _near(spark, rows, tmp_path, name, config=CONFIG):
    result = near_dedup(spark.createDataFrame(rows, DOCUMENT_SCHEMA), config, log=lambda _: None)
    try:
        paths = StorageLayout(str(tmp_path / name)).stage("near_dedup")
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
    return manifest, pq.read_table(paths.data_dir).to_pylist(), pq.read_table(paths.rejected_dir).to_pylist()


def test_near_family_collapses_unrelated_files_never_cluster_and_reruns_are_identical(
    spark, corpus, tmp_path
):
    family, unrelated = corpus["family"], corpus["unrelated"]
    sets = minhash.shingle_sets([d["content"] for d in family + unrelated], 5)
    family_j = [minhash.jaccard(sets[0], sets[i]) for i in range(1, len(family))]
    assert min(family_j) >= 0.75, family_j  # the planted family really is near-duplicate
    unrelated_j = max(minhash.jaccard(a, b) for a, b in combinations(sets[len(family) :], 2))
    assert unrelated_j < 0.5  # ...and the rest really is unrelated

    rows = family + unrelated
    manifest, kept, rejected = _near(spark, rows, tmp_path, "first")
    assert manifest["rows_in"] == len(rows) == manifest["rows_out"] + manifest["rows_rejected"]
    family_ids = {d["doc_id"] for d in family}
    fork = make_doc_id("test", "family/fork2.py")  # 500 stars
    assert [r["doc_id"] for r in kept if r["doc_id"] in family_ids] == [fork]
    assert {r["doc_id"] for r in rejected} == family_ids - {fork}
    assert {(r["reason"], r["kept_doc_id"], r["cluster_id"]) for r in rejected} == {
        ("near_duplicate", fork, min(family_ids))
    }
    assert all(0.6 < float(r["detail"].split("estimate ")[1].split(")")[0]) <= 1.0 for r in rejected)
    for row in kept:
        if row["doc_id"] not in family_ids:
            assert row["cluster_id"] == row["doc_id"], row["path"]
    assert manifest["near_clusters"] == 1 and manifest["largest_cluster"] == len(family)

    assert manifest["components_computed_on"].startswith("driver")  # a small graph stays off Spark rounds

    # Rerun, with the input rows in reverse order and the graph in Spark's large-star / small-star
    # rounds instead of on the driver: the same rows.
    spark_rounds = DedupConfig(num_bands=25, rows_per_band=10, driver_graph_max_edges=0)
    again, _, _ = _near(spark, list(reversed(rows)), tmp_path, "second", spark_rounds)
    assert again["components_computed_on"].startswith("spark")
    assert again["checksum"] == manifest["checksum"]
    # A graph just over the driver's bound: its bucket members come back to the driver, overflow
    # the bound and the stage goes on in Spark, with the same rows and the same facts.
    overflow = DedupConfig(num_bands=25, rows_per_band=10, driver_graph_max_edges=len(family) - 2)
    third, _, _ = _near(spark, rows, tmp_path, "third", overflow)
    assert third["components_computed_on"].startswith("spark")
    assert third["checksum"] == manifest["checksum"]
    same_facts = ("candidate_buckets", "largest_bucket", "capped_buckets", "graph_edges", "docs_indexed")
    assert {k: third[k] for k in same_facts} == {k: manifest[k] for k in same_facts}, (third, manifest)


def _chain() -> list[dict]:
    """X0 ~ X1 ~ X2: each link close, the two ends further apart; X0 has the most stars."""
    x0 = (STDLIB / "email" / "_header_value_parser.py").read_text()
    x1 = "\n".join(line for i, line in enumerate(x0.split("\n")) if i % 20 != 5)
    x2 = "\n".join(line for i, line in enumerate(x1.split("\n")) if i % 20 != 15)
    return [
        _doc("chain/x0.py", x0, stars=900),
        _doc("chain/x1.py", x1, stars=5),
        _doc("chain/x2.py", x2, stars=1),
    ]


def test_verified_edges_capped_buckets_and_chain_ends_keep_a_twin(spark, corpus, tmp_path):
    chain = _chain()
    sets = minhash.shingle_sets([d["content"] for d in chain], 5)
    links = min(minhash.jaccard(sets[0], sets[1]), minhash.jaccard(sets[1], sets[2]))
    ends = minhash.jaccard(sets[0], sets[2])
    assert links - ends >= 0.06, (links, ends)  # the premise: the ends are visibly further apart
    rows = corpus["family"] + chain + corpus["unrelated"][:8]
    config = DedupConfig(
        num_bands=25,
        rows_per_band=10,
        verify=True,
        verify_threshold=0.6,
        bucket_cap=2,
        kept_twin_min_jaccard=(links + ends) / 2,
    )
    manifest, kept, rejected = _near(spark, rows, tmp_path, "verified", config)
    assert manifest["capped_buckets"] >= 1  # the 5-member family buckets exceed a cap of 2
    assert (
        manifest["candidate_pairs_verified"]
        >= manifest["candidate_pairs_passed"]
        >= len(corpus["family"]) + 1
    )
    ids = [d["doc_id"] for d in chain]
    # One component; X1 goes as the twin of X0, but X2 is too far from X0 to be removed for it,
    # so it is kept in a second round.
    assert len({r["cluster_id"] for r in kept + rejected if r["doc_id"] in ids}) == 1
    assert {r["doc_id"] for r in kept} >= {ids[0], ids[2]}
    assert [(r["doc_id"], r["kept_doc_id"]) for r in rejected if r["doc_id"] in ids] == [(ids[1], ids[0])]
    assert manifest["kept_in_components"] == 3 and manifest["removed_below_min_jaccard"] == 0
    assert len(rejected) == len(corpus["family"]) - 1 + 1


def test_connected_components_match_union_find(spark):
    rng = np.random.default_rng(3)
    chain = [(f"n{i:03d}", f"n{i + 1:03d}") for i in range(40)]  # long diameter, worst case for labels
    random_edges = [(f"r{a:03d}", f"r{b:03d}") for a, b in rng.integers(0, 60, size=(45, 2)) if a != b]
    star = [("s999", f"s{i:03d}") for i in range(30)]
    edges = chain + random_edges + star
    components = connected_components(spark.createDataFrame(edges, "a string, b string"))
    got = {row["node"]: row["root"] for row in components.labels.collect()}

    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        parent[max(ra, rb)] = min(ra, rb)
    assert got == {node: find(node) for node in parent}
    assert components.rounds <= 12

    # The driver's numpy twin (small graphs): nodes numbered in doc_id order, the same roots.
    names = sorted(parent)
    number = {name: i for i, name in enumerate(names)}
    left, right = (np.array([number[edge[k]] for edge in edges]) for k in (0, 1))
    roots, hooking_rounds = label_components(left, right, len(names))
    assert {name: names[root] for name, root in zip(names, roots, strict=True)} == got
    assert hooking_rounds <= 12


def _write_jsonl(path: Path, rows: list[dict], extra_lines: tuple[str, ...] = ()) -> None:
    with path.open("w") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
        for line in extra_lines:
            handle.write(line + "\n")


def _jsonl_rows(corpus) -> list[dict]:
    rows = [
        {"id": 1000 + i, "content": d["content"], "path": d["path"], "stars": d["stars"]}
        for i, d in enumerate(corpus["family"])
    ]
    rows += [
        {"id": 2000 + i, "content": d["content"], "path": d["path"]}
        for i, d in enumerate(corpus["unrelated"][:15])
    ]
    rows.append({"id": 3000, "content": corpus["unrelated"][2]["content"], "path": "dup/copy.py", "stars": 7})
    rows.append({"id": 3001, "content": None, "path": "bad/none.py"})
    rows.append({"id": 3002, "content": "", "path": "bad/empty.py"})
    return rows


def _parts(folder: Path) -> dict[str, pa.Table]:
    return {p.name: pq.read_table(p) for p in sorted(folder.glob("part-*.parquet"))}


def _page_bytes(path: Path) -> bytes:
    """Everything of a Parquet file but its footer (parquet-java writes the footer's encodings lists
    in HashSet order, which changes from one JVM to the next: apache/parquet-java#3215)."""
    data = path.read_bytes()
    footer = int.from_bytes(data[-8:-4], "little")
    return data[: len(data) - footer - 8]


@pytest.mark.slow
def test_cli_on_jsonl_carries_ids_and_matches_a_one_core_run_in_another_process(spark, corpus, tmp_path):
    source = tmp_path / "docs.jsonl"
    rows = _jsonl_rows(corpus)
    _write_jsonl(source, rows, extra_lines=("{this is not json",))
    two_cores = tmp_path / "two"
    manifests = run_dedup(spark, str(source), str(two_cores), CONFIG, log=lambda _: None)
    exact, near = manifests["exact_dedup"], manifests["near_dedup"]
    assert exact["rows_in"] == len(rows) + 1
    assert exact["rejected_by_reason"] == {
        "exact_duplicate": 1,
        "malformed_json": 1,
        "missing_content": 1,
        "empty_content": 1,
    }
    assert near["rejected_by_reason"] == {"near_duplicate": len(corpus["family"]) - 1}
    kept = pq.read_table(two_cores / "data" / "near_dedup").to_pylist()
    assert {"id", "cluster_id", "doc_id", "sha256", "lang"} <= set(kept[0])
    # Family: fork2 (id 1003, 500 stars) survives; the exact copy with 7 stars beats the one with none.
    assert {r["id"] for r in kept} == {r["id"] for r in rows} - {1000, 1001, 1002, 1004, 2002, 3001, 3002}
    assert {r["lang"] for r in kept} == {"python"}

    one_core = tmp_path / "one"
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestration.cli",
            "dedup",
            "--input",
            str(source),
            "--output",
            str(one_core),
            "--master",
            "local[1]",
            "--config",
            str(_config_file(tmp_path)),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    assert "25 bands x 10 rows" in process.stdout
    for stage in ("exact_dedup", "near_dedup", "rejected/exact_dedup", "rejected/near_dedup"):
        ours, theirs = _parts(two_cores / "data" / stage), _parts(one_core / "data" / stage)
        assert list(ours) == list(theirs)
        for name in ours:
            assert ours[name].equals(theirs[name]), (stage, name)
            assert _page_bytes(two_cores / "data" / stage / name) == _page_bytes(
                one_core / "data" / stage / name
            )


def _config_file(tmp_path: Path) -> Path:
    path = tmp_path / "dedup.yaml"
    path.write_text("num_bands: 25\nrows_per_band: 10\n")
    return path


def test_malformed_input_gives_a_clear_error(spark, tmp_path):
    no_content = tmp_path / "no_content.jsonl"
    _write_jsonl(no_content, [{"id": 1, "text_body": "x = 1"}])
    with pytest.raises(DedupInputError, match="no 'content' column.*text_body"):
        run_dedup(spark, str(no_content), str(tmp_path / "out"), CONFIG, log=lambda _: None)
    with pytest.raises(DedupInputError, match="input not found"):
        run_dedup(spark, str(tmp_path / "missing.jsonl"), str(tmp_path / "out"), CONFIG, log=lambda _: None)
    repeated = tmp_path / "repeated.jsonl"
    _write_jsonl(repeated, [{"doc_id": "same", "content": "a = 1"}, {"doc_id": "same", "content": "b = 2"}])
    with pytest.raises(DedupInputError, match="doc_id must be unique"):
        run_dedup(spark, str(repeated), str(tmp_path / "out"), CONFIG, log=lambda _: None)
    docs = spark.createDataFrame([("x", "print(1)")], "doc_id string, content string")
    with pytest.raises(DedupInputError, match=r"lacks column\(s\) \['sha256'"):
        exact_dedup(docs, CONFIG)
    prepared, _, _ = prepare_documents(docs.drop("doc_id").withColumn("id", F.lit(5)), "src")
    assert prepared.collect()[0]["doc_id"] == make_doc_id("src", "id:5")


@pytest.mark.slow
def test_assets_materialize_with_blocking_checks_plots_and_mlflow(spark, tmp_path, home):
    import dagster as dg
    import mlflow
    import yaml

    from assets.dedup import exact_dedup_asset, exact_dedup_checks, near_dedup_asset, near_dedup_checks
    from assets.ingest import raw_code, raw_code_checks
    from orchestration.resources import (
        DuckDBResource,
        MLflowResource,
        RecipeResource,
        SparkResource,
        StorageResource,
    )

    source = tmp_path / "src"
    for folder in ("a", "b"):  # b/ is a byte-identical copy of a/
        (source / folder).mkdir(parents=True)
        for path in sorted((STDLIB / "json").glob("*.py")):
            (source / folder / path.name).write_text(path.read_text())
    for index, text in enumerate(_mutations(FAMILY_BASE.read_text())[:2]):
        (source / "a" / f"feedparser_fork{index}.py").write_text(text)
    (source / "a" / "feedparser.py").write_text(FAMILY_BASE.read_text())
    recipe = tmp_path / "unit.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "name": "dedup-unit",
                "spark": {"master": "local[2]", "shuffle_partitions": 4},
                "sources": [{"name": "src", "kind": "folder", "path": str(source), "stars": 3}],
                "dedup": {"num_bands": 25, "rows_per_band": 10},
            }
        )
    )
    resources = {
        "recipe": RecipeResource(path=str(recipe)),
        "storage": StorageResource(root=str(home)),
        "spark": SparkResource(),
        "mlflow": MLflowResource(),
        "duckdb": DuckDBResource(),
    }
    selection = [
        raw_code,
        *raw_code_checks,
        exact_dedup_asset,
        *exact_dedup_checks,
        near_dedup_asset,
        *near_dedup_checks,
    ]
    with dg.DagsterInstance.get() as instance:
        result = dg.materialize(selection, resources=resources, instance=instance)
    assert result.success
    evaluations = {
        (e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()
    }
    for stage in ("exact_dedup", "near_dedup"):
        for check in ("conservation", "schema", "expectations", "unique_sha256", "kept_twin_present"):
            assert evaluations[(stage, check)].passed, (stage, check, evaluations[(stage, check)].metadata)
    exact = result.asset_materializations_for_node("exact_dedup")[0].metadata
    near = result.asset_materializations_for_node("near_dedup")[0].metadata
    json_files = len(list((STDLIB / "json").glob("*.py")))
    assert exact["rows_rejected"].value == json_files  # every file of b/ is a copy
    assert near["rows_rejected"].value == 2  # the two forks go, one family member stays
    assert "python" in exact["duplicate_rate_by_language"].value
    # Plots are shown from the MLflow UI's artifact endpoint (assets._stage.figure_metadata).
    for key, png in (("cluster_size_plot", "cluster_sizes.png"), ("s_curve_plot", "s_curve.png")):
        assert near[key].value.startswith(f"![near_dedup/{png}](http://127.0.0.1:5000/get-artifact?")
        assert near["mlflow_run_id"].value in near[key].value
    assert "25 bands x 10 rows" in near["lsh"].value
    assert "| 3 |" in near["cluster_size_histogram"].value
    mlflow.set_tracking_uri(f"sqlite:///{home}/mlflow.db")
    run = mlflow.get_run(near["mlflow_run_id"].value)
    assert run.data.params["num_bands"] == "25" and run.data.tags["dagster.asset_key"] == "near_dedup"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "near_dedup")}
    assert "near_dedup/s_curve.png" in artifacts and "near_dedup/cluster_sizes.png" in artifacts
