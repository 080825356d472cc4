"""Real boots of built ISOs in QEMU: BIOS/UEFI x CD/USB, relabelled stick, RAM and EROFS.

Each boot reaches `login:` on the serial console, logs in as root with the profile's password
and proves that / is an overlay over the read-only image and is writable.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.compose.profile import Compressor, RootImageFormat
from tests.integration.conftest import with_format
from tests.integration.qemu import BootConfig, QemuSession, prepare_usb_disk

pytestmark = pytest.mark.slow


# Where resources/initramfs/init mounts the root image and the writable layer ($RUN is
# /run/livesmith, moved with /run into the live system).
LOWER_DIR = "/run/livesmith/lower"
UPPER_DIR = "/run/livesmith/cow/upper"


def mount_table(text: str) -> dict[str, tuple[str, set[str]]]:
    """/proc/mounts as mount point -> (type, options); the last mount on a point wins."""
    table = {}
    for line in text.splitlines():
        _, point, fstype, options, *_ = line.split()
        table[point] = (fstype, set(options.split(",")))
    return table


def boot_and_check(
    config: BootConfig, password: str, *, lower_type: str | None = "squashfs"
) -> str:
    """Log in, check what / is, write to it; `lower_type` None: RAM mode, / is the initramfs."""
    with QemuSession(config) as vm:
        vm.login("root", password)
        mounts = vm.run("cat /proc/mounts")
        table = mount_table(mounts)
        root_type, root_options = table["/"]
        if lower_type is not None:
            assert root_type == "overlay", mounts
            assert {f"lowerdir={LOWER_DIR}", f"upperdir={UPPER_DIR}"} <= root_options, mounts
            assert table[LOWER_DIR][0] == lower_type, mounts
        else:
            # The system runs from the initramfs itself: no overlay, no root image.
            assert root_type == "rootfs", mounts
            assert LOWER_DIR not in table, mounts
        written = vm.run("echo live-write-ok > /root/probe && cat /root/probe")
        assert "live-write-ok" in written
        cmdline = vm.run("cat /proc/cmdline")
        return cmdline


@pytest.mark.parametrize(
    ("firmware", "medium", "blank"),
    [
        ("bios", "cd", False),
        ("bios", "usb", False),
        ("uefi", "cd", False),
        ("uefi", "usb", True),  # El Torito blanked: firmware must boot through the partition table
    ],
)
def test_minimal_boots_four_ways(
    minimal_iso, tmp_path: Path, firmware: str, medium: str, blank: bool
) -> None:
    image = minimal_iso.iso
    if medium == "usb":
        image = prepare_usb_disk(minimal_iso.iso, tmp_path / "stick.img", blank_eltorito=blank)
    cmdline = boot_and_check(BootConfig(firmware=firmware, medium=medium, image=image), "live")
    assert f"livesmith.id={minimal_iso.build_id}" in cmdline
    assert "console=ttyS0,115200" in cmdline


def test_a_relabelled_stick_still_boots(minimal_iso, tmp_path: Path) -> None:
    stick = prepare_usb_disk(
        minimal_iso.iso, tmp_path / "stick.img", blank_eltorito=False, new_label="RENAMED"
    )
    boot_and_check(BootConfig(firmware="uefi", medium="usb", image=stick), "live")


def test_ram_mode_boots(build_iso, minimal_profile) -> None:
    profile = with_format(minimal_profile, RootImageFormat.RAM, Compressor.ZSTD)
    result = build_iso(profile, "ram")
    boot_and_check(
        BootConfig(firmware="bios", medium="cd", image=result.iso), "live", lower_type=None
    )


def test_erofs_mode_boots(build_iso, minimal_profile) -> None:
    profile = with_format(minimal_profile, RootImageFormat.EROFS, Compressor.LZ4HC)
    result = build_iso(profile, "erofs")
    boot_and_check(
        BootConfig(firmware="bios", medium="cd", image=result.iso), "live", lower_type="erofs"
    )
