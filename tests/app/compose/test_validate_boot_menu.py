"""The boot menu is checked in the Validate step: a kernel command line or profile name the
bootloaders would refuse stops the build before anything is built, not after the root image
(the bootloaders stage comes late)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from app.compose.bootloader import MAX_CMDLINE
from app.compose.pipeline import boot_menu, make_context
from app.compose.profile import BootOptions, Profile, validate_profile
from app.reporter import RecordingReporter
from tests.support.live_fixtures import (
    live_glaucus_repo,
    live_profile,
    refused_before_building,
)

QUOTES_HINT = "(quotes and backslashes are not supported)"


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return live_glaucus_repo(tmp_path_factory.mktemp("repo"))


def with_cmdline(profile: Profile, cmdline: str) -> Profile:
    return replace(profile, boot=BootOptions(cmdline=cmdline))


@pytest.mark.parametrize(
    ("cmdline", "shown"),
    [('quiet x="a b"', '"'), ("quiet path=C:\\live", "\\"), ("quiet x='a'", "'")],
)
def test_quotes_and_backslashes_in_the_command_line_are_refused_up_front(
    repo: Path, tmp_path: Path, cmdline: str, shown: str
) -> None:
    profile = with_cmdline(live_profile(repo), cmdline)
    assert refused_before_building(profile, tmp_path) == [
        f"kernel command line: the kernel command line contains {shown} {QUOTES_HINT}"
    ]


def test_a_command_line_the_kernel_cannot_take_is_refused_up_front(
    repo: Path, tmp_path: Path
) -> None:
    profile = with_cmdline(live_profile(repo), "x" * (MAX_CMDLINE - 100))
    menu = boot_menu(make_context(profile, tmp_path / "live.iso", RecordingReporter()))
    longest = max(len(e.cmdline) for e in menu.entries)
    assert longest > MAX_CMDLINE
    assert refused_before_building(profile, tmp_path) == [
        f"kernel command line: with the extra parameters, the 'nopersist' boot entry's kernel "
        f"command line is {longest} characters long (at most {MAX_CMDLINE}) (shorten the "
        f"extra parameters by at least {longest - MAX_CMDLINE} characters)"
    ]


@pytest.mark.parametrize("name", ["fixture\n", "fix\x1bture", "fix\tture"])
def test_a_profile_name_with_control_characters_is_refused_up_front(
    repo: Path, tmp_path: Path, name: str
) -> None:
    profile = live_profile(repo, name=name)
    assert refused_before_building(profile, tmp_path) == [
        f"name: the profile name {name!r} has control characters (use letters, digits, "
        "spaces and punctuation, on one line)"
    ]


def test_every_menu_problem_is_reported_once_with_the_others(repo: Path, tmp_path: Path) -> None:
    # All at once, and not once per boot entry: a bad label, name and command line.
    profile = with_cmdline(live_profile(repo, name="a\x7fb", label="bad label"), 'x="y"')
    assert sorted(p.where for p in validate_profile(profile)) == [
        "kernel command line",
        "label",
        "name",
    ]
    problems = refused_before_building(profile, tmp_path)
    assert sorted(p.split(":")[0] for p in problems) == ["kernel command line", "label", "name"]
