"""The writer as a separate process (CLI and GUI use it alike), speaking the frames of app.frames.

    python -m app.usb.helper write IMAGE TARGET [--no-verify] [--force] [--expect JSON]
        [--persistence SIZE|rest]
    python -m app.usb.helper write --many IMAGE TARGET… [--expect JSON|null]…
    python -m app.usb.helper verify IMAGE TARGET

With --many (one or more targets), one read of the image feeds all of them (`app.usb.multiwrite`): each
stick's steps, progress and outcome come as "stick" messages with its index, and "done"
carries every stick's outcome (`MultiWriteResult.to_json`), failed ones included.

--expect names the disk the user confirmed (`BlockIdentity.to_json`: device number, size,
serial, diskseq). TARGET is only a name, and Linux gives a freed name to the next disk
plugged in: with --expect the helper writes nothing unless the device it opened is that disk.

stdout, one JSON frame per message (app.frames): "step" (write | verify | locate | wipe),
"progress" (bytes; compressed bytes read when the image size is unknown), "log", then "done"
with the WriteResult / VerifyResult (`to_json`) or "failed" with the typed error. stdin: a
"cancel" message, or the end of the pipe (the parent is gone), cancels; no step waits for an
"ack". SIGINT and SIGTERM cancel too; a cancelled write still wipes the stick before exiting.
The helper may run with more privilege than the app: nothing it reads or sends is pickled.

The parent side, `run_helper`, turns these messages back into reporter calls, the result, or
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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app import errors as core_errors
from app.childproc import ChildControl, PipeReporter, child_env, take_stdio
from app.errors import Cancelled, LivesmithError
from app.frames import READ_SIZE, FrameReader, ProtocolError, error_from_json, frame, relay
from app.reporter import NullReporter, Reporter

if TYPE_CHECKING:
    from app.usb.bmap import Bmap
    from app.usb.identity import BlockIdentity
    from app.usb.multiwrite import MultiWriteResult, StickEvents, StickOutcome
    from app.usb.persistence import Persistence
    from app.usb.source import ImageSource
    from app.usb.target import Target

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CANCELLED = 130
PROGRESS_INTERVAL = 0.05


# --- the helper process ----------------------------------------------------------------------


def helper_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.usb.helper")
    parser.add_argument("command", choices=["write", "verify"])
    parser.add_argument("image")
    parser.add_argument("target", nargs="+")
    parser.add_argument("--no-verify", action="store_true")
    parser.add_argument("--many", action="store_true", help="write every target at once")
    parser.add_argument("--bmap", default=None, help="write only the blocks this .bmap maps")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--persistence", default=None)
    parser.add_argument(
        "--expect",
        type=_identity_argument,
        action="append",
        default=None,
        help="the confirmed disk, as JSON (device number, size, serial, diskseq), or null; "
        "once per target",
    )
    args = parser.parse_args(argv)
    if args.expect is not None and len(args.expect) != len(args.target):
        parser.error("give --expect once per target, or not at all")
    if len(args.target) != 1 and not (args.command == "write" and args.many):
        parser.error("several targets are written with write --many")
    # The messages keep to their own pipes: a tool we run cannot print into them.
    control_pipe, messages = take_stdio()
    control = ChildControl(FrameReader(control_pipe.fileno()), acks=False)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: control.cancel.set())
    reporter = PipeReporter(messages, control, progress_interval=PROGRESS_INTERVAL)
    failure = reporter.finish(lambda: _run(args, reporter))
    if failure is None:
        return EXIT_OK
    return EXIT_CANCELLED if isinstance(failure, Cancelled) else EXIT_FAILED


def _identity_argument(text: str) -> BlockIdentity | None:
    from app.usb.identity import BlockIdentity

    try:
        data = json.loads(text)
        return None if data is None else BlockIdentity.from_json(data)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise argparse.ArgumentTypeError(f"not a disk identity: {exc}") from exc


def _run(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
    from app.usb.bmap import read_bmap
    from app.usb.engine import target_for_reading, verify_written, write_image
    from app.usb.persistence import Persistence
    from app.usb.source import open_image
    from app.usb.target import resolve_target

    source = open_image(args.image)
    bmap = read_bmap(Path(args.bmap)) if args.bmap else None
    expects = args.expect or [None] * len(args.target)
    if args.command == "write" and args.many:
        return _write_many(source, args, expects, reporter, bmap)
    if args.command == "write":
        # The gate reads the disk's identity once and refuses one that is not `expect`.
        target = resolve_target(args.target[0], image=source.path, expect=expects[0])
        return write_image(
            source,
            target,
            reporter=reporter,
            verify=not args.no_verify,
            force=args.force,
            expect=expects[0],
            bmap=bmap,
            persistence=(
                Persistence.parse(args.persistence) if args.persistence is not None else None
            ),
        ).to_json()
    return verify_written(
        source, target_for_reading(args.target[0]), reporter=reporter, bmap=bmap
    ).to_json()


class _PipeStickEvents:
    """Each stick's events as "stick" messages to the parent (see the module docstring)."""

    def __init__(self, reporter: PipeReporter) -> None:
        self._reporter = reporter
        self._last: dict[int, float] = {}

    def stick_step(self, index: int, name: str) -> None:
        self._reporter.send({"kind": "stick", "index": index, "event": "step", "name": name})

    def stick_progress(self, index: int, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last.get(index, 0.0) >= PROGRESS_INTERVAL or done >= total:
            self._last[index] = now
            self._reporter.send(
                {"kind": "stick", "index": index, "event": "progress", "done": done, "total": total}
            )

    def stick_done(self, index: int, outcome: StickOutcome) -> None:
        self._reporter.send(
            {"kind": "stick", "index": index, "event": "done", "outcome": outcome.to_json()}
        )


def _write_many(
    source: ImageSource,
    args: argparse.Namespace,
    expects: list[BlockIdentity | None],
    reporter: Reporter,
    bmap: Bmap | None,
) -> dict[str, Any]:
    from app.usb.multiwrite import StickOutcome, write_many
    from app.usb.target import resolve_target

    targets: dict[int, Target] = {}
    refused: dict[int, StickOutcome] = {}
    for index, (name, expect) in enumerate(zip(args.target, expects, strict=True)):
        try:
            targets[index] = resolve_target(name, image=source.path, expect=expect)
        except LivesmithError as exc:  # this stick only: the others are still written
            refused[index] = StickOutcome(name, error=exc)
    events = _PipeStickEvents(reporter) if isinstance(reporter, PipeReporter) else None
    chosen = sorted(targets)
    result = write_many(
        source,
        [targets[i] for i in chosen],
        reporter=reporter,
        events=_Renumbered(events, chosen) if events is not None else None,
        verify=not args.no_verify,
        force=args.force,
        expects=[expects[i] for i in chosen],
        bmap=bmap,
    )
    outcomes = dict(zip(chosen, result.outcomes, strict=True)) | refused
    for index, outcome in refused.items():
        if events is not None:
            events.stick_done(index, outcome)
    return {
        "outcomes": [outcomes[i].to_json() for i in range(len(args.target))],
        "seconds": result.seconds,
    }


class _Renumbered:
    """Stick events of a sub-list, told with the sticks' indexes in the whole list."""

    def __init__(self, events: _PipeStickEvents, indexes: list[int]) -> None:
        self._events = events
        self._indexes = indexes

    def stick_step(self, index: int, name: str) -> None:
        self._events.stick_step(self._indexes[index], name)

    def stick_progress(self, index: int, done: int, total: int) -> None:
        self._events.stick_progress(self._indexes[index], done, total)

    def stick_done(self, index: int, outcome: StickOutcome) -> None:
        self._events.stick_done(self._indexes[index], outcome)


# --- the parent side -------------------------------------------------------------------------


def helper_command(
    command: str,
    image: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    verify: bool = True,
    force: bool = False,
    expect: BlockIdentity | None = None,
    bmap: Path | None = None,
    persistence: Persistence | None = None,
) -> list[str]:
    # -P: an "app" folder in the current directory must not stand in for ours.
    args = [sys.executable, "-P", "-m", "app.usb.helper", command, str(image), str(target)]
    if bmap is not None:
        args += ["--bmap", str(bmap)]
    if not verify:
        args.append("--no-verify")
    if force:
        args.append("--force")
    if expect is not None:
        args += ["--expect", json.dumps(expect.to_json())]
    if persistence is not None:
        args += ["--persistence", persistence.to_arg()]
    return args


def helper_command_many(
    image: str | os.PathLike[str],
    targets: Sequence[str | os.PathLike[str]],
    *,
    verify: bool = True,
    force: bool = False,
    expects: Sequence[BlockIdentity | None] | None = None,
    bmap: Path | None = None,
) -> list[str]:
    args = [sys.executable, "-P", "-m", "app.usb.helper", "write", "--many", str(image)]
    if bmap is not None:
        args += ["--bmap", str(bmap)]
    args += [str(t) for t in targets]
    if not verify:
        args.append("--no-verify")
    if force:
        args.append("--force")
    for expect in expects or ():
        args += ["--expect", json.dumps(expect.to_json() if expect is not None else None)]
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
    events: StickEvents | None = None,
    bmap: Path | None = None,
    persistence: Persistence | None = None,
) -> dict[str, Any]:
    """Run the helper, relaying its progress into `reporter`; returns its result (JSON).

    Raises the helper's typed error. Cancel through `reporter` (or Ctrl-C here) asks the
    helper to stop; we still wait for it, because it wipes the stick before exiting.
    `expect` is the disk the user confirmed (see the module's docstring).
    Pass `argv` to run the helper under a different launcher (pkexec, a test wrapper).
    """
    reporter = reporter or NullReporter()
    proc = subprocess.Popen(
        argv
        or helper_command(
            command,
            image,
            target,
            verify=verify,
            force=force,
            expect=expect,
            bmap=bmap,
            persistence=persistence,
        ),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=helper_env(),
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stdin = proc.stdin
    sent = threading.Event()

    def cancel() -> None:
        if not sent.is_set():
            sent.set()
            try:
                stdin.write(frame({"kind": "cancel"}))
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
    stderr_lines: list[bytes] = []
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
        outcome = _relay(FrameReader(proc.stdout.fileno()), reporter, cancel, events)
        status = proc.wait()
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    try:
        stdin.close()
    except OSError:
        pass
    proc.stdout.close()
    if isinstance(outcome, LivesmithError):
        raise outcome
    if outcome is None:
        stderr_reader.join(timeout=2)
        tail = b"".join(stderr_lines[-5:]).decode(errors="replace").strip()
        raise core_errors.DeviceError(
            f"the writer helper stopped without a result (exit status {status})"
            + (f": {tail}" if tail else "")
        )
    return outcome


def _relay(
    messages: FrameReader,
    reporter: Reporter,
    cancel: Callable[[], None],
    events: StickEvents | None = None,
) -> dict[str, Any] | LivesmithError | None:
    """Turn the helper's messages into reporter calls, until its output ends; its result,
    its error, or None if it sent neither."""
    outcome: dict[str, Any] | LivesmithError | None = None
    while True:
        try:
            message = messages.next()
            if message and message["kind"] == "done" and not isinstance(message["result"], dict):
                raise ProtocolError("its result is not a JSON object")
        except ProtocolError as exc:
            # A broken helper: ask it to stop (a write wipes the stick), and wait it out.
            cancel()
            _discard(messages.fd)
            return core_errors.DeviceError(f"the writer helper sent a broken message: {exc}")
        if message is None:
            return outcome
        kind = message["kind"]
        if kind == "done":
            outcome = message["result"]
        elif kind == "failed":
            outcome = _helper_error(message["error"])
        elif kind == "stick":
            if events is not None:
                _relay_stick(message, events)
        else:
            relay(message, reporter)
        if reporter.cancelled():
            cancel()


def write_many_in_helper(
    image: str | os.PathLike[str],
    targets: Sequence[str | os.PathLike[str]],
    *,
    reporter: Reporter | None = None,
    events: StickEvents | None = None,
    verify: bool = True,
    force: bool = False,
    expects: Sequence[BlockIdentity | None] | None = None,
    bmap: Path | None = None,
) -> MultiWriteResult:
    """Write one image to several sticks in one helper; every stick's own outcome."""
    from app.usb.multiwrite import MultiWriteResult

    argv = helper_command_many(
        image, targets, verify=verify, force=force, expects=expects, bmap=bmap
    )
    done = run_helper("write", image, targets[0], reporter=reporter, argv=argv, events=events)
    return MultiWriteResult.from_json(done)


def _relay_stick(message: dict[str, Any], events: StickEvents) -> None:
    from app.usb.multiwrite import StickOutcome

    index = int(message["index"])
    event = message.get("event")
    if event == "step":
        events.stick_step(index, str(message["name"]))
    elif event == "progress":
        events.stick_progress(index, int(message["done"]), int(message["total"]))
    elif event == "done":
        events.stick_done(index, StickOutcome.from_json(message["outcome"]))


def _helper_error(data: dict[str, Any]) -> LivesmithError:
    try:
        return error_from_json(
            data, foreign=lambda text: LivesmithError(f"the writer helper failed: {text}")
        )
    except ProtocolError as exc:
        return core_errors.DeviceError(f"the writer helper sent a broken message: {exc}")


def _discard(fd: int) -> None:
    while os.read(fd, READ_SIZE):
        pass


if __name__ == "__main__":
    raise SystemExit(helper_main())
