"""`livesmith extract ISO PATH -o DEST`: copy a file or a directory out of an ISO image.

`livesmith extract ISO --boot-images DIR` writes out the El Torito boot images instead,
floppy and hard disk images and images outside the tree included."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.errors import InputError
from app.iso.extract import extract, extract_boot_images
from app.reporter import ConsoleReporter

NAME = "extract"
HELP = "copy a file or a directory out of an ISO image"
ORDER = 31


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("iso", type=Path, metavar="ISO", help="the ISO image")
    parser.add_argument(
        "path",
        metavar="PATH",
        nargs="?",
        help="file or directory inside the ISO, e.g. /boot/grub/grub.cfg",
    )
    parser.add_argument(
        "--boot-images",
        type=Path,
        metavar="DIR",
        help="write every El Torito boot image into DIR (boot<N>-<platform>-<emulation>.img)",
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
    if args.boot_images is not None:
        if args.path is not None:
            raise InputError("give either PATH or --boot-images DIR, not both")
        written = extract_boot_images(args.iso, args.boot_images, ConsoleReporter())
        for path in written:
            print(f"{path}: {path.stat().st_size} bytes")
        return 0
    if args.path is None:
        raise InputError("PATH is required (or --boot-images DIR)")
    created = extract(args.iso, args.path, args.output, ConsoleReporter())
    whole_image = not args.path.strip("/")
    top = created[0] if created and not whole_image else args.output
    print(f"extracted {len(created)} entr{'y' if len(created) == 1 else 'ies'} to {top}")
    return 0
