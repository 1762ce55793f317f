"""A sandbox for running untrusted, model-generated Python against benchmark tests (Linux only).

openai/human-eval calls its own runner "NOT a security sandbox": it runs samples in a
`multiprocessing.Process` of the evaluating interpreter, with monkey-patched `os` functions and an
alarm signal as the timeout. A completion can ignore the alarm, fork children the timeout never
kills, read the evaluator's environment, write anywhere the evaluator can, reach the network, and
pass by exiting 0 before the tests run. This module runs every sample under kernel-enforced limits.

How a sample runs
-----------------
`Sandbox` starts one *zygote* per worker: a fresh interpreter (`python -I`, empty environment) that
sets up its isolation once, imports the standard-library modules benchmark code commonly uses,
and then serves requests over a pipe. Per sample the zygote supervises directly: it resets its
PID namespace for children (setns + unshare) and forks the *sample process*, PID 1 of a new PID
namespace, which enters a new IPC namespace of its own. Forking a warm interpreter once per sample
instead of starting one is what makes the sandbox fast (see benchmarks/eval.py).

What it covers (when started as root, or in a user namespace where noted)
---------------------------------------------------------------------------
- Process tree: the sample is PID 1 of its own PID namespace and leads its own session. When it
  exits or is killed, the kernel SIGKILLs every process left in the namespace, including children
  that double-forked and called `setsid`; the zygote returns only after all of them are gone.
  No process outlives its sample. (As PID 1 the sample ignores signals it sends itself without
  having installed a handler, as any init process does.)
- Wall-clock timeout: the zygote SIGKILLs the sample at the deadline (no polite SIGTERM, no
  alarm the sample could ignore); the whole namespace goes with it.
- Limits (setrlimit): address space (default 4 GiB: `import numpy` fits, a 64 GiB allocation
  fails), CPU seconds, file size, open files, core dumps off; process count via RLIMIT_NPROC on a
  per-worker unprivileged uid and, where cgroups are writable, a pids cgroup per worker
  (`pids.max`), which also holds for root. A memory cgroup per worker caps the resident memory of
  the sample's whole tree.
- Unprivileged user: started as root, the sample drops to a uid/gid of its own (no supplementary
  groups, `no_new_privs`, so setuid binaries do not elevate).
- File system: the zygote's mount namespace remounts every mount read-only (per-mount flag; the
  host is unaffected) and puts fresh size-limited tmpfs on /tmp, /var/tmp and /dev/shm. Each
  sample gets a private directory there (its cwd, HOME and TMPDIR) and the zygote empties the
  tmpfs after the sample (or, if something cannot be removed, replaces the zygote and with it the
  tmpfs). Nothing outside can be deleted or rewritten. Directories the sandbox user may not
  traverse (e.g. /root holding the Python install) are replaced by a tmpfs showing only the
  folders the interpreter needs, which also hides the rest of them. An interpreter living below
  /tmp (a checkout with its .venv there) is bound back read-only at its own path inside the
  private /tmp; the cleanup never enters such a mount point (`Sandbox.isolation["bound"]`).
- /proc: hidden (an empty read-only folder) by default, so no other process's command line can
  be read; `proc="private"` mounts a procfs of the sample's own PID namespace instead (its own
  processes only, for code that needs /proc, at ~2-4 ms per sample for the mount namespace).
- Environment: the zygote starts with an empty environment; the sample gets only PATH, HOME,
  TMPDIR, LANG and single-threaded BLAS settings. Secrets in the evaluator's environment are not
  in the sample's memory, and the evaluator's /proc/<pid>/environ is neither visible nor readable.
- Network: the zygote lives in a new network namespace with no interfaces up; connecting
  anywhere, 127.0.0.1 included, fails.
- Output: stdout and stderr are captured up to `output_bytes`; a sample printing more is killed
  and fails.
- Verdict: a sample passes only if the wrapper, after `exec` of the program (prompt, completion,
  tests and the final `check(...)` call) returned normally, writes a random per-sample token to a
  private pipe. `sys.exit(0)`, `os._exit(0)`, `atexit` handlers, signals or a child process
  exiting 0 can never produce it, so they fail.

What it does not cover
----------------------
- It is not a VM or seccomp jail: the kernel's full syscall surface is reachable, so a kernel
  exploit escapes. Run evaluation of adversarial models in a disposable VM or a gVisor/Kata pod.
- World-readable files stay readable (read-only). The sample can read the project and the
  Python installation; keep secrets out of world-readable files.
- The sentinel defeats early exits, not deliberate introspection: code that walks the wrapper's
  stack frames could find the token. It also cannot detect tests weakened by the completion
  itself (e.g. an object whose `__eq__` always returns True).
- CPU time is limited per process; a tree of busy processes is bounded by the wall-clock timeout
  and the process limit, not by a CPU share.

Where namespaces are unavailable
--------------------------------
Each layer is tried and the zygote reports what it got (`Sandbox.isolation`); a missing layer
logs a warning, or refuses to start with `SandboxConfig(strict=True)`.
- Not root, unprivileged user namespaces allowed (tested here by running the evaluator as
  `nobody`): the zygote enters a user namespace, becomes PID 1 of a PID namespace that namespace
  owns, and gets the network, mount (read-only remount, tmpfs, hidden /proc) and per-sample PID
  namespaces as above. There is no second uid to drop to, so the sample runs as the evaluator's own
  user: files stay read-only through the mount namespace, but what that user may read the sample may
  read too. Cgroups are usually not writable: the process limit is RLIMIT_NPROC, which a user
  namespace counts per namespace (Linux >= 5.14), and there is no tree-wide memory cap beyond the
  per-process address-space limit.
- No namespaces at all (`namespaces=False` reproduces it): the sample runs in its own session and,
  as root, under its own uid. There is no network isolation; files the sample's user may write can
  be changed; children that leave the session are killed through the pids cgroup (a kill loop until
  it is empty), and where no cgroup is writable either, such a child may outlive the sample. Run
  evaluation in a container on such machines.

`namespaces`, `per_sample_namespaces`, `cgroups` and `unprivileged_user` in `SandboxConfig` switch
layers off one by one, only to measure what each costs (`python -m benchmarks.eval` prints the
table); each switched-off layer is listed in `missing`, so `strict=True` refuses it.
"""

