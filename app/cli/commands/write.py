"""`livesmith write IMAGE TARGET`: write an image to a stick (or a file), then verify it.

The write itself runs in the helper process (`app.usb.helper`), like in the GUI. Before
anything is written we show the target, check the image's checksum file and its
signature, and ask for confirmation (or take --yes).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TextIO

from app.cli import EXIT_CANCELLED, EXIT_OK
from app.errors import Cancelled, InputError
from app.reporter import ConsoleReporter
from app.usb.bmap import Bmap, bmap_beside, read_bmap
from app.usb.capacity import PHASE_TITLES as CHECK_TITLES
from app.usb.capacity import check_stick, refuse_if_fake
from app.usb.checksums import check_image
from app.usb.eject import eject
from app.usb.engine import (
    PHASE_TITLES,
    WriteResult,
    check_bmap_fits,
    check_fits,
    layout_warnings,
    plan_for,
)
from app.usb.helper import run_helper
from app.usb.persistence import Persistence
from app.usb.source import ImageSource, open_image
from app.usb.target import Target, TargetKind, human_size, resolve_target

NAME = "write"
HELP = "write an image (.iso, .img, or .xz/.zst/.gz) to a USB stick or a file, then verify it"
ORDER = 41


class WriteProgress(ConsoleReporter):
    """Phase, bytes, speed and ETA; redrawn on a terminal, every 10 % otherwise.

    Also used for the fake-capacity check, whose phases have their own titles.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._started = time.monotonic()

    def step(self, name: str) -> None:
        super().step(PHASE_TITLES.get(name) or CHECK_TITLES.get(name, name))
        self._started = time.monotonic()

    def progress(self, done: int, total: int) -> None:
        if total <= 0:
            return
        now = time.monotonic()
        percent = min(100, done * 100 // total)
        if self.tty:
            if now - self._last_draw < 0.2 and done < total:
                return
            self._last_draw = now
            self.stream.write(f"\r    {self.line(done, total, now)}\033[K")
            self._line_open = True
            if done >= total:
                self._end_line()
        elif percent // 10 != self._last_percent // 10:
            self.stream.write(f"    {self.line(done, total, now)}\n")
        self._last_percent = percent
        self.stream.flush()

    def line(self, done: int, total: int, now: float) -> str:
        elapsed = max(now - self._started, 1e-6)
        speed = done / elapsed
        text = (
            f"{min(100, done * 100 // total):3d}%  {human_size(done)} of "
            f"{human_size(total)}  {human_size(int(speed))}/s"
        )
        if 0 < done < total and speed > 0:
            left = int((total - done) / speed)
            text += f"  ETA {left // 60}:{left % 60:02d}"
        return text


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="the image to write (.iso/.img, may be .xz/.zst/.gz)")
    parser.add_argument(
        "target",
        nargs="+",
        help="a whole disk (/dev/sdX, /dev/mmcblkN) or a file; name several to write them all "
        "at once from one read of the image (each is written, synced and verified on its "
        "own; one that fails is named and does not stop the others)",
    )
    parser.add_argument(
        "--yes",
        action="store_true",
        help="do not ask for confirmation (everything on TARGET is destroyed)",
    )
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="skip reading the device back (the result is 'not verified')",
    )
    parser.add_argument(
        "--check-capacity",
        action="store_true",
        help="first check that the stick really holds what it claims (the quick, "
        "non-destructive check of `livesmith check-stick`); refuse if the image is larger "
        "than what it really holds",
    )
    add_bmap_options(parser, "write and verify only the blocks this bmaptool block map names")
    parser.add_argument(
        "--eject",
        action="store_true",
        help="power the stick off (UDisks2) once it is written and verified",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="write an image that will not boot from USB (no partition table)",
    )
    parser.add_argument(
        "--persistence",
        metavar="SIZE|rest",
        help="after the image, add a partition of SIZE (512M, 1G, ...) or all the free space "
        "('rest') with an ext4 file system labelled LIVESMITH-RW: the live system keeps its "
        "changes there across reboots",
    )


def refuse_without_terminal() -> None:
    if not sys.stdin.isatty():
        raise InputError(
            "refusing to write without confirmation: standard input is not a terminal",
            hint="pass --yes to confirm on the command line",
        )


