"""Background work for the GUI: one function on its own QThread, heard as signals.

`BackgroundTask(fn)` runs `fn(reporter)` once in a worker thread. The core calls the
reporter (`ThreadReporter`) from that thread; it queues the calls and signals them in the
GUI thread (in batches, so a log flood cannot starve the event loop), where the task
re-emits them. So every signal of a `BackgroundTask` is emitted in the GUI
thread, and a receiver may be any callable (a lambda connected straight to a worker-thread
signal would run in the worker thread instead). Workers never touch widgets.

`finished` / `failed` come after every step and progress signal of the task, once its
thread has stopped, so a receiver sees the whole story in order and may start the next task.

Cancel: `cancel()` sets a thread-safe flag that `reporter.cancelled()` returns; the core
stops at its next safe point (the writer helper: within a block, then wipes) and raises
`Cancelled`, which arrives as `failed`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import (
    QCoreApplication,
    QMetaMethod,
    QObject,
    Qt,
    QThread,
    QTimer,
    Signal,
    Slot,
)

from app.reporter import Level, Reporter

Task = Callable[[Reporter], Any]

# Progress is re-drawn at most this often (the helper already sends it every 50 ms).
PROGRESS_INTERVAL = 0.05
# Queued reporter calls are handed out in slices of this long at most, then the event
# loop runs (timers, painting) before the next slice.
DRAIN_SECONDS = 0.008
DRAIN_BATCH = 256
# A worker that queues faster than the GUI hands out waits (a little) once this many calls
# are queued: every Qt call of the GUI thread waits for the interpreter lock while the
# worker runs Python flat out, so an unthrottled flood stretches each slice to 50 ms.
BACKLOG_LIMIT = 2 * DRAIN_BATCH
BACKLOG_WAIT = 0.01  # at most, per call: never a deadlock if the GUI thread is blocked


class ThreadReporter(QObject):
    """A Reporter to be called from a worker thread; its calls arrive as signals in the GUI
    thread, in the order they were made.

    Calls are queued and the GUI thread is woken once per batch, not once per call: a
    worker that logs thousands of lines a second costs one queued event per batch, and the
    GUI thread hands the batch out in slices of at most DRAIN_SECONDS, so timers and
    painting keep running during a flood.

    Create it in the GUI thread. `cancel()` may be called from any thread.
    """

    stepped = Signal(str)
    progressed = Signal(object, object)  # done, total: Python ints (bytes exceed 2**31)
    logged = Signal(int, str)  # one line (only emitted while something listens)
    loggedMany = Signal(object)  # consecutive lines: list[tuple[int, str]]
    _wake = Signal()

    def __init__(
        self, parent: QObject | None = None, *, interval: float = PROGRESS_INTERVAL
    ) -> None:
        super().__init__(parent)
        self._cancel = threading.Event()
        self._interval = interval
        self._last_progress = 0.0  # touched by the worker thread only
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._queue: deque[tuple[str, Any, Any]] = deque()
        self._woken = False  # a wake-up is on its way to the GUI thread
        self._wake.connect(self._drain, Qt.ConnectionType.QueuedConnection)
        self._logged_method = QMetaMethod.fromSignal(self.logged)

    # -- worker thread --------------------------------------------------------------------
    def step(self, name: str) -> None:
        self._last_progress = 0.0
        self._post("step", name, None)

    def progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last_progress < self._interval and done < total:
            return
        self._last_progress = now
        self._post("progress", int(done), int(total))

    def log(self, level: Level, message: str) -> None:
        self._post("log", int(level), str(message))

    def cancel(self) -> None:
        self._cancel.set()

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def _post(self, kind: str, a: Any, b: Any) -> None:
        with self._lock:
            if len(self._queue) >= BACKLOG_LIMIT:
                self._drained.wait_for(
                    lambda: len(self._queue) < BACKLOG_LIMIT // 2, timeout=BACKLOG_WAIT
                )
            self._queue.append((kind, a, b))
            if self._woken:
                return
            self._woken = True
        self._wake.emit()

    # -- GUI thread -----------------------------------------------------------------------
    def pending(self) -> bool:
        """True while calls wait to be signalled."""
        with self._lock:
            return bool(self._queue)

    @Slot()
    def _drain(self) -> None:
        deadline = time.perf_counter() + DRAIN_SECONDS
        while True:
            with self._lock:
                if not self._queue:
                    self._woken = False
                    return
                batch = [self._queue.popleft() for _ in range(min(DRAIN_BATCH, len(self._queue)))]
                self._drained.notify_all()
            # Lines go out as one list per run: a Qt call per line would let a busy worker
            # take the GIL for a whole switch interval each time.
            lines: list[tuple[int, str]] = []
            for kind, a, b in batch:
                if kind == "log":
                    lines.append((a, b))
                    continue
                self._emit_lines(lines)
                lines = []
                if kind == "progress":
                    self.progressed.emit(a, b)
                else:
                    self.stepped.emit(a)
            self._emit_lines(lines)
            if time.perf_counter() > deadline:
                break
        # More to hand out: let timers and painting run first (a re-posted event would be
        # handled before the timers).
        QTimer.singleShot(0, self._drain)

    def _emit_lines(self, lines: list[tuple[int, str]]) -> None:
        if not lines:
            return
        self.loggedMany.emit(lines)
        if self.isSignalConnected(self._logged_method):
            for level, text in lines:
                self.logged.emit(level, text)


class _Job(QObject):
    """Lives in the worker thread; runs the function once and says how it ended."""

    succeeded = Signal(object)
    raised = Signal(object)

    def __init__(self, fn: Task, reporter: Reporter) -> None:
        super().__init__()
        self._fn = fn
        self._reporter = reporter

    @Slot()
    def run(self) -> None:
        try:
            result = self._fn(self._reporter)
        except BaseException as exc:  # everything reaches the GUI, even KeyboardInterrupt
            self.raised.emit(exc)
        else:
            self.succeeded.emit(result)
        finally:
            # Quit from inside: the outcome signal was queued first, so it arrives first.
            thread = QThread.currentThread()
            if thread is not None:
                thread.quit()


class BackgroundTask(QObject):
    """Runs `fn(reporter)` once on a new QThread; all signals arrive in the GUI thread."""

    stepChanged = Signal(str)
    progressChanged = Signal(object, object)
    logLine = Signal(int, str)  # one line (only emitted while something listens)
    logLines = Signal(object)  # consecutive lines at once: list[tuple[int, str]]
    finished = Signal(object)  # the function's return value
    failed = Signal(object)  # the exception (Cancelled after cancel())
    ended = Signal()  # after finished or failed

    def __init__(
        self, fn: Task, parent: QObject | None = None, *, name: str = "livesmith-task"
    ) -> None:
        super().__init__(parent)
        self.name = name
        self.reporter = ThreadReporter(self)
        self.reporter.stepped.connect(self._on_step)
        self.reporter.progressed.connect(self._on_progress)
        self.reporter.loggedMany.connect(self._on_logs)
        self._log_line_method = QMetaMethod.fromSignal(self.logLine)
        self._fn = fn
        self._thread: QThread | None = None
        self._job: _Job | None = None
        self._outcome: tuple[bool, Any] | None = None
        self._running = False
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    def start(self) -> None:
        if self._thread is not None or self._outcome is not None:
            raise RuntimeError("a BackgroundTask runs only once")
        thread = QThread()
        thread.setObjectName(self.name)
        job = _Job(self._fn, self.reporter)
        job.moveToThread(thread)
        thread.started.connect(job.run)
        job.succeeded.connect(self._on_succeeded)
        job.raised.connect(self._on_raised)
        thread.finished.connect(self._on_thread_finished)
        self._thread, self._job = thread, job
        self._running = True
        thread.start()

    def is_running(self) -> bool:
        """True from start() until `finished`/`failed` has been emitted."""
        return self._running

    def cancel(self) -> None:
        self.reporter.cancel()

    def cancel_requested(self) -> bool:
        return self.reporter.cancelled()

    def wait(self, msecs: int = 60_000) -> bool:
        """Block until the worker thread has stopped (shutdown and tests only)."""
        thread = self._thread
        return thread is None or thread.wait(msecs)

    @Slot()
    def shutdown(self) -> None:
        """Cancel and wait for the thread: the page or the application is going away.

        A cancelled write still wipes the stick; that takes a second or two.
        """
        if self._thread is not None:
            self.cancel()
            self._thread.wait()

    # -- GUI thread -----------------------------------------------------------------------
    @Slot(str)
    def _on_step(self, name: str) -> None:
        self.stepChanged.emit(name)

    @Slot(object, object)
    def _on_progress(self, done: int, total: int) -> None:
        self.progressChanged.emit(done, total)

    @Slot(object)
    def _on_logs(self, lines: list[tuple[int, str]]) -> None:
        self.logLines.emit(lines)
        if self.isSignalConnected(self._log_line_method):
            for level, text in lines:
                self.logLine.emit(level, text)

    @Slot(object)
    def _on_succeeded(self, result: object) -> None:
        self._outcome = (True, result)

    @Slot(object)
    def _on_raised(self, exc: object) -> None:
        self._outcome = (False, exc)

    @Slot()
    def _on_thread_finished(self) -> None:
        thread, job = self._thread, self._job
        self._thread = self._job = None
        if job is not None:
            job.deleteLater()
        if thread is not None:
            thread.deleteLater()
        self._finish_when_drained()

    @Slot()
    def _finish_when_drained(self) -> None:
        # The last slices of a log flood may still be queued: hand them out first (in
        # slices, so the GUI stays live), then say how the task ended.
        if self.reporter.pending():
            QTimer.singleShot(int(DRAIN_SECONDS * 1000), self._finish_when_drained)
            return
        self._running = False
        ok, value = self._outcome or (False, RuntimeError("the worker thread stopped early"))
        if ok:
            self.finished.emit(value)
        else:
            self.failed.emit(value)
        self.ended.emit()