from __future__ import annotations

import builtins
import ctypes
import errno
import gc
import json
import logging
import math
import os
import resource
import select
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from queue import Queue
from typing import Any, Literal

log = logging.getLogger(__name__)

# Linux constants (sched.h, mount.h, prctl.h); ctypes because Python 3.11 has no os.unshare/mount.
CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME = 32, 1024, 2048
MS_BIND, MS_MOVE, MS_REC = 4096, 8192, 16384
MS_PRIVATE, MS_RELATIME, MS_STRICTATIME = 1 << 18, 1 << 21, 1 << 24
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
MNT_DETACH = 2

# Modules forked samples find already imported: HumanEval and MBPP import these (and the wrapper
# needs a few). Importing them once in the zygote saves ~1-20 ms per sample.
PRELOAD_MODULES = (
    "array", "bisect", "cmath", "collections", "copy", "dataclasses", "datetime", "decimal",
    "fractions", "functools", "hashlib", "heapq", "itertools", "json", "math", "operator",
    "random", "re", "statistics", "string", "sys", "typing", "unittest",
)  # fmt: skip

_PASS, _FAIL = b"P", b"F"
_UID_BASE = 1_900_000_000
"""Sandbox uids start here: above systemd's container ranges, below 2**31, allocated by nobody."""


@dataclass(frozen=True, kw_only=True)
class SandboxConfig:
    """Limits and isolation for executing untrusted samples."""

    timeout_s: float = 3.0
    """Wall-clock seconds a sample may run (default per call; `run` may override it)."""
    workers: int = 0
    """Samples run in parallel, one zygote each; 0 means one per CPU core."""
    memory_bytes: int = 4 << 30
    """RLIMIT_AS per process: address space, not resident memory; `import numpy` needs ~1 GiB."""
    tree_memory_bytes: int = 2 << 30
    """Memory cgroup limit for one sample's whole process tree (where cgroups are writable)."""
    file_size_bytes: int = 16 << 20
    """RLIMIT_FSIZE: largest file a sample may write."""
    tmpfs_bytes: int = 64 << 20
    """Size of each worker's private /tmp (and /var/tmp, /dev/shm) tmpfs."""
    open_files: int = 256
    """RLIMIT_NOFILE."""
    max_processes: int = 64
    """Processes and threads one sample may have (pids cgroup and RLIMIT_NPROC)."""
    output_bytes: int = 64 << 10
    """Captured stdout+stderr per sample; a sample printing more is killed and fails."""
    strict: bool = False
    """Refuse to start unless every isolation layer (namespaces, uid drop, cgroups) is available."""
    proc: Literal["hidden", "private", "host"] = "hidden"
    """What the sample sees at /proc. `hidden`: an empty read-only folder (no cost; code reading
    /proc, e.g. psutil, fails). `private`: a fresh procfs of the sample's own PID namespace, only
    its processes (a mount namespace per sample: ~2-4 ms each on this machine). `host`: the host's
    procfs (other processes' command lines are readable, their environments are not)."""
    namespaces: bool = True
    """False skips every namespace (network, mount, PID, IPC), as on a kernel without them: only
    for measuring what they cost or testing the fallback, never for untrusted code."""
    per_sample_namespaces: bool = True
    """False runs samples in the zygote's PID and IPC namespaces instead of new ones per sample
    (escaped children are then reaped through the session and the pids cgroup, as without
    namespaces): only for measuring what the per-sample namespaces cost."""
    cgroups: bool = True
    """False creates no worker cgroups: no tree-wide process cap for root and no memory cap for a
    sample's tree (a fork bomb is then bounded only by RLIMIT_NPROC under a dropped uid): only for
    measuring what cgroups cost."""
    unprivileged_user: bool = True
    """False keeps samples under the evaluator's uid even when it is root (then nothing but the
    read-only mounts protects files, and RLIMIT_NPROC does not apply): only for measuring."""
    interpreter: str | None = None
    """Python the zygotes run, hence the installation and sys.path samples import from; None: the
    evaluator's own (`sys.executable`). One living under /tmp (a checkout with its .venv there) is
    bound back read-only into the private /tmp, which the per-sample cleanup never enters."""
    preload: tuple[str, ...] = PRELOAD_MODULES
    """Modules imported once in each zygote, so forked samples find them loaded."""

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if not 0 <= self.workers <= 32:
            raise ValueError("workers must be between 0 (one per core) and 32")

    @property
    def worker_count(self) -> int:
        return self.workers or max(1, len(os.sched_getaffinity(0)))


@dataclass(frozen=True, kw_only=True)
class ExecutionResult:
    """What happened to one program."""

    passed: bool
    """True only if the program ran to its end and the wrapper wrote the sentinel afterwards."""
    result: str
    """`passed`, `timed out`, or `failed: <why>` (exception, exit status, limit)."""
    duration_s: float
    """Wall-clock seconds from fork to the end of the sample's process tree."""
    output: str = ""
    """Captured stdout+stderr, at most `output_bytes`."""


