"""Mastering time and peak memory of `livesmith master` versus `xorriso -as mkisofs`.

Run by `make bench`; prints figures, asserts only that both images are complete.
Both programs run as child processes, alternately (the machine's load hits both),
under GNU time: the rusage of a child spawned directly from this (large) Python process
would count this process's peak RSS too, because the child shares it until exec.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from tests.app.iso.mastering_helpers import BIOS_BOOT, EFI_IMAGE, make_boot_tree, xorriso_listing
from tests.conftest import ROOT

RUNS = 5
GNU_TIME = "/usr/bin/time"  # Debian package: time


def measure(cmd: list[str], output: Path) -> tuple[float, float, int]:
    """Wall time (s), CPU time (s) and peak RSS (KiB) of one run of `cmd` writing `output`."""
    output.unlink(missing_ok=True)
    report = output.with_name(output.name + ".time")
    out = subprocess.run(
        [GNU_TIME, "-f", "%e %U %S %M", "-o", str(report), *cmd],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    elapsed, user, system, peak = report.read_text().split()
    return float(elapsed), float(user) + float(system), int(peak)


def compare(
    name: str,
    ours: list[str],
    theirs: list[str],
    ours_out: Path,
    theirs_out: Path,
    unit: tuple[str, float],
) -> float:
    """Prints the figures; returns xorriso's median wall time."""
    runs: dict[str, list[tuple[float, float, int]]] = {"livesmith": [], "xorriso": []}
    for _ in range(RUNS):
        runs["livesmith"].append(measure(ours, ours_out))
        runs["xorriso"].append(measure(theirs, theirs_out))
    (t_ours, c_ours, m_ours), (t_theirs, c_theirs, m_theirs) = (
        tuple(statistics.median(run[i] for run in results) for i in range(3))
        for results in (runs["livesmith"], runs["xorriso"])
    )
    label, amount = unit
    print(
        f"\nmaster {name} (median of {RUNS}):\n"
        f"  livesmith {t_ours:.2f} s wall ({amount / t_ours:.0f} {label}), "
        f"{c_ours:.2f} s CPU, {m_ours / 1024:.0f} MiB peak RSS\n"
        f"  xorriso   {t_theirs:.2f} s wall ({amount / t_theirs:.0f} {label}), "
        f"{c_theirs:.2f} s CPU, {m_theirs / 1024:.0f} MiB peak RSS\n"
        f"  ratio     wall {t_ours / t_theirs:.2f}x, CPU {c_ours / c_theirs:.2f}x, "
        f"memory {m_ours / m_theirs:.2f}x"
    )
    return float(t_theirs)


def livesmith(tree: Path, iso: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "app",
        "master",
        str(tree),
        "-o",
        str(iso),
        "--label",
        "BENCH",
        *extra,
    ]


def xorriso(tree: Path, iso: Path, *extra: str) -> list[str]:
    return [
        "xorriso",
        "-as",
        "mkisofs",
        "-R",
        "-J",
        "-V",
        "BENCH",
        "-o",
        str(iso),
        *extra,
        str(tree),
    ]


@pytest.mark.benchmark
def test_master_one_300_mb_file_with_boot_files(tmp_path: Path) -> None:
    tree = make_boot_tree(tmp_path / "tree")
    (tree / "rootfs.sfs").write_bytes(os.urandom(300 * 1024 * 1024))
    ours, theirs = tmp_path / "ours.iso", tmp_path / "xorriso.iso"
    compare(
        "300 MB + boot files",
        livesmith(tree, ours, "--bios-boot", BIOS_BOOT, "--efi-image", EFI_IMAGE),
        xorriso(
            tree,
            theirs,
            "-isohybrid-mbr",
            "/usr/lib/ISOLINUX/isohdpfx.bin",
            "-b",
            BIOS_BOOT,
            "-c",
            "boot/boot.cat",
            "-no-emul-boot",
            "-boot-load-size",
            "4",
            "-boot-info-table",
            "-eltorito-alt-boot",
            "-e",
            EFI_IMAGE,
            "-no-emul-boot",
            "-isohybrid-gpt-basdat",
        ),
        ours,
        theirs,
        ("MB/s", 300 * 1.048576),
    )
    assert xorriso_listing(ours)["/rootfs.sfs"].size == 300 * 1024 * 1024


@pytest.mark.benchmark
def test_master_5000_small_files(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    for i in range(5000):
        path = tree / f"dir{i // 100:02d}" / f"file-{i:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(100 + (i * 37) % 4000))
    ours, theirs = tmp_path / "ours.iso", tmp_path / "xorriso.iso"
    t_xorriso = compare(
        "5,000 small files",
        livesmith(tree, ours),
        xorriso(tree, theirs),
        ours,
        theirs,
        ("files/s", 5000),
    )
    listing = xorriso_listing(ours)
    assert sum(entry.kind == "file" for entry in listing.values()) == 5000

    # Why the goal (<= 1.0x) is out of reach with pycdlib: the least any mastering with it
    # must do (scan, records, data; see pycdlib_floor.py) already takes longer than xorriso.
    floor = tmp_path / "floor.bin"
    floor_cmd = [sys.executable, "-m", "tests.benchmarks.pycdlib_floor", str(tree), str(floor)]
    floors = [measure(floor_cmd, floor) for _ in range(RUNS)]
    t_floor = statistics.median(run[0] for run in floors)
    print(
        f"  pycdlib floor (scan, 10,000 records, file data; nothing else): {t_floor:.2f} s "
        f"wall = {t_floor / t_xorriso:.2f}x xorriso's whole run"
    )
    assert floor.stat().st_size >= sum(p.stat().st_size for p in tree.rglob("*.txt"))
