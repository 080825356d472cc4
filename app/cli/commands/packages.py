"""`livesmith packages SOURCE`: list a package source, or resolve a selection from it."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from app.cli import EXIT_INPUT, EXIT_OK
from app.packages.model import PackageInfo, SourceKind
from app.packages.resolve import Resolution, resolve
from app.packages.sources import detect_source, open_source
from app.units import binary_size

NAME = "packages"
HELP = "list the packages of a source (folder or 'apt'), or resolve a selection"
ORDER = 30


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source",
        metavar="SOURCE",
        help="a folder (glaucus tree, Arch packages, .deb files, tarballs) "
        "or 'apt' for the Debian archive through this machine's apt",
    )
    parser.add_argument(
        "--resolve",
        nargs="+",
        metavar="NAME",
        help="resolve these packages: show what is pulled in and why, "
        "missing dependencies and conflicts",
    )
    parser.add_argument(
        "--no-deps",
        action="store_true",
        help="with --resolve: do not follow dependencies (meta-packages "
        "still lead to the package they stand for)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def human_size(size: int | None) -> str:
    return "-" if size is None else binary_size(size)


def package_dict(pkg: PackageInfo) -> dict[str, Any]:
    return {
        "name": pkg.name,
        "version": pkg.version,
        "size": pkg.size,
        "installed_size": pkg.installed_size,
        "description": pkg.description,
        "depends": list(pkg.depends),
        "provides": list(pkg.provides),
        "conflicts": list(pkg.conflicts),
        "file": str(pkg.file) if pkg.file else None,
        "checksum": pkg.checksum,
    }


def resolution_dict(res: Resolution) -> dict[str, Any]:
    return {
        "packages": [
            {
                "name": p.name,
                "version": p.version,
                "size": p.size,
                "reason": res.reasons.get(p.name, ""),
            }
            for p in res.packages
        ],
        "missing": [{"dependency": dep, "required_by": by} for dep, by in res.missing],
        "unknown": list(res.unknown),
        "conflicts": [list(pair) for pair in res.conflicts],
        "ok": res.ok,
    }


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=False)] + [row[-1]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def print_packages(packages: list[PackageInfo], out: TextIO | None = None) -> None:
    out = out or sys.stdout
    rows = [["NAME", "VERSION", "SIZE", "DEPENDS", "DESCRIPTION"]]
    for p in packages:
        rows.append(
            [p.name, p.version, human_size(p.size), ", ".join(p.depends) or "-", p.description]
        )
    print(_table(rows), file=out)


def print_resolution(res: Resolution, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    rows = [["NAME", "VERSION", "SIZE", "WHY"]]
    for p in res.packages:
        rows.append([p.name, p.version, human_size(p.size), res.reasons.get(p.name, "")])
    print(_table(rows), file=out)
    total = sum(p.size for p in res.packages)
    print(f"\n{len(res.packages)} package(s), {human_size(total)} to gather", file=out)
    for name in res.unknown:
        print(f"unknown: {name} (no such package)", file=out)
    for dep, by in res.missing:
        print(f"missing: {dep} (required by {by})", file=out)
    for a, b in res.conflicts:
        print(f"conflict: {a} conflicts with {b}", file=out)


def run(args: argparse.Namespace) -> int:
    spec = detect_source(args.source)
    source = open_source(spec)
    resolution = None
    if args.resolve:
        resolution = resolve(source, args.resolve, follow_dependencies=not args.no_deps)
    if args.json:
        data: dict[str, Any] = {"source": {"kind": spec.kind.value, "location": spec.location}}
        data["packages"] = [
            package_dict(p) for p in (resolution.packages if resolution else source.packages())
        ]
        if resolution:
            data["resolution"] = resolution_dict(resolution)
        print(json.dumps(data, indent=2))
    elif resolution:
        print_resolution(resolution)
    else:
        packages = source.packages()
        if spec.kind is SourceKind.APT:
            print(
                "the apt source lists the packages you name: use --resolve NAME ...",
                file=sys.stderr,
            )
        else:
            print(f"{spec.kind.title}: {spec.location}")
            print_packages(packages)
            print(f"\n{len(packages)} package(s)")
    if resolution is not None and not resolution.ok:
        return EXIT_INPUT
    return EXIT_OK