def confirm(question: str, stream: TextIO) -> bool:
    refuse_without_terminal()
    stream.write(question)
    stream.flush()
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        return False
    return answer.strip().lower() in ("y", "yes")


def check_real_capacity(source: ImageSource, target: Target, out: TextIO) -> None:
    """The quick fake-capacity check; the image must fit in what the stick really holds."""
    result = check_stick(target, reporter=WriteProgress(out))
    print(result.summary(), file=out)
    refuse_if_fake(source, result)
    if not result.genuine:
        print(
            f"warning: the image fits in the {human_size(result.usable)} the stick really "
            "holds; nothing beyond it can be used",
            file=out,
        )


def add_bmap_options(parser: argparse.ArgumentParser, what: str) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--bmap",
        metavar="FILE",
        type=Path,
        help=f"{what} (default: IMAGE.bmap beside the image, if there is one)",
    )
    group.add_argument(
        "--no-bmap", action="store_true", help="ignore a .bmap beside the image: the whole image"
    )


def chosen_bmap(args: argparse.Namespace, source: ImageSource) -> Bmap | None:
    """The block map to use: --bmap, else the one beside the image (unless --no-bmap)."""
    if args.no_bmap:
        return None
    path = args.bmap or bmap_beside(source.path)
    if path is None:
        return None
    bmap = read_bmap(path)
    check_bmap_fits(bmap, source)
    return bmap


def run(args: argparse.Namespace) -> int:
    out = sys.stderr
    if not args.yes:
        refuse_without_terminal()  # before hashing a large image for nothing
    persistence = Persistence.parse(args.persistence) if args.persistence is not None else None
    source = open_image(args.image)
    if len(args.target) > 1:
        if persistence is not None:
            raise InputError(
                "--persistence adds a partition to one stick at a time",
                where="--persistence",
                hint="write the sticks one by one",
            )
        from app.cli.write_many import write_to_many

        return write_to_many(args, source, out)
    target = resolve_target(args.target[0], image=source.path)
    bmap = chosen_bmap(args, source)
    warnings = layout_warnings(source, force=args.force)
    if target.kind is TargetKind.BLOCK:
        check_fits(source, target.size, str(target.path))
        what = f"{target.path}: {target.description}"
        if args.check_capacity:
            check_real_capacity(source, target, out)
    else:
        what = f"the file {target.path}"
    plan = None
    if persistence is not None:  # refused here, before anything is written
        plan = plan_for(source, target.size, persistence, str(target.path))
    print(f"Image:  {source.describe()}", file=out)
    print(f"Target: {what}", file=out)
    if bmap is not None:
        print(f"Block map: {bmap.describe()}", file=out)
    if plan is not None:
        print(f"Then:   {plan.describe()}", file=out)
    for warning in warnings:
        print(f"warning: {warning}", file=out)
    reporter = WriteProgress(out)
    checksum = check_image(source.path, reporter=reporter)
    for line in checksum.lines():
        print(f"checksum: {line}", file=out)
    error = checksum.error()
    if error is not None:
        raise error
    if not args.yes:
        erase = (
            "everything on it will be destroyed"
            if target.kind is TargetKind.BLOCK
            else "the file will be overwritten"
        )
        if not confirm(f"Write to {what}? {erase}. Type 'yes' to go on: ", out):
            print("livesmith: not confirmed; nothing was written", file=out)
            return EXIT_CANCELLED
    try:
        done = run_helper(
            "write",
            source.path,
            target.path,
            reporter=reporter,
            verify=not args.no_verify,
            force=args.force,
            # The disk described to the user; the helper writes only if the path still names it.
            expect=target.identity,
            bmap=bmap.path if bmap is not None else None,
            persistence=persistence,
        )
    except Cancelled as exc:
        print(f"livesmith: {exc}", file=out)
        return EXIT_CANCELLED
    result = WriteResult.from_json(done)
    print(result.summary(), file=sys.stdout)
    if result.verified:
        print(
            f"took {result.write_seconds:.1f} s to write, {result.verify_seconds:.1f} s to verify",
            file=out,
        )
    if args.eject:
        print(eject(target), file=out)
    return EXIT_OK
