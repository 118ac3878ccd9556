"""Progress of a long backup or restore: a rich bar on a terminal, periodic lines otherwise.

The library reports progress through the :class:`Progress` protocol and never prints; the task
layer picks the display (``--quiet`` picks none) and hands it the stream to draw on.
"""

from __future__ import annotations

import time
from typing import IO, Any, Protocol

from dbtasks.output import human_size


class Progress(Protocol):
    def start(self, label: str, total: int | None) -> None:
        """A new phase: ``total`` bytes expected (an estimate), or None when unknown."""
        ...

    def advance(self, done: int) -> None:
        """``done`` more bytes processed."""
        ...

    def finish(self) -> None: ...


class NoProgress:
    """Shows nothing (``--quiet``, JSON output, library use)."""

    def start(self, label: str, total: int | None) -> None:
        pass

    def advance(self, done: int) -> None:
        pass

    def finish(self) -> None:
        pass


class LineProgress:
    """A line on ``stream`` every ``interval`` seconds: bytes, rate, and ETA when estimable."""

    def __init__(self, stream: IO[str], interval: float = 10.0) -> None:
        self._stream = stream
        self._interval = interval
        self._label = ""
        self._total: int | None = None
        self._done = 0
        self._started = 0.0
        self._last = 0.0

    def start(self, label: str, total: int | None) -> None:
        self._label, self._total, self._done = label, total, 0
        self._started = self._last = time.monotonic()

    def advance(self, done: int) -> None:
        self._done += done
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._line(now)

    def _line(self, now: float) -> None:
        elapsed = max(now - self._started, 1e-6)
        rate = self._done / elapsed
        parts = [f"{self._label}: {human_size(self._done)}"]
        if self._total:
            parts[0] += f" of ~{human_size(self._total)}"
        parts.append(f"{human_size(rate)}/s")
        if self._total and rate > 0 and self._total > self._done:
            parts.append(f"ETA {int((self._total - self._done) / rate)} s")
        print(", ".join(parts), file=self._stream, flush=True)

    def finish(self) -> None:
        if time.monotonic() - self._started >= self._interval:
            self._line(time.monotonic())


class RichProgress:
    """A rich progress bar (bytes, rate, ETA) on a terminal."""

    def __init__(self, stream: IO[str]) -> None:
        from rich.console import Console

        self._console = Console(file=stream)
        self._bar: Any = None
        self._task: Any = None

    def start(self, label: str, total: int | None) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import Progress as Bar

        self.finish()
        self._bar = Bar(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self._console,
            transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task(label, total=total)

    def advance(self, done: int) -> None:
        if self._bar is not None:
            task = self._bar.tasks[0]
            if task.total is not None and task.completed + done > task.total:
                # The estimate was low: keep the bar honest rather than overflowing.
                self._bar.update(self._task, total=task.completed + done)
            self._bar.advance(self._task, done)

    def finish(self) -> None:
        if self._bar is not None:
            task = self._bar.tasks[0]
            self._bar.update(self._task, total=task.completed)
            self._bar.stop()
            self._bar = None
