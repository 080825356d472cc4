"""The writer as a separate process, speaking a small line protocol (CLI and GUI use it alike).

    python -m app.usb.helper write IMAGE TARGET [--no-verify] [--force] [--expect JSON]
    python -m app.usb.helper verify IMAGE TARGET

--expect names the disk the user confirmed (`BlockIdentity.to_json`: device number, size,
serial, diskseq). TARGET is only a name, and Linux gives a freed name to the next disk
plugged in: with --expect the helper writes nothing unless the device it opened is that disk.

stdout, one message a line:
    PHASE <name>                 write | verify | locate | wipe
    PROGRESS <done> <total>      bytes (compressed bytes read when the image size is unknown)
    LOG <level> <json string>    DEBUG | INFO | WARNING | ERROR
    ERROR <json object>          the typed error (type, message, where, hint, offset, ...)
    DONE <json object>           the WriteResult / VerifyResult
stdin: a line `CANCEL` — or end of file, because then the parent is gone — cancels.
SIGINT and SIGTERM cancel too; a cancelled write still wipes the stick before exiting.

The parent side, `run_helper`, turns these lines back into reporter calls, the result, or
the same typed exception (a DeviceIOError keeps its offset across the process boundary).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any

from app import errors as core_errors
from app.childproc import child_env
from app.errors import Cancelled, LivesmithError, Problem, ValidationError
from app.reporter import Level, NullReporter, Reporter

if TYPE_CHECKING:
    from app.usb.identity import BlockIdentity

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CANCELLED = 130
PROGRESS_INTERVAL = 0.05
# Attributes some error classes carry besides message/where/hint.
ERROR_EXTRAS = ("offset", "image_size", "device_size", "tool", "package", "stage")


# --- errors across the process boundary ------------------------------------------------------


def error_to_json(exc: BaseException) -> dict[str, Any]:
    if not isinstance(exc, LivesmithError):
        return {"type": "internal", "message": f"{type(exc).__name__}: {exc}"}
    data: dict[str, Any] = {
        "type": type(exc).__name__,
        "message": exc.message,
        "where": exc.where,
        "hint": exc.hint,
    }
    for name in ERROR_EXTRAS:
        if hasattr(exc, name):
            data[name] = getattr(exc, name)
    if isinstance(exc, ValidationError):
        data["problems"] = [[p.where, p.message, p.hint] for p in exc.problems]
    return data


def _error_classes() -> dict[str, type[LivesmithError]]:
    # Modules whose errors the helper may raise; importing them registers their classes.
    from app.usb import engine, udisks  # noqa: F401

    found: dict[str, type[LivesmithError]] = {}
    pending: list[type[LivesmithError]] = [LivesmithError]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.__name__, cls)
        pending.extend(cls.__subclasses__())
    return found


def error_from_json(data: dict[str, Any]) -> LivesmithError:
    """The typed exception described by `error_to_json` (a plain DeviceError if unknown)."""
    if data.get("type") == "internal":
        return LivesmithError(f"the writer helper failed: {data.get('message')}")
    cls: type[LivesmithError] = _error_classes().get(str(data.get("type")), core_errors.DeviceError)
    exc = cls.__new__(cls)
    LivesmithError.__init__(
        exc, str(data.get("message", "")), where=data.get("where"), hint=data.get("hint")
    )
    for name in ERROR_EXTRAS:
        if name in data:
            setattr(exc, name, data[name])
    if isinstance(exc, ValidationError):
        exc.problems = [Problem(*p) for p in data.get("problems", [])]
    return exc


# --- the helper process ----------------------------------------------------------------------


class ProtocolReporter(NullReporter):
    """A Reporter that prints protocol lines; cancelled by `cancel()` from any thread."""

    def __init__(self, out: IO[str]) -> None:
        super().__init__()
        self._out = out
        self._lock = threading.Lock()
        self._last_progress = 0.0

    def send(self, line: str) -> None:
        with self._lock:
            self._out.write(line + "\n")
            self._out.flush()

    def step(self, name: str) -> None:
        self.send(f"PHASE {name}")

    def progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_INTERVAL and done < total:
            return
        self._last_progress = now
        self.send(f"PROGRESS {done} {total}")

    def log(self, level: Level, message: str) -> None:
        self.send(f"LOG {level.name} {json.dumps(message)}")


def _watch_stdin(reporter: ProtocolReporter, stdin: IO[str]) -> None:
    for line in stdin:
        if line.strip() == "CANCEL":
            break
    reporter.cancel()  # CANCEL, or the parent closed our stdin (it is gone)


def helper_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.usb.helper")
    parser.add_argument("command", choices=["write", "verify"])
    parser.add_argument("image")
    parser.add_argument("target")
    parser.add_argument("--no-verify", action="store_true")
    parser.add_argument("--force", action="store_true")
    parser.add_argument(
        "--expect",
        type=_identity_argument,
        default=None,
        help="the confirmed disk, as JSON (device number, size, serial, diskseq)",
    )
    args = parser.parse_args(argv)
    out = sys.stdout
    reporter = ProtocolReporter(out)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: reporter.cancel())
    threading.Thread(target=_watch_stdin, args=(reporter, sys.stdin), daemon=True).start()
    try:
        result = _run(args, reporter)
    except Cancelled as exc:
        reporter.send(f"ERROR {json.dumps(error_to_json(exc))}")
        return EXIT_CANCELLED
    except Exception as exc:
        reporter.send(f"ERROR {json.dumps(error_to_json(exc))}")
        return EXIT_FAILED
    reporter.send(f"DONE {json.dumps(result)}")
    return EXIT_OK


def _identity_argument(text: str) -> BlockIdentity:
    from app.usb.identity import BlockIdentity

    try:
        return BlockIdentity.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise argparse.ArgumentTypeError(f"not a disk identity: {exc}") from exc


def _run(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
    from app.usb.engine import target_for_reading, verify_written, write_image
    from app.usb.source import open_image
    from app.usb.target import resolve_target

    source = open_image(args.image)
    if args.command == "write":
        # The gate reads the disk's identity once and refuses one that is not `expect`.
        target = resolve_target(args.target, image=source.path, expect=args.expect)
        return write_image(
            source,
            target,
            reporter=reporter,
            verify=not args.no_verify,
            force=args.force,
            expect=args.expect,
        ).to_json()
    return verify_written(source, target_for_reading(args.target), reporter=reporter).to_json()


# --- the parent side -------------------------------------------------------------------------


def helper_command(
    command: str,
    image: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    verify: bool = True,
    force: bool = False,
    expect: BlockIdentity | None = None,
) -> list[str]:
    # -P: an "app" folder in the current directory must not stand in for ours.
    args = [sys.executable, "-P", "-m", "app.usb.helper", command, str(image), str(target)]
    if not verify:
        args.append("--no-verify")
    if force:
        args.append("--force")
    if expect is not None:
        args += ["--expect", json.dumps(expect.to_json())]
    return args


def helper_env() -> dict[str, str]:
    """Our environment, with this very `app` package first on the helper's import path."""
    return {**child_env(), "PYTHONUNBUFFERED": "1"}


