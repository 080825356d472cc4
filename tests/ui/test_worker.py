"""BackgroundTask: the function runs off the GUI thread, every signal arrives in it, in order."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from app.errors import Cancelled
from app.reporter import Level, Reporter, check_cancelled
from tests.support.gui_heartbeat import Heartbeat
from ui.worker import BACKLOG_LIMIT, BACKLOG_WAIT, BackgroundTask, ThreadReporter


def test_signals_arrive_in_the_gui_thread_in_order(qtbot: Any) -> None:
    gui = threading.get_ident()
    ran_in: list[int] = []
    heard: list[tuple[str, object, int]] = []

    def work(reporter: Reporter) -> str:
        ran_in.append(threading.get_ident())
        reporter.step("write")
        for done in range(0, 101, 10):
            reporter.progress(done, 100)
        reporter.log(Level.WARNING, "careful")
        return "done"

    task = BackgroundTask(work)
    task.stepChanged.connect(lambda s: heard.append(("step", s, threading.get_ident())))
    task.progressChanged.connect(lambda d, t: heard.append(("progress", d, threading.get_ident())))
    task.logLine.connect(lambda lv, s: heard.append(("log", s, threading.get_ident())))
    task.finished.connect(lambda r: heard.append(("finished", r, threading.get_ident())))
    with qtbot.waitSignal(task.ended, timeout=10_000):
        task.start()
        assert task.is_running()
    assert ran_in and ran_in[0] != gui
    assert {who for _, _, who in heard} == {gui}
    kinds = [kind for kind, _, _ in heard]
    assert kinds[0] == "step" and kinds[-2:] == ["log", "finished"]
    progress = [value for kind, value, _ in heard if kind == "progress"]
    assert progress[0] == 0 and progress[-1] == 100  # throttled, but the end always arrives
    assert not task.is_running()
    with pytest.raises(RuntimeError):
        task.start()


def test_cancel_reaches_the_function_and_fails_with_cancelled(qtbot: Any) -> None:
    started = threading.Event()

    def work(reporter: Reporter) -> None:
        started.set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            check_cancelled(reporter)
            time.sleep(0.01)

    task = BackgroundTask(work)
    failures: list[object] = []
    task.failed.connect(failures.append)
    with qtbot.waitSignal(task.ended, timeout=5_000):
        task.start()
        assert started.wait(5)
        task.cancel()
        assert task.cancel_requested()
    assert len(failures) == 1 and isinstance(failures[0], Cancelled)


def test_shutdown_waits_for_the_thread(qtbot: Any) -> None:
    stopped = threading.Event()

    def work(reporter: Reporter) -> None:
        while not reporter.cancelled():
            time.sleep(0.01)
        time.sleep(0.2)  # the helper wipes the stick after a cancel
        stopped.set()

    task = BackgroundTask(work)
    task.start()
    task.shutdown()
    assert stopped.is_set()
    qtbot.waitUntil(lambda: not task.is_running(), timeout=5_000)


def test_a_log_flood_arrives_whole_in_order_without_starving_the_event_loop(qtbot: Any) -> None:
    lines = 30_000

    def flood(reporter: Reporter) -> None:
        reporter.step("flood")
        for n in range(lines):
            reporter.log(Level.INFO, str(n))
            if n == lines // 2:
                reporter.step("second half")
        reporter.progress(1, 1)

    task = BackgroundTask(flood)
    heard: list[str] = []
    task.stepChanged.connect(lambda s: heard.append(f"step {s}"))
    task.logLine.connect(lambda level, text: heard.append(text))
    task.progressChanged.connect(lambda d, t: heard.append("progress"))
    task.finished.connect(lambda r: heard.append("finished"))
    batches: list[list[tuple[int, str]]] = []
    task.logLines.connect(batches.append)
    heartbeat = Heartbeat(10)
    heartbeat.start()
    with qtbot.waitSignal(task.ended, timeout=60_000):
        task.start()
    heartbeat.stop()
    expected = [
        "step flood",
        *map(str, range(lines // 2 + 1)),
        "step second half",
        *map(str, range(lines // 2 + 1, lines)),
        "progress",
        "finished",
    ]
    assert heard == expected
    # The same lines also came in batches, far fewer signals than lines.
    assert [text for batch in batches for _, text in batch] == list(map(str, range(lines)))
    assert len(batches) < lines // 4
    # The event loop kept running. A loose guard only, for a busy machine: the goal (50 ms)
    # is measured in tests/benchmarks/test_gui_latency_bench.py.
    assert heartbeat.gaps, "the heartbeat never ticked during the flood"
    assert heartbeat.longest_gap() < 3.0, f"GUI blocked for {heartbeat.longest_gap():.3f} s"


def test_a_flood_waits_for_the_gui_once_the_backlog_is_full(qtbot: Any) -> None:
    # The worker may not run ahead of the GUI by more than BACKLOG_LIMIT queued calls (plus
    # one per wait that ran out): the GUI thread's Qt calls then get the interpreter lock.
    lines = 20 * BACKLOG_LIMIT
    backlog: list[int] = []

    def flood(reporter: Reporter) -> None:
        assert isinstance(reporter, ThreadReporter)
        for n in range(lines):
            reporter.log(Level.INFO, str(n))
            with reporter._lock:
                backlog.append(len(reporter._queue))

    task = BackgroundTask(flood)
    heard: list[str] = []
    task.logLines.connect(lambda batch: heard.extend(text for _, text in batch))
    with qtbot.waitSignal(task.ended, timeout=60_000):
        task.start()
    assert heard == list(map(str, range(lines)))
    assert max(backlog) >= BACKLOG_LIMIT  # the GUI did fall behind, so the limit was met
    assert max(backlog) <= BACKLOG_LIMIT + 50


def test_a_blocked_gui_thread_only_slows_a_flood(qtbot: Any) -> None:
    # Nothing drains while the GUI thread is busy elsewhere: the worker's calls beyond the
    # limit each wait BACKLOG_WAIT, then go on (no deadlock), and nothing is lost.
    reporter = ThreadReporter()
    extra = 20
    done = threading.Event()

    def flood() -> None:
        for n in range(BACKLOG_LIMIT + extra):
            reporter.log(Level.INFO, str(n))
        done.set()

    started = time.monotonic()
    worker = threading.Thread(target=flood)
    worker.start()
    assert done.wait(30), "the worker is stuck behind a blocked GUI thread"
    took = time.monotonic() - started
    worker.join()
    assert took >= extra * BACKLOG_WAIT * 0.9  # it did wait, once per call over the limit
    heard: list[str] = []
    reporter.loggedMany.connect(lambda batch: heard.extend(text for _, text in batch))
    qtbot.waitUntil(lambda: len(heard) == BACKLOG_LIMIT + extra, timeout=10_000)
    assert heard == list(map(str, range(BACKLOG_LIMIT + extra)))
