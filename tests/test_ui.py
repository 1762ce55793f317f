"""orchestration.ui without a browser: which MLflow stores the UI's server can serve, and how the
supervisor stops a service (every process of its session, the stubborn ones killed and named),
with real processes."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from orchestration.ui import Service, UiError, UiSupervisor, local_tracking_store

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def test_local_stores_are_served_as_they_are(tmp_path):
    store = tmp_path / "team" / "mlflow.db"
    assert local_tracking_store(f"sqlite:///{store}") == f"sqlite:///{store}"
    assert store.parent.is_dir()  # created, as the steps' MLflow client would
    for uri in (
        "postgresql://mlflow@127.0.0.1:5432/mlflow",
        "postgresql+psycopg2://mlflow@db/mlflow",
        "mysql+pymysql://u@db/mlflow",
        f"file://{tmp_path}/mlruns",
        str(tmp_path / "mlruns"),
    ):
        assert local_tracking_store(uri) == uri


@pytest.mark.parametrize(
    "uri",
    ["http://127.0.0.1:5000", "https://mlflow.example.org", "databricks", "databricks-uc", "uc:catalog"],
)
def test_a_remote_tracking_server_is_refused(uri):
    with pytest.raises(UiError, match="is not a store a local MLflow server can serve"):
        local_tracking_store(uri)


def test_an_in_memory_store_is_refused():
    with pytest.raises(UiError, match="in-memory SQLite store cannot be shared"):
        local_tracking_store("sqlite:///:memory:")


# A process that starts a child in a process group of its own (as Spark's Python worker daemon
# does), the child ignoring SIGTERM when asked to.
STARTS_A_CHILD = """
import os, signal, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", '''
import os, signal, sys, time
os.setpgid(0, 0)
if sys.argv[1] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(sys.argv[2], "w").write(str(os.getpid()))
time.sleep(600)
''', sys.argv[1], sys.argv[2]])
time.sleep(600)
"""


def started(tmp_path: Path, name: str, mode: str) -> tuple[Service, Path]:
    pid_file = tmp_path / f"{name}.pid"
    service = Service(
        name, [sys.executable, "-c", STARTS_A_CHILD, mode, str(pid_file)], 0, tmp_path / f"{name}.log"
    )
    service.start(dict(os.environ))
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text()):
        assert time.monotonic() < deadline and service.exited() is None, service.log_tail()
        time.sleep(0.1)
    return service, pid_file


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_stop_ends_every_process_of_each_service(tmp_path):
    said: list[str] = []
    polite, polite_pid = started(tmp_path, "polite", "polite")
    stubborn, stubborn_pid = started(tmp_path, "stubborn", "stubborn")
    children = {int(polite_pid.read_text()), int(stubborn_pid.read_text())}
    assert {os.getpgid(pid) for pid in children}.isdisjoint({polite.process.pid, stubborn.process.pid})
    assert len(polite.members()) == 2 and len(stubborn.members()) == 2  # leader + its own-group child
    supervisor = UiSupervisor(tmp_path, None, [polite, stubborn], say=said.append)
    supervisor.lock.acquire({"pid": os.getpid()})
    began = time.monotonic()
    supervisor.stop(grace_s=3)
    took = time.monotonic() - began
    # The child in a group of its own got SIGTERM too; the one ignoring it was killed, and named.
    assert said == ["stubborn: 1 process(es) still running 3s after SIGTERM; killed"]
    assert 3 <= took < 10, took
    assert not any(alive(pid) for pid in children | {polite.process.pid, stubborn.process.pid})
    assert polite.members() == [] and stubborn.members() == []
    assert (tmp_path / "ui.lock").read_text() == ""  # released


def test_stop_returns_as_soon_as_everything_ended(tmp_path):
    said: list[str] = []
    polite, polite_pid = started(tmp_path, "polite", "polite")
    supervisor = UiSupervisor(tmp_path, None, [polite], say=said.append)
    began = time.monotonic()
    supervisor.stop(grace_s=20)
    assert time.monotonic() - began < 5 and said == []
    assert not alive(int(polite_pid.read_text())) and polite.members() == []


def test_plots_are_shown_from_the_mlflow_ui(tmp_path, monkeypatch):
    """Dagster's Markdown drops data: image URLs: a plot logged to an MLflow run is shown from the
    MLflow UI's artifact endpoint, `codecook ui`'s when it launched the run, else its default."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow

    from assets._stage import figure_metadata
    from orchestration.ui import MLFLOW_UI_ENV

    monkeypatch.delenv(MLFLOW_UI_ENV, raising=False)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = mlflow.create_experiment("plots", artifact_location=(tmp_path / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment) as run:
        demo = figure_metadata(plt.figure(), "a/plot.png").value  # codecook demo: no UI around
        monkeypatch.setenv(MLFLOW_UI_ENV, "http://127.0.0.1:5123")
        ui = figure_metadata(plt.figure(), "b/plot.png").value  # a run launched from codecook ui
    query = f"run_uuid={run.info.run_id}"
    assert demo == f"![a/plot.png](http://127.0.0.1:5000/get-artifact?path=a%2Fplot.png&{query})"
    assert ui == f"![b/plot.png](http://127.0.0.1:5123/get-artifact?path=b%2Fplot.png&{query})"
    logged = {a.path for d in ("a", "b") for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, d)}
    assert logged == {"a/plot.png", "b/plot.png"}
    # Outside an MLflow run there is nothing to point at: the PNG itself is embedded.
    assert figure_metadata(plt.figure(), "c.png").value.startswith("![c.png](data:image/png;base64,iVBOR")
