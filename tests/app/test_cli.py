from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from app import __version__
from app.cli import EXIT_FAILURE, EXIT_INPUT, build_parser, report_error
from app.errors import Cancelled, InputError, MissingToolError, Problem, ValidationError
from app.reporter import ConsoleReporter, Level
from tests.conftest import ROOT


def test_version_via_python_m_app() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "app", "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == f"livesmith {__version__}"


def test_help_lists_subcommands(capsys) -> None:
    parser = build_parser()
    text = parser.format_help()
    assert "usage: livesmith" in text


def test_unknown_command_is_a_usage_error() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "app", "no-such-command"], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 2
    assert "invalid choice" in out.stderr


def test_errors_are_reported_with_what_where_and_hint(capsys) -> None:
    assert report_error(InputError("not an ISO image", where="/tmp/x.iso")) == EXIT_INPUT
    assert "livesmith: error: /tmp/x.iso: not an ISO image" in capsys.readouterr().err
    assert report_error(MissingToolError("xorriso", "xorriso")) == EXIT_FAILURE
    assert "sudo apt-get install xorriso" in capsys.readouterr().err
    problems = [Problem("label", "must be 1-32 characters"), Problem("/x", "missing")]
    assert report_error(ValidationError(problems)) == EXIT_INPUT
    err = capsys.readouterr().err
    assert "2 problems found" in err and "label: must be 1-32" in err and "/x: missing" in err
    assert report_error(Cancelled()) == 130


def test_the_gui_without_a_display_says_so_and_fails(tmp_path: Path) -> None:
    # No arguments start the GUI; with no X11 or Wayland display it cannot open a window.
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(QT_QPA_PLATFORM="xcb", PYTHONPATH=str(ROOT))
    # In tmp_path: a crash may leave a core file in the working directory.
    out = subprocess.run(
        [sys.executable, "-m", "app"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == EXIT_FAILURE, out.stderr  # an exit status, not a crash
    ours = [line for line in out.stderr.splitlines() if line.startswith("livesmith:")]
    assert any("display" in line.lower() for line in ours), out.stderr


def imported_modules(*args: str) -> set[str]:
    code = (
        "import sys\nfrom app.cli import main\ntry:\n    main(sys.argv[1:])\n"
        "except SystemExit:\n    pass\nprint('\\n'.join(sys.modules), file=sys.stderr)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return set(out.stderr.split())


def test_a_command_imports_only_what_it_needs() -> None:
    # `livesmith inspect` starts without the build pipeline or the USB writer.
    modules = imported_modules("inspect", "--help")
    assert "app.cli.commands.inspect" in modules
    assert not {"app.compose.pipeline", "app.usb.engine", "app.cli.commands.build"} & modules
    # Without a command every command is there for --help.
    assert {"app.cli.commands.build", "app.cli.commands.write"} <= imported_modules("--help")


def test_terminal_escapes_in_errors_and_logs_are_shown_not_obeyed(capsys) -> None:
    # An image downloaded as "x\x1b]0;pwned\x07.iso" must not retitle or recolour the
    # terminal; the line breaks of a multi-line message stay.
    hostile = "/tmp/x\x1b]0;pwned\x07.iso"
    assert report_error(InputError("not an ISO image", where=hostile)) == EXIT_INPUT
    err = capsys.readouterr().err
    assert "livesmith: error: /tmp/x\\x1b]0;pwned\\x07.iso: not an ISO image" in err
    assert "\x1b" not in err and "\x07" not in err
    problems = [Problem(hostile, "missing"), Problem("label", "bad\x9b31m")]
    report_error(ValidationError(problems))
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "livesmith: error: 2 problems found:",
        "  - /tmp/x\\x1b]0;pwned\\x07.iso: missing",
        "  - label: bad\\x9b31m",
    ]
    stream = io.StringIO()
    console = ConsoleReporter(stream)
    console.step("Step\x1b[2J")
    console.log(Level.WARNING, "tool said \x1b[31mred\nand more")
    assert stream.getvalue() == (
        "==> Step\\x1b[2J\n    warning: tool said \\x1b[31mred\nand more\n"
    )
