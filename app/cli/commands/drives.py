"""`livesmith drives`: the drives an image can be written to (and, with --all, why not others)."""

from __future__ import annotations

import argparse
import json
import sys

from app.usb.drives import Drive, list_drives

NAME = "drives"
HELP = "list the USB sticks and SD cards an image can be written to"
ORDER = 40


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--all", action="store_true", help="also show disks that are not offered, with the reason"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    drives = list_drives(include_excluded=args.all)
    if args.json:
        json.dump([d.to_json() for d in drives], sys.stdout, indent=2)
        print()
        return 0
    if drives:
        print(format_table(drives, show_reason=args.all))
    if not any(d.offered for d in drives):
        print(
            ("\n" if drives else "")
            + "No USB stick or SD card found. Plug one in"
            + (
                ", or run `livesmith drives --all` to see why disks are not offered."
                if not args.all
                else "."
            )
        )
    return 0


def _mounted_text(drive: Drive) -> str:
    return ", ".join(f"{node} on {point}" for node, point in drive.mounted_partitions) or "-"


def format_table(drives: list[Drive], *, show_reason: bool) -> str:
    header = ["DEVICE", "SIZE", "VENDOR MODEL", "BUS", "MOUNTED"]
    if show_reason:
        header.append("NOT OFFERED BECAUSE")
    rows = [header]
    for drive in drives:
        size = drive.size_text + (" (large!)" if drive.large else "")
        row = [
            drive.devnode,
            size,
            " ".join(p for p in (drive.vendor, drive.model) if p) or "-",
            drive.bus or "-",
            _mounted_text(drive),
        ]
        if show_reason:
            row.append(drive.excluded_reason or "-")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    return "\n".join(lines)
