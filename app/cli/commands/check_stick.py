"""`livesmith check-stick STICK`: is the stick as large as it claims (a fake-capacity check)?

The quick check is non-destructive: it writes test blocks over the whole claimed capacity,
reads them back past the cache and puts the old data back. `--full` writes and reads every
block instead; that destroys what is on the stick, so its time estimate is shown and
confirmed first.
"""

from __future__ import annotations

import argparse
import json
import sys

from app.cli import EXIT_CANCELLED, EXIT_FAILURE, EXIT_OK
from app.cli.commands.write import WriteProgress, confirm, refuse_without_terminal
from app.units import binary_size
from app.usb.capacity import (
    CheckMode,
    check_stick,
    estimate_full_check,
    resolve_stick,
)

NAME = "check-stick"
HELP = "check whether a USB stick really holds what it claims (a fake-capacity check)"
ORDER = 44


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stick", help="the whole disk (/dev/sdX, /dev/mmcblkN)")
    parser.add_argument(
        "--full",
        action="store_true",
        help="write and read every block (destroys what is on the stick; takes as long as "
        "writing the whole stick twice); the default quick check keeps the stick's data",
    )
    parser.add_argument(
        "--yes", action="store_true", help="with --full: do not ask for confirmation"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "unknown"
    minutes, secs = divmod(int(seconds + 0.5), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def run(args: argparse.Namespace) -> int:
    out = sys.stderr
    target = resolve_stick(args.stick)
    print(f"Drive: {target.path}: {target.description}", file=out)
    mode = CheckMode.FULL if args.full else CheckMode.QUICK
    if mode is CheckMode.FULL:
        estimate = estimate_full_check(target)
        print(
            f"The full check writes and reads all {binary_size(target.size)}: "
            f"about {_duration(estimate)}.",
            file=out,
        )
        if not args.yes:
            refuse_without_terminal()
            if not confirm(
                f"Everything on {target.path} will be destroyed. Type 'yes' to go on: ", out
            ):
                print("livesmith: not confirmed; nothing was written", file=out)
                return EXIT_CANCELLED
    result = check_stick(target, mode=mode, reporter=WriteProgress(out))
    if args.json:
        json.dump(result.to_json(), sys.stdout, indent=2)
        print()
    else:
        print(result.summary())
    if mode is CheckMode.FULL:
        print(
            "note: the stick now holds test data; write an image to it or restore it "
            "(`livesmith restore`)",
            file=out,
        )
    print(f"took {result.seconds:.1f} s", file=out)
    return EXIT_OK if result.genuine else EXIT_FAILURE
