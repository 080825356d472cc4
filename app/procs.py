"""Running external programs: argument lists only, output to the reporter, cancellable."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path

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


def _kill_group(proc: subprocess.Popen[str]) -> None:
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