# ---------------------------------------------------------------------------------------------
# Thin wrappers over Linux system calls.

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


def _check(ret: int, what: str) -> None:
    if ret != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _unshare(flags: int) -> None:
    _check(_libc.unshare(flags), f"unshare({flags:#x})")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    # A remount without MS_BIND would change the filesystem itself, for the whole host; every
    # remount here is a per-mount (bind) remount.
    if flags & MS_REMOUNT:
        assert flags & MS_BIND, "refusing a superblock remount"
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def _prctl(option: int, value: int) -> None:
    _check(_libc.prctl(option, value, 0, 0, 0), f"prctl({option})")


# ---------------------------------------------------------------------------------------------
# Cgroups (created and removed by the evaluator, outside the zygote's read-only mount namespace).


def _cgroup_dirs() -> dict[str, str]:
    """The folder of this process's cgroup for the `pids` and `memory` controllers."""
    mounts: dict[str, tuple[str, str]] = {}  # controller ("" for v2) -> (mount root, mountpoint)
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            if rfields[0] == "cgroup":
                for option in rfields[2].split(","):
                    if option in ("pids", "memory"):
                        mounts[option] = (fields[3], fields[4])
            elif rfields[0] == "cgroup2":
                mounts.setdefault("", (fields[3], fields[4]))
    own: dict[str, str] = {}
    with open("/proc/self/cgroup") as handle:
        for line in handle:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                own[controller] = path
    found = {}
    for controller in ("pids", "memory"):
        if controller in mounts and controller in own:
            root, point = mounts[controller]
            found[controller] = point + "/" + os.path.relpath(own[controller], root).lstrip("./")
        elif "" in mounts and "" in own:
            root, point = mounts[""]
            base = point + "/" + os.path.relpath(own[""], root).lstrip("./")
            try:
                available = Path(base, "cgroup.controllers").read_text().split()
            except OSError:
                continue
            if controller in available:
                found[controller] = base + "#v2"
    return found


