"""Running external programs: argument lists only, output to the reporter, cancellable."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, cast

from app.errors import Cancelled, StageError
from app.reporter import Level, Reporter
from app.tools import find_tool

POLL_SECONDS = 0.2


def run_tool(
    args: Sequence[str],
    reporter: Reporter,
    *,
    stage: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    log_level: Level = Level.DEBUG,
    stdin_path: Path | None = None,
    unset_env: Sequence[str] = (),
) -> str:
    """Run `args` (args[0] resolved with find_tool), stream its output to the reporter,
    stop it within POLL_SECONDS of a cancel, and raise StageError with the tail of its
    output if it fails. Returns the combined output."""
    program = find_tool(args[0]) if "/" not in args[0] else args[0]
    full_env = {k: v for k, v in {**os.environ, **(env or {})}.items() if k not in unset_env}
    tail: deque[str] = deque(maxlen=40)
    lines: list[str] = []
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(  # new session: a cancel kills the program and its children
            [program, *args[1:]],
            cwd=cwd,
            env=full_env,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
    finally:
        if stdin_path:
            stdin.close()  # type: ignore[union-attr]

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            lines.append(line)
            reporter.log(log_level, line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        while True:
            try:
                proc.wait(timeout=POLL_SECONDS)
                break
            except subprocess.TimeoutExpired:
                if reporter.cancelled():
                    _kill_group(proc)
                    raise Cancelled(where=stage) from None
    except BaseException:
        _kill_group(proc)
        raise
    reader.join()
    if proc.returncode != 0:
        name = Path(program).name
        detail = "\n".join(tail)
        raise StageError(
            f"{name} failed with exit status {proc.returncode}:\n{detail}", stage=stage
        )
    return "\n".join(lines)


def _kill_group(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=2)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


@contextlib.contextmanager
def tool_output(
    args: Sequence[str],
    reporter: Reporter,
    *,
    stage: str,
    env: Mapping[str, str] | None = None,
    log_level: Level = Level.DEBUG,
) -> Iterator[BinaryIO]:
    """Run `args` with its standard output (bytes) as the stream of the `with` block, and
    its standard error streamed to the reporter: for a tool whose output is read as it is
    made instead of going through a file.

    When the block ends, the rest of the output is read and the tool waited for; its failure
    is a StageError with the tail of what it said. When the block raises, the tool's own
    failure is still what counts if it failed (a truncated stream is only its symptom):
    the rest of the output is read, and if the tool then exits non-zero that StageError is
    raised instead. A cancel stops the tool at once."""
    program = find_tool(args[0]) if "/" not in args[0] else args[0]
    tail: deque[str] = deque(maxlen=40)
    proc = subprocess.Popen(  # new session: a cancel kills the program and its children
        [program, *args[1:]],
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    errors = io.TextIOWrapper(proc.stderr, errors="replace")

    def pump() -> None:
        for line in errors:
            line = line.rstrip("\n")
            tail.append(line)
            reporter.log(log_level, line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()

    def finish() -> None:
        """Read the output to its end and wait for the tool; a cancel kills it."""
        assert proc.stdout is not None
        while proc.stdout.read(1 << 20):
            if reporter.cancelled():
                raise Cancelled(where=stage)
        while True:
            try:
                proc.wait(timeout=POLL_SECONDS)
                break
            except subprocess.TimeoutExpired:
                if reporter.cancelled():
                    raise Cancelled(where=stage) from None
        reader.join()

    def failure() -> StageError:
        detail = "\n".join(tail)
        name = Path(program).name
        return StageError(
            f"{name} failed with exit status {proc.returncode}:\n{detail}", stage=stage
        )

    try:
        try:
            yield cast(BinaryIO, proc.stdout)
        except (Cancelled, KeyboardInterrupt):
            raise
        except BaseException:
            finish()
            if proc.returncode != 0:
                raise failure() from None
            raise
        finish()
        if proc.returncode != 0:
            raise failure()
    finally:
        _kill_group(proc)  # only if it still runs: a cancel, or an error while finishing
        proc.stdout.close()
        reader.join(timeout=5)
        errors.close()
