"""`codecook ui`: one Spark Connect server, the Dagster UI and the MLflow UI, started and stopped together.

Why a Spark Connect server: `dagster dev` runs every step of a run in its own process
(multiprocess executor); with a local Spark session per step, each one starts its own JVM and
Python workers, which made "Materialize all" 2.7x slower than `codecook demo` (one process, one
JVM). Here one local Spark Connect server (shipped in the pyspark wheel) holds the JVM, and every
step connects to it (`CODECOOK_SPARK_REMOTE`, read by `orchestration.resources.SparkResource`).

All three listen on 127.0.0.1 only. Each runs in its own session and is stopped as a whole
(Dagster's webserver, daemon, code server and run workers; Spark's JVM and Python workers;
MLflow's server workers), on Ctrl-C, SIGTERM, SIGHUP, or when any of the three dies: SIGTERM to all
at once, then waiting until every process of each session has ended (SIGKILL for what is left after
a grace period, said on the terminal). Each also gets SIGTERM from the kernel if this supervisor
is killed outright (PR_SET_PDEATHSIG), so nothing is left running. A lock file under the storage
root keeps a second `codecook ui` on the same root from starting, and busy ports are named before
anything starts. The MLflow server serves the recipe's `mlflow.tracking_uri` (where the steps log;
default: the storage root's SQLite file), refused with a reason if it is not a local store.

Nothing here imports Dagster, Spark or MLflow: they run as the child processes.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SPARK_REMOTE_ENV = "CODECOOK_SPARK_REMOTE"
"""Environment variable carrying the Spark Connect address to every Dagster step process."""
MLFLOW_UI_ENV = "CODECOOK_MLFLOW_UI_URL"
"""The MLflow UI's address, for plots shown in the Dagster UI (`assets._stage.figure_metadata`)."""
CONNECT_SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
LOCK_NAME = "ui.lock"


class UiError(Exception):
    """Why the UI cannot start or stopped: one sentence for the user, nothing left running."""


@dataclass(frozen=True)
class Ports:
    """Loopback ports of the three services (each a `codecook ui` flag)."""

    dagster: int = 3000
    mlflow: int = 5000
    spark_connect: int = 15002

    def named(self) -> list[tuple[str, str, int]]:
        """(service, flag, port) for each service."""
        return [
            ("Dagster UI", "--dagster-port", self.dagster),
            ("MLflow UI", "--mlflow-port", self.mlflow),
            ("Spark Connect", "--spark-connect-port", self.spark_connect),
        ]


def mlflow_ui_url() -> str:
    """Where the Dagster UI loads plots from: `$CODECOOK_MLFLOW_UI_URL` (set by `codecook ui` for
    the runs it launches; a team deployment sets its MLflow server's address), else the address
    `codecook ui` gives the MLflow UI by default, so that plots of runs made without the UI
    (`codecook demo`) show once `make ui` runs over the same storage root."""
    return os.environ.get(MLFLOW_UI_ENV) or f"http://127.0.0.1:{Ports().mlflow}"


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something listens on host:port. SO_REUSEADDR, as the servers themselves bind, so a
    socket of a just-stopped server lingering in TIME_WAIT does not count as busy."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def listening(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a TCP connection to host:port is accepted."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def check_ports(ports: Ports) -> None:
    """Raise UiError naming every busy port (and the flag that moves it) before anything starts."""
    values = [port for _, _, port in ports.named()]
    if len(set(values)) != len(values):
        raise UiError(f"two services were given the same port: {ports}")
    busy = [
        f"{port} ({service}; choose another with {flag} PORT)"
        for service, flag, port in ports.named()
        if port_in_use(port)
    ]
    if busy:
        raise UiError("port already in use on 127.0.0.1: " + ", ".join(busy))


class UiLock:
    """An exclusive lock on `<storage root>/ui.lock`, held while the UI runs.

    The kernel drops a `flock` when its holder exits, however it exits, so a crashed UI never
    leaves a stale lock. The file also says who holds it, for the message a second start prints.
    """

    def __init__(self, root: Path):
        self.path = root / LOCK_NAME
        self._handle = None

    def acquire(self, info: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read()
            handle.close()
            raise UiError(already_running_message(self.path, holder)) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(info))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.truncate(0)
            self._handle.close()  # closing drops the flock
            self._handle = None


