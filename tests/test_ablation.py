"""Planning an ablation: every variant checked before any work; run recipes that load like any other."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.recipe import load_recipe
from orchestration.ablation import AblationError, plan_ablation, write_run_recipes

ABLATIONS = Path(__file__).resolve().parent.parent / "recipes" / "ablations"


def variant(folder: Path, name: str, body: str = "") -> str:
    path = folder / f"{name}.yaml"
    path.write_text(f"extends: {ABLATIONS / 'base.yaml'}\nname: {name}\n{body}", encoding="utf-8")
    return str(path)


def test_the_example_ablation_plans_with_one_protocol(tmp_path):
    recipes = [str(ABLATIONS / f"{n}.yaml") for n in ("base", "repo-dedup", "stars-filter", "no-filters")]
    plan = plan_ablation(recipes, str(tmp_path / "out"))
    assert [v.name for v in plan.variants] == ["base", "repo-dedup", "stars-filter", "no-filters"]
    assert len({v.recipe.hash for v in plan.variants}) == 4
    assert plan.variants[1].recipe.section("dedup").level == "repo"
    assert plan.variants[2].recipe.section("quality_filter").min_stars == 5000
    assert plan.variants[3].recipe.section("quality_filter").enabled is False
    # Only the changed section differs from the baseline.
    base, repo = plan.variants[0].recipe, plan.variants[1].recipe
    assert base.settings("code_mix") == repo.settings("code_mix")
    assert base.settings("dedup") != repo.settings("dedup")


def test_the_recipe_picks_the_proxy_continued_pretraining_of_smollm2_with_pass_at_k(tmp_path):
    folder = ABLATIONS / "smollm2"
    plan = plan_ablation([str(folder / "base.yaml"), str(folder / "no-filters.yaml")], str(tmp_path / "out"))
    training = plan.variants[0].recipe.section("training")
    assert training.init_from == "smollm2"
    assert plan.variants[0].recipe.section("tokenizer").from_pretrained == "smollm2"
    assert plan.config.passk == ("humaneval",)
    assert plan.variants[1].recipe.section("quality_filter").enabled is False


def test_run_recipes_fix_the_seed_the_holdout_and_the_shared_mlflow_store(tmp_path):
    plan = plan_ablation(
        [variant(tmp_path, "a"), variant(tmp_path, "b", "code_mix.seed: 7\n")], str(tmp_path / "out")
    )
    write_run_recipes(plan)
    for v in plan.variants:
        for seed in plan.config.seeds:
            loaded = load_recipe(plan.recipe_file(v, seed))
            assert loaded.name == v.name
            assert loaded.section("training").seed == seed
            assert loaded.section("tokenizer").holdout_fraction == plan.config.holdout_fraction
            assert loaded.mlflow.tracking_uri == plan.tracking_uri
            assert loaded.experiment_name == plan.experiment
            # Everything else is the variant's own recipe.
            assert loaded.settings("code_mix") == v.recipe.settings("code_mix")


@pytest.mark.parametrize(
    ("bodies", "expected"),
    [
        (["", "dedup.levle: repo\n"], "dedup.levle: unknown key (did you mean 'level'?)"),
        (["", ""], "identical effective settings"),
        (["", "ablation.seeds: [4, 5]\n"], "changes the `ablation` section"),
        (["", "ablation.seeds: [4]\n"], "want at least 2 distinct seeds"),
    ],
)
def test_a_bad_plan_fails_before_any_work_with_the_reason(tmp_path, bodies, expected):
    paths = [variant(tmp_path, f"v{index}", body) for index, body in enumerate(bodies)]
    with pytest.raises(
        AblationError, match=expected.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")
    ):
        plan_ablation(paths, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_a_missing_extends_or_a_single_recipe_is_refused(tmp_path):
    orphan = tmp_path / "orphan.yaml"
    orphan.write_text("extends: nowhere.yaml\nname: orphan\n", encoding="utf-8")
    with pytest.raises(AblationError, match=r"recipe not found: .*nowhere.yaml"):
        plan_ablation([variant(tmp_path, "a"), str(orphan)], str(tmp_path / "out"))
    with pytest.raises(AblationError, match="at least two recipes"):
        plan_ablation([variant(tmp_path, "a")], str(tmp_path / "out"))


def test_the_cli_says_what_is_wrong_in_one_place_and_exits_2(tmp_path, capsys):
    from orchestration.cli import main

    code = main(
        [
            "ablate",
            "--recipe",
            variant(tmp_path, "a"),
            "--recipe",
            variant(tmp_path, "b"),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    assert "identical effective settings" in capsys.readouterr().err


def test_the_dagster_job_refuses_a_bad_plan_with_the_reason(tmp_path):
    import dagster as dg

    from orchestration.ablation_job import ablate_job

    result = ablate_job.execute_in_process(
        run_config={
            "ops": {
                "ablate_op": {"config": {"recipes": [variant(tmp_path, "a")], "out": str(tmp_path / "o")}}
            }
        },
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "at least two recipes" in str(failure.step_failure_data.error.message)
    assert isinstance(ablate_job, dg.JobDefinition)


SOURCE_STAGE_ASSETS = {"notebooks", "notebooks_clean", "git_commits", "gh_issues"}


def test_a_data_phase_runs_no_stage_of_a_share_0_source(tmp_path):
    from orchestration.ablation import phase_selection
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()

    def data_assets(recipe: str) -> set[str]:
        return {key.to_user_string() for key in phase_selection(graph, load_recipe(recipe), "data")}

    # The baseline gives every source share 0: none of their stages runs; the code chain does.
    base = data_assets(str(ABLATIONS / "base.yaml"))
    assert not base & SOURCE_STAGE_ASSETS
    assert {"raw_code", "decontaminated_code", "code_mix", "tokenizer", "token_shards"} <= base
    assert not any(name.startswith(("web_pages", "recall_round")) for name in base)
    # A share > 0 brings exactly that source's branch back.
    issues = data_assets(
        variant(
            tmp_path, "issues", "code_mix.sources: {notebooks_clean: 0.0, git_commits: 0.0, gh_issues: 0.5}\n"
        )
    )
    assert issues - base == {"gh_issues"}
    notebooks = data_assets(
        variant(
            tmp_path, "nb", "code_mix.sources: {notebooks_clean: 1.0, git_commits: 0.0, gh_issues: 0.0}\n"
        )
    )
    assert notebooks - base == {"notebooks", "notebooks_clean"}
    # The demo mixes all three in: all run (as under `codecook demo` and a UI "Materialize all").
    assert SOURCE_STAGE_ASSETS <= data_assets(str(ABLATIONS.parent / "demo.yaml"))


def test_code_mix_is_keyed_by_the_sources_it_reads_only(tmp_path):
    from assets._stage import reuse_key
    from contracts.storage import StageNotMaterialized, StorageLayout, write_json_atomic
    from orchestration.stages import MIX_STAGE, sources_not_read

    layout = StorageLayout(str(tmp_path / "root"))

    def output(stage: str, checksum: str) -> None:
        Path(layout.stage(stage).data_dir).mkdir(parents=True, exist_ok=True)
        write_json_atomic(layout.stage(stage).manifest_path, {"stage": stage, "checksum": checksum})

    def key(recipe_path: str) -> tuple[str, dict]:
        recipe = load_recipe(recipe_path)
        config = recipe.section(MIX_STAGE.section, MIX_STAGE.config)
        return reuse_key(MIX_STAGE.name, MIX_STAGE.section, MIX_STAGE.inputs(config), recipe, layout)

    output("decontaminated_code", "c0de")
    # Share 0: no source stage has an output, and the key needs none.
    base = load_recipe(str(ABLATIONS / "base.yaml"))
    assert sources_not_read(base.section("code_mix", MIX_STAGE.config)) == {
        "notebooks_clean": "share 0",
        "git_commits": "share 0",
        "gh_issues": "share 0",
    }
    zero, zero_made_of = key(str(ABLATIONS / "base.yaml"))
    assert zero_made_of["inputs"] == {"decontaminated_code": "c0de"}
    # Share 0.5: the key changes and holds gh_issues' checksum, which then must exist.
    issues = variant(
        tmp_path, "issues", "code_mix.sources: {notebooks_clean: 0.0, git_commits: 0.0, gh_issues: 0.5}\n"
    )
    with pytest.raises(StageNotMaterialized, match="gh_issues"):
        key(issues)
    output("gh_issues", "1550e5")
    half, half_made_of = key(issues)
    assert half != zero
    assert half_made_of["inputs"] == {"decontaminated_code": "c0de", "gh_issues": "1550e5"}
    output("gh_issues", "0the4")
    assert key(issues)[0] != half  # new issues, new mix
    output("notebooks_clean", "ab")  # an output of a source of share 0 changes nothing
    assert key(str(ABLATIONS / "base.yaml"))[0] == zero


def stdlib_jsonl(path: Path, limit: int = 160) -> Path:
    """Python files of the standard library as plain JSONL rows (path, content)."""
    import json
    import sysconfig

    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.glob("*.py"))[:limit]
    with path.open("w", encoding="utf-8") as handle:
        for file in files:
            text = file.read_text(encoding="utf-8", errors="replace")
            handle.write(json.dumps({"id": file.name, "path": f"Lib/{file.name}", "content": text}) + "\n")
    return path


@pytest.mark.slow
def test_a_small_ablation_runs_end_to_end_reusing_shared_stages(tmp_path):
    import json
    import os

    import mlflow

    from orchestration.ablation import ablate

    corpus = stdlib_jsonl(tmp_path / "stdlib.jsonl")
    base = tmp_path / "a.yaml"
    base.write_text(
        f"extends: {ABLATIONS / 'base.yaml'}\n"
        "name: a\n"
        f"sources: [{{name: lib, kind: jsonl, path: '{corpus}', repo: cpython, stars: 60000}}]\n"
        "tokenizer.vocab_size: 600\ntokenizer.seq_len: 64\ntokenizer.train_sample_bytes: 300000\n"
        "tokenizer.workers: 1\n"
        "training.steps: 4\ntraining.micro_batch_size: 4\ntraining.warmup_steps: 1\ntraining.checkpoint_every: 4\n"
        "ablation.seeds: [1, 2]\nablation.holdout_fraction: 0.2\nablation.max_eval_docs: 8\n"
        "ablation.max_doc_chars: 1500\nablation.bootstrap_samples: 500\n",
        encoding="utf-8",
    )
    other = tmp_path / "b.yaml"
    other.write_text("extends: a.yaml\nname: b\nquality_filter.enabled: false\n", encoding="utf-8")
    # A variant that fails mid-way (its source vanished after planning) is marked failed; the
    # others' results stand.
    doomed = tmp_path / "c.yaml"
    gone = tmp_path / "gone.jsonl"
    gone.write_text(corpus.read_text(encoding="utf-8"), encoding="utf-8")
    doomed.write_text(
        f"extends: a.yaml\nname: c\nsources: [{{name: lib, kind: jsonl, path: '{gone}'}}]\n", encoding="utf-8"
    )
    plan = plan_ablation([str(base), str(other), str(doomed)], str(tmp_path / "out"))
    gone.unlink()
    comparison = ablate(plan)

    assert [v["status"] for v in comparison["variants"]] == ["finished", "finished", "failed"]
    assert "c--seed1 phase data exited 1" in comparison["variants"][2]["error"]
    assert comparison["verdicts"] and all(" c " not in f" {line} " for line in comparison["verdicts"])
    written = json.loads((plan.out / "comparison.json").read_text())
    assert written["baseline"] == "a" and written["verdicts"]
    b = written["variants"][1]
    assert set(b["metrics"]) == {"bits_per_byte", "fim_exact_match", "fim_edit_similarity"}
    assert b["metrics"]["bits_per_byte"]["ci"][0] < b["metrics"]["bits_per_byte"]["mean"]
    difference = b["difference_vs_baseline"]["bits_per_byte"]
    assert isinstance(difference["significant"], bool) and difference["verdict"]
    assert b["tokens_trained"] == [4 * 4 * 64, 4 * 4 * 64]  # the same token budget for every run
    assert (plan.out / "comparison.png").stat().st_size > 0

    # The evaluation set: held out of every run's shards, the same documents for every run.
    evaluation = [json.loads(line) for line in (plan.out / "eval_set.jsonl").read_text().splitlines()]
    assert 0 < len(evaluation) <= 8
    for variant in plan.variants[:2]:
        for seed in plan.config.seeds:
            shards = json.loads((plan.root(variant, seed) / "data/token_shards/_manifest.json").read_text())
            assert shards["held_out_docs"] > 0
            scored = json.loads((plan.root(variant, seed) / "proxy_eval.json").read_text())
            assert sorted(r["doc_id"] for r in scored["documents"]) == sorted(d["doc_id"] for d in evaluation)

    # Reuse: one raw_code for all four runs; filtered_code once per variant (b changes the filter).
    stages = plan.out / "stages"
    assert len(list((stages / "raw_code").iterdir())) == 1
    assert len(list((stages / "filtered_code").iterdir())) == 2
    a1, a2 = (plan.root(plan.variants[0], s) / "data/near_dedup" for s in (1, 2))
    part = next(a1.glob("*.parquet"))
    assert os.path.samefile(part, a2 / part.name)

    # The baseline gives StarCoder's other sources share 0: no run materialized their stages (nor
    # stored them), and every code_mix says which sources it did not read and why.
    assert not any((stages / name).exists() for name in SOURCE_STAGE_ASSETS)
    for variant in plan.variants[:2]:
        for seed in plan.config.seeds:
            data = plan.root(variant, seed) / "data"
            assert not any((data / name / "_manifest.json").exists() for name in SOURCE_STAGE_ASSETS)
            mixed = json.loads((data / "code_mix/_manifest.json").read_text())
            assert mixed["mix_sources"] == {}
            assert mixed["mix_sources_not_read"] == dict.fromkeys(
                ("notebooks_clean", "git_commits", "gh_issues"), "share 0"
            )

    # MLflow: the parent holds the comparison; each variant's training runs hang below its run.
    client = mlflow.MlflowClient(plan.tracking_uri)
    experiment = client.get_experiment_by_name(plan.experiment)
    runs = client.search_runs([experiment.experiment_id], max_results=500)
    parent = next(r for r in runs if r.data.tags.get("codecook.ablation") == "parent")
    variants = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.info.run_name for r in variants) == ["a", "b", "c"]
    assert {r.info.run_name: r.info.status for r in variants}["c"] == "FAILED"
    for run in (r for r in variants if r.info.run_name != "c"):
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == run.info.run_id]
        assert len(children) == 2 and all("proxy.bits_per_byte" in c.data.metrics for c in children)
        assert "proxy.bits_per_byte.ci_low" in run.data.metrics


def test_pass_at_1_per_task_is_the_share_of_passing_samples(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from orchestration.ablation import pass_at_1_by_task

    folder = tmp_path / "data" / "eval_humaneval"
    folder.mkdir(parents=True)
    pq.write_table(
        pa.table({"task_id": ["HumanEval/1", "HumanEval/1", "HumanEval/0"], "passed": [True, False, False]}),
        folder / "results.parquet",
    )
    assert pass_at_1_by_task(tmp_path, "eval_humaneval") == [
        {"task_id": "HumanEval/0", "pass_at_1": 0.0},
        {"task_id": "HumanEval/1", "pass_at_1": 0.5},
    ]
