"""A local Spark driver that starts and plans quickly: C1-only JIT and a class-data archive.

A local stage on a small corpus spends most of its CPU not on documents but on the JVM warming
up: measured on the 4x dedup benchmark corpus (70 MB, 2 cores), the driver JVM burned 14 CPU
seconds against 5 in the Python workers that hash the documents. Two standard HotSpot features
cut that in about half:

  * `-XX:TieredStopAtLevel=1` compiles hot methods with C1 only. C2's optimising compiles pay off
    in JVMs that run for hours; a stage JVM lives for a minute and its heavy per-document work
    runs in Python workers (numpy, Arrow), which this does not touch.
  * A dynamic AppCDS archive (`-XX:SharedArchiveFile`) holds Spark's ~20,000 classes already
    parsed and verified, so each JVM maps them instead of loading them from the jars.

The archive is built once per environment (`make env` runs `python -m quality.jvm_start build`)
and kept inside the venv:
a JVM runs a small dedup-and-write workload with `-XX:ArchiveClassesAtExit` and exits cleanly.
Its file name carries what it depends on (Spark version, the jars folder, the java binary and
its modification time), so a new Spark, venv or JDK simply finds no archive and starts without
one, saying so once in the log; HotSpot itself validates the archive on start.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

C1_ONLY = "-XX:TieredStopAtLevel=1"
CACHE_ENV = "CODECOOK_JVM_ARCHIVE_DIR"
_warned_missing: set[Path] = set()


def java_binary() -> Path:
    """The java that spark-submit will run (JAVA_HOME first, as Spark's launcher does)."""
    home = os.environ.get("JAVA_HOME")
    candidate = Path(home) / "bin" / "java" if home else None
    if candidate is None or not candidate.exists():
        found = shutil.which("java")
        if found is None:
            raise RuntimeError("no java on PATH and no JAVA_HOME: Spark needs a JDK (17 or newer)")
        candidate = Path(found)
    return candidate.resolve()


def archive_dir() -> Path:
    """The folder of this environment's archive: inside the venv (`sys.prefix`), so it goes when
    the venv goes, or `$CODECOOK_JVM_ARCHIVE_DIR`."""
    return Path(os.environ.get(CACHE_ENV) or Path(sys.prefix) / "share" / "codecook-jvm")


def archive_path() -> Path:
    """Where this environment's archive lives; the name changes with Spark, its jars and the JDK."""
    import pyspark

    jars = Path(pyspark.__file__).resolve().parent / "jars"
    java = java_binary()
    fingerprint = hashlib.sha256(
        f"{pyspark.__version__}|{jars}|{java}|{java.stat().st_mtime_ns}".encode()
    ).hexdigest()[:16]
    return archive_dir() / f"spark-{pyspark.__version__}-{fingerprint}.jsa"


def driver_java_options(quick: bool) -> list[str]:
    """JVM options of a local driver: none when `quick` is off, else C1-only JIT plus the archive
    when one was built for this environment."""
    if not quick:
        return []
    options = [C1_ONLY]
    archive = archive_path()
    if archive.exists():
        options.append(f"-XX:SharedArchiveFile={archive}")
    elif archive not in _warned_missing:
        _warned_missing.add(archive)
        log.info(
            "no class-data archive at %s: the Spark driver loads its classes from the jars "
            "(a few CPU seconds per stage); `python -m quality.jvm_start build` (part of `make env`) "
            "builds it",
            archive,
        )
    return options


def _workload(spark, scratch: Path) -> None:
    """What a dedup stage does, on a few hundred standard-library files: parquet in and out,
    Python workers over Arrow, hash aggregates, windows, joins, broadcasts, collects."""
    import sysconfig

    import pyarrow as pa
    import pyarrow.parquet as pq

    from quality.dedup.config import DedupConfig
    from quality.dedup.engine import exact_dedup, near_dedup
    from quality.schema import content_sha256, make_doc_id
    from quality.storage import StorageLayout, write_stage

    rows = []
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:300]:
        text = path.read_text(encoding="utf-8", errors="replace")
        for copy in range(2):  # a second, slightly edited copy gives near_dedup clusters to resolve
            content = text if copy == 0 else text.replace("\n\n", "\n", 3)
            rows.append(
                {
                    "doc_id": make_doc_id("jvm-archive", f"{path.name}#{copy}"),
                    "content": content,
                    "sha256": content_sha256(content),
                    "stars": copy,
                    "commit_date": "2024-01-01",
                    "licence": "PSF-2.0",
                    "path": path.name,
                    "lang": "python",
                    "size_bytes": len(content.encode()),
                    "repo": None,
                }
            )
    source = scratch / "docs.parquet"
    pq.write_table(pa.Table.from_pylist(rows), source)
    layout = StorageLayout(str(scratch / "store"))
    config = DedupConfig()
    for stage in (exact_dedup, near_dedup):
        result = stage(spark.read.parquet(str(source)), config, log=lambda _: None)
        write_stage(
            result.kept,
            result.rejected,
            paths=layout.stage(result.stage),
            rows_in=result.rows_in,
            recipe_hash="jvm-archive",
        )
        result.release()


