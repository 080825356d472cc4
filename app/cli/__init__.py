"""The `livesmith` command: no arguments start the GUI, subcommands form the CLI.

Each subcommand is a module in `app.cli.commands` that defines:
    NAME: str, HELP: str, ORDER: int (position in --help),
    configure(parser: argparse.ArgumentParser) -> None,
    run(args: argparse.Namespace) -> int   (exit status).
They are discovered, so adding a command means adding one module.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

from app import __version__
from app.cli import commands
from app.display import printable_lines
from app.errors import Cancelled, InputError, LivesmithError

# Exit statuses, stable for scripts.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_CANCELLED = 130

# The GUI lives in the `ui` package (Qt). The core never imports it; the entry point
# hands over to it by name at run time, only when no subcommand is given.
GUI_MODULE = "ui.gui"


def command_names() -> list[str]:
    """Module names in `app.cli.commands`; each module's NAME is its module name."""
    return [
        info.name
        for info in pkgutil.iter_modules(commands.__path__)
        if not info.name.startswith("_")
    ]


def command_modules(only: str | None = None) -> list[ModuleType]:
    """Every command module, or just `only` if that is a command (a faster start: the
    modules import what their command needs, e.g. pycdlib or the build pipeline)."""
    names = command_names()
    if only in names:
        names = [only]
    modules = [importlib.import_module(f"{commands.__name__}.{name}") for name in names]
    return sorted(modules, key=lambda m: (getattr(m, "ORDER", 100), m.NAME))


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="livesmith",
        description="Compose bootable Linux live ISO images, inspect any ISO, and write "
        "images safely to USB sticks. Without a command, the graphical app starts.",
    )
    parser.add_argument("--version", action="version", version=f"livesmith {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in command_modules(only):
        cmd = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.configure(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def report_error(exc: BaseException, stream=None) -> int:
    """The one place the CLI turns an exception into a message and an exit status."""
    out = stream or sys.stderr
    if isinstance(exc, (Cancelled, KeyboardInterrupt)):
        print("livesmith: cancelled; partial output was removed", file=out)
        return EXIT_CANCELLED
    if isinstance(exc, LivesmithError):
        print(f"livesmith: error: {printable_lines(str(exc))}", file=out)
        return EXIT_INPUT if isinstance(exc, InputError) else EXIT_FAILURE
    raise exc


def start_gui(argv: Sequence[str]) -> int:
    try:
        gui = importlib.import_module(GUI_MODULE)
    except ImportError as exc:
        print(
            f"livesmith: the graphical app cannot start: {exc} "
            "(run `make run`, or use a subcommand; see `livesmith --help`)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    return int(gui.run(list(argv)))


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list:
        return start_gui(args_list)
    first = next((arg for arg in args_list if not arg.startswith("-")), None)
    parser = build_parser(only=first)
    args = parser.parse_args(args_list)
    if not getattr(args, "_run", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args._run(args))
    except (LivesmithError, KeyboardInterrupt) as exc:
        return report_error(exc)
