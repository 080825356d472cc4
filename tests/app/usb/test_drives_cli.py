"""`livesmith drives` on the real machine: the system disk is never offered."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli.commands.drives import format_table
from app.usb.drives import Drive, list_drives
from tests.app.usb.writer_support import MiB, host_system_disk, loop_device, sparse_file
from tests.conftest import ROOT, needs_root


def run_cli(livesmith_cmd: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*livesmith_cmd, "drives", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_json_with_all_lists_every_whole_disk_and_the_system_disk_is_excluded(
    livesmith_cmd: list[str],
) -> None:
    out = run_cli(livesmith_cmd, "--all", "--json")
    assert out.returncode == 0, out.stderr
    drives = json.loads(out.stdout)
    listed = {d["devnode"] for d in drives}
    assert listed == {d.devnode for d in list_drives(include_excluded=True)}
    system = host_system_disk()
    if system is not None:  # / on a disk (our VMs: /dev/vda); a container has none
        (drive,) = [d for d in drives if d["devnode"] == system]
        assert not drive["offered"]
        assert drive["excluded_reason"].startswith("holds the running system")
    for drive in drives:
        assert drive["offered"] == (drive["excluded_reason"] is None)
        assert set(drive) >= {
            "vendor",
            "model",
            "serial",
            "size",
            "bus",
            "removable",
            "read_only",
            "mounted_partitions",
            "large",
            "sys_path",
        }


@pytest.fixture
def loop_disk(tmp_path: Path) -> Iterator[str]:
    """A real whole disk that is never offered: a loop device (not USB, not removable)."""
    with loop_device(sparse_file(tmp_path / "disk.img", 8 * MiB)) as node:
        yield node


LOOP_REASON = "loop device (name it explicitly to use it)"


@needs_root
def test_default_listing_offers_no_excluded_disk(livesmith_cmd: list[str], loop_disk: str) -> None:
    out = run_cli(livesmith_cmd, "--json")
    assert out.returncode == 0, out.stderr
    offered = json.loads(out.stdout)
    assert all(d["offered"] for d in offered)
    hidden = {loop_disk, host_system_disk()} - {None}
    assert hidden.isdisjoint(d["devnode"] for d in offered), offered
    # ... yet --all shows the same disks, with the reason they are not offered
    every = {d["devnode"]: d for d in json.loads(run_cli(livesmith_cmd, "--all", "--json").stdout)}
    assert every[loop_disk]["excluded_reason"] == LOOP_REASON
    assert every[loop_disk]["size"] == 8 * MiB
    assert hidden <= set(every)


@needs_root
def test_table_with_all_shows_the_reason(livesmith_cmd: list[str], loop_disk: str) -> None:
    out = run_cli(livesmith_cmd, "--all")
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.splitlines()
    assert header.rstrip().endswith("NOT OFFERED BECAUSE")
    (row,) = [r for r in rows if r.split()[:1] == [loop_disk]]
    assert row.rstrip().endswith(LOOP_REASON)
    for drive in list_drives(include_excluded=True):
        if not drive.offered and drive.devnode != loop_disk:  # the host's own, if any
            (line,) = [r for r in rows if r.split()[:1] == [drive.devnode]]
            assert drive.excluded_reason is not None
            assert line.rstrip().endswith(drive.excluded_reason)
    # without --all neither the loop device nor the reason column is there
    plain = run_cli(livesmith_cmd)
    assert plain.returncode == 0, plain.stderr
    assert loop_disk not in plain.stdout and "NOT OFFERED BECAUSE" not in plain.stdout


def test_table_format() -> None:
    stick = Drive(
        "/dev/sdb",
        "/sys/x/sdb",
        (8, 16),
        "SanDisk",
        "Ultra",
        "42",
        16_000_000_000,
        "usb",
        True,
        False,
        (("/dev/sdb1", "/media/u/STICK"),),
    )
    big = Drive(
        "/dev/sdc",
        "/sys/x/sdc",
        (8, 32),
        "",
        "",
        "",
        128_000_000_000,
        "usb",
        True,
        False,
        large=True,
    )
    lines = format_table([stick, big], show_reason=False).splitlines()
    assert lines[0].split() == ["DEVICE", "SIZE", "VENDOR", "MODEL", "BUS", "MOUNTED"]
    assert lines[1].split() == [
        "/dev/sdb",
        "16.0",
        "GB",
        "SanDisk",
        "Ultra",
        "usb",
        "/dev/sdb1",
        "on",
        "/media/u/STICK",
    ]
    assert lines[2].split() == ["/dev/sdc", "128.0", "GB", "(large!)", "-", "usb", "-"]
    assert stick.display_text == "SanDisk Ultra \u2014 16.0 GB (/dev/sdb)"
    assert big.name == "/dev/sdc"
