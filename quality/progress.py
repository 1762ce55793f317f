"""What Spark is doing for one stage, as a log line every few seconds (tasks done, rate, ETA).

Spark's own console bar goes to the driver's stderr, which nobody watching the Dagster run log
sees. `SparkProgress` follows the jobs one stage starts and writes through a plain `log(str)`
callback (the asset passes `context.log.info`), on a clock (`contracts.progress.Ticker`):

    raw_code: Spark job 3 running (1 stage): 57/128 tasks (44%), 2 running; 2 jobs done;
        301 tasks in 24s, 12.5 tasks/s; ETA 6s for the running stages

Two ways to know, one per kind of session:
- classic (local[*], a master URL): the stage's jobs run in a job group of their own, polled
  through `SparkContext.statusTracker()`;
- Spark Connect: there is no SparkContext in the client; the server streams execution progress
  to the handler registered with `SparkSession.registerProgressHandler` (Spark 4), which keeps the
  latest numbers per query for the ticker.
A session offering neither is an error, not a silent lack of progress.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from contracts.progress import DEFAULT_EVERY_SECONDS, Ticker, format_duration, format_rate


@dataclass
class JobCounts:
    """One Spark job (classic) or query (Spark Connect).

    `tasks`/`completed` count the stages running now: a job's other stages may be waiting or
    skipped (their output already computed), and the tracker cannot tell which, so they would
    make the ETA of a job that is nearly done look long. `completed_total` counts every stage."""

    tasks: int
    completed: int
    running: int
    done: bool
    stages: int
    """Stages running now."""
    completed_total: int


def progress_line(
    label: str, jobs: dict[Any, JobCounts], elapsed: float, bytes_read: int | None = None, noun: str = "job"
) -> str:
    """The one line both ways of watching write (`noun`: a classic job, or a Spark Connect query)."""
    finished = [job for job in jobs.values() if job.done]
    active = {key: job for key, job in jobs.items() if not job.done}
    tasks_done = sum(job.completed_total for job in jobs.values())
    rate = tasks_done / elapsed if elapsed > 0 else 0.0
    parts = []
    for key, job in sorted(active.items(), key=lambda kv: str(kv[0])):
        if not job.stages:
            parts.append(f"Spark {noun} {key} running: between stages, {job.running} tasks running")
            continue
        stages = f"{job.stages} stages" if job.stages != 1 else "1 stage"
        parts.append(
            f"Spark {noun} {key} running ({stages}): {job.completed}/{job.tasks} tasks "
            f"({job.completed / max(1, job.tasks):.0%}), {job.running} running"
        )
    if not active:
        parts.append(
            f"no Spark {noun} running (driver-side work)" if jobs else f"waiting for the first Spark {noun}"
        )
    parts.append(f"{len(finished)} {'queries' if noun == 'query' else noun + 's'} done")
    summary = (
        f"{tasks_done:,} tasks in {format_duration(elapsed)}, {format_rate(tasks_done, elapsed, 'tasks')}"
    )
    if bytes_read:
        summary += f", {bytes_read / 1e6:,.1f} MB read"
    parts.append(summary)
    remaining = sum(max(0, job.tasks - job.completed) for job in active.values())
    if remaining and rate > 0:
        parts.append(f"ETA {format_duration(remaining / rate)} for the running stages")
    return f"{label}: " + "; ".join(parts)


class SparkProgress:
    """While the `with` block runs, logs what Spark does for it every `every` seconds, and a final
    line (jobs, tasks, wall time) when it ends without error."""

    def __init__(
        self,
        spark: Any,
        label: str,
        log: Callable[[str], None],
        every: float = DEFAULT_EVERY_SECONDS,
    ):
        self.spark, self.label, self.log, self.every = spark, label, log, every
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._ticker: Ticker | None = None
        self._context: Any = None
        self._saved: dict[str, str | None] = {}
        self._group = f"codecook-{label}-{uuid.uuid4().hex[:8]}"
        self._queries: dict[str, JobCounts] = {}
        self._bytes_read: dict[str, int] = {}
        self._connect = False

    # ----------------------------------------------------------------------------------------------
    # classic: a job group of our own, polled through the status tracker

    def _classic_jobs(self) -> dict[Any, JobCounts]:
        tracker = self._context.statusTracker()
        active_stages = set(tracker.getActiveStageIds())
        jobs: dict[Any, JobCounts] = {}
        for job_id in tracker.getJobIdsForGroup(self._group):
            info = tracker.getJobInfo(job_id)
            if info is None:  # forgotten by the tracker (spark.ui.retainedJobs)
                continue
            stages = [tracker.getStageInfo(stage_id) for stage_id in info.stageIds]
            known = [stage for stage in stages if stage is not None]
            running = [stage for stage in known if stage.stageId in active_stages]
            jobs[job_id] = JobCounts(
                tasks=sum(stage.numTasks for stage in running),
                completed=sum(stage.numCompletedTasks for stage in running),
                running=sum(stage.numActiveTasks for stage in running),
                done=info.status in ("SUCCEEDED", "FAILED"),
                stages=len(running),
                completed_total=sum(stage.numCompletedTasks for stage in known),
            )
        return jobs

    # ----------------------------------------------------------------------------------------------
    # Spark Connect: the server's progress messages, kept per query

    def on_connect_progress(self, stages, inflight_tasks: int, operation_id: str | None, done: bool) -> None:
        """A `pyspark.sql.connect.shell.progress.ProgressHandler`: called by the client as the
        server reports; only stores the numbers (the ticker writes)."""
        key = (operation_id or "query")[:8]
        stages = list(stages or [])
        running = [stage for stage in stages if not stage.done]
        with self._lock:
            previous = self._queries.get(key)
            self._queries[key] = JobCounts(
                tasks=sum(stage.num_tasks for stage in running),
                completed=sum(stage.num_completed_tasks for stage in running),
                running=inflight_tasks,
                done=done,
                stages=len(running),
                # The final message of a query may carry no stages: keep what was counted.
                completed_total=max(
                    sum(stage.num_completed_tasks for stage in stages),
                    previous.completed_total if previous else 0,
                ),
            )
            self._bytes_read[key] = max(
                sum(stage.num_bytes_read for stage in stages), self._bytes_read.get(key, 0)
            )

    # ----------------------------------------------------------------------------------------------

    def jobs(self) -> dict[Any, JobCounts]:
        if self._connect:
            with self._lock:
                return dict(self._queries)
        return self._classic_jobs()

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        with self._lock:
            bytes_read = sum(self._bytes_read.values()) if self._connect else None
        return progress_line(
            self.label, self.jobs(), elapsed, bytes_read, noun="query" if self._connect else "job"
        )

    def final_line(self) -> str:
        jobs = self.jobs()
        elapsed = time.monotonic() - self.started
        tasks = sum(job.completed_total for job in jobs.values())
        noun = "queries" if self._connect else "jobs"
        return (
            f"{self.label}: Spark ran {len(jobs)} {noun}, {tasks:,} tasks in {format_duration(elapsed)} "
            f"({format_rate(tasks, elapsed, 'tasks')})"
        )

    def __enter__(self) -> SparkProgress:
        self.started = time.monotonic()
        try:
            self._context = self.spark.sparkContext
        except AttributeError:  # Spark Connect: PySparkAttributeError (JVM_ATTRIBUTE_NOT_SUPPORTED)
            self._context = None
        if self._context is not None:
            for key in ("spark.jobGroup.id", "spark.job.description"):
                self._saved[key] = self._context.getLocalProperty(key)
            # Local properties belong to this thread: jobs the stage starts from it carry the group.
            self._context.setJobGroup(self._group, f"codecook {self.label}")
        elif callable(getattr(self.spark, "registerProgressHandler", None)):
            self._connect = True
            self.spark.registerProgressHandler(self.on_connect_progress)
        else:
            raise TypeError(
                f"cannot follow Spark progress for {type(self.spark).__name__}: it has neither a "
                "SparkContext (classic) nor registerProgressHandler (Spark Connect, Spark >= 4)"
            )
        self._ticker = Ticker(self.line, self.log, self.every).start()
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if self._ticker is not None:
            self._ticker.stop()
        if kind is None:
            self.log(self.final_line())
        if self._connect:
            self.spark.removeProgressHandler(self.on_connect_progress)
        elif self._context is not None:
            for key, value in self._saved.items():
                self._context.setLocalProperty(key, value)
