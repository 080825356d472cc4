"""Core work in a child Python process, for callers whose own threads must stay responsive.

Pure-Python work (pycdlib parsing, the build's per-file assembly and cpio planning) holds the
interpreter lock most of the time, even on a worker thread, and a GUI thread in the same
process then waits for the lock at every step of its event loop. A child process has its own
interpreter lock, so the GUI keeps the whole of its own.

The child is `python -m <module>`, a fresh interpreter (not multiprocessing: its "spawn"
re-imports the parent's `__main__`, which for `python -m app` would start the app again).
Both directions carry messages, each a pickle after its length:
- child -> parent (a dup of its stdout): ("step", name), ("progress", done, total),
  ("log", level, text), then ("done", result) or ("failed", pickled exception, its text).
  LivesmithError pickles with its attributes.
- parent -> child (its stdin): the job's arguments, ("ack",) for each step once relayed,
  and ("cancel",) if the user cancels. The end of stdin (the parent died) counts as a cancel
  too, so the child cleans up.

The parent reads with `os.read` into its own buffer and takes out every complete message: a
buffered reader would pull several in at once after one `select`, and the later ones would
wait, invisible to `select`, until the child wrote again.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import secrets
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, BinaryIO

import app
from app.errors import Cancelled, LivesmithError, StageError
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
        self._pending: deque[tuple[Any, ...]] = deque()  # for next()

    def read(self) -> list[tuple[Any, ...]] | None:
        """Every message complete after one read; [] if none is yet, None at the end.

        Call it when the pipe is readable (it blocks otherwise). A partial message at the
        end of the pipe is an end too: the writer died while writing it.
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
            messages.append(pickle.loads(memoryview(self._buffer)[start + _LENGTH.size : end]))
            start = end
        del self._buffer[:start]
        return messages

    def next(self) -> tuple[Any, ...] | None:
        """The next message, blocking until it is complete; None at the end."""
        while not self._pending:
            arrived = self.read()
            if arrived is None:
                return None
            self._pending.extend(arrived)
        return self._pending.popleft()


# -- the child's side ---------------------------------------------------------------------


class PipeReporter:
    """The child's reporter: everything goes to the parent as small pickled tuples."""

    def __init__(self, out: BinaryIO, control: ChildControl | None = None) -> None:
        self.out = out
        self._control = control
        self._last = 0.0
        self._lock = threading.Lock()  # the pipeline's helper threads may log too

    def send(self, message: tuple[Any, ...]) -> None:
        data = frame(message)
        with self._lock:
            self.out.write(data)
            self.out.flush()

    def step(self, name: str) -> None:
        self.send(("step", name))
        if self._control is not None:
            # The parent answers once it has shown the step, after any cancel it has: so a
            # cancel made while a step was announced stops that very step.
            self._control.wait_ack()

    def progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last >= PROGRESS_INTERVAL or done >= total:
            self._last = now
            self.send(("progress", done, total))

    def log(self, level: Level, message: str) -> None:
        self.send(("log", int(level), message))

    def cancelled(self) -> bool:
        return self._control is not None and self._control.cancel.is_set()

    def finish(self, job: Callable[[], Any]) -> None:
        """Run `job` and send how it ended; every outcome reaches the parent."""
        try:
            result = job()
        except BaseException as exc:
            if not isinstance(exc, LivesmithError):
                self.log(Level.DEBUG, "".join(traceback.format_exception(exc)).rstrip())
            self.fail(exc)
        else:
            self.send(("done", result))

    def fail(self, exc: BaseException) -> None:
        """Send the exception, pickled on its own with its text beside it: one the parent
        cannot rebuild still arrives as a StageError with that text."""
        described = f"{type(exc).__name__}: {exc}"
        try:
            pickled = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            pickled = pickle.dumps(StageError(described))
        self.send(("failed", pickled, described))


def take_stdio() -> tuple[BinaryIO, BinaryIO]:
    """The child's message pipes (its stdin and stdout as they were), with fds 0 and 1 now
    /dev/null and stderr: a tool the job runs that reads stdin or prints to stdout must not
    touch the messages."""
    sys.stdout.flush()  # what was printed before stays out of the messages' way
    control = os.fdopen(os.dup(0), "rb", buffering=0)
    messages = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    return control, messages


class ChildControl:
    """What the parent tells a job child after the job: ("ack",) for each step it has
    shown, ("cancel",) when the user cancels. The end of the pipe (the parent is gone) is a
    cancel too, and releases a step waiting for its answer."""

    def __init__(self, reader: FrameReader) -> None:
        self.cancel = threading.Event()
        self._acks = threading.Semaphore(0)
        self._gone = threading.Event()
        self._reader = reader
        threading.Thread(target=self._listen, name="livesmith-control", daemon=True).start()

    def _listen(self) -> None:
        while (message := _next_or_none(self._reader)) is not None:
            if message[0] == "cancel":
                self.cancel.set()
            elif message[0] == "ack":
                self._acks.release()
        self.cancel.set()
        self._gone.set()

    def wait_ack(self) -> None:
        while not self._acks.acquire(timeout=POLL_SECONDS):
            if self._gone.is_set():
                return


