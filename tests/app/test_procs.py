from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from app.errors import Cancelled, MissingToolError, StageError
from app.procs import run_tool, tool_output
from app.reporter import RecordingReporter

WORK_TICKS = 300


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


def test_cancel_kills_the_program_and_its_children_early(tmp_path: Path) -> None:
    reporter = RecordingReporter()
    ticks, finished, marker = tmp_path / "ticks", tmp_path / "finished", tmp_path / "child-pid"
    # The work runs in a child of the program: 300 ticks of 0.1 s, 30 s or more if not stopped.
    script = (
        f"(for i in $(seq {WORK_TICKS}); do echo $i >> {ticks}; sleep 0.1; done; "
        f"echo done > {finished}) & echo $! > {marker}; wait"
    )

    def ticked() -> int:
        return len(ticks.read_text().split()) if ticks.exists() else 0

    def cancel_once_working() -> None:
        deadline = time.monotonic() + 10
        while ticked() < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        reporter.cancel()

    canceller = threading.Thread(target=cancel_once_working, daemon=True)
    canceller.start()
    start = time.monotonic()
    with pytest.raises(Cancelled):
        run_tool(["sh", "-c", script], reporter, stage="x")
    elapsed = time.monotonic() - start
    canceller.join()
    assert elapsed < 15, f"cancel took {elapsed:.1f} s"  # a loose guard on a busy machine
    # The work was cut short, and nothing goes on with it afterwards.
    done = ticked()
    time.sleep(0.5)  # a child still running would tick about 5 more times
    assert 3 <= ticked() == done < WORK_TICKS
    assert not finished.exists()
    child = int(marker.read_text())
    stat = Path(f"/proc/{child}/stat")
    # Gone, or a zombie waiting for init to reap it: either way no longer running.
    assert not stat.exists() or stat.read_text().split(")")[1].split()[0] == "Z"


# --- a tool whose output is read as it is made -------------------------------------------


def test_a_tools_output_is_read_as_a_stream_and_its_messages_are_logged() -> None:
    reporter = RecordingReporter()
    with tool_output(["sh", "-c", "printf 'a\\0b'; echo said >&2"], reporter, stage="s") as out:
        assert out.read() == b"a\0b"
    assert [m for _, m in reporter.logs] == ["said"]


def test_a_tool_that_fails_after_its_output_still_fails() -> None:
    with pytest.raises(StageError) as info:
        with tool_output(["sh", "-c", "echo data; echo broke >&2; exit 4"], RecordingReporter(),
                         stage="s") as out:  # fmt: skip
            assert out.read(4) == b"data"  # the rest is read for us
    assert "sh failed with exit status 4" in str(info.value) and "broke" in str(info.value)


def test_a_failing_tool_wins_over_the_truncated_stream_it_left() -> None:
    # The reader sees its output end too early; what went wrong is the tool's failure.
    with pytest.raises(StageError) as info:
        with tool_output(["sh", "-c", "printf part; echo why >&2; exit 2"], RecordingReporter(),
                         stage="s") as out:  # fmt: skip
            if len(out.read()) < 10:
                raise EOFError("truncated")
    assert "exit status 2" in str(info.value) and "why" in str(info.value)


def test_the_readers_own_error_stands_when_the_tool_did_well() -> None:
    script = "head -c 3000000 /dev/zero"  # more than a pipe holds: the tool must be drained
    with pytest.raises(ValueError, match="bad member"):
        with tool_output(["sh", "-c", script], RecordingReporter(), stage="s") as out:
            out.read(10)
            raise ValueError("bad member")
