"""Building the Spark session every Spark stage runs in.

Local mode is the embedded default: the driver binds to loopback, Python workers run the same
interpreter as the driver (`PYSPARK_PYTHON`), and the heap is sized from this machine's memory. A
master URL or a Spark Connect address from the recipe runs the same jobs on a cluster.
"""

from __future__ import annotations

import os
import sys

from pyspark.sql import SparkSession

from quality.jvm_start import driver_java_options
from quality.recipe import SparkConfig


def total_memory_bytes() -> int:
    """Physical memory of this machine (cgroup limits are not consulted; the recipe can override)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def auto_driver_memory() -> str:
    """A third of physical memory, between 1g and 8g: Python workers and the OS need the rest."""
    gib = total_memory_bytes() // (1024**3)
    return f"{max(1, min(8, gib // 3))}g"


def local_conf(config: SparkConfig) -> dict[str, str]:
    """The settings of a local driver: the session below, and the Spark Connect server that
    `codecook ui` starts (orchestration.ui), so both run the recipe's jobs the same way."""
    conf = {
        "spark.driver.memory": auto_driver_memory()
        if config.driver_memory == "auto"
        else config.driver_memory,
        # Loopback only: a laptop or CI box should not open Spark's ports to the network.
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.host": "127.0.0.1",
        "spark.sql.shuffle.partitions": str(config.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        # Arrow batches carry whole files; keep them small enough for the Python worker's memory.
        "spark.sql.execution.arrow.maxRecordsPerBatch": "2000",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # Deterministic output needs adaptive execution not to re-plan partition counts at run time.
        "spark.sql.adaptive.enabled": "false",
        "spark.ui.showConsoleProgress": "true",
        "spark.log.level": "WARN",
    }
    if config.master.startswith("local"):
        # Workers import pyspark from the installed package, not from Spark's zip (see the module).
        conf["spark.python.daemon.module"] = "quality.spark_daemon"
    conf.update(config.conf)
    quick = driver_java_options(config.jvm_quick_start)
    if quick:
        # The recipe's own JVM options come last, so any of them overrides ours.
        own = config.conf.get("spark.driver.extraJavaOptions", "")
        conf["spark.driver.extraJavaOptions"] = " ".join([*quick, own]).strip()
    return conf


def build_spark_session(
    config: SparkConfig, app_name: str = "codecook", local_dir: str | None = None
) -> SparkSession:
    """A SparkSession for `config`; reuses the active one when its master matches."""
    # Workers must run this interpreter (the project's venv), not whatever `python3` is on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if config.remote:
        return SparkSession.builder.remote(config.remote).appName(app_name).getOrCreate()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder.master(config.master).appName(app_name)
    if local_dir:
        builder = builder.config("spark.local.dir", local_dir)
    for key, value in local_conf(config).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