class _WorkerCgroups:
    """A pids and a memory cgroup for one worker; best effort, every failure is recorded."""

    def __init__(self, name: str, config: SandboxConfig) -> None:
        self.dirs: list[str] = []
        self.by_controller: dict[str, str] = {}
        self.fds: dict[str, int] = {}
        self.problems: list[str] = []
        if not config.cgroups:
            self.problems.append("cgroups: disabled by configuration")
            return
        for controller, base in _cgroup_dirs().items():
            v2 = base.endswith("#v2")
            base = base.removesuffix("#v2")
            folder = f"{base}/{name}"
            _remove_stale_cgroups(base)
            try:
                if v2:
                    Path(base, "cgroup.subtree_control").write_text(f"+{controller}")
                os.makedirs(folder, exist_ok=True)
                if folder not in self.dirs:
                    self.dirs.append(folder)
                if controller == "pids":
                    Path(folder, "pids.max").write_text(str(config.max_processes))
                else:
                    limit_file = "memory.max" if v2 else "memory.limit_in_bytes"
                    Path(folder, limit_file).write_text(str(config.tree_memory_bytes))
                self.fds[controller] = os.open(f"{folder}/cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
                self.by_controller[controller] = folder
            except OSError as error:
                self.problems.append(f"{controller} cgroup: {error}")
        for controller in ("pids", "memory"):
            if controller not in self.fds and not any(p.startswith(controller) for p in self.problems):
                self.problems.append(f"{controller} cgroup: controller not available")

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds = {}
        for folder in reversed(self.dirs):
            for _ in range(50):  # the last processes may still be exiting
                try:
                    os.rmdir(folder)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    _kill_cgroup(folder)
                    time.sleep(0.02)
        self.dirs = []


def _remove_stale_cgroups(base: str) -> None:
    """Worker cgroups left by an evaluator that was killed (its pid is in the name) are removed."""
    try:
        names = [n for n in os.listdir(base) if n.startswith("codecook-sandbox-")]
    except OSError:
        return
    for name in names:
        try:
            owner = int(name.split("-")[2])
        except (IndexError, ValueError):
            continue
        if owner == os.getpid() or Path(f"/proc/{owner}").exists():
            continue
        _kill_cgroup(f"{base}/{name}")
        try:
            os.rmdir(f"{base}/{name}")
        except OSError:
            pass


def _kill_cgroup(folder: str) -> None:
    try:
        pids = Path(folder, "cgroup.procs").read_text().split()
    except OSError:
        return
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass


# ---------------------------------------------------------------------------------------------
# Framing of messages between the evaluator and a zygote: 4-byte length, then JSON.


def _send(fd: int, message: dict[str, Any]) -> None:
    data = json.dumps(message).encode()
    data = struct.pack(">I", len(data)) + data
    while data:
        data = data[os.write(fd, data) :]


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes:
    chunks, have = [], 0
    while have < size:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TimeoutError("no answer from the sandbox zygote")
        chunk = os.read(fd, size - have)
        if not chunk:
            raise EOFError("sandbox zygote closed its pipe")
        chunks.append(chunk)
        have += len(chunk)
    return b"".join(chunks)


def _receive(fd: int, deadline: float | None = None) -> dict[str, Any]:
    (size,) = struct.unpack(">I", _read_exact(fd, 4, deadline))
    return json.loads(_read_exact(fd, size, deadline))


# ---------------------------------------------------------------------------------------------
# The evaluator side.


class SandboxError(RuntimeError):
    """The sandbox could not be set up as configured."""


class _Worker:
    """One zygote process and its cgroups."""

    def __init__(self, index: int, config: SandboxConfig) -> None:
        self.index = index
        self.config = config
        self.uid = _UID_BASE + ((os.getpid() << 5) | index) if os.geteuid() == 0 else os.geteuid()
        self.cgroups = _WorkerCgroups(
            f"codecook-sandbox-{os.getpid()}-{index}-{uuid.uuid4().hex[:6]}", config
        )
        self.process: subprocess.Popen | None = None
        self.stderr: Any = None
        self.isolation: dict[str, Any] = {}
        self.start()

    def start(self) -> None:
        self.stop_process()
        fds = tuple(self.cgroups.fds.values())
        # The zygote's own errors go to a file: a pipe nobody reads could fill up and block it.
        if self.stderr is not None:
            self.stderr.close()
        self.stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [self.config.interpreter or sys.executable, "-I", "-c", _BOOTSTRAP],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env={
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                "LANG": "C.UTF-8",
                "OPENBLAS_NUM_THREADS": "1",
                "OMP_NUM_THREADS": "1",
                "MKL_NUM_THREADS": "1",
            },
            pass_fds=fds,
            close_fds=True,
            cwd="/",
        )
        settings = {
            **asdict(self.config),
            "uid": self.uid,
            "cgroup_fds": self.cgroups.fds,
            "cgroup_dirs": self.cgroups.by_controller,
            "cgroup_problems": self.cgroups.problems,
        }
        try:
            _send(self.process.stdin.fileno(), {"source": _SOURCE})
            _send(self.process.stdin.fileno(), settings)
            self.isolation = _receive(self.process.stdout.fileno(), time.monotonic() + 60)
        except (EOFError, TimeoutError, BrokenPipeError) as error:
            self.stop_process()
            self.stderr.seek(0)
            stderr = self.stderr.read().decode(errors="replace")
            raise SandboxError(f"sandbox zygote failed to start: {error}\n{stderr}") from None

    def run(self, program: str, timeout_s: float) -> ExecutionResult:
        assert self.process is not None
        try:
            _send(self.process.stdin.fileno(), {"program": program, "timeout": timeout_s})
            # The zygote ends every sample by its own deadline; a generous margin covers a
            # machine under load. Past it the zygote is presumed wedged and replaced.
            answer = _receive(self.process.stdout.fileno(), time.monotonic() + timeout_s + 30)
        except (EOFError, TimeoutError, BrokenPipeError, OSError) as error:
            log.warning("sandbox worker %d lost (%s); restarting it", self.index, error)
            self.start()
            return ExecutionResult(passed=False, result=f"failed: sandbox error ({error})", duration_s=0.0)
        if answer.pop("retire", False):
            # The zygote could not empty its private /tmp (see `_empty_directory`): a fresh one
            # gets a fresh tmpfs, so nothing the sample left reaches the next sample.
            log.info("sandbox worker %d: scratch space not emptied; restarting it", self.index)
            self.start()
        return ExecutionResult(**answer)

    def stop_process(self) -> None:
        if self.process is None:
            return
        process, self.process = self.process, None
        for stream in (process.stdin, process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:
            process.wait(timeout=10)  # a zygote exits when its request pipe closes
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def close(self) -> None:
        self.stop_process()
        self.cgroups.close()
        if self.stderr is not None:
            self.stderr.close()
            self.stderr = None


def _interpreter_paths() -> list[str]:
    """Folders the sample's interpreter reads (called in the zygote: its own installation and
    sys.path, not the evaluator's)."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    paths.update(p for p in sys.path if p)
    return sorted(os.path.realpath(p) for p in paths if os.path.isdir(p))


def _outermost(paths) -> list[str]:
    """The given folders without those nested in another of them."""
    chosen: list[str] = []
    for path in sorted(set(paths)):
        if not any(path.startswith(parent + "/") for parent in chosen):
            chosen.append(path)
    return chosen


class Sandbox:
    """Runs programs in isolated, limited process trees; thread-safe; use as a context manager.

    >>> with Sandbox(SandboxConfig(timeout_s=3)) as box:
    ...     box.run("assert 1 + 1 == 2").passed
    True
    """

    def __init__(self, config: SandboxConfig | None = None) -> None:
        if not sys.platform.startswith("linux"):
            raise SandboxError("the sandbox needs Linux (namespaces, rlimits, pidfd)")
        self.config = config or SandboxConfig()
        self._workers: list[_Worker] = []
        self._free: Queue[_Worker] = Queue()
        self._lock = threading.Lock()
        try:
            for index in range(self.config.worker_count):
                worker = _Worker(index, self.config)
                self._workers.append(worker)
                self._free.put(worker)
        except BaseException:
            self.close()
            raise
        missing = self.isolation["missing"]
        if missing:
            if self.config.strict:
                self.close()
                raise SandboxError(f"sandbox isolation incomplete (strict): {missing}")
            log.warning("sandbox isolation incomplete on this machine: %s", "; ".join(missing))

    @property
    def isolation(self) -> dict[str, Any]:
        """What the first zygote reported it could set up (`missing` lists what it could not)."""
        return self._workers[0].isolation if self._workers else {"missing": ["not started"]}

    def run(self, program: str, timeout_s: float | None = None) -> ExecutionResult:
        """Execute `program` (a complete Python source) and report whether it ran to its end."""
        worker = self._free.get()
        try:
            return worker.run(program, timeout_s or self.config.timeout_s)
        finally:
            self._free.put(worker)

    def run_many(self, programs: Iterable[str], timeout_s: float | None = None) -> list[ExecutionResult]:
        """Execute programs on all workers; results come back in input order."""
        programs = list(programs)
        with ThreadPoolExecutor(max_workers=len(self._workers)) as pool:
            return list(pool.map(lambda p: self.run(p, timeout_s), programs))

    def close(self) -> None:
        with self._lock:
            workers, self._workers = self._workers, []
        for worker in workers:
            worker.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_workers", None):
            self.close()


# ---------------------------------------------------------------------------------------------
# The zygote side: runs as `python -I -c _BOOTSTRAP`, talks over fds 0/1 moved aside.

_MOUNT_FLAGS = {
    "ro": MS_RDONLY, "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC,
    "noatime": MS_NOATIME, "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME,
    "strictatime": MS_STRICTATIME,
}  # fmt: skip
_TMPFS_POINTS = ("/tmp", "/var/tmp", "/dev/shm")


def _mount_points() -> list[tuple[str, int]]:
    """Mount points of this mount namespace with their per-mount flags, parents first."""
    points = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            fields = line.split(" - ")[0].split()
            point = fields[4].encode().decode("unicode_escape")  # \040 for spaces
            flags = 0
            for option in fields[5].split(","):
                flags |= _MOUNT_FLAGS.get(option, 0)
            points.append((point, flags))
    return points


def _traversable_by_others(path: str) -> bool:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return bool(mode & stat.S_IXOTH and mode & stat.S_IROTH)


def _expose(keep_paths: Sequence[str], staging: str) -> list[str]:
    """Make `keep_paths` reachable for an unprivileged uid: every directory on the way that others
    may not enter is covered by a read-only tmpfs holding only the needed children, bind-mounted
    from the original. Returns the covered directories."""
    covered = []
    for _ in range(16):  # each round covers the topmost blocked directory of some path
        blocked: dict[str, set[str]] = {}
        for keep in keep_paths:
            parts = Path(keep).parts
            for depth in range(1, len(parts)):
                parent = str(Path(*parts[:depth]))
                if not _traversable_by_others(parent):
                    blocked.setdefault(parent, set()).add(parts[depth])
                    break
        if not blocked:
            return covered
        # Topmost blocked directories only; blocked folders inside the exposed ones come next round.
        for parent in sorted(blocked, key=len):
            names = sorted(blocked[parent])
            holds = []
            for index, name in enumerate(names):
                hold = f"{staging}/{len(covered)}-{index}"
                os.makedirs(hold)
                _mount(f"{parent}/{name}", hold, None, MS_BIND | MS_REC)
                holds.append(hold)
            _mount("tmpfs", parent, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
            for name, hold in zip(names, holds, strict=True):
                os.makedirs(f"{parent}/{name}")
                _mount(hold, f"{parent}/{name}", None, MS_MOVE)
                os.rmdir(hold)
            _mount(None, parent, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
            covered.append(parent)
    return covered


def _setup_isolation(settings: dict[str, Any]) -> dict[str, Any]:
    """Enter the zygote's namespaces and mounts once; report what worked."""
    report: dict[str, Any] = {
        "missing": list(settings["cgroup_problems"]),
        "cgroups": sorted(settings["cgroup_fds"]),
    }
    root = os.geteuid() == 0
    report["user_namespace"] = False
    report["private_tmp"] = False
    report["bound"] = []
    report["drop_user"] = root and settings["unprivileged_user"]
    if root and not settings["unprivileged_user"]:
        report["missing"].append("unprivileged user: disabled by configuration")
    if not settings["namespaces"]:
        report.update(
            network_namespace=False, read_only_root=False, pid_namespace=False, covered=[], proc="host"
        )
        report["sample_namespaces"] = {"ipc": False, "proc": False}
        report["missing"].append("namespaces: disabled by configuration")
        return report, None
    if not root:
        uid, gid = os.geteuid(), os.getegid()
        try:
            _unshare(CLONE_NEWUSER)
            Path("/proc/self/setgroups").write_text("deny")
            Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
            Path("/proc/self/gid_map").write_text(f"0 {gid} 1")
            report["user_namespace"] = True
            _become_init_of_own_pid_namespace()
        except OSError as error:
            report["missing"].append(f"user namespace: {error}")
    try:
        _unshare(CLONE_NEWNET)
        report["network_namespace"] = True
    except OSError as error:
        report["network_namespace"] = False
        report["missing"].append(f"network namespace: {error} (samples can reach the network)")
    report["read_only_root"] = False
    try:
        _unshare(CLONE_NEWNS)
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        for point in _TMPFS_POINTS:
            if os.path.isdir(point):
                # The interpreter may live below a point the tmpfs covers (a checkout in /tmp):
                # hold its folders open, then bind them back into the fresh tmpfs (made
                # read-only with everything else below). They are mount points there, which the
                # per-sample cleanup never enters (`_empty_directory`).
                kept = _outermost(p for p in _interpreter_paths() if p.startswith(point.rstrip("/") + "/"))
                handles = {path: os.open(path, os.O_PATH | os.O_DIRECTORY) for path in kept}
                _mount(
                    "tmpfs", point, "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={settings['tmpfs_bytes']}"
                )
                for path, handle in handles.items():
                    os.makedirs(path, exist_ok=True)
                    _mount(f"/proc/self/fd/{handle}", path, None, MS_BIND | MS_REC)
                    os.close(handle)
                    report["bound"].append(path)
        report["private_tmp"] = True
        staging = "/tmp/.codecook-staging"
        os.makedirs(staging)
        report["covered"] = _expose(_interpreter_paths(), staging) if report["drop_user"] else []
        os.rmdir(staging)
        for point, flags in _mount_points():
            if point in _TMPFS_POINTS:
                continue
            try:
                _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags)
            except OSError as error:
                if point == "/":
                    raise
                report.setdefault("writable_mounts", []).append(f"{point}: {error}")
        report["read_only_root"] = True
    except OSError as error:
        report["missing"].append(f"mount namespace: {error} (samples can write what the user can)")
    # Per-sample namespaces: probe once that they work here.
    if settings["per_sample_namespaces"]:
        pid_namespaces = _probe_pid_namespace()
        if pid_namespaces is None:
            report["missing"].append(
                "pid namespace: unavailable (detached processes are reaped only via cgroups)"
            )
    else:
        pid_namespaces = None
        report["missing"].append("per-sample namespaces: disabled by configuration")
    report["pid_namespace"] = pid_namespaces is not None
    report["sample_namespaces"] = (
        _probe_sample_namespaces(pid_namespaces, settings["proc"] == "private")
        if settings["per_sample_namespaces"]
        else {"ipc": False, "proc": False}
    )
    report["proc"] = _hide_proc() if settings["proc"] == "hidden" and report["read_only_root"] else "host"
    if report["sample_namespaces"]["proc"]:
        report["proc"] = "private"
    if report["proc"] != settings["proc"]:
        report["missing"].append(
            f"/proc: {settings['proc']} not possible here, samples see the {report['proc']} /proc"
        )
    if not root and not report["user_namespace"]:
        report["missing"].append("unprivileged user: not root, samples run as the evaluator's user")
    elif not root:
        report["missing"].append(
            "unprivileged user: no second uid in a user namespace; runs as the evaluator's user"
        )
    return report, pid_namespaces


