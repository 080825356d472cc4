"""Inspect an ISO in a separate process, for callers whose own threads must stay responsive.

`inspect_iso` is pure-Python parsing (pycdlib) that holds the interpreter lock for stretches of
100-450 ms on an image with 20,000 files, even on a worker thread; a GUI thread sharing the
process stalls meanwhile. A child process has its own interpreter lock.

The child is `python -m app.iso.isolated ISO`, a fresh interpreter (not multiprocessing: its
"spawn" re-imports the parent's `__main__`, which for `python -m app` would start the app
again). It writes pickled messages to its stdout, each after its length: progress and log
lines, then the report or the error (LivesmithError pickles with its attributes). Cancelling
terminates it.

The parent reads the pipe with `os.read` into its own buffer and takes out every complete
message: a buffered reader would pull several messages in at once after one `select`, and the
later ones would wait, invisible to `select`, until the child wrote again.
"""

from __future__ import annotations

import os
import pickle
import select
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, BinaryIO

import app
from app.errors import Cancelled, StageError
from app.iso.inspect import IsoReport, inspect_iso
from app.reporter import Level, NullReporter, Reporter

POLL_SECONDS = 0.05
PROGRESS_INTERVAL = 0.1  # at most ten progress messages a second cross the pipe
READ_SIZE = 1024 * 1024
_LENGTH = struct.Struct("<I")


def frame(message: tuple[Any, ...]) -> bytes:
    """One message as it crosses the pipe: its pickled length, then its pickle."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


class FrameReader:
    """Complete messages out of a pipe, as soon as their last byte has arrived."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = bytearray()

    def read(self) -> list[tuple[Any, ...]] | None:
        """Every message complete after one read; [] if none is yet, None at the end.

        Call it when the pipe is readable (it blocks otherwise). A partial message at the
        end of the pipe is an end too: the child died while writing it.
        """
        chunk = os.read(self.fd, READ_SIZE)
        if not chunk:
            return None
        self._buffer += chunk
        messages = []
        start = 0
        while len(self._buffer) - start >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(self._buffer, start)
            end = start + _LENGTH.size + size
            if end > len(self._buffer):
                break
            messages.append(pickle.loads(memoryview(self._buffer)[start + _LENGTH.size:end]))
            start = end
        del self._buffer[:start]
        return messages


class _PipeReporter:
    """The child's reporter: everything goes to the parent as small pickled tuples."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self._last = 0.0

    def send(self, message: tuple[Any, ...]) -> None:
        self.out.write(frame(message))
        self.out.flush()

    def step(self, name: str) -> None:
        self.send(("step", name))

    def progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last >= PROGRESS_INTERVAL:
            self._last = now
            self.send(("progress", done, total))

    def log(self, level: Level, message: str) -> None:
        self.send(("log", int(level), message))

    def cancelled(self) -> bool:
        return False  # the parent terminates the child instead


def child_main(path: str) -> int:
    reporter = _PipeReporter(sys.stdout.buffer)
    try:
        report = inspect_iso(Path(path), reporter)
    except BaseException as exc:  # every outcome reaches the parent
        reporter.send(("failed", exc))
    else:
        reporter.send(("done", report))
    return 0


def _child_env() -> dict[str, str]:
    # The child must import this very `app` (a checkout, a wheel, or the Debian package's
    # private folder), whatever the parent's sys.path tricks were.
    package_root = str(Path(app.__file__).resolve().parent.parent)
    paths = [package_root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def inspect_iso_isolated(path: Path, reporter: Reporter | None = None) -> IsoReport:
    """`inspect_iso(path)`, computed in a child process."""
    reporter = reporter or NullReporter()
    # stderr to a file: nobody reads it until the end, and a full pipe would stop the child.
    errors_file = tempfile.TemporaryFile()
    try:
        child = subprocess.Popen([sys.executable, "-m", "app.iso.isolated", str(path)],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=errors_file, env=_child_env())
    except BaseException:
        errors_file.close()
        raise
    assert child.stdout is not None
    messages = FrameReader(child.stdout.fileno())
    try:
        while True:
            if reporter.cancelled():
                raise Cancelled()
            ready, _, _ = select.select([child.stdout], [], [], POLL_SECONDS)
            if not ready:
                continue
            arrived = messages.read()
            if arrived is None:
                child.wait()
                errors_file.seek(0)
                detail = errors_file.read().decode(errors="replace").strip().splitlines()
                raise StageError(f"the inspection of {path} stopped unexpectedly (exit status "
                                 f"{child.returncode}{': ' + detail[-1] if detail else ''})",
                                 stage="inspect")
            for message in arrived:
                kind = message[0]
                if kind == "done":
                    report: IsoReport = message[1]
                    return report
                if kind == "failed":
                    raise message[1]
                if kind == "step":
                    reporter.step(message[1])
                elif kind == "progress":
                    reporter.progress(message[1], message[2])
                elif kind == "log":
                    reporter.log(Level(message[1]), message[2])
    finally:
        if child.poll() is None:
            child.terminate()
        child.wait()
        child.stdout.close()
        errors_file.close()


if __name__ == "__main__":
    raise SystemExit(child_main(sys.argv[1]))
