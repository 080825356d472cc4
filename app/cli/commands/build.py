"""`livesmith build`: run the whole pipeline from a profile."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.compose.pipeline import run_build
from app.compose.profile import builtin_profile, load_profile, with_settings
from app.reporter import ConsoleReporter

NAME = "build"
HELP = "build a live ISO from a profile (a TOML file or a built-in profile)"
ORDER = 10


def configure(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "profile_file", nargs="?", type=Path, metavar="PROFILE.toml", help="a saved profile"
    )
    which.add_argument(
        "--profile",
        dest="builtin",
        metavar="NAME",
        help="a built-in profile (see `livesmith profiles`)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        metavar="OUT.iso",
        help="where to write the ISO (and OUT.iso.sha256)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="scratch folder, new or empty (default: "
        ".OUT.iso.build beside the output); emptied afterwards",
    )
    parser.add_argument(
        "--cache-dir", type=Path, help="package cache (default: ~/.cache/livesmith/packages)"
    )
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="change one setting of the profile, e.g. system.user=live, system.autologin=true, "
        "system.timezone=Europe/Berlin, 'system.disable_units=[\"apt-daily.timer\"]' "
        "(repeatable; the keys are those of a saved profile)",
    )
    parser.add_argument("--keep-work", action="store_true", help="keep the scratch folder")
    parser.add_argument("-v", "--verbose", action="store_true", help="show every tool's output")


def run(args: argparse.Namespace) -> int:
    profile = builtin_profile(args.builtin) if args.builtin else load_profile(args.profile_file)
    profile = with_settings(profile, args.settings)
    reporter = ConsoleReporter(verbose=args.verbose)
    result = run_build(
        profile,
        args.output,
        reporter,
        work_dir=args.work_dir,
        cache_dir=args.cache_dir,
        keep_work=args.keep_work,
    )
    print(
        f"{result.iso}\n  size    {result.size:,} bytes\n  sha256  {result.sha256}\n"
        f"  build   {result.build_id}\n  time    {result.seconds:.1f} s ("
        + ", ".join(f"{key} {secs:.1f}" for key, secs in result.stage_seconds)
        + ")"
    )
    return 0
