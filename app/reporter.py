"""A small Qt-free progress interface between long-running core work and its caller.

The core calls `step`, `progress` and `log`, and polls `cancelled()` at safe points
(through `check_cancelled`). The GUI adapts this to Qt signals on a worker object;
the CLI prints it. Implementations must be cheap: `progress` may be called often.
"""

from __future__ import annotations

import enum
import sys
import threading
import time
from typing import Protocol, TextIO

from app.display import printable, printable_lines
from app.errors import Cancelled


class Level(enum.IntEnum):
    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40


class Reporter(Protocol):
    def step(self, name: str) -> None:
        """A new named step (stage) begins."""

    def progress(self, done: int, total: int) -> None:
        """Progress within the current step, in any unit (bytes, files); total 0 = unknown."""

    def log(self, level: Level, message: str) -> None:
        """One log line."""

    def cancelled(self) -> bool:
        """True once the user asked to stop."""


def check_cancelled(reporter: Reporter) -> None:
    """Raise `Cancelled` if the user asked to stop; call at safe points."""
    if reporter.cancelled():
        raise Cancelled()


class NullReporter:
    """Reports nothing; cancellable through `cancel()` (thread-safe)."""

    def __init__(self) -> None:
        self._cancel = threading.Event()

    def step(self, name: str) -> None:
        pass

    def progress(self, done: int, total: int) -> None:
        pass

    def log(self, level: Level, message: str) -> None:
        pass

    def cancel(self) -> None:
        self._cancel.set()

    def cancelled(self) -> bool:
        return self._cancel.is_set()


class RecordingReporter(NullReporter):
    """Keeps everything it is told; useful to tests and to replay into a late-opened log view."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[str] = []
        self.logs: list[tuple[Level, str]] = []
        self.last_progress: tuple[int, int] | None = None

    def step(self, name: str) -> None:
        self.steps.append(name)

    def progress(self, done: int, total: int) -> None:
        self.last_progress = (done, total)

    def log(self, level: Level, message: str) -> None:
        self.logs.append((level, message))


class ConsoleReporter(NullReporter):
    """Terminal output: a redrawn progress line on a TTY, plain lines otherwise."""

    def __init__(self, stream: TextIO | None = None, *, verbose: bool = False) -> None:
        super().__init__()
        self.stream = stream or sys.stderr
        self.verbose = verbose
        self.tty = self.stream.isatty()
        self._step = ""
        self._last_draw = 0.0
        self._last_percent = -1
        self._line_open = False

    def _end_line(self) -> None:
        if self._line_open:
            self.stream.write("\n")
            self._line_open = False

    def step(self, name: str) -> None:
        self._end_line()
        self._step = printable(name)
        self._last_percent = -1
        self.stream.write(f"==> {self._step}\n")
        self.stream.flush()

    def progress(self, done: int, total: int) -> None:
        if total <= 0:
            return
        percent = min(100, done * 100 // total)
        if self.tty:
            now = time.monotonic()
            if now - self._last_draw < 0.1 and done < total:
                return
            self._last_draw = now
            self.stream.write(f"\r    {self._step}: {percent:3d}%")
            self._line_open = True
            if done >= total:
                self._end_line()
        elif percent // 10 != self._last_percent // 10:
            self.stream.write(f"    {self._step}: {percent}%\n")
        self._last_percent = percent
        self.stream.flush()

    def log(self, level: Level, message: str) -> None:
        if level < Level.INFO and not self.verbose:
            return
        self._end_line()
        prefix = "" if level == Level.INFO else f"{level.name.lower()}: "
        self.stream.write(f"    {prefix}{printable_lines(message)}\n")
        self.stream.flush()
