"""`livesmith extract ISO PATH -o DEST`: copy a file or a directory out of an ISO image."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.iso.extract import extract
from app.reporter import ConsoleReporter

NAME = "extract"
HELP = "copy a file or a directory out of an ISO image"
ORDER = 31


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("iso", type=Path, metavar="ISO", help="the ISO image")
    parser.add_argument(
        "path", metavar="PATH", help="file or directory inside the ISO, e.g. /boot/grub/grub.cfg"
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("."),
        metavar="DEST",
        help="an existing folder to extract into, or the new file/folder's "
        "path (default: the current folder)",
    )


def run(args: argparse.Namespace) -> int:
    created = extract(args.iso, args.path, args.output, ConsoleReporter())
    whole_image = not args.path.strip("/")
    top = created[0] if created and not whole_image else args.output
    print(f"extracted {len(created)} entr{'y' if len(created) == 1 else 'ies'} to {top}")
    return 0