def _next_or_none(reader: FrameReader) -> tuple[Any, ...] | None:
    try:
        return reader.next()
    except (OSError, pickle.UnpicklingError, EOFError):
        return None


# -- the parent's side --------------------------------------------------------------------


def child_env() -> dict[str, str]:
    # The child must import this very `app` (a checkout, a wheel, or the Debian package's
    # private folder), whatever the parent's sys.path tricks were.
    package_root = str(Path(app.__file__).resolve().parent.parent)
    paths = [package_root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


class ChildDied(StageError):
    """The child ended without saying how its job went (killed, crashed): it cleaned
    nothing up."""


def run_child(
    module: str,
    args: list[str],
    reporter: Reporter | None,
    *,
    what: str,
    stage: str,
    job: tuple[Any, ...] | None = None,
) -> Any:
    """Run `python -m module *args` and relay its messages to `reporter`; its result.

    With `job`, the child takes that message from its stdin, waits at each step until it has
    been relayed, and is told to cancel through it (it then cleans up and fails with
    Cancelled); without, cancelling terminates it.
    """
    reporter = reporter or NullReporter()
    # stderr to a file: nobody reads it until the end, and a full pipe would stop the child.
    errors_file = tempfile.TemporaryFile()
    token = secrets.token_hex(16)
    try:
        # -P: an "app" folder in the current directory must not stand in for ours. Its own
        # session: Ctrl+C in the terminal that started the GUI is the GUI's to handle.
        child = subprocess.Popen(
            [sys.executable, "-P", "-m", module, *args],
            stdin=subprocess.PIPE if job else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors_file,
            env={**child_env(), TOKEN_VARIABLE: token},
            start_new_session=True,
        )
    except BaseException:
        errors_file.close()
        raise
    assert child.stdout is not None
    messages = FrameReader(child.stdout.fileno())
    cancel_sent = False
    try:
        if job is not None:
            _tell(child.stdin, job)
        while True:
            if reporter.cancelled() and not cancel_sent:
                if job is None:
                    raise Cancelled()
                _tell(child.stdin, ("cancel",))
                cancel_sent = True
            ready, _, _ = select.select([child.stdout], [], [], POLL_SECONDS)
            if not ready:
                continue
            arrived = messages.read()
            if arrived is None:
                child.wait()
                errors_file.seek(0)
                detail = errors_file.read().decode(errors="replace").strip().splitlines()
                raise ChildDied(
                    f"the {what} stopped unexpectedly (exit status "
                    f"{child.returncode}{': ' + detail[-1] if detail else ''})",
                    stage=stage,
                )
            for message in arrived:
                kind = message[0]
                if kind == "done":
                    return message[1]
                if kind == "failed":
                    raise _rebuilt(message[1], message[2], stage)
                if kind == "step":
                    reporter.step(message[1])
                    if job is not None:
                        if reporter.cancelled() and not cancel_sent:
                            _tell(child.stdin, ("cancel",))
                            cancel_sent = True
                        _tell(child.stdin, ("ack",))
                elif kind == "progress":
                    reporter.progress(message[1], message[2])
                elif kind == "log":
                    reporter.log(Level(message[1]), message[2])
    finally:
        if child.stdin is not None:
            with contextlib.suppress(OSError):
                child.stdin.close()  # the child takes the end of its stdin as a cancel
        if child.poll() is None:
            if job is None:
                child.terminate()
            else:
                _drain_until_exit(child, messages)
        child.wait()
        child.stdout.close()
        errors_file.close()
        if child.returncode != 0:
            # Killed or crashed: the programs it ran (mksquashfs, apt-get, …) are in their
            # own sessions and would run on, writing into a folder about to be removed.
            kill_tagged(token)


def _tell(pipe: IO[bytes] | None, message: tuple[Any, ...]) -> None:
    assert pipe is not None
    with contextlib.suppress(BrokenPipeError):  # it ended already; its outcome follows
        pipe.write(frame(message))
        pipe.flush()


CLEANUP_SECONDS = 60
# Every process a child starts inherits this variable (with the child's own value): how
# the programs of a child that died are found.
TOKEN_VARIABLE = "LIVESMITH_CHILD_TOKEN"


def _rebuilt(pickled: bytes, described: str, stage: str) -> BaseException:
    try:
        exc = pickle.loads(pickled)
    except Exception:
        return StageError(described, stage=stage)
    return exc if isinstance(exc, BaseException) else StageError(described, stage=stage)


def _drain_until_exit(child: subprocess.Popen[bytes], messages: FrameReader) -> None:
    """A job child that was told to stop (or whose stdin closed) cleans up first; what it
    still says is read (and dropped), so it never waits on a full pipe."""
    deadline = time.monotonic() + CLEANUP_SECONDS
    assert child.stdout is not None
    while child.poll() is None and (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([child.stdout], [], [], min(left, POLL_SECONDS))
        if ready:
            try:
                if messages.read() is None:
                    break
            except Exception:  # a message that does not unpickle: keep draining
                continue
    try:
        child.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        child.kill()


def kill_tagged(token: str) -> list[int]:
    """Kill every process whose environment holds TOKEN_VARIABLE=token; their PIDs."""
    tag = f"{TOKEN_VARIABLE}={token}".encode()
    killed = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                environ = f.read().split(b"\0")
            if tag in environ:
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return killed