def already_running_message(path: Path, holder: str) -> str:
    try:
        info = json.loads(holder)
    except json.JSONDecodeError:
        info = {}
    where = f"pid {info['pid']}, " if "pid" in info else ""
    urls = ", ".join(f"{name} {url}" for name, url in info.get("urls", {}).items())
    return (
        f"already running for this storage root ({where}{urls or path}); "
        "use that one, or stop it first (Ctrl-C in its terminal"
        + (f", or kill {info['pid']})" if "pid" in info else ")")
    )


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the supervisor dies, even by SIGKILL (Linux)."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Service:
    """One child process group: its command, where its output goes, how to tell it is ready."""

    name: str
    argv: list[str]
    port: int
    log: Path
    """Where its output goes (the terminal stays readable; a failure prints the log's tail)."""
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None

    def start(self, base_env: dict[str, str]) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as output:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                self.argv,
                cwd=PROJECT_ROOT,
                env={**base_env, **self.env},
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own session (and process group), stopped as one
                preexec_fn=_die_with_parent,
            )

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def signal_all(self, sig: int) -> None:
        """`sig` to every process of its session: its process group at once, then any member that
        made a group of its own (Spark's Python worker daemon does, `os.setpgid(0, 0)`)."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass
        for pid in self.members():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def members(self) -> list[int]:
        """Live processes of its session (the leader and everything it started, in any process
        group), from /proc. Zombies are not counted: orphans are reaped by PID 1, which in a
        container may never do it."""
        if self.process is None:
            return []
        self.process.poll()  # reap the leader, whose zombie would otherwise count
        members = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                # pid (comm) state ppid pgrp session ...: split after the command, which may hold spaces
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            if fields[0] != "Z" and int(fields[3]) == self.process.pid:
                members.append(int(stat.parent.name))
        return members

    def wait_stopped(self, deadline: float) -> bool:
        """Whether every process of its session ended before `deadline` (time.monotonic())."""
        while self.members():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True

    def log_tail(self, lines: int = 15) -> str:
        if not self.log.exists():
            return ""
        text = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])


def spark_connect_service(spark_config, port: int, log: Path) -> Service:
    """The Spark Connect server in the foreground (`spark-submit` ends in `exec java`, so the
    process group holds the JVM and the Python workers it forks), set up like a local session."""
    import pyspark

    from quality.spark_session import local_conf

    spark_home = Path(pyspark.__file__).resolve().parent
    conf = {
        **local_conf(spark_config),
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
        # One server serves runs for as long as the UI is up: no web UI port of its own to collide.
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
    }
    argv = [
        str(spark_home / "bin" / "spark-submit"),
        "--class",
        CONNECT_SERVER_CLASS,
        "--name",
        "codecook-ui-spark-connect",
        "--master",
        spark_config.master,
    ]
    for key, value in conf.items():
        argv += ["--conf", f"{key}={value}"]
    env = {
        "SPARK_HOME": str(spark_home),
        # The server's Python workers run this venv's interpreter, which imports the project.
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_CONNECT_MODE": "0",  # the server itself is classic Spark
    }
    return Service("Spark Connect", argv, port, log, env)


def dagster_service(port: int, log: Path) -> Service:
    bin_dir = Path(sys.executable).parent
    argv = [
        str(bin_dir / "dagster"),
        "dev",
        "-w",
        str(PROJECT_ROOT / "workspace.yaml"),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    return Service("Dagster UI", argv, port, log)


# Backend stores an `mlflow server` started here can serve: SQLAlchemy databases and local folders.
# A tracking server (http, https), Databricks or Unity Catalog is someone else's server.
DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


def local_tracking_store(uri: str) -> str:
    """The recipe's MLflow tracking URI as the backend store of the UI's MLflow server, or UiError
    saying why a local server cannot serve it. SQLite's folder is created (as the steps would)."""
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""
    if scheme in DATABASE_SCHEMES:
        if scheme == "sqlite":
            path = uri.split(":///", 1)[1] if ":///" in uri else ""
            if not path or path == ":memory:":
                raise UiError(f"mlflow.tracking_uri {uri!r}: an in-memory SQLite store cannot be shared")
            Path(PROJECT_ROOT, path).parent.mkdir(parents=True, exist_ok=True)
        return uri
    # A local folder (MLflow's file store): a file: URI or a path; `databricks`, `uc:...` are not.
    if scheme == "file" or (not scheme and ":" not in uri and not uri.startswith("databricks")):
        return uri
    raise UiError(
        f"mlflow.tracking_uri {uri!r} is not a store a local MLflow server can serve (a database: "
        f"{', '.join(DATABASE_SCHEMES)}, or a local folder); an http(s) tracking server has its own "
        "UI: open it there, and leave the recipe's URI as it is for the runs"
    )


def mlflow_service(tracking_uri: str, artifacts: str, port: int, log: Path) -> Service:
    """`mlflow server` over the store the steps log to (the recipe's URI, else the storage root's)."""
    bin_dir = Path(sys.executable).parent
    argv = [
        str(bin_dir / "mlflow"),
        "server",
        "--backend-store-uri",
        local_tracking_store(tracking_uri),
        "--default-artifact-root",
        artifacts if "://" in artifacts else Path(artifacts).resolve().as_uri(),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",  # a local UI for one person; each worker is a few hundred MB
    ]
    # MLflow 3's job execution (GenAI scorers, prompt optimization; unused here) starts a job runner
    # and seven Huey consumer processes that outlived SIGTERM: stopping the UI waited out the whole
    # grace period for them (measured after a run: MLflow's group 20 s, then SIGKILL; Spark 1 s,
    # Dagster 12 s at load 12), and the server gave them a scratch folder in /dev/shm.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return Service("MLflow UI", argv, port, log, env)


