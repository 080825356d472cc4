"""livesmith(1), generated from the argument parser, documents every command and renders cleanly."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

import app.cli
from app import __version__
from app.cli import build_parser
from tests.conftest import ROOT
from tests.packaging.conftest import PACKAGING, command_names, load_script

make_manpage = load_script("make-manpage")


def render(page_file, *, width: int = 100) -> str:
    """The page as man-db shows it; groff warnings (-ww via --warnings) fail the test."""
    env = {k: v for k, v in os.environ.items() if k != "MAN_KEEP_FORMATTING"}
    env.update(MANWIDTH=str(width), LC_ALL="C.UTF-8")
    out = subprocess.run(
        ["man", "--warnings", "-E", "UTF-8", "-P", "cat", "-l", str(page_file)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode == 0 and out.stderr == "", out.stderr
    return out.stdout


def groff_warnings(page_file) -> str:
    out = subprocess.run(
        ["groff", "-man", "-Tutf8", "-ww", "-z", str(page_file)], capture_output=True, text=True
    )
    assert out.returncode == 0
    return out.stderr


@pytest.fixture(scope="module")
def page_file(tmp_path_factory) -> os.PathLike:
    path = tmp_path_factory.mktemp("man") / "livesmith.1"
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000", PYTHONDONTWRITEBYTECODE="1")
    subprocess.run(
        [sys.executable, str(PACKAGING / "make-manpage"), "-o", str(path)],
        check=True,
        env=env,
        cwd=ROOT,
    )
    return path


def test_the_generated_page_renders_without_groff_warnings(page_file) -> None:
    assert groff_warnings(page_file) == ""
    text = render(page_file)
    assert text.startswith("LIVESMITH(1)")
    assert f"livesmith {__version__}" in text and "2023-11-14" in text  # SOURCE_DATE_EPOCH


def test_every_discovered_command_and_option_is_documented(page_file) -> None:
    text = render(page_file, width=200)
    commands = command_names()
    assert commands, "the CLI discovered no commands"
    parser = build_parser()
    sub_action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in commands:
        assert f"\n   {name}\n" in text  # its own subsection
        assert f"livesmith {name} [-h]" in text  # its synopsis, as --help prints it
        for action in sub_action.choices[name]._actions:
            if action.help != argparse.SUPPRESS and not isinstance(action, argparse._HelpAction):
                for option in action.option_strings:
                    assert option in text, f"{name} {option}"
                if action.help:
                    assert " ".join(action.help.split())[:40] in " ".join(text.split())


def test_exit_statuses_come_from_app_cli(page_file) -> None:
    text = render(page_file)
    section = text.split("EXIT STATUS", 1)[1].split("NOTES", 1)[0]
    codes = sorted(v for k, v in vars(app.cli).items() if k.startswith("EXIT_"))
    assert [
        int(line.split()[0])
        for line in section.splitlines()
        if line.strip() and line.split()[0].isdigit()
    ] == codes


def test_whatis_can_parse_the_name_section(page_file) -> None:
    out = subprocess.run(["lexgrog", str(page_file)], capture_output=True, text=True)
    assert out.returncode == 0 and '"livesmith - compose bootable' in out.stdout, out.stdout


def test_a_new_command_appears_without_editing_the_generator(tmp_path) -> None:
    # Commands land over time; the page follows the parser. Nested subcommands, aliases,
    # choices and roff-hostile help texts must all come out right.
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    extra = sub.add_parser(
        "frobnicate",
        help="frob things",
        aliases=["frob"],
        description=".leading dot and a back\\slash must survive",
    )
    extra.add_argument(
        "--mode",
        choices=["fast", "safe"],
        default="safe",
        help="how to frob (default: %(default)s)",
    )
    extra.add_argument("target", metavar="TARGET", help="'quoted' target")
    nested = extra.add_subparsers(dest="what", metavar="WHAT")
    nested.add_parser("twice", help="frob it twice").add_argument(
        "-n", type=int, metavar="N", help="how many"
    )
    page = tmp_path / "livesmith.1"
    page.write_text(make_manpage.manpage(parser, "9.9", "2030-01-01"))
    assert groff_warnings(page) == ""
    text = " ".join(render(page, width=200).split())
    assert "frobnicate, frob livesmith frobnicate [-h] [--mode {fast,safe}] TARGET WHAT" in text
    assert ".leading dot and a back\\slash must survive" in text
    assert "how to frob (default: safe)" in text and "'quoted' target" in text
    assert "frobnicate twice livesmith frobnicate TARGET twice [-h] [-n N]" in text
    assert "-n N how many" in text
    assert text.count("frobnicate, frob livesmith frobnicate") == 1  # one entry, alias named


def test_page_date_defaults_to_today_and_follows_source_date_epoch(monkeypatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    assert make_manpage.build_date() == "1970-01-01"
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    assert len(make_manpage.build_date()) == 10


def test_a_bad_source_date_epoch_stops_the_page_with_the_apps_own_words(monkeypatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1.5")
    with pytest.raises(SystemExit) as stop:
        make_manpage.build_date()
    assert str(stop.value).startswith(
        "make-manpage: SOURCE_DATE_EPOCH: '1.5' is not a whole number of seconds from 0 to"
    )


def test_the_page_documents_source_date_epoch(page_file) -> None:
    text = " ".join(render(page_file, width=200).split())
    assert "ENVIRONMENT SOURCE_DATE_EPOCH Whole seconds since 1970-01-01 00:00:00 UTC" in text
    assert "unset or empty, they use the current time. Any other value is a problem" in text
