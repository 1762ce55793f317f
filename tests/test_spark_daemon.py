"""The local Python worker daemon imports pyspark from the installed package, not Spark's zip."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pyarrow as pa
import pyspark

from contracts.recipe import SparkConfig
from quality.spark_daemon import bundled_archives
from quality.spark_session import local_conf

INSTALLED = Path(pyspark.__file__).resolve().parent
SITE = str(INSTALLED.parent)
BUNDLE = INSTALLED / "python" / "lib"


def _spark_like_path(py4j_version: str) -> list[str]:
    """sys.path as Spark starts its daemon: its zips (and a jar) first, then the venv's own."""
    return [
        str(BUNDLE / "pyspark.zip"),
        str(BUNDLE / f"py4j-{py4j_version}-src.zip"),
        str(INSTALLED / "jars" / "spark-core.jar"),
        SITE,
    ]


def test_the_installed_packages_own_zips_are_dropped_and_nothing_else():
    assert (BUNDLE / "pyspark.zip").is_file()  # what the pip package ships, and Spark puts first
    py4j = importlib.metadata.version("py4j")
    path = _spark_like_path(py4j)
    assert bundled_archives(path) == path[:2]
    # A py4j zip of another release stays: the installed py4j would not be the one Spark bundled.
    assert bundled_archives(_spark_like_path("0.0.1")) == [path[0]]


def test_zips_of_a_spark_distribution_without_an_installed_pyspark_are_left(tmp_path):
    lib = tmp_path / "spark-4" / "python" / "lib"
    lib.mkdir(parents=True)
    for name in ("pyspark.zip", "py4j-0.10.9.9-src.zip"):
        (lib / name).write_bytes(b"")
    zips = [str(lib / "pyspark.zip"), str(lib / "py4j-0.10.9.9-src.zip")]
    assert bundled_archives([*zips, str(tmp_path)]) == []
    # ...and zips elsewhere stay even when an installed pyspark is on the path.
    assert bundled_archives([*zips, SITE]) == []


def test_local_sessions_use_the_daemon_and_a_recipe_can_name_another():
    assert local_conf(SparkConfig(master="local[2]"))["spark.python.daemon.module"] == "quality.spark_daemon"
    assert "spark.python.daemon.module" not in local_conf(SparkConfig(master="spark://head:7077"))
    own = SparkConfig(master="local[2]", conf={"spark.python.daemon.module": "pyspark.daemon"})
    assert local_conf(own)["spark.python.daemon.module"] == "pyspark.daemon"


def test_a_python_worker_of_the_session_imports_the_installed_pyspark(spark):
    def where(batches):
        import sys

        import py4j
        import pyspark

        for _ in batches:
            yield pa.RecordBatch.from_pylist(
                [{"pyspark": pyspark.__file__, "py4j": py4j.__file__, "main": sys.argv[0]}]
            )

    row = spark.range(1).mapInArrow(where, "pyspark string, py4j string, main string").collect()[0]
    assert Path(row["pyspark"]).resolve() == INSTALLED / "__init__.py"
    assert ".zip" not in row["py4j"]
    assert row["main"].endswith("spark_daemon.py")
