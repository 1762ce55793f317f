"""The whole graph, end to end, through the `codecook demo` command on a cut-down demo recipe.

Same code path as `make demo` (a fresh process, the Dagster job `demo`, a SQLite instance and
MLflow store under a private storage root); only the recipe is smaller: fewer source folders, the
committed web sample, a few training steps and a few benchmark problems.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def smoke_recipe(target: Path) -> Path:
    recipe = yaml.safe_load((PROJECT_ROOT / "recipes" / "demo.yaml").read_text())
    recipe["name"] = "smoke"
    stdlib, site_packages = recipe["sources"]
    stdlib["include"] = ["json/**", "email/**", "http/**", "logging/**", "xml/**", "test/cjkencodings/**"]
    # Two vendored copies of the same library: near duplicates for dedup to find.
    site_packages["include"] = [
        "pip/_vendor/packaging/**",
        "setuptools/_vendor/packaging/**",
        "google/protobuf/*_pb2.py",
    ]
    recipe["web"]["installed_docs"] = False  # the committed sample only
    recipe["tokenizer"].update(vocab_size=1024, train_sample_bytes=2_000_000)
    recipe["training"].update(steps=16, warmup_steps=2, checkpoint_every=8, log_every=4)
    recipe["eval"]["humaneval"] = {"limit": 2}
    recipe["eval"]["mbpp"] = {"limit": 2}
    recipe["eval"]["fim"].update(max_examples=4)
    # The SFT before/after comparison on one HumanEval and one MBPP problem, short replies: the
    # demo's 4 + 4 problems at 160 tokens took 52 of this test's ~240 s (base and tuned model).
    recipe["sft"].update(eval_limit=1, eval_max_new_tokens=64)
    path = target / "smoke.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


@pytest.mark.slow
def test_codecook_demo_materializes_the_whole_graph(tmp_path):
    recipe = smoke_recipe(tmp_path)
    home = tmp_path / "home"
    completed = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "demo", "--recipe", str(recipe), "--home", str(home)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    assert "demo finished" in completed.stdout

    from orchestration.definitions import defs

    document_stages = []
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        if graph.get(key).is_observable:  # code_sources: observed, not materialized
            continue
        manifest_path = home / "data" / key.to_user_string() / "_manifest.json"
        assert manifest_path.exists(), f"{key.to_user_string()} wrote no manifest"
        manifest = json.loads(manifest_path.read_text())
        if "rows_in" in manifest and "rows_rejected" in manifest:
            document_stages.append(key.to_user_string())
            # Nothing lost: every stage accounts for every input row.
            assert manifest["rows_in"] == manifest["rows_out"] + manifest["rows_rejected"], key
            assert sum(manifest["rejected_by_reason"].values()) == manifest["rows_rejected"], key
    assert {"raw_code", "exact_dedup", "near_dedup", "filtered_code", "code_mix", "web_pages"} <= set(
        document_stages
    )

    # The demo mixes StarCoder's other sources in (share 1 each): code_mix read every one of them.
    mixed = json.loads((home / "data" / "code_mix" / "_manifest.json").read_text())
    assert mixed["mix_sources"] == {"gh_issues": 1.0, "git_commits": 1.0, "notebooks_clean": 1.0}
    assert mixed["mix_sources_not_read"] == {}

    # Training and its evaluation land in one MLflow run.
    import mlflow

    checkpoint = json.loads((home / "data" / "checkpoint" / "_manifest.json").read_text())
    mlflow.set_tracking_uri(f"sqlite:///{home}/mlflow.db")
    run = mlflow.get_run(checkpoint["mlflow_run_id"])
    metric_names = set(run.data.metrics)
    assert "humaneval.pass_at_1" in metric_names, sorted(metric_names)
    assert any(n.startswith("mbpp") and n.endswith(".pass_at_1") for n in metric_names), sorted(metric_names)
    assert run.data.metrics["final_loss"] > 0
