"""Declarative refresh (orchestration.automation): a change in a watched source requests exactly the
data assets downstream of it, evaluated by Dagster's own automation-condition evaluator against a
real (SQLite) instance with the project's real code location."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest

from orchestration.automation import CODE_SOURCES

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CODE_BRANCH = {
    "raw_code",
    "exact_dedup",
    "near_dedup",
    "quality_signals",
    "filtered_code",
    "redacted_code",
    "decontaminated_code",
    "code_mix",
}
EXPENSIVE = {"tokenizer", "token_shards", "checkpoint", "eval_humaneval", "eval_mbpp", "eval_fim"}


@pytest.fixture()
def watched(tmp_path, monkeypatch):
    """A recipe whose one code source is a small folder of this test (Markdown files excluded)."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "util.py").write_text("def add(a, b):\n    return a + b\n")
    (source / "notes.md").write_text("not selected by the source's globs\n")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"extends: {PROJECT_ROOT / 'recipes' / 'demo.yaml'}\n"
        "name: automation-test\n"
        "sources:\n"
        f"  - {{name: watched, kind: folder, path: {source}, exclude: ['**/*.md']}}\n"
    )
    monkeypatch.setenv("CODECOOK_RECIPE", str(recipe))
    return source


@pytest.fixture()
def defs():
    from orchestration.definitions import defs

    return defs


def requested(result, graph) -> set[str]:
    return {key.to_user_string() for key in graph.get_all_asset_keys() if result.get_num_requested(key)}


def observe_sources(defs, instance) -> str:
    """Runs the real observation (fingerprint of the watched folder) and returns its data version."""
    job = defs.resolve_implicit_global_asset_job_def()
    run = job.execute_in_process(instance=instance, asset_selection=[dg.AssetKey(CODE_SOURCES)])
    assert run.success and [check.passed for check in run.get_asset_check_evaluations()] == [True]
    record = instance.fetch_observations(dg.AssetKey(CODE_SOURCES), limit=1).records[0]
    return record.asset_observation.tags["dagster/data_version"]


def test_data_assets_carry_eager_and_training_none(defs):
    graph = defs.resolve_asset_graph()
    conditions = {
        key.to_user_string(): graph.get(key).automation_condition for key in graph.get_all_asset_keys()
    }
    for name in CODE_BRANCH | {"web_pages", "code_web_pages"}:
        assert conditions[name] is not None and conditions[name].get_label() == "eager", name
    for name in EXPENSIVE | {"experiment_report"}:
        assert conditions[name] is None, f"{name} must never be started by automation"
    assert graph.get(dg.AssetKey(CODE_SOURCES)).is_observable
    assert dg.AssetKey(CODE_SOURCES) in graph.get(dg.AssetKey("raw_code")).parent_keys
    sensor = defs.resolve_sensor_def("data_automation")
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    targeted = {key.to_user_string() for key in sensor.asset_selection.resolve(graph)}
    assert CODE_BRANCH | {"web_pages", "code_web_pages", CODE_SOURCES} <= targeted
    assert not targeted & EXPENSIVE


def test_source_change_refreshes_exactly_its_downstream(defs, watched, tmp_path):
    graph = defs.resolve_asset_graph()
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        first = observe_sources(defs, instance)
        # The whole graph was built from these sources.
        for key in graph.get_all_asset_keys():
            if not graph.get(key).is_observable:
                instance.report_runless_asset_event(dg.AssetMaterialization(key))
        result = dg.evaluate_automation_conditions(defs, instance)
        assert requested(result, graph) == set()

        # A file outside the source's globs: a new observation, the same data version, no refresh.
        (watched / "more-notes.md").write_text("still not code\n")
        assert observe_sources(defs, instance) == first
        result = dg.evaluate_automation_conditions(defs, instance, cursor=result.cursor)
        assert requested(result, graph) == set()

        # A new selected file: the code branch's data assets, in one tick, and nothing else.
        (watched / "more.py").write_text("def sub(a, b):\n    return a - b\n")
        assert observe_sources(defs, instance) != first
        result = dg.evaluate_automation_conditions(defs, instance, cursor=result.cursor)
        assert requested(result, graph) == CODE_BRANCH

        # Requested once: the next tick, with the refresh not yet run, asks for nothing again.
        result = dg.evaluate_automation_conditions(defs, instance, cursor=result.cursor)
        assert requested(result, graph) == set()

        # The web branch's source: the recall rounds and code_web_pages, no code stage.
        web_branch = {
            key.to_user_string()
            for key in graph.get_all_asset_keys()
            if graph.get(key).group_name == "web" and key.to_user_string() != "web_pages"
        }
        assert {"recall_round_1", "code_web_pages"} <= web_branch
        instance.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey("web_pages")))
        result = dg.evaluate_automation_conditions(defs, instance, cursor=result.cursor)
        assert requested(result, graph) == web_branch

        # A stage in the middle of the code branch: only what is below it.
        instance.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey("redacted_code")))
        result = dg.evaluate_automation_conditions(defs, instance, cursor=result.cursor)
        assert requested(result, graph) == {"decontaminated_code", "code_mix"}


def test_missing_source_folder_fails_the_observation(watched):
    import shutil

    from orchestration.automation import sources_fingerprint
    from quality.recipe import load_recipe

    recipe = load_recipe(os.environ["CODECOOK_RECIPE"])
    version, files, by_source = sources_fingerprint(recipe)
    assert files == 1 and by_source == {"watched": 1}  # util.py; notes.md is outside the globs
    shutil.rmtree(watched)
    with pytest.raises(dg.Failure, match="is not a folder"):
        sources_fingerprint(recipe)


# --------------------------------------------------------------------------------------------------
# Every input the recipe reads is watched, each by its own source asset.

