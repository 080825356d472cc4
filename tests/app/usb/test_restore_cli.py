"""`livesmith restore` as a user runs it, on loop devices holding a real hybrid ISO."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import EXIT_CANCELLED, EXIT_FAILURE, EXIT_INPUT
from app.usb.restore import FileSystem
from tests.app.usb.restore_support import assert_restored, hybrid_stick, make_hybrid_iso
from tests.app.usb.test_target import mounted, partitioned_loop
from tests.app.usb.writer_support import sha256_of_device
from tests.conftest import ROOT, needs_root


def livesmith(
    *args: str, stdin: int | None = subprocess.DEVNULL
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        text=True,
        capture_output=True,
        stdin=stdin,
        timeout=300,
    )


def test_help_names_the_file_systems_and_the_default() -> None:
    out = livesmith("restore", "--help")
    assert out.returncode == 0
    assert "{exfat,fat32,ext4}" in out.stdout and "default: exfat" in out.stdout


@pytest.fixture(scope="module")
def hybrid_iso(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_hybrid_iso(tmp_path_factory.mktemp("hybrid"))


@pytest.fixture
def stick(hybrid_iso: Path, tmp_path: Path) -> Iterator[str]:
    with hybrid_stick(hybrid_iso, tmp_path / "stick.img") as node:
        yield node


@needs_root
@pytest.mark.root
def test_restore_yes_makes_a_fat32_stick(stick: str, tmp_path: Path) -> None:
    out = livesmith("restore", stick, "--fs", "fat32", "--label", "my stick", "--yes")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"restored {stick}: one FAT32 partition {stick}p1")
    assert "labelled 'MY STICK'" in out.stdout
    assert "==> Wiping the old signatures" in out.stderr
    assert "==> Creating the file system" in out.stderr
    assert_restored(stick, f"{stick}p1", FileSystem.FAT32, "MY STICK", tmp_path)


@needs_root
@pytest.mark.root
def test_exfat_is_the_default(stick: str, tmp_path: Path) -> None:
    out = livesmith("restore", stick, "--yes")
    assert out.returncode == 0, out.stderr
    assert "one exFAT partition" in out.stdout and "without a label" in out.stdout
    assert_restored(stick, f"{stick}p1", FileSystem.EXFAT, "", tmp_path)


@needs_root
@pytest.mark.root
def test_a_bad_label_is_bad_input_and_nothing_is_written(stick: str) -> None:
    before = sha256_of_device(stick)
    out = livesmith("restore", stick, "--fs", "ext4", "--label", "x" * 17, "--yes")
    assert out.returncode == EXIT_INPUT
    assert "cannot be used for ext4: it takes 17 bytes in UTF-8, at most 16 fit" in out.stderr
    assert sha256_of_device(stick) == before


@needs_root
@pytest.mark.root
def test_a_mounted_stick_is_refused(tmp_path: Path) -> None:
    with partitioned_loop(tmp_path) as (disk, p1, _p2), mounted(p1, tmp_path / "mnt"):
        out = livesmith("restore", disk, "--yes")
    assert out.returncode == EXIT_FAILURE
    assert f"has mounted partitions: {p1} on {tmp_path / 'mnt'}" in out.stderr


@needs_root
@pytest.mark.root
def test_without_yes_and_no_terminal_it_refuses(stick: str) -> None:
    before = sha256_of_device(stick)
    out = livesmith("restore", stick)
    assert out.returncode == EXIT_INPUT
    assert "standard input is not a terminal" in out.stderr and "--yes" in out.stderr
    assert sha256_of_device(stick) == before


@needs_root
@pytest.mark.root
def test_no_at_the_confirmation_writes_nothing(stick: str) -> None:
    before = sha256_of_device(stick)
    controller, terminal = pty.openpty()
    try:
        os.write(controller, b"no\n")
        out = livesmith("restore", stick, "--label", "X", stdin=terminal)
    finally:
        os.close(terminal)
        os.close(controller)
    assert out.returncode == EXIT_CANCELLED, out.stderr
    assert f"Erase {stick} and make it a normal drive?" in out.stderr
    assert "nothing was written" in out.stderr
    assert sha256_of_device(stick) == before