def run_helper(
    command: str,
    image: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    reporter: Reporter | None = None,
    verify: bool = True,
    force: bool = False,
    expect: BlockIdentity | None = None,
    argv: list[str] | None = None,
) -> dict[str, Any]:
    """Run the helper, relaying its progress into `reporter`; returns the DONE object.

    Raises the helper's typed error. Cancel through `reporter` (or Ctrl-C here) asks the
    helper to stop; we still wait for it, because it wipes the stick before exiting.
    `expect` is the disk the user confirmed (see the module's docstring).
    Pass `argv` to run the helper under a different launcher (pkexec, a test wrapper).
    """
    reporter = reporter or NullReporter()
    proc = subprocess.Popen(
        argv or helper_command(command, image, target, verify=verify, force=force, expect=expect),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
        env=helper_env(),
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stdin = proc.stdin
    sent = threading.Event()

    def cancel() -> None:
        if not sent.is_set():
            sent.set()
            try:
                stdin.write("CANCEL\n")
                stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass

    def watch() -> None:
        while proc.poll() is None and not sent.is_set():
            if reporter.cancelled():
                cancel()
                return
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True).start()
    stderr_lines: list[str] = []
    stderr_reader = threading.Thread(
        target=lambda: stderr_lines.extend(proc.stderr or []), daemon=True
    )
    stderr_reader.start()
    # Ctrl-C asks the helper to stop (it gets the SIGINT of the terminal too) instead of
    # abandoning it: we must wait for it to wipe the stick and report.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, lambda *_: cancel())
    try:
        done, error = _relay(proc.stdout, reporter, cancel)
        status = proc.wait()
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    try:
        stdin.close()
    except OSError:
        pass
    if error is not None:
        raise error
    if done is None:
        stderr_reader.join(timeout=2)
        tail = "".join(stderr_lines[-5:]).strip()
        raise core_errors.DeviceError(
            f"the writer helper stopped without a result (exit status {status})"
            + (f": {tail}" if tail else "")
        )
    return done


def _relay(
    lines: IO[str], reporter: Reporter, cancel: Callable[[], None]
) -> tuple[dict[str, Any] | None, LivesmithError | None]:
    """Turn the helper's lines into reporter calls; returns (DONE object, ERROR)."""
    done: dict[str, Any] | None = None
    error: LivesmithError | None = None
    for line in lines:
        kind, _, rest = line.rstrip("\n").partition(" ")
        if kind == "PHASE":
            reporter.step(rest)
        elif kind == "PROGRESS":
            done_bytes, _, total = rest.partition(" ")
            reporter.progress(int(done_bytes), int(total))
        elif kind == "LOG":
            level, _, text = rest.partition(" ")
            reporter.log(
                Level[level] if level in Level.__members__ else Level.INFO, json.loads(text)
            )
        elif kind == "ERROR":
            error = error_from_json(json.loads(rest))
        elif kind == "DONE":
            done = json.loads(rest)
        if reporter.cancelled():
            cancel()
    return done, error


if __name__ == "__main__":
    raise SystemExit(helper_main())
