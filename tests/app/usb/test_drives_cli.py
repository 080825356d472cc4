"""`livesmith drives` on the real machine: the system disk is never offered."""

from __future__ import annotations

import json
import subprocess

from app.cli.commands.drives import format_table
from app.usb.drives import Drive, list_drives
from app.usb.target import filesystem_devno
from tests.conftest import ROOT


def run_cli(livesmith_cmd: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*livesmith_cmd, "drives", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def test_json_with_all_lists_every_whole_disk_and_the_system_disk_is_excluded(
        livesmith_cmd: list[str]) -> None:
    out = run_cli(livesmith_cmd, "--all", "--json")
    assert out.returncode == 0, out.stderr
    drives = json.loads(out.stdout)
    listed = {d["devnode"] for d in drives}
    assert listed == {d.devnode for d in list_drives(include_excluded=True)}
    root = filesystem_devno("/")
    system = [d for d in drives if root and d["devno"] == f"{root[0]}:{root[1]}"]
    for drive in system:  # / directly on a whole disk (as in our VMs)
        assert not drive["offered"]
        assert drive["excluded_reason"].startswith("holds the running system")
    for drive in drives:
        assert drive["offered"] == (drive["excluded_reason"] is None)
        assert set(drive) >= {"vendor", "model", "serial", "size", "bus", "removable",
                              "read_only", "mounted_partitions", "large", "sys_path"}


def test_default_listing_offers_no_excluded_disk(livesmith_cmd: list[str]) -> None:
    out = run_cli(livesmith_cmd, "--json")
    assert out.returncode == 0, out.stderr
    assert all(d["offered"] for d in json.loads(out.stdout))


def test_table_with_all_shows_the_reason(livesmith_cmd: list[str]) -> None:
    out = run_cli(livesmith_cmd, "--all")
    assert out.returncode == 0, out.stderr
    excluded = [d for d in list_drives(include_excluded=True) if not d.offered]
    if excluded:
        assert "NOT OFFERED BECAUSE" in out.stdout
        for drive in excluded:
            assert drive.devnode in out.stdout
            assert drive.excluded_reason in out.stdout  # type: ignore[operator]


def test_table_format() -> None:
    stick = Drive("/dev/sdb", "/sys/x/sdb", (8, 16), "SanDisk", "Ultra", "42", 16_000_000_000,
                  "usb", True, False, (("/dev/sdb1", "/media/u/STICK"),))
    big = Drive("/dev/sdc", "/sys/x/sdc", (8, 32), "", "", "", 128_000_000_000, "usb", True,
                False, large=True)
    lines = format_table([stick, big], show_reason=False).splitlines()
    assert lines[0].split() == ["DEVICE", "SIZE", "VENDOR", "MODEL", "BUS", "MOUNTED"]
    assert lines[1].split() == ["/dev/sdb", "16.0", "GB", "SanDisk", "Ultra", "usb",
                                "/dev/sdb1", "on", "/media/u/STICK"]
    assert lines[2].split() == ["/dev/sdc", "128.0", "GB", "(large!)", "-", "usb", "-"]
    assert stick.display_text == "SanDisk Ultra \u2014 16.0 GB (/dev/sdb)"
    assert big.name == "/dev/sdc"