def _become_init_of_own_pid_namespace() -> None:
    """In a user namespace the zygote may not re-enter the host's PID namespace (setns needs
    CAP_SYS_ADMIN over it), which per-sample namespaces rely on. So it continues as PID 1 of a
    namespace its user namespace owns; the original process only waits and passes on the exit."""
    _unshare(CLONE_NEWPID)
    child = os.fork()
    if child:
        status = os.waitpid(child, 0)[1]
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _hide_proc() -> str:
    """An empty read-only tmpfs over /proc in the zygote's mount namespace (last step of the
    set-up: the zygote itself needs /proc until then)."""
    try:
        _mount("tmpfs", "/proc", "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0555,size=4k")
    except OSError:
        return "host"
    return "hidden"


def _probe_sample_namespaces(pid_namespaces: _PidNamespaces | None, private_proc: bool) -> dict[str, bool]:
    """Which per-sample namespaces the sample process can enter: IPC (SysV objects die with the
    sample) and mount (for its own /proc, which needs the PID namespace too)."""
    found = {}
    for name, flags in (("ipc", CLONE_NEWIPC), ("proc", CLONE_NEWNS)):
        if name == "proc" and (pid_namespaces is None or not private_proc):
            found[name] = False
            continue
        if pid_namespaces is not None:
            pid_namespaces.next_fork_in_new_namespace()
        pid = os.fork()
        if pid == 0:
            try:
                _unshare(flags)
                if name == "proc":
                    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
                os._exit(0)
            except BaseException:  # noqa: BLE001
                os._exit(1)
        found[name] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    return found


