"""Progress at a steady rhythm (contracts.progress, quality.progress): lines on a clock with counts,
rate and ETA, from a counting loop and from real Spark jobs."""

from __future__ import annotations

import threading
import time

import pytest

from contracts.progress import Progress, format_duration
from quality.progress import SparkProgress


class Lines:
    """Collects log lines from any thread."""

    def __init__(self):
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            self.lines.append(line)


def test_format_duration():
    assert [format_duration(s) for s in (0, 42.4, 185, 3720, 90000)] == [
        "0s",
        "42s",
        "3m05s",
        "1h02m",
        "25h00m",
    ]


def test_progress_writes_on_a_clock_with_rate_and_eta():
    lines = Lines()
    with Progress("eval: generated", total=12, unit="prompts", log=lines, every=0.05) as progress:
        for _ in range(12):
            time.sleep(0.03)
            progress.advance()
    ticks, final = lines.lines[:-1], lines.lines[-1]
    # ~0.36 s of work at one line per 0.05 s: a steady rhythm, not one line per item or none.
    assert len(ticks) >= 3, lines.lines
    assert all(line.startswith("eval: generated ") and "prompts/s" in line for line in ticks)
    assert any("ETA " in line and "/12 prompts (" in line for line in ticks), ticks
    assert final.startswith("eval: generated 12 prompts in ") and "prompts/s" in final


def test_progress_keeps_ticking_while_one_item_is_slow():
    """A batch that takes long still shows the stage is alive (the ticker does not wait for updates)."""
    lines = Lines()
    with Progress("shards", total=2, unit="shards", log=lines, every=0.05) as progress:
        progress.callback()(1, 2)
        time.sleep(0.3)
    assert sum("1/2 shards (50%)" in line for line in lines.lines) >= 3, lines.lines


def test_progress_error_writes_no_final_line():
    lines = Lines()
    with pytest.raises(RuntimeError), Progress("x", total=3, log=lines, every=10):
        raise RuntimeError("boom")
    assert lines.lines == []


def test_spark_progress_follows_only_its_own_jobs(spark):
    def slow(rows):
        time.sleep(0.25)
        yield sum(1 for _ in rows)

    spark.sparkContext.parallelize(range(4), 2).count()  # before the block: not the stage's
    lines = Lines()
    with SparkProgress(spark, "probe", lines, every=0.1):
        counted = spark.sparkContext.parallelize(range(64), 8).mapPartitions(slow).sum()
    assert counted == 64
    running = [line for line in lines.lines if "Spark job " in line and " running (1 stage): " in line]
    assert running, lines.lines
    assert any("/8 tasks (" in line and "ETA " in line for line in running), running
    assert lines.lines[-1].startswith("probe: Spark ran 1 jobs, 8 tasks in "), lines.lines
    # The job group was the block's only: later jobs of this thread carry none.
    assert spark.sparkContext.getLocalProperty("spark.jobGroup.id") is None


def test_spark_connect_progress_messages_make_the_same_line():
    """The Spark Connect handler's bookkeeping, fed the client's own StageInfo records (starting a
    Connect server takes a JVM of its own; the live path is exercised by `codecook ui`)."""
    from pyspark.sql.connect.shell.progress import StageInfo

    class ConnectSession:
        """What SparkProgress uses of a Spark Connect session: no SparkContext, a handler list."""

        def __init__(self):
            self.handlers = []

        @property
        def sparkContext(self):
            raise AttributeError("[JVM_ATTRIBUTE_NOT_SUPPORTED] sparkContext")

        def registerProgressHandler(self, handler):
            self.handlers.append(handler)

        def removeProgressHandler(self, handler):
            self.handlers.remove(handler)

    session = ConnectSession()
    lines = Lines()
    with SparkProgress(session, "near_dedup", lines, every=60) as progress:
        (handler,) = session.handlers
        handler(
            [StageInfo(0, 24, 24, 10_000_000, True), StageInfo(1, 8, 3, 0, False)], 2, "op-12345678", False
        )
        line = progress.line()
        handler([], 0, "op-12345678", True)
    assert "Spark query op-12345 running (1 stage): 3/8 tasks (38%), 2 running; 0 queries done" in line
    assert "27 tasks in " in line and "10.0 MB read" in line and "ETA " in line
    assert lines.lines[-1].startswith("near_dedup: Spark ran 1 queries, 27 tasks in ")
    assert session.handlers == []


def test_a_session_without_progress_is_an_error():
    with pytest.raises(TypeError, match="cannot follow Spark progress"), SparkProgress(object(), "x", print):
        pass
