"""`livesmith write IMAGE STICK1 STICK2 …`: one image to several sticks at once.

Every stick passes the same gate as a single one; one that does not (too small, mounted,
the system disk, a fake too small with --check-capacity) is named and left out, and the
others are written. The helper writes them all from one read of the image; each stick's
outcome is printed, and the exit status is 1 if any stick failed or was left out.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

from app.cli import EXIT_CANCELLED, EXIT_FAILURE, EXIT_OK
from app.cli.commands.write import WriteProgress, check_real_capacity, chosen_bmap, confirm
from app.errors import Cancelled, InputError, LivesmithError
from app.reporter import Level
from app.usb.checksums import check_image
from app.usb.eject import eject
from app.usb.engine import PHASE_TITLES, check_fits, layout_warnings
from app.usb.helper import write_many_in_helper
from app.usb.multiwrite import StickOutcome
from app.usb.source import ImageSource
from app.usb.target import Target, TargetKind, human_size, resolve_target


class StickLines:
    """Each stick's phase and progress as plain lines (every 10 %), and its outcome."""

    def __init__(self, names: list[str], stream: TextIO) -> None:
        self.names = names
        self.stream = stream
        self._percent = [-1] * len(names)
        self._started = [time.monotonic()] * len(names)

    def _say(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def stick_step(self, index: int, name: str) -> None:
        self._percent[index] = -1
        self._started[index] = time.monotonic()
        self._say(f"==> {self.names[index]}: {PHASE_TITLES.get(name, name)}")

    def stick_progress(self, index: int, done: int, total: int) -> None:
        if total <= 0:
            return
        percent = min(100, done * 100 // total)
        if percent // 10 != self._percent[index] // 10:
            speed = done / max(time.monotonic() - self._started[index], 1e-6)
            self._say(
                f"    {self.names[index]}: {percent:3d}%  {human_size(done)} of "
                f"{human_size(total)}  {human_size(int(speed))}/s"
            )
        self._percent[index] = percent

    def stick_done(self, index: int, outcome: StickOutcome) -> None:
        mark = "OK" if outcome.ok else "FAILED"
        self._say(f"<== {self.names[index]}: {mark}")


class _Warnings:
    """The write's warnings and errors (each stick's own lines come through StickLines)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def step(self, name: str) -> None:
        pass

    def progress(self, done: int, total: int) -> None:
        pass

    def log(self, level: Level, message: str) -> None:
        if level >= Level.WARNING:
            kind = "error" if level >= Level.ERROR else "warning"
            self.stream.write(f"{kind}: {message}\n")

    def cancelled(self) -> bool:
        return False


def _gate(args: argparse.Namespace, source: ImageSource, name: str, out: TextIO) -> Target:
    target = resolve_target(name, image=source.path)
    if target.kind is TargetKind.BLOCK:
        check_fits(source, target.size, str(target.path))
        if args.check_capacity:
            check_real_capacity(source, target, out)
    return target


def write_to_many(args: argparse.Namespace, source: ImageSource, out: TextIO) -> int:
    if getattr(args, "persistence", None) is not None:
        raise InputError(
            "persistence is added to one stick at a time", hint="write the sticks one by one"
        )
    seen: set[str] = set()
    targets: list[Target] = []
    left_out: list[tuple[str, LivesmithError]] = []
    for name in args.target:
        try:
            target = _gate(args, source, name, out)
        except LivesmithError as exc:
            left_out.append((name, exc))
            continue
        if str(target.path) in seen:
            raise InputError(f"{target.path} is named twice", where=name)
        seen.add(str(target.path))
        targets.append(target)
    bmap = chosen_bmap(args, source)
    warnings = layout_warnings(source, force=args.force)
    print(f"Image:  {source.describe()}", file=out)
    if bmap is not None:
        print(f"Block map: {bmap.describe()}", file=out)
    for target in targets:
        what = (
            f"{target.path}: {target.description}"
            if target.kind is TargetKind.BLOCK
            else f"the file {target.path}"
        )
        print(f"Target: {what}", file=out)
    for name, reason in left_out:
        print(f"Left out: {name}: {reason}", file=out)
    for warning in warnings:
        print(f"warning: {warning}", file=out)
    if not targets:
        print("livesmith: no stick can be written; nothing was written", file=out)
        return EXIT_FAILURE
    checksum = check_image(source.path, reporter=WriteProgress(out))
    for line in checksum.lines():
        print(f"checksum: {line}", file=out)
    error = checksum.error()
    if error is not None:
        raise error
    if not args.yes:
        listed = ", ".join(str(t.path) for t in targets)
        question = (
            f"Write to {len(targets)} targets ({listed})? Everything on them will be "
            "destroyed. Type 'yes' to go on: "
        )
        if not confirm(question, out):
            print("livesmith: not confirmed; nothing was written", file=out)
            return EXIT_CANCELLED
    names = [str(t.path) for t in targets]
    try:
        result = write_many_in_helper(
            source.path,
            names,
            reporter=_Warnings(out),
            events=StickLines(names, out),
            verify=not args.no_verify,
            force=args.force,
            # The disks described to the user; each is written only if its path still names it.
            expects=[t.identity for t in targets],
            bmap=bmap.path if bmap is not None else None,
        )
    except Cancelled as exc:
        print(f"livesmith: {exc}", file=out)
        return EXIT_CANCELLED
    print(result.summary(), file=sys.stdout)
    for name, reason in left_out:
        print(f"{name}: NOT WRITTEN: {reason}", file=sys.stdout)
    if args.eject:
        for target, outcome in zip(targets, result.outcomes, strict=True):
            if outcome.ok:
                print(eject(target), file=out)
    print(f"took {result.seconds:.1f} s", file=out)
    if all(isinstance(o.error, Cancelled) for o in result.outcomes):
        return EXIT_CANCELLED
    return EXIT_FAILURE if result.failed or left_out else EXIT_OK
