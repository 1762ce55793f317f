"""Progress at a steady rhythm: one line every few seconds with counts, rate and ETA.

Long loops (prompts generated, shards tokenized, Spark tasks) report through a plain
`log(str)` callback, so the engines stay free of Dagster: an asset passes `context.log.info`
and the line lands in the Dagster run log; a command passes `print`. A background ticker writes
the line on a clock, not on each update, so a slow item (one batch taking a minute) still shows
the stage is alive, and a fast loop does not flood the log.

    with Progress("eval_humaneval: generated", total=164, unit="prompts", log=log) as progress:
        for ...:
            progress.advance()
    # eval_humaneval: generated 48/164 prompts (29%), 1.6 prompts/s, ETA 1m12s, 30s elapsed
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

DEFAULT_EVERY_SECONDS = 10.0
"""How often a progress line is written while work runs (a deployment setting, not a result)."""


def format_duration(seconds: float) -> str:
    """42s, 3m05s, 1h02m."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def format_rate(count: float, seconds: float, unit: str) -> str:
    rate = count / seconds if seconds > 0 else 0.0
    return f"{rate:,.1f} {unit}/s" if rate < 100 else f"{rate:,.0f} {unit}/s"


class Ticker:
    """Calls `log(line())` every `every` seconds on a daemon thread until stopped."""

    def __init__(self, line: Callable[[], str | None], log: Callable[[str], None], every: float):
        if every <= 0:
            raise ValueError(f"progress interval must be positive, got {every}")
        self.line, self.log, self.every = line, log, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="codecook-progress", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            text = self.line()
            if text:
                self.log(text)

    def start(self) -> Ticker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()


class Progress:
    """A count against an optional total, reported on a clock (see the module docstring).

    `update(done)` / `advance(n)` may be called from any thread; as a context manager it starts
    the ticker and writes a final line (count, rate, wall time) when the block ends without error.
    `callback()` adapts it to engines that report `(done, total)`.
    """

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        unit: str = "items",
        log: Callable[[str], None] = print,
        every: float = DEFAULT_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.label, self.total, self.unit, self.log, self.every = label, total, unit, log, every
        self.clock = clock
        self.done = 0
        self.started = clock()
        self._lock = threading.Lock()
        self._ticker: Ticker | None = None

    def update(self, done: int, total: int | None = None) -> None:
        with self._lock:
            self.done = done
            if total is not None:
                self.total = total

    def advance(self, count: int = 1) -> None:
        with self._lock:
            self.done += count

    def callback(self) -> Callable[[int, int], None]:
        """`progress(done, total)`, the shape the generation backends call."""
        return lambda done, total: self.update(done, total)

    def line(self) -> str:
        with self._lock:
            done, total = self.done, self.total
        elapsed = self.clock() - self.started
        count = f"{done:,}/{total:,} {self.unit}" if total else f"{done:,} {self.unit}"
        if total:
            count += f" ({done / total:.0%})"
        parts = [f"{self.label} {count}", format_rate(done, elapsed, self.unit)]
        if total and done:
            remaining = max(0, total - done) * elapsed / done
            parts.append(f"ETA {format_duration(remaining)}")
        parts.append(f"{format_duration(elapsed)} elapsed")
        return ", ".join(parts)

    def final_line(self) -> str:
        elapsed = self.clock() - self.started
        return (
            f"{self.label} {self.done:,} {self.unit} in {format_duration(elapsed)} "
            f"({format_rate(self.done, elapsed, self.unit)})"
        )

    def __enter__(self) -> Progress:
        self.started = self.clock()
        self._ticker = Ticker(self.line, self.log, self.every).start()
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if self._ticker is not None:
            self._ticker.stop()
        if kind is None:
            self.log(self.final_line())
