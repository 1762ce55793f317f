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
