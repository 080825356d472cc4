"""`livesmith master`: the command line of the mastering core."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import EXIT_INPUT
from tests.app.iso.mastering_helpers import BIOS_BOOT, EFI_IMAGE, make_boot_tree, xorriso_report
from tests.conftest import ROOT


def livesmith(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )


def test_master_writes_a_bootable_hybrid_iso(tmp_path: Path) -> None:
    tree = make_boot_tree(tmp_path / "tree")
    iso = tmp_path / "out.iso"
    out = livesmith(
        "master",
        tree,
        "-o",
        iso,
        "--label",
        "CLI_TEST",
        "--bios-boot",
        BIOS_BOOT,
        "--efi-image",
        EFI_IMAGE,
        "--publisher",
        "ME",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{iso}: {iso.stat().st_size} bytes"
    assert "==> Writing the ISO image" in out.stderr
    report = xorriso_report(iso)
    assert "Volume id    : 'CLI_TEST'" in report
    assert "El Torito img path :   2  /boot/grub/efi.img" in report
    assert "GPT partition path :   2  /boot/grub/efi.img" in report
    assert "El Torito cat path : /boot/boot.cat" in report  # the default


def test_invalid_input_lists_every_problem_and_exits_3(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    iso = tmp_path / "out.iso"
    out = livesmith("master", tree, "-o", iso, "--label", "my live", "--bios-boot", "nope.bin")
    assert out.returncode == EXIT_INPUT
    assert "livesmith: error: 3 problems found:" in out.stderr
    assert "use 'MY_LIVE'" in out.stderr
    assert f"{tree}/nope.bin: the BIOS boot file is missing from the tree" in out.stderr
    assert "the directory for the El Torito boot catalog does not exist" in out.stderr
    assert not iso.exists()


EPOCH_PROBLEM = (
    "SOURCE_DATE_EPOCH: 'yesterday' is not a whole number of seconds from 0 to 4294967295 "
    "(seconds since 1970-01-01 00:00:00 UTC, as `date +%s` prints them)"
)


@pytest.mark.parametrize("check", [False, True])
def test_a_bad_source_date_epoch_is_listed_with_the_other_problems_and_exits_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, check: bool
) -> None:
    tree = make_boot_tree(tmp_path / "tree")
    iso = tmp_path / "out.iso"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    args = ("master", tree, "-o", iso, "--bios-boot", BIOS_BOOT, *(["--check"] * check))
    out = livesmith(*args, "--label", "my live")
    assert out.returncode == EXIT_INPUT
    assert "livesmith: error: 2 problems found:" in out.stderr
    assert f"  - {EPOCH_PROBLEM}\n" in out.stderr and "use 'MY_LIVE'" in out.stderr
    alone = livesmith(*args, "--label", "LIVE")
    assert alone.returncode == EXIT_INPUT
    assert alone.stderr == f"livesmith: error: 1 problem found:\n  - {EPOCH_PROBLEM}\n"
    assert not iso.exists()


def test_source_date_epoch_makes_the_image_reproducible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = make_boot_tree(tmp_path / "tree")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    isos = [tmp_path / "a.iso", tmp_path / "b.iso"]
    for iso in isos:
        out = livesmith("master", tree, "-o", iso, "--label", "REPRO", "--bios-boot", BIOS_BOOT)
        assert out.returncode == 0, out.stderr
    assert isos[0].read_bytes() == isos[1].read_bytes()
    pvd = isos[0].read_bytes()[16 * 2048 : 17 * 2048]
    assert pvd[813:830] == b"2023111422132000\0"  # created at the epoch, in UTC


def test_check_only_writes_nothing(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "1/2/3/4/5/6/7/8").mkdir(parents=True)
    iso = tmp_path / "out.iso"
    out = livesmith("master", tree, "-o", iso, "--label", "OK", "--check")
    assert out.returncode == 0, out.stderr
    assert "warning: 1 directory is nested deeper" in out.stdout
    assert f"{tree}: ready to master (about 2 MiB)" in out.stdout
    assert not iso.exists()


def test_no_hybrid_masters_any_no_emulation_boot_image(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "boot").mkdir(parents=True)
    (tree / "boot" / "own-loader.bin").write_bytes(bytes(2048))
    iso = tmp_path / "out.iso"
    out = livesmith(
        "master",
        tree,
        "-o",
        iso,
        "--label",
        "OWN",
        "--bios-boot",
        "boot/own-loader.bin",
        "--no-hybrid",
        "--boot-catalog",
        "boot/cat.bin",
    )
    assert out.returncode == 0, out.stderr
    report = xorriso_report(iso)
    assert "El Torito cat path : /boot/cat.bin" in report
    assert "El Torito img path :   1  /boot/own-loader.bin" in report


def test_help_names_the_core_default_boot_catalog() -> None:
    from app.iso.master import BootSpec

    out = livesmith("master", "--help")
    assert out.returncode == 0
    help_text = " ".join(out.stdout.split())
    assert f"(default: {BootSpec().boot_catalog})" in help_text
