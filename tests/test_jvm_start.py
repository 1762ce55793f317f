"""The quick-start local driver JVM: options, and the archive `make env` built really being mapped."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from contracts.recipe import SparkConfig
from quality import jvm_start
from quality.spark_session import local_conf


def test_quick_start_off_leaves_the_jvm_alone():
    assert jvm_start.driver_java_options(False) == []
    conf = local_conf(SparkConfig(jvm_quick_start=False))
    assert "spark.driver.extraJavaOptions" not in conf


def test_recipe_java_options_come_after_ours_so_they_win():
    conf = local_conf(SparkConfig(conf={"spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=4 -Dx=1"}))
    options = conf["spark.driver.extraJavaOptions"].split()
    assert options[0] == jvm_start.C1_ONLY
    assert options[-2:] == ["-XX:TieredStopAtLevel=4", "-Dx=1"]


def test_no_archive_means_c1_only_and_a_hint(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(jvm_start.CACHE_ENV, str(tmp_path))
    jvm_start._warned_missing.clear()
    with caplog.at_level("INFO", logger="quality.jvm_start"):
        assert jvm_start.driver_java_options(True) == [jvm_start.C1_ONLY]
    assert "python -m quality.jvm_start build" in caplog.text


def test_archive_name_follows_spark_and_java():
    path = jvm_start.archive_path()
    import pyspark

    assert path.name.startswith(f"spark-{pyspark.__version__}-") and path.suffix == ".jsa"


def test_the_built_archive_is_mapped_by_a_local_session(tmp_path):
    """`-Xshare:on` makes the JVM refuse to start unless it maps the archive: a stale or broken
    archive fails here instead of silently costing every stage its class loading."""
    assert jvm_start.archive_path().exists(), "no class-data archive: `make env` builds it"
    script = textwrap.dedent(
        """
        from contracts.recipe import SparkConfig
        from quality.spark_session import build_spark_session

        config = SparkConfig(master="local[1]", driver_memory="1g",
                             conf={"spark.driver.extraJavaOptions": "-Xshare:on", "spark.ui.enabled": "false"})
        spark = build_spark_session(config, app_name="archive-check")
        bean = spark._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
        print("ARGS", " ".join(bean.getInputArguments()))
        print("ROWS", spark.range(1000).selectExpr("sum(id)").collect()[0][0])
        spark.stop()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    args = next(line for line in done.stdout.splitlines() if line.startswith("ARGS"))
    assert f"-XX:SharedArchiveFile={jvm_start.archive_path()}" in args and "-Xshare:on" in args
    assert "ROWS 499500" in done.stdout