class _PidNamespaces:
    """Gives each sample a new PID namespace from the long-lived zygote.

    unshare(CLONE_NEWPID) makes only the caller's *next* children start in a new namespace, and
    refuses a second call while that namespace is pending. Re-entering the zygote's own namespace
    with setns() first resets it, so one process can hand out a fresh namespace per fork without
    an intermediate process per sample (which would double the fork and exit cost).
    """

    def __init__(self) -> None:
        self.own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)

    def next_fork_in_new_namespace(self) -> None:
        _check(_libc.setns(self.own, CLONE_NEWPID), "setns(own pid namespace)")
        _unshare(CLONE_NEWPID)


def _probe_pid_namespace() -> _PidNamespaces | None:
    try:
        namespaces = _PidNamespaces()
        for _ in range(2):  # twice: the reset between samples must work too
            namespaces.next_fork_in_new_namespace()
            pid = os.fork()
            if pid == 0:
                os._exit(0 if os.getpid() == 1 else 1)
            if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0:
                return None
        return namespaces
    except OSError:
        return None


def _zygote_main() -> None:
    # The request and answer pipes move to high fds; 0/1 become /dev/null so a stray print cannot
    # corrupt the protocol.
    requests, answers = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    settings = _receive(requests)
    settings["cgroup_fds"] = {k: int(v) for k, v in settings["cgroup_fds"].items()}
    report, pid_namespaces = _setup_isolation(settings)
    for name in settings["preload"]:
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - a missing optional module only costs speed
            pass
    # Everything imported so far moves to a generation the collector never scans: a collection in
    # a sample then does not touch (and copy-on-write) every page inherited from the zygote.
    gc.collect()
    gc.freeze()
    os.chdir("/")
    _send(answers, report)
    settings["drop_user"] = report["drop_user"]
    settings["sample_namespaces"] = report["sample_namespaces"]
    settings["private_tmp"] = report["private_tmp"]
    settings["bound"] = report["bound"]
    settings["user_namespace"] = report["user_namespace"]
    protocol_fds = (requests, answers)
    while True:
        try:
            request = _receive(requests)
        except EOFError:
            return
        answer = _supervise(
            request["program"], float(request["timeout"]), settings, pid_namespaces, protocol_fds
        )
        _send(answers, answer)


