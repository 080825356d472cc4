"""Core work in a child Python process, for callers whose own threads must stay responsive.

Pure-Python work (pycdlib parsing, the build's per-file assembly and cpio planning) holds the
interpreter lock most of the time, even on a worker thread, and a GUI thread in the same
process then waits for the lock at every step of its event loop. A child process has its own
interpreter lock, so the GUI keeps the whole of its own.

The child is `python -m <module>`, a fresh interpreter (not multiprocessing: its "spawn"
re-imports the parent's `__main__`, which for `python -m app` would start the app again).
Both directions carry the JSON frames of app.frames:
- child -> parent (a dup of its stdout): steps, progress, logs, then "done" with the result
  or "failed" with the error (its type and fields; see `error_to_json`).
- parent -> child (its stdin): the job, an "ack" for each step once relayed, and a "cancel"
  if the user cancels. The end of stdin (the parent died) counts as a cancel too, so the
  child cleans up.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, BinaryIO, TypeVar

import app
from app.errors import Cancelled, LivesmithError, StageError
from app.frames import (
    READ_SIZE,
    FrameReader,
    Message,
    ProtocolError,
    error_from_json,
    error_to_json,
    frame,
    relay,
)
from app.reporter import Level, NullReporter, Reporter

POLL_SECONDS = 0.05
PROGRESS_INTERVAL = 0.1  # at most ten progress messages a second cross the pipe

T = TypeVar("T")


# -- the child's side ---------------------------------------------------------------------


class PipeReporter:
    """The child's reporter: everything goes to the parent as small messages."""

    def __init__(
        self,
        out: BinaryIO,
        control: ChildControl | None = None,
        *,
        progress_interval: float = PROGRESS_INTERVAL,
    ) -> None:
        self.out = out
        self._control = control
        self._progress_interval = progress_interval
        self._last = 0.0
        self._lock = threading.Lock()  # the pipeline's helper threads may log too

    def send(self, message: Message) -> None:
        data = frame(message)
        with self._lock:
            self.out.write(data)
            self.out.flush()

    def step(self, name: str) -> None:
        self.send({"kind": "step", "name": name})
        if self._control is not None:
            # The parent answers once it has shown the step, after any cancel it has: so a
            # cancel made while a step was announced stops that very step.
            self._control.wait_ack()

    def progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last >= self._progress_interval or done >= total:
            self._last = now
            self.send({"kind": "progress", "done": done, "total": total})

    def log(self, level: Level, message: str) -> None:
        self.send({"kind": "log", "level": int(level), "text": message})

    def cancelled(self) -> bool:
        return self._control is not None and self._control.cancel.is_set()

    def finish(self, job: Callable[[], Any]) -> BaseException | None:
        """Run `job` (its result is JSON) and send how it ended; every outcome reaches the
        parent. The exception it failed with, None if it succeeded."""
        try:
            done = frame({"kind": "done", "result": job()})
        except BaseException as exc:
            if not isinstance(exc, LivesmithError):
                self.log(Level.DEBUG, "".join(traceback.format_exception(exc)).rstrip())
            self.fail(exc)
            return exc
        with self._lock:
            self.out.write(done)
            self.out.flush()
        return None

    def fail(self, exc: BaseException) -> None:
        """Send the exception: its type and fields (see `error_to_json`)."""
        self.send({"kind": "failed", "error": error_to_json(exc)})


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
    """What the parent tells a job child after the job: an "ack" for each step it has
    shown (unless `acks` is False: the parent does not answer), a "cancel" when the user
    cancels. The end of the pipe (the parent is gone) or a broken message is a cancel too,
    and releases a step waiting for its answer."""

    def __init__(self, reader: FrameReader, *, acks: bool = True) -> None:
        self.cancel = threading.Event()
        self._acks_expected = acks
        self._acks = threading.Semaphore(0)
        self._gone = threading.Event()
        self._reader = reader
        threading.Thread(target=self._listen, name="livesmith-control", daemon=True).start()

    def _listen(self) -> None:
        while (message := _next_or_none(self._reader)) is not None:
            if message["kind"] == "cancel":
                self.cancel.set()
            elif message["kind"] == "ack":
                self._acks.release()
        self.cancel.set()
        self._gone.set()

    def wait_ack(self) -> None:
        if not self._acks_expected:
            return
        while not self._acks.acquire(timeout=POLL_SECONDS):
            if self._gone.is_set():
                return


