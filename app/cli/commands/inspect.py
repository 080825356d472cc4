"""`livesmith inspect ISO`: volume ids, El Torito, partitions, USB verdict and the file tree."""

from __future__ import annotations

import argparse
import stat
import sys
from pathlib import Path

from app.display import printable
from app.errors import LivesmithError
from app.iso.inspect import IsoEntry, IsoReport, inspect_iso
from app.units import binary_size

NAME = "inspect"
HELP = "show an ISO image's boot structure, partitions and file tree (any ISO)"
ORDER = 30

NAME_SOURCES = {
    "rock_ridge": "Rock Ridge",
    "joliet": "Joliet",
    "iso9660": "ISO 9660 only (no Rock Ridge, no Joliet)",
}
TYPE_BITS = {"file": stat.S_IFREG, "dir": stat.S_IFDIR, "symlink": stat.S_IFLNK}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("iso", type=Path, metavar="ISO", help="the ISO image (or a device)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--no-files", action="store_true", help="leave out the file tree")
    shown.add_argument("--tree-only", action="store_true", help="show only the file tree")


def run(args: argparse.Namespace) -> int:
    try:
        report = inspect_iso(args.iso)
    except LivesmithError as exc:
        raise _printable_error(exc) from None
    if args.json:
        report.write_json(sys.stdout)
        print()
        return 0
    lines: list[str] = []
    if not args.tree_only:
        lines += format_summary(report)
    if not args.no_files:
        if not args.tree_only:
            lines += ["", f"Files ({len(report.files)}):"]
        lines += format_tree(report.files)
    for line in lines:
        # Every field from the image is escaped already; this keeps it so for whatever a
        # later line adds (the image is hostile input, the terminal obeys escapes).
        print(printable(line))
    return 0


def _printable_error(exc: LivesmithError) -> LivesmithError:
    """`exc` with names from the image in its message escaped (its type, exit status kept)."""
    exc.message = printable(exc.message)
    exc.where = printable(exc.where) if exc.where is not None else None
    exc.hint = printable(exc.hint) if exc.hint is not None else None
    return exc


def human_size(size: int) -> str:
    return binary_size(size, byte_word="bytes")


def format_summary(report: IsoReport) -> list[str]:
    created = report.created.strftime("%Y-%m-%d %H:%M:%S %z") if report.created else "unknown"
    rows = [
        ("Image", f"{printable(str(report.path))} ({human_size(report.size)})"),
        ("Label", printable(report.label) or "-"),
        ("Publisher", printable(report.publisher) or "-"),
        ("Application", printable(report.application) or "-"),
        ("Preparer", printable(report.preparer) or "-"),
        ("System id", printable(report.system_id) or "-"),
        ("Created", created),
        ("Volume size", f"{human_size(report.volume_size)}, blocks of {report.block_size} bytes"),
        ("Names", NAME_SOURCES.get(report.name_source, report.name_source)),
    ]
    lines = [f"{key + ':':13}{value}" for key, value in rows]
    lines += ["", "El Torito boot entries:"]
    if not report.eltorito:
        lines.append("  none (not bootable as a CD)")
    for e in report.eltorito:
        flag = "bootable" if e.bootable else "not bootable"
        lines.append(
            f"  {e.index}. {e.platform_name:6} emulation {e.emulation:10} load {e.load_size:5} "
            f"sectors from block {e.load_rba:<8} {flag:12} "
            f"{printable(e.boot_file or '(not in the tree)')}"
        )
    lines += ["", "Partitions:"]
    if not report.partitions:
        lines.append("  none")
    id_width = max((len(printable(p.type_id)) for p in report.partitions), default=4)
    for p in report.partitions:
        extra = (" bootable" if p.bootable else "") + (f' "{printable(p.name)}"' if p.name else "")
        lines.append(
            f"  {p.scheme.upper()} {p.number:<3} {printable(p.type_id):{id_width}} "
            f"{printable(p.type_name):22.22} "
            f"start {p.start:>12} size {p.size:>12} ({human_size(p.size)}){extra}"
        )
    if report.partition_problems:
        lines += ["", "Partition table problems:"]
        lines += [f"  - {printable(problem)}" for problem in report.partition_problems]
    lines += [
        "",
        f"Bootable from USB as a disk (hybrid): {'yes' if report.hybrid else 'no'}",
        f"  {printable(report.hybrid_reason)}",
    ]
    return lines


def _mode_text(entry: IsoEntry) -> str:
    if entry.type == "other":
        kind = "?"
    else:
        kind = stat.filemode(TYPE_BITS[entry.type])[0]
    if entry.mode is None:
        return kind + "?" * 9
    return kind + stat.filemode(entry.mode)[1:]


def format_tree(files: list[IsoEntry]) -> list[str]:
    """`ls -l`-like lines: mode, uid, gid, size, path (-> target)."""
    width = max((len(str(f.size)) for f in files), default=1)
    lines = []
    for f in files:
        uid = "-" if f.uid is None else str(f.uid)
        gid = "-" if f.gid is None else str(f.gid)
        line = f"{_mode_text(f)} {uid:>5} {gid:>5} {f.size:>{width}} {printable(f.path)}"
        if f.target is not None:
            line += f" -> {printable(f.target)}"
        lines.append(line)
    return lines