def _supervise(
    program: str,
    timeout: float,
    settings: dict[str, Any],
    pid_namespaces: _PidNamespaces | None,
    protocol_fds: tuple[int, int],
) -> dict[str, Any]:
    """Run one sample as PID 1 of a new namespace and return its verdict."""
    uid = settings["uid"] if settings["drop_user"] else os.geteuid()
    workdir = _fresh_workdir(uid)
    token = os.urandom(16).hex().encode()
    out_r, out_w = os.pipe()
    verdict_r, verdict_w = os.pipe()
    if pid_namespaces is not None:
        pid_namespaces.next_fork_in_new_namespace()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        for fd in (out_r, verdict_r, *protocol_fds):
            os.close(fd)
        _sample_process(program, token, workdir, uid, timeout, settings, out_w, verdict_w)
        os._exit(1)  # not reached
    os.close(out_w)
    os.close(verdict_w)
    outcome = _watch(pid, out_r, verdict_r, started + timeout, settings["output_bytes"])
    if pid_namespaces is None:
        _reap_escapees(pid, settings)
    duration = time.monotonic() - started
    retire = False
    if settings["private_tmp"]:
        # The worker's own tmpfs: everything the sample left anywhere in it, but nothing bound
        # into it (an interpreter under /tmp). Whatever cannot be removed retires the zygote.
        retire = not _clean_tmpfs(settings["bound"])
    else:
        shutil.rmtree(workdir, ignore_errors=True)  # the host's /tmp: only the sample's folder
    output, verdict, killed_for, status = outcome
    if killed_for == "timeout":
        result = "timed out"
    elif killed_for == "output":
        result = f"failed: output exceeded {settings['output_bytes']} bytes"
    elif verdict == _PASS + token:
        result = "passed"
    elif verdict.startswith(_FAIL):
        result = "failed: " + verdict[1:].decode(errors="replace")
    elif os.WIFSIGNALED(status):
        result = f"failed: killed by {signal.Signals(os.WTERMSIG(status)).name} before the tests finished"
    else:
        result = f"failed: exited with status {os.waitstatus_to_exitcode(status)} before the tests finished"
    answer = {
        "passed": result == "passed",
        "result": result,
        "duration_s": round(duration, 6),
        "output": output.decode(errors="replace"),
    }
    if retire:
        answer["retire"] = True
    return answer


def _fresh_workdir(uid: int) -> str:
    path = tempfile.mkdtemp(prefix="sample-", dir="/tmp")
    if os.geteuid() == 0:
        os.chown(path, uid, uid)
    return path


def _watch(
    pid: int, out_r: int, verdict_r: int, deadline: float, output_cap: int
) -> tuple[bytes, bytes, str, int]:
    """Collect output and verdict until the sample's tree is gone or a limit is hit."""
    output, verdict = bytearray(), bytearray()
    killed_for = ""
    try:
        exit_fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        exit_fd = None
    poller = select.poll()
    for fd in (out_r, verdict_r) + ((exit_fd,) if exit_fd is not None else ()):
        poller.register(fd, select.POLLIN)
    open_fds = {out_r, verdict_r}
    status = None
    while status is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            killed_for = "timeout"
            break
        wait_ms = remaining * 1000 if exit_fd is not None else min(remaining * 1000, 5)
        for fd, _ in poller.poll(math.ceil(wait_ms)):
            if fd == exit_fd:
                status = os.waitpid(pid, 0)[1]
                break
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                poller.unregister(fd)
                open_fds.discard(fd)
            elif fd == out_r:
                output += chunk
                if len(output) > output_cap:
                    killed_for = "output"
            else:
                verdict += chunk[: 8192 - len(verdict)]
        if killed_for:
            break
        if exit_fd is None:
            done, waited = os.waitpid(pid, os.WNOHANG)
            if done:
                status = waited
    if status is None:
        # SIGKILL to PID 1 of the namespace: the kernel kills every other process in it, and the
        # wait below returns only once they are all gone.
        os.kill(pid, signal.SIGKILL)
        status = os.waitpid(pid, 0)[1]
    # Every writer is dead now; whatever is still buffered in the pipes is read, within the caps.
    for fd in list(open_fds):
        os.set_blocking(fd, False)
        try:
            while chunk := os.read(fd, 1 << 16):
                if fd == out_r:
                    output += chunk[: max(0, output_cap + 1 - len(output))]
                else:
                    verdict += chunk[: 8192 - len(verdict)]
        except BlockingIOError:
            pass
    for fd in (out_r, verdict_r) + ((exit_fd,) if exit_fd is not None else ()):
        os.close(fd)
    return bytes(output[:output_cap]), bytes(verdict), killed_for, status


