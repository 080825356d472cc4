"""The child-process plumbing shared by inspection and builds (app.childproc)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from app.childproc import CLEANUP_SECONDS, ChildDied, child_env, run_child
from app.errors import StageError
from app.frames import FrameReader, frame
from app.iso.isolated import inspect_iso_isolated
from tests.support.children import ActAt, child_pids
from tests.support.debian import ipxe_iso

CHATTY_CHILD = """
import os, subprocess, sys
from app.childproc import take_stdio
from app.frames import FrameReader, frame
control, messages = take_stdio()
print("stray print")                      # Python's own stdout
subprocess.run(["echo", "stray tool output"])  # a tool that inherits fd 1
eaten = subprocess.run(["cat"], capture_output=True).stdout  # a tool that reads fd 0
job = FrameReader(control.fileno()).next()
messages.write(frame({"kind": "done", "result": {"job": job, "eaten": eaten.decode()}}))
messages.flush()
"""


def test_a_job_child_keeps_its_message_pipes_from_the_tools_it_runs() -> None:
    child = subprocess.run(
        [sys.executable, "-c", CHATTY_CHILD],
        input=frame({"kind": "job", "arguments": "the arguments"}),
        capture_output=True,
        env=child_env(),
        timeout=60,
    )
    assert child.returncode == 0, child.stderr
    assert b"stray print" in child.stderr and b"stray tool output" in child.stderr
    read, write = os.pipe()
    os.write(write, child.stdout)
    os.close(write)
    reader = FrameReader(read)
    assert reader.next() == {
        "kind": "done",
        "result": {"job": {"kind": "job", "arguments": "the arguments"}, "eaten": ""},
    }
    assert reader.next() is None


def process_state(pid: int) -> str | None:
    """The state letter of a process (Z: dead, not yet reaped), None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


def tool_of(child: int) -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            name, rest = stat.split(" (", 1)[1].rsplit(")", 1)
            if name == "sleep" and int(rest.split()[1]) == child:
                return int(entry.name)
    return None


def test_the_programs_of_a_child_that_dies_are_stopped_too() -> None:
    # A build child killed (out of memory, say) while mksquashfs runs: the tool is in its
    # own session, so it would run on, orphaned, writing into a folder being removed.
    seen: dict[str, int] = {}

    def kill_child_once_its_tool_runs(_: ActAt) -> None:
        def watch() -> None:
            [child] = child_pids("tests.support.tool_child")
            deadline = time.monotonic() + 30
            while (tool := tool_of(child)) is None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert tool is not None
            seen.update(child=child, tool=tool, child_sid=os.getsid(child))
            os.kill(child, signal.SIGKILL)

        threading.Thread(target=watch).start()

    with pytest.raises(ChildDied, match="stopped unexpectedly"):
        run_child(
            "tests.support.tool_child",
            ["tool"],
            ActAt("tool", kill_child_once_its_tool_runs),
            what="test job",
            stage="test",
            result=lambda result: result,
            job={"kind": "go"},
        )
    assert seen["child_sid"] != os.getsid(0)  # its own session: Ctrl+C is not for it
    deadline = time.monotonic() + 10  # SIGKILL was sent; dying takes a moment
    while process_state(seen["tool"]) not in (None, "Z") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process_state(seen["tool"]) in (None, "Z"), "the orphaned tool still runs"


def test_an_error_the_parent_cannot_rebuild_arrives_with_its_text() -> None:
    with pytest.raises(StageError, match="^test: OddError: a very odd failure$"):
        run_child(
            "tests.support.tool_child",
            ["odd-error"],
            None,
            what="test job",
            stage="test",
            result=lambda result: result,
            job={"kind": "go"},
        )


def test_an_app_folder_in_the_current_directory_is_not_imported_by_the_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    impostor = tmp_path / "app"
    impostor.mkdir()
    (impostor / "__init__.py").write_text("raise SystemExit('the wrong app package')\n")
    monkeypatch.chdir(tmp_path)
    report = inspect_iso_isolated(ipxe_iso())
    assert report.files


def test_a_parent_that_fails_still_reads_what_the_child_says_while_it_cleans_up() -> None:
    # The relay fails (here: the reporter raises); the child, told to stop, logs 4 MiB on
    # its way out. Unread, that would fill the pipe and hold the child until it is killed
    # (CLEANUP_SECONDS, 60 s) with its clean-up unfinished.
    def fail(_: ActAt) -> None:
        raise RuntimeError("the relay broke")

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="the relay broke"):
        run_child(
            "tests.support.tool_child",
            ["chatty"],
            ActAt("tool", fail),
            what="test job",
            stage="test",
            result=lambda result: result,
            job={"kind": "go"},
        )
    assert time.monotonic() - started < CLEANUP_SECONDS / 2
    assert child_pids("tests.support.tool_child") == []
