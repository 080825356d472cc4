"""`livesmith verify IMAGE TARGET`: check an already written stick against the image.

The device is read with O_DIRECT (never from the page cache) and compared with the image
block by block; a difference is reported with its byte offset and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import sys

from app.cli import EXIT_CANCELLED, EXIT_OK
from app.cli.commands.write import WriteProgress, add_bmap_options, chosen_bmap
from app.errors import Cancelled
from app.usb.engine import VerifyResult
from app.usb.helper import run_helper
from app.usb.source import open_image

NAME = "verify"
HELP = "check that a stick (or file) holds exactly the image, reading past the page cache"
ORDER = 42


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="the image that was written (may be .xz/.zst/.gz)")
    parser.add_argument("target", help="the stick (/dev/sdX) or file it was written to")
    add_bmap_options(parser, "compare only the blocks this bmaptool block map names")


def run(args: argparse.Namespace) -> int:
    out = sys.stderr
    source = open_image(args.image)
    bmap = chosen_bmap(args, source)
    print(f"Image:  {source.describe()}", file=out)
    if bmap is not None:
        print(f"Block map: {bmap.describe()}", file=out)
    try:
        done = run_helper(
            "verify",
            source.path,
            args.target,
            reporter=WriteProgress(out),
            bmap=bmap.path if bmap is not None else None,
        )
    except Cancelled as exc:
        print(f"livesmith: {exc}", file=out)
        return EXIT_CANCELLED
    print(VerifyResult.from_json(done).summary(), file=sys.stdout)
    return EXIT_OK
