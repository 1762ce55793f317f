"""Shared fixtures: one local Spark session for the whole test run (JVM start-up costs seconds)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))
# Tests never write into a developer's real storage root or MLflow store.
os.environ.setdefault("CODECOOK_HOME", str(PROJECT_ROOT / ".codecook" / "test-home"))


@pytest.fixture(scope="session")
def spark():
    from quality.recipe import SparkConfig
    from quality.spark_session import build_spark_session

    session = build_spark_session(
        SparkConfig(
            master="local[2]", driver_memory="2g", shuffle_partitions=4, conf={"spark.ui.enabled": "false"}
        ),
        app_name="codecook-tests",
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture()
def home(tmp_path, monkeypatch) -> Path:
    """A private storage root (and Dagster home) for one test."""
    root = tmp_path / "home"
    root.mkdir()
    monkeypatch.setenv("CODECOOK_HOME", str(root))
    monkeypatch.setenv("DAGSTER_HOME", str(root / "dagster"))
    (root / "dagster").mkdir()
    (root / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return root