def build(target: Path | None = None) -> Path:
    """Build the archive for this environment (about half a minute); replaces an existing one."""
    target = target or archive_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + f".{os.getpid()}.partial")
    command = [sys.executable, "-m", "quality.jvm_start", "_dump", str(partial)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 or not partial.exists() or partial.stat().st_size == 0:
        partial.unlink(missing_ok=True)
        raise RuntimeError(
            f"building the class-data archive failed (exit {done.returncode}):\n{done.stdout[-3000:]}"
            f"\n{done.stderr[-3000:]}"
        )
    os.replace(partial, target)  # atomic: a session never maps a half-written archive
    for stale in target.parent.glob("spark-*.jsa"):  # archives of an older Spark or JDK
        if stale != target:
            stale.unlink()
    return target


def _dump(partial: Path) -> None:
    """Child of `build`: run the workload in a JVM that writes the archive when it exits."""
    from py4j.protocol import Py4JError

    from contracts.recipe import SparkConfig
    from quality.spark_session import build_spark_session

    spark = build_spark_session(
        SparkConfig(
            master="local[2]",
            driver_memory="1g",
            jvm_quick_start=False,  # the archive is written by this JVM, not read
            conf={
                "spark.driver.extraJavaOptions": f"{C1_ONLY} -XX:ArchiveClassesAtExit={partial} -Xlog:cds=off",
                "spark.ui.enabled": "false",
                "spark.ui.showConsoleProgress": "false",
            },
        ),
        app_name="codecook-jvm-archive",
    )
    with tempfile.TemporaryDirectory(prefix="codecook-jvm-archive-") as scratch:
        _workload(spark, Path(scratch))
    gateway = spark.sparkContext._gateway
    jvm = spark.sparkContext._jvm
    spark.stop()
    # The archive is written by the JVM's own exit sequence; a JVM killed by its parent's end
    # (how PySpark normally stops it) writes nothing, so it is asked to exit, then awaited.
    try:
        jvm.java.lang.System.exit(0)
    except (Py4JError, ConnectionRefusedError):  # the call cannot return: the JVM is gone
        pass
    gateway.proc.wait(timeout=300)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["build"]:
        path = build(Path(argv[1]) if len(argv) > 1 else None)
        print(f"class-data archive: {path} ({path.stat().st_size / 2**20:.0f} MiB)")
    elif argv[:1] == ["path"]:
        print(archive_path())
    elif argv[:1] == ["_dump"] and len(argv) == 2:
        _dump(Path(argv[1]))
    else:
        raise SystemExit("usage: python -m quality.jvm_start build [PATH] | path")


if __name__ == "__main__":
    main()
