from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from app.errors import Cancelled, MissingToolError, StageError
from app.procs import run_tool
from app.reporter import RecordingReporter


def test_output_reaches_the_reporter() -> None:
    reporter = RecordingReporter()
    out = run_tool(["sh", "-c", "echo one; echo two >&2"], reporter, stage="test")
    assert out.splitlines() == ["one", "two"]
    assert [m for _, m in reporter.logs] == ["one", "two"]


def test_failure_names_the_program_and_shows_its_output() -> None:
    with pytest.raises(StageError) as info:
        run_tool(["sh", "-c", "echo broken thing; exit 3"], RecordingReporter(), stage="squash")
    assert "sh failed with exit status 3" in str(info.value)
    assert "broken thing" in str(info.value) and info.value.stage == "squash"


def test_missing_program_names_the_debian_package() -> None:
    with pytest.raises(MissingToolError):
        run_tool(["no-such-program-livesmith"], RecordingReporter(), stage="x")


def test_cancel_kills_the_program_and_its_children_quickly(tmp_path) -> None:
    reporter = RecordingReporter()
    marker = tmp_path / "child-pid"
    timer = threading.Timer(0.5, reporter.cancel)
    timer.start()
    start = time.monotonic()
    with pytest.raises(Cancelled):
        run_tool(["sh", "-c", f"sleep 60 & echo $! > {marker}; wait"], reporter, stage="x")
    assert time.monotonic() - start < 3
    child = int(marker.read_text())
    time.sleep(0.2)
    stat = Path(f"/proc/{child}/stat")
    # Gone, or a zombie waiting for init to reap it: either way no longer running.
    assert not stat.exists() or stat.read_text().split(")")[1].split()[0] == "Z"
