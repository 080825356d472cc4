"""`livesmith verify IMAGE TARGET`: check an already written stick against the image.

The device is read with O_DIRECT (never from the page cache) and compared with the image
block by block; a difference is reported with its byte offset and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import sys

from app.cli import EXIT_CANCELLED, EXIT_OK
from app.cli.commands.write import WriteProgress
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


def run(args: argparse.Namespace) -> int:
    out = sys.stderr
    source = open_image(args.image)
    print(f"Image:  {source.describe()}", file=out)
    try:
        done = run_helper("verify", source.path, args.target, reporter=WriteProgress(out))
    except Cancelled as exc:
        print(f"livesmith: {exc}", file=out)
        return EXIT_CANCELLED
    print(VerifyResult.from_json(done).summary(), file=sys.stdout)
    return EXIT_OK
