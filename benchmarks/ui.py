"""Materialize all from the Dagster UI (one Spark Connect server) against `codecook demo`, side by side.

    python -m benchmarks.ui [--recipe recipes/demo.yaml] [--out .codecook/benchmarks/ui]

Both run the whole graph on the same recipe, each in a fresh storage root, one after the other:

1. baseline: `codecook demo` (one process, the in-process executor, one local Spark JVM);
2. the UI: `codecook ui` (Spark Connect + `dagster dev` + MLflow), then the run the "Materialize
   all" button launches: the `LaunchPipelineExecution` mutation on the implicit asset job
   `__ASSET_JOB` with every asset key selected, through the webserver's GraphQL endpoint, queued
   and launched by the daemon, every step in its own process (multiprocess executor).

Times are each Dagster run's own start to end (from the instance), plus, for the UI, click to
end (queueing and the run worker's start included). Prints the ratio UI / demo; the goal is
<= 1.15. The UI is stopped at the end, and the benchmark checks that its ports are free again.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def graphql(url: str, query: str, variables: dict | None = None, timeout: float = 60) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        payload = json.loads(response.read())
    if payload.get("errors"):
        raise RuntimeError(f"GraphQL errors: {payload['errors']}")
    return payload["data"]


ASSET_KEYS = """{ assetNodes { assetKey { path } isMaterializable } }"""
LOCATION = """{ workspaceOrError { ... on Workspace { locationEntries { name } } } }"""
LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
  }
}"""
RUN = """
query Run($id: ID!) {
  runOrError(runId: $id) { ... on Run { status startTime endTime
    stepStats { stepKey status startTime endTime } } }
}"""


def selected_keys(select: str | None) -> set[str] | None:
    """Asset keys of a Dagster selection string ("+key:exact_dedup"); None: every asset."""
    if select is None:
        return None
    import dagster as dg

    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    return {key.to_user_string() for key in dg.AssetSelection.from_string(select).resolve(graph)}


