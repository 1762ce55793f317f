"""The recipe model: every shipped recipe loads, typos fail before any work, variants merge as documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.config import settings_of
from contracts.recipe import SECTIONS, RecipeError, load_recipe
from training.config import TrainConfig, from_dict

RECIPES = Path(__file__).resolve().parent.parent / "recipes"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("path", sorted(RECIPES.rglob("*.yaml")), ids=lambda p: str(p.relative_to(RECIPES)))
def test_every_shipped_recipe_loads_and_types_every_section(path, monkeypatch):
    # Full-scale recipes read their deployment from the environment.
    for var in ("CODECOOK_SPARK_CONNECT", "CODECOOK_CODE_PARQUET", "CODECOOK_WARC_GLOB"):
        monkeypatch.setenv(var, f"/placeholder/{var.lower()}")
    recipe = load_recipe(path)
    assert set(recipe.configs) == set(SECTIONS)
    for name in SECTIONS:
        assert recipe.section(name) is recipe.configs[name]
    assert len(recipe.hash) == 16


def test_a_misspelled_section_is_an_error_naming_the_file_and_the_closest_section(tmp_path):
    recipe = write(tmp_path / "typo.yaml", "name: t\ndedupe: {num_bands: 4}\n")
    with pytest.raises(RecipeError) as caught:
        load_recipe(recipe)
    message = str(caught.value)
    assert message.startswith("typo.yaml: dedupe: unknown section (did you mean 'dedup'?)")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "training: {launcher: K8s}",
            "training.launcher: 'K8s' is not allowed; allowed values: 'subprocess' or 'k8s'",
        ),
        ("training: {stepz: 3}", "training.stepz: unknown key (did you mean 'steps'?); known keys: anneal,"),
        ("eval: {humaneval: {limt: 3}}", "eval.humaneval.limt: unknown key (did you mean 'limit'?)"),
        ("training: {steps: many}", "training.steps: Input should be a valid integer"),
        (
            "dedup: {num_bands: 100, rows_per_band: 8}",
            "dedup: num_bands x rows_per_band = 100 x 8 = 800 exceeds",
        ),
        ("code_mix: {targets: {java: {downsampel: 0.3}}}", "code_mix.targets.java.downsampel: unknown key"),
        (
            "quality_filter: {overrides: {pythn: {}}}",
            "quality_filter.overrides names unknown profile(s) ['pythn']",
        ),
        ("training: {k8s: {gpus: two}}", "training.k8s.gpus: Input should be a valid integer"),
        (
            "web: {recall: {fasttext: {epok: 3}}}",
            "web.recall.fasttext.epok: unknown key (did you mean 'epoch'?)",
        ),
        ("sources: [{name: a, kind: foldr, path: /x}]", "sources[0].kind: 'foldr' is not allowed"),
    ],
)
def test_a_wrong_key_or_value_at_any_depth_names_the_key_and_what_is_allowed(tmp_path, body, expected):
    recipe = write(tmp_path / "bad.yaml", f"name: bad\n{body}\n")
    with pytest.raises(RecipeError) as caught:
        load_recipe(recipe)
    assert f"bad.yaml: {expected}" in str(caught.value)


def test_every_problem_is_reported_at_once(tmp_path):
    recipe = write(tmp_path / "bad.yaml", "training: {launcher: K8s, stepz: 1}\neval: {mbpp: {limt: 1}}\n")
    with pytest.raises(RecipeError) as caught:
        load_recipe(recipe)
    lines = str(caught.value).splitlines()
    assert len(lines) == 3
    assert all(line.startswith("bad.yaml: ") for line in lines)


def test_extends_merges_mappings_replaces_lists_and_reads_dotted_keys(tmp_path):
    base = load_recipe(RECIPES / "demo.yaml")
    variant = write(
        tmp_path / "variant.yaml",
        f"extends: {RECIPES / 'demo.yaml'}\n"
        "name: fewer-bands\n"
        "dedup.num_bands: 16\n"
        "training: {steps: 60}\n"
        "decontamination.benchmarks: [mbpp]\n",
    )
    loaded = load_recipe(variant)
    assert loaded.name == "fewer-bands"
    assert loaded.chain == (RECIPES / "demo.yaml", variant)
    assert loaded.section("dedup").num_bands == 16
    # Sibling keys of the base survive the merge.
    assert loaded.section("dedup").rows_per_band == base.section("dedup").rows_per_band == 8
    assert loaded.section("training").steps == 60
    assert loaded.section("training").lr == base.section("training").lr
    assert loaded.section("decontamination").benchmarks == ("mbpp",)
    assert loaded.sources == base.sources
    assert loaded.hash != base.hash


def test_command_line_overrides_take_yaml_values(tmp_path):
    loaded = load_recipe(RECIPES / "demo.yaml", overrides=["training.steps=7", "eval.humaneval.limit=null"])
    assert loaded.section("training").steps == 7
    assert loaded.section("eval").humaneval.limit is None
    with pytest.raises(RecipeError, match="training.stepz: unknown key"):
        load_recipe(RECIPES / "demo.yaml", overrides=["training.stepz=7"])
    with pytest.raises(RecipeError, match="want KEY=VALUE"):
        load_recipe(RECIPES / "demo.yaml", overrides=["training.steps"])


def test_extends_errors_name_the_missing_file_and_cycles(tmp_path):
    write(tmp_path / "child.yaml", "extends: nowhere.yaml\n")
    with pytest.raises(RecipeError, match=r"recipe not found: .*nowhere.yaml \(extended by .*child.yaml\)"):
        load_recipe(tmp_path / "child.yaml")
    write(tmp_path / "a.yaml", "extends: b.yaml\n")
    write(tmp_path / "b.yaml", "extends: a.yaml\n")
    with pytest.raises(RecipeError, match="cycle"):
        load_recipe(tmp_path / "a.yaml")


def test_placeholders_resolve_against_the_file_that_wrote_them(tmp_path):
    (tmp_path / "base").mkdir()
    write(
        tmp_path / "base" / "base.yaml",
        "sources: [{name: s, kind: jsonl, path: '${recipe_dir}/docs.jsonl'}]\n",
    )
    write(tmp_path / "variant.yaml", "extends: base/base.yaml\nname: v\n")
    loaded = load_recipe(tmp_path / "variant.yaml")
    assert loaded.sources[0].path == f"{tmp_path / 'base'}/docs.jsonl"


def test_the_hash_covers_settings_not_names(tmp_path):
    demo = RECIPES / "demo.yaml"
    a = write(tmp_path / "a.yaml", f"extends: {demo}\nname: a\ndescription: one\n")
    b = write(tmp_path / "b.yaml", f"extends: {demo}\nname: b\n")
    assert load_recipe(a).hash == load_recipe(b).hash == load_recipe(demo).hash
    assert load_recipe(demo, overrides=["training.lr=0.001"]).hash != load_recipe(demo).hash


def test_deployment_settings_leave_the_training_key_unchanged():
    laptop = from_dict(TrainConfig, {"steps": 10})
    cluster = from_dict(
        TrainConfig,
        {
            "steps": 10,
            "launcher": "k8s",
            "k8s": {"image": "x:1", "gpus": 8},
            "cpu_threads": 1,
            "log_every": 1,
        },
    )
    assert settings_of(laptop) == settings_of(cluster)
    assert "launcher" not in settings_of(laptop) and "k8s" not in settings_of(laptop)
    # What changes the result does change the key.
    assert settings_of(from_dict(TrainConfig, {"steps": 11})) != settings_of(laptop)


def test_a_recipe_that_is_not_a_mapping_or_not_yaml_is_a_clear_error(tmp_path):
    with pytest.raises(RecipeError, match="a recipe is a mapping of sections"):
        load_recipe(write(tmp_path / "list.yaml", "- a\n- b\n"))
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(write(tmp_path / "broken.yaml", "training: {steps: [\n"))
    with pytest.raises(RecipeError, match="training: expected a mapping of keys"):
        load_recipe(write(tmp_path / "scalar.yaml", "training: 5\n"))


def test_a_recipe_typo_fails_the_dagster_run_before_any_step_and_the_demo_command_with_exit_2(
    tmp_path, home, monkeypatch, capsys
):
    import dagster as dg

    typo = write(tmp_path / "typo.yaml", f"extends: {RECIPES / 'demo.yaml'}\ntraining.launcher: K8s\n")
    monkeypatch.setenv("CODECOOK_RECIPE", str(typo))
    from orchestration.definitions import defs

    result = defs.resolve_job_def("demo").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )
    assert not result.success
    assert not [e for e in result.all_events if e.event_type_value == "STEP_START"]
    failure = next(e for e in result.all_events if e.event_type_value == "RESOURCE_INIT_FAILURE")
    assert "training.launcher: 'K8s' is not allowed" in str(failure.event_specific_data.error)

    from orchestration.cli import main

    assert main(["demo", "--recipe", str(typo)]) == 2
    assert "typo.yaml (extends demo.yaml): training.launcher: 'K8s' is not allowed" in capsys.readouterr().err
