"""The Dagster project: definitions, the raw_code materialization with MLflow, schedule, sensor, CLI."""

from __future__ import annotations

import datetime as dt
import shutil
import sysconfig
from pathlib import Path

import dagster as dg
import pytest
import yaml

from orchestration.resources import RecipeResource, StorageResource

STDLIB = Path(sysconfig.get_paths()["stdlib"])


@pytest.fixture()
def small_recipe(tmp_path) -> Path:
    source = tmp_path / "src"
    shutil.copytree(STDLIB / "json", source / "json", ignore=shutil.ignore_patterns("__pycache__"))
    (source / "json" / "blob.bin").write_bytes(b"\x00\x01")
    recipe = {
        "name": "unit",
        "spark": {"master": "local[2]", "shuffle_partitions": 4},
        "sources": [{"name": "json-pkg", "kind": "folder", "path": str(source), "repo": "cpython"}],
    }
    path = tmp_path / "unit.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_definitions_load_and_every_asset_is_documented():
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    assert dg.AssetKey("raw_code") in keys
    checked = {check.asset_key for check in graph.asset_check_keys}
    for key in keys:
        node = graph.get(key)
        assert node.description and len(node.description) > 40, key
        assert node.kinds, key
        assert node.owners, key
        assert key in checked, f"{key} has no asset check"
    assert defs.resolve_job_def("demo") is not None
    assert defs.resolve_job_def("refresh_data") is not None


def test_schedule_is_weekly_stopped_and_requests_a_refresh():
    from orchestration.jobs import weekly_refresh_schedule

    assert weekly_refresh_schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert weekly_refresh_schedule.cron_schedule == "0 3 * * 1"
    context = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2026, 11, 23, 3, tzinfo=dt.UTC))
    data = weekly_refresh_schedule.evaluate_tick(context)
    assert len(data.run_requests) == 1


def test_sensor_fires_only_when_a_watched_folder_changes(small_recipe):
    from orchestration.jobs import source_folder_sensor

    assert source_folder_sensor.default_status == dg.DefaultSensorStatus.STOPPED
    resources = {"recipe": RecipeResource(path=str(small_recipe))}
    first = source_folder_sensor.evaluate_tick(dg.build_sensor_context(cursor=None, resources=resources))
    assert not first.run_requests and first.cursor
    same = source_folder_sensor.evaluate_tick(
        dg.build_sensor_context(cursor=first.cursor, resources=resources)
    )
    assert not same.run_requests
    (small_recipe.parent / "src" / "json" / "new_module.py").write_text("VALUE = 42\n")
    changed = source_folder_sensor.evaluate_tick(
        dg.build_sensor_context(cursor=first.cursor, resources=resources)
    )
    assert len(changed.run_requests) == 1 and changed.cursor != first.cursor


def test_raw_code_materializes_with_checks_and_an_mlflow_run(spark, small_recipe, home):
    import mlflow

    from assets.ingest import raw_code, raw_code_checks
    from orchestration.resources import DuckDBResource, MLflowResource, SparkResource

    resources = {
        "recipe": RecipeResource(path=str(small_recipe)),
        "storage": StorageResource(root=str(home)),
        "spark": SparkResource(),
        "mlflow": MLflowResource(),
        "duckdb": DuckDBResource(),
    }
    with dg.DagsterInstance.get() as instance:
        result = dg.materialize([raw_code, *raw_code_checks], resources=resources, instance=instance)
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert {e.check_name for e in evaluations} == {"conservation", "schema", "expectations"}
    assert all(e.passed for e in evaluations), [(e.check_name, e.metadata) for e in evaluations]
    metadata = result.asset_materializations_for_node("raw_code")[0].metadata
    assert metadata["rows_rejected"].value == 1  # blob.bin
    mlflow.set_tracking_uri(f"sqlite:///{home}/mlflow.db")
    runs = mlflow.search_runs(
        experiment_names=["codecook-unit"], filter_string=f"tags.`dagster.run_id` = '{result.run_id}'"
    )
    assert len(runs) == 1
    assert runs.iloc[0]["run_id"] == metadata["mlflow_run_id"].value
    assert runs.iloc[0]["metrics.rows_out"] == metadata["rows_out"].value
    # Artifacts live under the storage root, never in ./mlruns of whatever the cwd is.
    experiment = mlflow.get_experiment_by_name("codecook-unit")
    assert experiment.artifact_location == (home / "mlflow-artifacts").as_uri()


def test_cli_ingest_then_status(spark, tmp_path, capsys):
    from orchestration.cli import main

    folder = tmp_path / "code"
    shutil.copytree(STDLIB / "json", folder, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "out"
    assert main(["ingest", "--input", str(folder), "--output", str(out)]) == 0
    assert (out / "data" / "raw_code" / "_manifest.json").exists()
    assert main(["status", "--home", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "raw_code" in printed and "kept" in printed


def test_storage_resource_defaults_to_codecook_home(home):
    assert StorageResource().layout().root == str(home)