def materialize_all(url: str, select: str | None = None) -> str:
    """Launch what "Materialize all" launches: the asset job with every materializable asset
    (of the selection typed into the lineage search, if any)."""
    location = graphql(url, LOCATION)["workspaceOrError"]["locationEntries"][0]["name"]
    wanted = selected_keys(select)
    # Materializable assets only, as the button: observable source assets are observed, not run.
    keys = [
        node["assetKey"]
        for node in graphql(url, ASSET_KEYS)["assetNodes"]
        if node["isMaterializable"] and (wanted is None or "/".join(node["assetKey"]["path"]) in wanted)
    ]
    params = {
        "mode": "default",
        "runConfigData": {},
        "executionMetadata": {"tags": [{"key": "codecook/benchmark", "value": "ui"}]},
        "selector": {
            "repositoryLocationName": location,
            "repositoryName": "__repository__",
            "pipelineName": "__ASSET_JOB",
            "assetSelection": keys,
        },
    }
    launched = graphql(url, LAUNCH, {"params": params})["launchPipelineExecution"]
    if launched["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(f"launch failed: {launched}")
    return launched["run"]["runId"]


def wait_for_run(url: str, run_id: str, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = graphql(url, RUN, {"id": run_id})["runOrError"]
        if run.get("status") in TERMINAL:
            return run
        time.sleep(2)
    raise TimeoutError(f"run {run_id} not finished after {timeout_s:.0f}s")


def run_in_process(recipe: Path, home: Path, select: str) -> dict:
    """The `codecook demo` path (one process, in-process executor, one local Spark) on a selection:
    the demo job's subset, in a fresh process so that imports are counted as in `codecook demo`."""
    code = (
        "import os, sys, time, dagster as dg\n"
        "from orchestration.resources import ensure_dagster_home\n"
        "from quality.storage import StorageLayout\n"
        "ensure_dagster_home(StorageLayout(os.environ['CODECOOK_HOME']))\n"
        "from orchestration.definitions import defs\n"
        "from benchmarks.ui import selected_keys\n"
        "keys = [dg.AssetKey.from_user_string(k) for k in selected_keys(sys.argv[1])]\n"
        "job = defs.resolve_job_def('demo')\n"
        "with dg.DagsterInstance.get() as instance:\n"
        "    result = job.execute_in_process(instance=instance, asset_selection=keys, raise_on_error=False)\n"
        "print('RUN', result.run_id, result.success)\n"
    )
    env = {**os.environ, "CODECOOK_HOME": str(home), "CODECOOK_RECIPE": str(recipe)}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code, select], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True
    )
    wall = time.monotonic() - started
    found = re.search(r"RUN ([0-9a-f-]+) True", done.stdout)
    if not found:
        raise RuntimeError(f"in-process run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        record = instance.get_run_record_by_id(found.group(1))
        return {"run_s": record.end_time - record.start_time, "process_s": wall, "run_id": found.group(1)}


def run_demo(recipe: Path, home: Path) -> dict:
    """`codecook demo` in a fresh storage root; its Dagster run's start and end from the instance."""
    started = time.monotonic()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "codecook"), "demo", "--recipe", str(recipe), "--home", str(home)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - started
    found = re.search(r"demo (finished|FAILED) in \d+s \(Dagster run ([0-9a-f-]+)\)", done.stdout)
    if done.returncode != 0 or not found:
        raise RuntimeError(
            f"codecook demo failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        record = instance.get_run_record_by_id(found.group(2))
        return {"run_s": record.end_time - record.start_time, "process_s": wall, "run_id": found.group(2)}


def run_ui(recipe: Path, home: Path, timeout_s: float, select: str | None = None) -> dict:
    """`codecook ui` in a fresh storage root, Materialize all through GraphQL, then stop the UI."""
    ports = {"--dagster-port": free_port(), "--mlflow-port": free_port(), "--spark-connect-port": free_port()}
    argv = [str(Path(sys.executable).parent / "codecook"), "ui", "--recipe", str(recipe), "--home", str(home)]
    for flag, port in ports.items():
        argv += [flag, str(port)]
    log = open(home.parent / f"{home.name}-ui.out", "w")  # noqa: SIM115 - closed in finally
    ui = subprocess.Popen(
        argv, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{ports['--dagster-port']}"
    try:
        started = time.monotonic()
        output = Path(log.name)
        while "(Ctrl-C stops all)" not in output.read_text():
            if ui.poll() is not None:
                raise RuntimeError(f"codecook ui exited ({ui.returncode}):\n{output.read_text()[-3000:]}")
            if time.monotonic() - started > 300:
                raise TimeoutError("codecook ui did not start within 300s")
            time.sleep(1)
        ready_s = time.monotonic() - started
        clicked = time.monotonic()
        run_id = materialize_all(url, select)
        run = wait_for_run(url, run_id, timeout_s)
        click_to_end = time.monotonic() - clicked
        if run["status"] != "SUCCESS":
            failed = [s["stepKey"] for s in run["stepStats"] if s["status"] == "FAILURE"]
            raise RuntimeError(f"UI run {run_id} {run['status']}; failed steps: {failed}")
        return {
            "run_s": run["endTime"] - run["startTime"],
            "click_to_end_s": click_to_end,
            "ui_start_s": ready_s,
            "run_id": run_id,
            "steps": len(run["stepStats"]),
            "step_s": {
                step["stepKey"]: round(step["endTime"] - step["startTime"], 1)
                for step in run["stepStats"]
                if step["startTime"] and step["endTime"]
            },
        }
    finally:
        ui.send_signal(signal.SIGTERM)  # the supervisor stops its three process groups
        ui.wait(timeout=120)
        log.close()
        busy = [port for port in ports.values() if _listening(port)]
        if busy:
            raise RuntimeError(f"ports still served after the UI stopped: {busy}")


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default=str(PROJECT_ROOT / "recipes" / "demo.yaml"))
    parser.add_argument("--out", default=str(PROJECT_ROOT / ".codecook" / "benchmarks" / "ui"))
    parser.add_argument("--timeout", type=float, default=1800.0, help="Seconds the UI run may take.")
    parser.add_argument(
        "--select",
        help="A Dagster asset selection (e.g. '+key:exact_dedup'): compare on that part of the graph; the "
        "baseline is then the demo job's subset run in process, as `codecook demo` runs the whole.",
    )
    args = parser.parse_args(argv)
    out, recipe = Path(args.out).resolve(), Path(args.recipe).resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    os.environ.pop("CODECOOK_SPARK_REMOTE", None)  # the baseline runs its own local Spark

    print(f"recipe {recipe}; load average {os.getloadavg()[0]:.1f} at start", flush=True)
    if args.select:
        demo = run_in_process(recipe, out / "demo", args.select)
        label = f"in process ({args.select})"
    else:
        demo = run_demo(recipe, out / "demo")
        label = "codecook demo"
    print(f"{label + ':':<24}run {demo['run_s']:7.1f}s   (process {demo['process_s']:.1f}s)", flush=True)
    ui = run_ui(recipe, out / "ui", args.timeout, args.select)
    print(
        f"{'UI Materialize all:':<24}run {ui['run_s']:7.1f}s   (click to end {ui['click_to_end_s']:.1f}s; "
        f"UI start {ui['ui_start_s']:.1f}s; {ui['steps']} steps)",
        flush=True,
    )
    ratio = ui["run_s"] / demo["run_s"]
    print(
        f"ratio UI / demo: run {ratio:.2f}, click to end {ui['click_to_end_s'] / demo['run_s']:.2f} "
        f"(goal <= 1.15: {'met' if ratio <= 1.15 else 'NOT met'}); load average {os.getloadavg()[0]:.1f} at end"
    )
    (out / "result.json").write_text(json.dumps({"demo": demo, "ui": ui, "ratio": ratio}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