def _next_or_none(reader: FrameReader) -> Message | None:
    try:
        return reader.next()
    except (OSError, ProtocolError):
        return None


# -- the parent's side --------------------------------------------------------------------


def child_env() -> dict[str, str]:
    # The child must import this very `app` (a checkout, a wheel, or the Debian package's
    # private folder), whatever the parent's sys.path tricks were.
    package_root = str(Path(app.__file__).resolve().parent.parent)
    paths = [package_root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


class ChildDied(StageError):
    """The child ended without saying (legibly) how its job went: killed, crashed, or its
    messages broke. It may have cleaned nothing up."""


def run_child(
    module: str,
    args: list[str],
    reporter: Reporter | None,
    *,
    what: str,
    stage: str,
    result: Callable[[Any], T],
    job: Message | None = None,
) -> T:
    """Run `python -m module *args` and relay its messages to `reporter`; its result, made
    from the JSON the child sent by `result`.

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
                _tell(child.stdin, {"kind": "cancel"})
                cancel_sent = True
            ready, _, _ = select.select([child.stdout], [], [], POLL_SECONDS)
            if not ready:
                continue
            try:
                arrived = messages.read()
            except ProtocolError as exc:
                raise ChildDied(f"the {what} sent a broken message: {exc}", stage=stage) from None
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
                kind = message["kind"]
                if kind == "done":
                    return _result(message["result"], result, what, stage)
                if kind == "failed":
                    raise _error(message["error"], what, stage)
                relay(message, reporter)
                if kind == "step" and job is not None:
                    if reporter.cancelled() and not cancel_sent:
                        _tell(child.stdin, {"kind": "cancel"})
                        cancel_sent = True
                    _tell(child.stdin, {"kind": "ack"})
    finally:
        if child.stdin is not None:
            with contextlib.suppress(OSError):
                child.stdin.close()  # the child takes the end of its stdin as a cancel
        if child.poll() is None:
            if job is None:
                child.terminate()
            else:
                _drain_until_exit(child)
        child.wait()
        child.stdout.close()
        errors_file.close()
        if child.returncode != 0:
            # Killed or crashed: the programs it ran (mksquashfs, apt-get, …) are in their
            # own sessions and would run on, writing into a folder about to be removed.
            kill_tagged(token)


def _result(data: Any, make: Callable[[Any], T], what: str, stage: str) -> T:
    try:
        return make(data)
    except (KeyError, TypeError, ValueError, AttributeError, ProtocolError) as exc:
        raise ChildDied(
            f"the {what} sent a result that does not decode: {exc!r}", stage=stage
        ) from None


def _error(data: dict[str, Any], what: str, stage: str) -> LivesmithError:
    # An exception outside LivesmithError (a bug in the child) arrives as a StageError with
    # its type and text.
    try:
        return error_from_json(data, foreign=lambda text: StageError(text, stage=stage))
    except ProtocolError as exc:
        return ChildDied(f"the {what} sent a broken message: {exc}", stage=stage)


def _tell(pipe: IO[bytes] | None, message: Message) -> None:
    assert pipe is not None
    with contextlib.suppress(BrokenPipeError):  # it ended already; its outcome follows
        pipe.write(frame(message))
        pipe.flush()


CLEANUP_SECONDS = 60
# Every process a child starts inherits this variable (with the child's own value): how
# the programs of a child that died are found.
TOKEN_VARIABLE = "LIVESMITH_CHILD_TOKEN"


def _drain_until_exit(child: subprocess.Popen[bytes]) -> None:
    """A job child that was told to stop (or whose stdin closed) cleans up first; what it
    still says is read and dropped unparsed, so it never waits on a full pipe."""
    deadline = time.monotonic() + CLEANUP_SECONDS
    assert child.stdout is not None
    while child.poll() is None and (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([child.stdout], [], [], min(left, POLL_SECONDS))
        if ready and not os.read(child.stdout.fileno(), READ_SIZE):
            break
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