SOURCE_KEYS = {"code_sources", "notebook_sources", "commit_sources", "issue_sources", "web_sources"}


@pytest.fixture()
def all_inputs(watched, tmp_path, monkeypatch):
    """The `watched` recipe with every other input pinned to this test's own files: a notebook
    folder, a git repository, an issue file, and the web pool's committed sample (installed docs
    off), so that nothing outside the test (another commit to the project) changes a version."""
    import shutil

    notebooks = tmp_path / "nb"
    notebooks.mkdir()
    (notebooks / "a.ipynb").write_text(NOTEBOOK)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.py").write_text("x = 1\n")
    git(repo, "init", "-q")
    git(repo, "add", "a.py")
    git(repo, "commit", "-qm", "one")
    issues = tmp_path / "issues.jsonl"
    shutil.copy(PROJECT_ROOT / "recipes" / "data" / "issues_sample.jsonl", issues)
    recipe = Path(os.environ["CODECOOK_RECIPE"])
    recipe.write_text(
        recipe.read_text()
        + f"notebooks: {{paths: [{notebooks}], packages: []}}\n"
        + f"git_commits: {{repositories: [{{path: {repo}, name: repo, max_commits: 5}}]}}\n"
        + f"gh_issues: {{paths: [{issues}]}}\n"
        + "web: {installed_docs: false}\n"
    )
    return {"notebooks": notebooks, "repo": repo, "issues": issues}


NOTEBOOK = (
    '{"cells": [{"cell_type": "code", "execution_count": 1, "metadata": {}, "outputs": [], '
    '"source": ["print(1)"]}], "metadata": {"language_info": {"name": "python"}}, '
    '"nbformat": 4, "nbformat_minor": 5}'
)


def git(repo: Path, *args: str) -> None:
    import subprocess

    subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.org", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def observe_all(defs, instance) -> dict[str, str]:
    """Observes every watched source (as the sensor's cron tick does); their data versions."""
    job = defs.resolve_implicit_global_asset_job_def()
    keys = [dg.AssetKey(key) for key in sorted(SOURCE_KEYS)]
    run = job.execute_in_process(instance=instance, asset_selection=keys)
    assert run.success and all(check.passed for check in run.get_asset_check_evaluations())
    return {
        key.to_user_string(): instance.fetch_observations(key, limit=1)
        .records[0]
        .asset_observation.tags["dagster/data_version"]
        for key in keys
    }


def test_every_input_is_watched_by_the_stage_that_reads_it(defs):
    graph = defs.resolve_asset_graph()
    readers = {"code_sources": "raw_code", "notebook_sources": "notebooks", "commit_sources": "git_commits"}
    readers |= {"issue_sources": "gh_issues", "web_sources": "web_pages"}
    for source, stage in readers.items():
        assert graph.get(dg.AssetKey(source)).is_observable
        assert dg.AssetKey(source) in graph.get(dg.AssetKey(stage)).parent_keys, (source, stage)
    # Every stage reading no other stage reads from outside the storage root: each is watched.
    roots = {
        key.to_user_string()
        for key in graph.get_all_asset_keys()
        if not graph.get(key).is_observable
        and graph.get(key).group_name in ("data", "web")
        and not any(not graph.get(parent).is_observable for parent in graph.get(key).parent_keys)
    }
    assert roots == set(readers.values())
    targeted = {
        key.to_user_string()
        for key in defs.resolve_sensor_def("data_automation").asset_selection.resolve(graph)
    }
    assert SOURCE_KEYS <= targeted


def test_a_changed_input_refreshes_only_its_branch(defs, all_inputs, tmp_path):
    graph = defs.resolve_asset_graph()
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        versions = observe_all(defs, instance)
        for key in graph.get_all_asset_keys():
            if not graph.get(key).is_observable:
                instance.report_runless_asset_event(dg.AssetMaterialization(key))
        result = dg.evaluate_automation_conditions(defs, instance)
        assert requested(result, graph) == set()

        def after(change) -> set[str]:
            """What one tick requests after `change` and a new observation; then the refresh runs."""
            nonlocal result, versions
            change()
            new = observe_all(defs, instance)
            changed = {key for key in new if new[key] != versions[key]}
            versions = new
            result = dg.evaluate_automation_conditions(defs, instance, cursor=result.cursor)
            asked = requested(result, graph)
            for name in asked:
                instance.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey(name)))
            result = dg.evaluate_automation_conditions(defs, instance, cursor=result.cursor)
            assert requested(result, graph) == set(), "requested again after the refresh"
            return changed, asked

        # A file that is no notebook, in the notebook folder: nothing the stage reads.
        assert after(lambda: (all_inputs["notebooks"] / "README.txt").write_text("notes\n")) == (set(), set())
        # A new notebook: the notebook branch and code_mix, which mixes it in; no code stage.
        assert after(lambda: (all_inputs["notebooks"] / "b.ipynb").write_text(NOTEBOOK)) == (
            {"notebook_sources"},
            {"notebooks", "notebooks_clean", "code_mix"},
        )

        # A commit: git_commits and code_mix.
        def commit() -> None:
            (all_inputs["repo"] / "a.py").write_text("x = 2\n")
            git(all_inputs["repo"], "commit", "-qam", "two")

        assert after(commit) == ({"commit_sources"}, {"git_commits", "code_mix"})

        # A new issue event: gh_issues and code_mix.
        def new_issue() -> None:
            import json

            event = {**json.loads(all_inputs["issues"].read_text().splitlines()[0]), "number": 999}
            with open(all_inputs["issues"], "a") as events:
                events.write(json.dumps(event) + "\n")

        assert after(new_issue) == ({"issue_sources"}, {"gh_issues", "code_mix"})
