"""`livesmith profiles`: the built-in profiles."""

from __future__ import annotations

import argparse

import tomli_w

from app.compose.profile import builtin_profile, builtin_profiles, profile_to_dict

NAME = "profiles"
HELP = "list the built-in profiles, or print one as TOML to start your own"
ORDER = 11


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--show", metavar="NAME", help="print this profile as TOML")


def run(args: argparse.Namespace) -> int:
    if args.show:
        print(tomli_w.dumps(profile_to_dict(builtin_profile(args.show))), end="")
        return 0
    for name, profile in sorted(builtin_profiles().items()):
        print(f"{name:12} {profile.description}")
    return 0
