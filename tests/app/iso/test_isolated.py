"""Inspection in a child process gives the same report, errors and progress as in-process,
and a cancel stops the child."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from app.errors import Cancelled, InputError
from app.frames import FrameReader, frame
from app.iso.inspect import inspect_iso
from app.iso.isolated import inspect_iso_isolated
from app.reporter import RecordingReporter
from tests.support.children import child_pids
from tests.support.debian import ipxe_iso


def test_the_child_gives_the_same_report_and_reports_progress() -> None:
    iso = ipxe_iso()
    reporter = RecordingReporter()
    report = inspect_iso_isolated(iso, reporter)
    assert report == inspect_iso(iso)
    assert reporter.steps == ["Inspecting ipxe.iso"]


def test_an_error_in_the_child_arrives_as_the_same_error(tmp_path: Path) -> None:
    not_iso = tmp_path / "notes.iso"
    not_iso.write_bytes(b"just text\n" * 100_000)
    with pytest.raises(InputError) as here:
        inspect_iso(not_iso)
    with pytest.raises(InputError) as there:
        inspect_iso_isolated(not_iso)
    assert type(there.value) is type(here.value) and str(there.value) == str(here.value)


class CancelOnFirstProgress(RecordingReporter):
    def progress(self, done: int, total: int) -> None:
        super().progress(done, total)
        self.cancel()  # the child is surely at work now


def test_cancel_terminates_the_child_mid_way(tmp_path: Path) -> None:
    import subprocess

    tree = tmp_path / "tree"
    for i in range(3000):
        path = tree / f"d{i // 300:02d}" / f"file-{i:05d}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(i))
    iso = tmp_path / "many.iso"
    subprocess.run(
        ["xorriso", "-as", "mkisofs", "-R", "-J", "-o", str(iso), str(tree)],
        capture_output=True,
        check=True,
    )
    reporter = CancelOnFirstProgress()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        inspect_iso_isolated(iso, reporter)
    assert reporter.last_progress is not None  # it was cancelled while working
    assert time.monotonic() - started < 5
    assert not child_pids("app.iso.isolated")  # the child was terminated and reaped


def test_messages_written_together_all_arrive_at_once() -> None:
    # A buffered reader took all three into its buffer and returned one; the other two
    # waited, invisible to select, until the child wrote again.
    read_end, write_end = os.pipe()
    try:
        reader = FrameReader(read_end)
        step = {"kind": "step", "name": "one"}
        progress = {"kind": "progress", "done": 1, "total": 2}
        log = {"kind": "log", "level": 20, "text": "ü"}
        os.write(write_end, frame(step) + frame(progress) + frame(log))
        assert reader.read() == [step, progress, log]
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_message_split_across_writes_arrives_when_complete() -> None:
    read_end, write_end = os.pipe()
    try:
        reader = FrameReader(read_end)
        done = {"kind": "done", "result": "x" * 20_000}
        whole = frame(done)  # smaller than the pipe buffer: no blocking
        os.write(write_end, frame({"kind": "step", "name": "a"}) + whole[:5000])
        assert reader.read() == [{"kind": "step", "name": "a"}]
        os.write(write_end, whole[5000:])
        messages = []
        while not messages:  # a pipe may hand the rest over in pieces
            messages = reader.read() or []
        assert messages == [done]
        os.close(write_end)
        write_end = -1
        assert reader.read() is None
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)


def test_a_child_that_writes_much_to_stderr_does_not_stall(monkeypatch: pytest.MonkeyPatch) -> None:
    # The interpreter's import tracing: about 170 KB on stderr, more than a pipe holds. Read
    # only at the end, a stderr pipe would have stopped the child for good.
    import threading

    monkeypatch.setenv("PYTHONVERBOSE", "3")
    iso = ipxe_iso()
    results: list[object] = []
    worker = threading.Thread(target=lambda: results.append(inspect_iso_isolated(iso)), daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert results == [inspect_iso(iso)]
