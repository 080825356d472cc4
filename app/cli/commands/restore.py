"""`livesmith restore STICK`: make a stick that holds an image a normal drive again.

Every old signature goes (ISO 9660, the MBR, both GPT copies); one MBR partition over the
whole stick gets the file system asked for (exFAT unless told). As root the tools run
directly, otherwise through UDisks2 (polkit may ask for a password), as writing does. The
label, the tools and the drive are checked before anything is written, and the drive must
still be the one shown when the user confirmed.
"""

from __future__ import annotations

import argparse
import sys

from app.cli import EXIT_CANCELLED, EXIT_OK
from app.cli.commands.write import confirm, refuse_without_terminal
from app.reporter import ConsoleReporter
from app.usb.restore import (
    DEFAULT_FS,
    PHASE_TITLES,
    FileSystem,
    plan_restore,
    restore_disk,
)

NAME = "restore"
HELP = "make a USB stick a normal drive again: wipe the image, one exFAT/FAT32/ext4 partition"
ORDER = 43


class RestoreProgress(ConsoleReporter):
    def step(self, name: str) -> None:
        super().step(PHASE_TITLES.get(name, name))


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stick", help="the whole disk (/dev/sdX, /dev/mmcblkN)")
    parser.add_argument(
        "--fs",
        choices=[fs.value for fs in FileSystem],
        default=DEFAULT_FS.value,
        help="the file system: "
        + "; ".join(f"{fs.value} ({fs.use})" for fs in FileSystem)
        + f" (default: {DEFAULT_FS.value})",
    )
    parser.add_argument(
        "--label",
        default="",
        metavar="NAME",
        help="the volume label (default: none); FAT32: up to 11 characters A-Z 0-9 and "
        "a few signs, upper-cased; exFAT: up to 11 characters; ext4: up to 16 bytes",
    )
    parser.add_argument(
        "--yes",
        action="store_true",
        help="do not ask for confirmation (everything on STICK is destroyed)",
    )


def run(args: argparse.Namespace) -> int:
    out = sys.stderr
    plan = plan_restore(args.stick, FileSystem(args.fs), args.label)
    print(f"Drive:  {plan.target.path}: {plan.target.description}", file=out)
    label = repr(plan.label) if plan.label else "none"
    print(f"Result: one {plan.fs.title} partition over the whole drive, label {label}", file=out)
    if not args.yes:
        refuse_without_terminal()
        if not confirm(
            f"Erase {plan.target.path} and make it a normal drive? Everything on it will be "
            "destroyed. Type 'yes' to go on: ",
            out,
        ):
            print("livesmith: not confirmed; nothing was written", file=out)
            return EXIT_CANCELLED
    result = restore_disk(plan, reporter=RestoreProgress(out))
    for note in result.notes:
        print(f"note: {note}", file=out)
    print(result.summary(), file=sys.stdout)
    print(f"took {result.seconds:.1f} s", file=out)
    return EXIT_OK
