"""Real boots of built ISOs in QEMU: BIOS/UEFI x CD/USB, relabelled stick, RAM and EROFS.

Each boot reaches `login:` on the serial console, logs in as root with the profile's password
and proves that / is an overlay over the read-only image and is writable.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.build.profile import Compressor, RootImageFormat
from tests.integration.conftest import with_format
from tests.integration.qemu import BootConfig, QemuSession, prepare_usb_disk

pytestmark = pytest.mark.slow


def boot_and_check(config: BootConfig, password: str, *, expect_overlay: bool = True) -> str:
    with QemuSession(config) as vm:
        vm.login("root", password)
        mounts = vm.run("cat /proc/mounts")
        root_line = next(line for line in mounts.splitlines() if line.split()[1] == "/")
        if expect_overlay:
            assert root_line.split()[2] == "overlay", mounts
            assert "lowerdir=/run/livesmith" in root_line or "lowerdir" in root_line
        written = vm.run("echo live-write-ok > /root/probe && cat /root/probe")
        assert "live-write-ok" in written
        cmdline = vm.run("cat /proc/cmdline")
        return cmdline


@pytest.mark.parametrize(("firmware", "medium", "blank"), [
    ("bios", "cd", False),
    ("bios", "usb", False),
    ("uefi", "cd", False),
    ("uefi", "usb", True),  # El Torito blanked: firmware must boot through the partition table
])
def test_minimal_boots_four_ways(minimal_iso, tmp_path: Path, firmware: str, medium: str,
                                 blank: bool) -> None:
    image = minimal_iso.iso
    if medium == "usb":
        image = prepare_usb_disk(minimal_iso.iso, tmp_path / "stick.img", blank_eltorito=blank)
    cmdline = boot_and_check(BootConfig(firmware=firmware, medium=medium, image=image), "live")
    assert f"livesmith.id={minimal_iso.build_id}" in cmdline
    assert "console=ttyS0,115200" in cmdline


def test_a_relabelled_stick_still_boots(minimal_iso, tmp_path: Path) -> None:
    stick = prepare_usb_disk(minimal_iso.iso, tmp_path / "stick.img", blank_eltorito=False,
                             new_label="RENAMED")
    boot_and_check(BootConfig(firmware="uefi", medium="usb", image=stick), "live")


def test_ram_mode_boots(build_iso, minimal_profile) -> None:
    profile = with_format(minimal_profile, RootImageFormat.RAM, Compressor.ZSTD)
    result = build_iso(profile, "ram")
    boot_and_check(BootConfig(firmware="bios", medium="cd", image=result.iso), "live",
                   expect_overlay=False)


def test_erofs_mode_boots(build_iso, minimal_profile) -> None:
    profile = with_format(minimal_profile, RootImageFormat.EROFS, Compressor.LZ4HC)
    result = build_iso(profile, "erofs")
    boot_and_check(BootConfig(firmware="bios", medium="cd", image=result.iso), "live")