def _reap_escapees(pid: int, settings: dict[str, Any]) -> None:
    """Without a PID namespace: kill the sample's session, then whatever is left in its pids
    cgroup (a process that left the session is still in the cgroup), until it is empty."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    folder = settings["cgroup_dirs"].get("pids")
    if folder is None:
        return
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            pids = Path(folder, "cgroup.procs").read_text().split()
        except OSError:
            return
        if not pids:
            return
        for victim in pids:
            try:
                os.kill(int(victim), signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.005)


def _clean_tmpfs(bound: Iterable[str]) -> bool:
    """Empty the worker's private /tmp, /var/tmp and /dev/shm, leaving the mount points `bound`
    there at set-up; False if something is left (a mount point it did not make included)."""
    clean = True
    for point in _TMPFS_POINTS:
        try:
            fd = os.open(point, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            clean &= _empty_directory(fd, point, os.fstat(fd).st_dev, frozenset(bound))
        finally:
            os.close(fd)
    return clean


_MAX_CLEAN_DEPTH = 128
"""Deeper trees are not walked (each level holds a file descriptor): the zygote is replaced."""


def _empty_directory(dir_fd: int, path: str, device: int, bound: frozenset[str], depth: int = 0) -> bool:
    """Remove everything in the open directory `dir_fd` (at `path`) that lives on file system
    `device`.

    A directory on another file system is a mount point (an interpreter or checkout under /tmp
    bound back read-only): it is neither entered nor removed, and a folder holding one stays.
    Walking a bound virtualenv instead costs ~90,000 failed unlink calls per sample, and would
    delete its files if a bind mount were ever writable. Symbolic links are removed, never
    followed. Returns False if anything else could not be removed, was too deep to walk, or is a
    mount point not in `bound` (one a sample made)."""
    clean = True
    try:
        with os.scandir(dir_fd) as listing:
            entries = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in listing]
    except OSError:
        return False
    for name, is_dir in entries:
        try:
            if not is_dir:
                os.unlink(name, dir_fd=dir_fd)
                continue
            if os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_dev != device:
                clean &= f"{path}/{name}" in bound  # a mount point: never entered
                continue
            if depth >= _MAX_CLEAN_DEPTH:
                clean = False
                continue
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            try:
                emptied = _empty_directory(child, f"{path}/{name}", device, bound, depth + 1)
            finally:
                os.close(child)
            clean &= emptied
            if emptied:
                try:
                    os.rmdir(name, dir_fd=dir_fd)
                except OSError as error:
                    if error.errno != errno.ENOTEMPTY:  # not empty: it holds a mount point
                        clean = False
        except OSError:
            clean = False
    return clean


_SAMPLE_ENV_KEEP = ("PATH", "LANG", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _sample_process(
    program: str,
    token: bytes,
    workdir: str,
    uid: int,
    timeout: float,
    settings: dict[str, Any],
    out_w: int,
    verdict_w: int,
) -> None:
    """PID 1 of the sample's namespace: confine itself, then run the program."""
    try:
        os.setsid()
        for fd in settings["cgroup_fds"].values():
            os.write(fd, b"0")  # "0" moves the writing process
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        namespaces = settings["sample_namespaces"]
        if namespaces["ipc"] or namespaces["proc"]:
            _unshare((CLONE_NEWIPC if namespaces["ipc"] else 0) | (CLONE_NEWNS if namespaces["proc"] else 0))
        if namespaces["proc"]:
            _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        keep = sorted({0, 1, 2, verdict_w})
        for low, high in zip(keep, keep[1:] + [resource.getrlimit(resource.RLIMIT_NOFILE)[0]], strict=True):
            os.closerange(low + 1, high)
        drop_user = os.geteuid() == 0 and settings["drop_user"]
        limits = {
            resource.RLIMIT_AS: settings["memory_bytes"],
            resource.RLIMIT_CPU: math.ceil(timeout) + 1,
            resource.RLIMIT_FSIZE: settings["file_size_bytes"],
            resource.RLIMIT_NOFILE: settings["open_files"],
            resource.RLIMIT_CORE: 0,
        }
        if drop_user:
            # RLIMIT_NPROC counts every process of the real uid; only the dedicated sandbox uid makes
            # it a per-sample limit (for root it is not enforced at all, hence the pids cgroup).
            limits[resource.RLIMIT_NPROC] = settings["max_processes"]
        elif settings["user_namespace"]:
            # In a user namespace the count is per namespace (Linux >= 5.14): the sample's tree
            # plus the zygote and the process waiting for it.
            limits[resource.RLIMIT_NPROC] = settings["max_processes"] + 2
        for which, value in limits.items():
            resource.setrlimit(which, (value, value))
        os.chdir(workdir)
        os.umask(0o077)
        env = {k: os.environ[k] for k in _SAMPLE_ENV_KEEP if k in os.environ}
        os.environ.clear()
        os.environ.update(env, HOME=workdir, TMPDIR=workdir)
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        if drop_user:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    except BaseException as error:  # noqa: BLE001 - reported as the verdict
        os.write(verdict_w, _FAIL + f"sandbox setup: {error}".encode()[:2000])
        os._exit(1)
    _run_program(program, token, verdict_w, os.getpid())


def _run_program(program: str, token: bytes, verdict_w: int, own_pid: int) -> None:
    try:
        code = compile(program, "<sample>", "exec")
        exec(code, {"__name__": "__sample__", "__builtins__": builtins})
    except BaseException as error:  # noqa: BLE001 - every exception, SystemExit too, is a failure
        try:
            reason = f"{type(error).__name__}: {error}"
        except BaseException:  # noqa: BLE001 - a hostile __str__
            reason = type(error).__name__
        _flush_quietly()
        os.write(verdict_w, _FAIL + reason.encode(errors="replace")[:2000])
        os._exit(1)
    _flush_quietly()
    if os.getpid() == own_pid:  # a forked child returning from exec is not the sample
        os.write(verdict_w, _PASS + token)
    os._exit(0)


def _flush_quietly() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001
            pass


# The zygote runs this module's source as the evaluator read it at import, sent over the request
# pipe: an edit to the file on disk while an evaluation runs cannot give the two sides different
# protocols. The bootstrap reads the first message (the source) and runs `_zygote_main` from it.
_SOURCE = Path(__file__).read_text(encoding="utf-8") if "__file__" in globals() else ""  # "" in the zygote
_BOOTSTRAP = """
import json, os, struct, sys, types
def read(size):
    data = b""
    while len(data) < size:
        chunk = os.read(0, size - len(data))
        if not chunk:
            sys.exit(0)
        data += chunk
    return data
source = json.loads(read(struct.unpack(">I", read(4))[0]))["source"]
module = types.ModuleType("codecook_sandbox_zygote")
sys.modules[module.__name__] = module
exec(compile(source, "training/sandbox.py (zygote)", "exec"), module.__dict__)
try:
    module._zygote_main()
except BaseException as error:
    print(f"sandbox zygote: {error!r}", file=sys.stderr)
    raise
"""
