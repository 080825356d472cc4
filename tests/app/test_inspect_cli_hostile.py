"""`livesmith inspect` on hostile images: names and ids reach the terminal only as escapes."""

from __future__ import annotations

import json
import subprocess
import unicodedata
from pathlib import Path

import pytest

from tests.app.hostile_iso import (
    APPLICATION,
    CLEAR_SCREEN,
    FILE_NAMES,
    FORGED_LINE,
    GPT_NAME,
    LINK_TARGET,
    TITLE_ESCAPE,
    make_hostile_iso,
    rename_gpt_partition,
)
from tests.app.iso.test_inspect import make_isohybrid_gpt_iso
from tests.conftest import ROOT


def inspect(cmd: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cmd, "inspect", *args], cwd=ROOT, capture_output=True, text=True, errors="surrogateescape"
    )


def control_characters(text: str) -> list[str]:
    """Category C characters other than the line feeds that end lines."""
    return [c for c in text if c != "\n" and unicodedata.category(c).startswith("C")]


@pytest.fixture(scope="module")
def hostile_iso(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_hostile_iso(tmp_path_factory.mktemp("hostile") / "hostile.iso")


def test_names_and_ids_are_escaped(livesmith_cmd: list[str], hostile_iso: Path) -> None:
    out = inspect(livesmith_cmd, str(hostile_iso))
    assert out.returncode == 0, out.stderr
    assert control_characters(out.stdout) == []
    lines = out.stdout.splitlines()
    assert "Application: <img src=/etc/hostname>\\x1b]0;app\\x07" in lines
    tree = lines[lines.index("Files (9):") + 1 :]
    # One line per entry: the line feed in a name forges no line of its own.
    assert len(tree) == 9
    assert FORGED_LINE.split("\n")[1] not in lines
    paths = [line.split(maxsplit=4)[-1] for line in tree]
    assert [p for p in paths if "\\" in p] == [
        "/\\x1b[2J\\x1b[31mEVIL\\x1b[0m",
        "/\\x1b]0;pwned\\x07",
        "/a\\x00b\\n-rw-r--r--     0     0 9 /FORGED",
        "/link -> \\x1b[2Jtarget",
    ]


def test_json_keeps_the_names_as_they_are(livesmith_cmd: list[str], hostile_iso: Path) -> None:
    out = inspect(livesmith_cmd, str(hostile_iso), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)  # JSON escapes control characters itself
    assert control_characters(out.stdout) == []
    names = {f["path"].rsplit("/", 1)[-1] for f in data["files"]}
    assert {TITLE_ESCAPE, CLEAR_SCREEN, FORGED_LINE.rsplit("/", 1)[-1]} <= names
    assert {f["path"] for f in data["files"]} >= {"/" + n for n in FILE_NAMES}
    assert data["application"] == APPLICATION
    assert [f["target"] for f in data["files"] if f["type"] == "symlink"] == [LINK_TARGET]


def test_gpt_partition_names_are_escaped(livesmith_cmd: list[str], tmp_path: Path) -> None:
    iso = make_isohybrid_gpt_iso(tmp_path)
    rename_gpt_partition(iso, 1, GPT_NAME)
    out = inspect(livesmith_cmd, str(iso), "--no-files")
    assert out.returncode == 0, out.stderr
    assert control_characters(out.stdout) == []
    gpt_1 = [line for line in out.stdout.splitlines() if line.startswith("  GPT 1 ")]
    assert len(gpt_1) == 1
    assert gpt_1[0].endswith('"\\x1b]0;gpt\\x07\\n<b>G</b>"')