@dataclass
class UiSupervisor:
    """Starts the services, waits for them, and stops every process group it started."""

    root: Path
    ports: Ports
    services: list[Service]
    start_timeout_s: float = 180.0
    say: Callable[[str], None] = print
    lock: UiLock = field(init=False)

    def __post_init__(self) -> None:
        self.lock = UiLock(self.root)

    def urls(self) -> dict[str, str]:
        return {
            "Dagster UI": f"http://127.0.0.1:{self.ports.dagster}",
            "MLflow UI": f"http://127.0.0.1:{self.ports.mlflow}",
            "Spark Connect": f"sc://127.0.0.1:{self.ports.spark_connect}",
        }

    def start(self, env: dict[str, str]) -> None:
        """Start everything and wait until each service accepts connections; on any failure stop
        what was started and raise UiError saying which service failed and why."""
        self.lock.acquire({"pid": os.getpid(), "urls": self.urls(), "started": time.time()})
        try:
            check_ports(self.ports)
            for service in self.services:
                service.start(env)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        waiting = list(self.services)
        while waiting:
            for service in list(waiting):
                code = service.exited()
                if code is not None:
                    raise UiError(self._failure(service, f"exited with code {code} while starting"))
                if listening(service.port):
                    waiting.remove(service)
            if waiting and time.monotonic() > deadline:
                late = waiting[0]
                raise UiError(
                    self._failure(
                        late, f"did not listen on port {late.port} within {self.start_timeout_s:.0f}s"
                    )
                )
            time.sleep(0.5)

    def _failure(self, service: Service, what: str) -> str:
        tail = service.log_tail()
        return f"{service.name} {what} (log: {service.log})" + (f"\n{tail}" if tail else "")

    def watch(self) -> str:
        """Block until a service exits; return what happened (Ctrl-C etc. raise KeyboardInterrupt)."""
        while True:
            for service in self.services:
                code = service.exited()
                if code is not None:
                    return self._failure(service, f"stopped (exit code {code}); stopping the others")
            time.sleep(1)

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM every started service at once, wait until each one's processes have all ended,
        and SIGKILL what is left of a service after `grace_s`, saying so."""
        started = [s for s in self.services if s.process is not None]
        for service in started:
            service.signal_all(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for service in started:
            if not service.wait_stopped(deadline):
                left = len(service.members())
                self.say(
                    f"{service.name}: {left} process(es) still running {grace_s:.0f}s after SIGTERM; killed"
                )
                service.signal_all(signal.SIGKILL)
                service.wait_stopped(time.monotonic() + 5)  # SIGKILL is delivered asynchronously
            service.process.wait()
        self.lock.release()


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run_ui(
    layout,
    ports: Ports,
    spark_config,
    tracking_uri: str | None = None,
    start_timeout_s: float = 180.0,
    say: Callable[[str], None] = print,
) -> int:
    """`codecook ui`: start, print the addresses, run until Ctrl-C / SIGTERM / SIGHUP or until a
    service dies, then stop everything. Exit code 0 on a requested stop, 1 when a service failed.

    `tracking_uri` is the recipe's `mlflow.tracking_uri`, the store the steps log to
    (`orchestration.resources.MLflowResource`); None: the storage root's SQLite file.
    """
    root = Path(layout.root)
    logs = root / "logs"
    services = []
    env = dict(os.environ)
    if spark_config.remote:
        # The recipe names its own Spark Connect server (a cluster): use it, start none.
        say(f"Spark: the recipe's Spark Connect server {spark_config.remote}")
    else:
        services.append(spark_connect_service(spark_config, ports.spark_connect, logs / "spark-connect.log"))
        env[SPARK_REMOTE_ENV] = f"sc://127.0.0.1:{ports.spark_connect}"
    env[MLFLOW_UI_ENV] = f"http://127.0.0.1:{ports.mlflow}"
    services += [
        dagster_service(ports.dagster, logs / "dagster-ui.log"),
        mlflow_service(
            tracking_uri or layout.mlflow_uri, layout.mlflow_artifacts, ports.mlflow, logs / "mlflow-ui.log"
        ),
    ]
    supervisor = UiSupervisor(root, ports, services, start_timeout_s=start_timeout_s, say=say)
    # Ctrl-C, `kill` and a closed terminal all stop the UI the same way.
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        say("starting " + ", ".join(s.name for s in services) + " ...")
        try:
            supervisor.start(env)
        except KeyboardInterrupt:
            say("stopped while starting")  # start() already stopped what it had started
            return 0
        urls = supervisor.urls()
        if spark_config.remote:
            urls.pop("Spark Connect")
        for name, url in urls.items():
            say(f"{name + ':':<15}{url}")
        say(f"MLflow store:  {tracking_uri or layout.mlflow_uri}")
        if ports.mlflow != Ports().mlflow:
            say(
                f"(plots of runs launched outside this UI, by codecook demo, load from "
                f"http://127.0.0.1:{Ports().mlflow}, the MLflow UI's default address)"
            )
        say(f"logs: {logs}\n(Ctrl-C stops all)")
        try:
            problem = supervisor.watch()
        except KeyboardInterrupt:
            say("stopping ...")
            began = time.monotonic()
            supervisor.stop()
            say(f"stopped in {time.monotonic() - began:.1f}s")
            return 0
        say(problem)
        supervisor.stop()
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
