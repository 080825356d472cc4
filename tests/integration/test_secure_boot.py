"""Secure Boot, for real: OVMF with Microsoft's keys enrolled and Secure Boot enforced.

The built-in `rescue` profile (Debian packages, boot.secure_boot = auto) gets the signed
chain: shim, Debian's signed GRUB and the signed kernel. It boots from CD and from a USB
stick (El Torito blanked: through the ESP, where the signed GRUB reads the stub that finds
the medium) to a login, with the kernel saying Secure Boot is on and enforcing module
signatures. The same firmware refuses Livesmith's own (unsigned) GRUB, so these boots
would fail if the signed chain were not in use.
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from app.compose import secureboot
from app.compose.layout import planned_iso_tree
from app.compose.profile import Profile, SecureBoot, builtin_profile
from app.iso.inspect import inspect_iso
from tests.integration.qemu import BootConfig, QemuSession

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rescue_iso(build_iso):
    # The same build (and key) as test_rescue_boot.py: one build serves both.
    profile: Profile = builtin_profile("rescue")
    assert profile.boot.secure_boot is SecureBoot.AUTO
    return build_iso(profile, "rescue")


@pytest.fixture(scope="module")
def unsigned_iso(build_iso, minimal_profile: Profile):
    """What a build without the signed chain boots through: Livesmith's own GRUB."""
    off = replace(minimal_profile, boot=replace(minimal_profile.boot, secure_boot=SecureBoot.OFF))
    return build_iso(off, "minimal-secure-boot-off")


def _extract(iso: Path, path: str, dest: Path) -> Path:
    subprocess.run(
        ["xorriso", "-osirrox", "on", "-indev", str(iso), "-extract", path, str(dest)],
        check=True,
        capture_output=True,
    )
    return dest


def _mtype(image: Path, path: str) -> bytes:
    return subprocess.run(
        ["mtype", "-i", str(image), f"::/{path}"],
        check=True,
        capture_output=True,
        env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"},
    ).stdout


def test_auto_gave_the_debian_build_the_signed_chain(rescue_iso, tmp_path: Path) -> None:
    iso = rescue_iso.iso
    names = {f.path for f in inspect_iso(iso).files}
    assert {"/EFI/BOOT/BOOTX64.EFI", "/EFI/BOOT/grubx64.efi", "/EFI/BOOT/mmx64.efi"} <= names
    planned = planned_iso_tree(builtin_profile("rescue"), build_id=rescue_iso.build_id)
    assert {f.path for f in planned} <= names  # the wizard showed what the build made
    image = _extract(iso, "/boot/grub/efi.img", tmp_path / "efi.img")
    for dest in (secureboot.SHIM_FILE, secureboot.GRUB_FILE, secureboot.MOK_MANAGER_FILE):
        on_iso = _extract(iso, f"/{dest}", tmp_path / Path(dest).name)
        assert secureboot.pe_signed(on_iso), dest
        assert _mtype(image, dest) == on_iso.read_bytes(), dest
    assert secureboot.pe_signed(_extract(iso, "/live/vmlinuz", tmp_path / "vmlinuz"))
    stub = _mtype(image, "boot/grub/grub.cfg").decode()
    assert f"search --no-floppy --file --set=root /live/{rescue_iso.build_id}.id" in stub


@pytest.mark.parametrize(("medium", "blank"), [("cd", False), ("usb", True)])
def test_the_signed_chain_boots_with_secure_boot_enforced(
    rescue_iso, medium: str, blank: bool
) -> None:
    config = BootConfig(
        firmware="uefi",
        medium=medium,  # type: ignore[arg-type]
        image=rescue_iso.iso,
        blank_eltorito=blank,
        memory_mb=1024,
        secure_boot=True,
    )
    with QemuSession(config) as vm:
        vm.login("root", "live", timeout=180)
        print(f"{config.describe()}: logged in after {vm.elapsed:.0f} s")
        kernel_log = vm.run("dmesg | grep -i -e secureboot -e 'locked down'", check=True)
        assert "secureboot: Secure boot enabled" in kernel_log, kernel_log
        assert "Kernel is locked down from EFI Secure Boot" in kernel_log, kernel_log
        enforce = vm.run("cat /sys/module/module/parameters/sig_enforce", check=True)
        assert "Y" in enforce.splitlines(), enforce
        # Debian's modules are signed: they still load.
        vm.run("modprobe ext4 && grep -c '^ext4 ' /proc/modules", timeout=60, check=True)


@pytest.mark.parametrize(("medium", "blank"), [("cd", False), ("usb", True)])
def test_the_same_firmware_refuses_an_unsigned_grub(unsigned_iso, medium: str, blank: bool) -> None:
    config = BootConfig(
        firmware="uefi",
        medium=medium,  # type: ignore[arg-type]
        image=unsigned_iso.iso,
        blank_eltorito=blank,
        memory_mb=512,
        secure_boot=True,
    )
    with QemuSession(config) as vm:
        refused = re.compile(r"BdsDxe: failed to load Boot\d+ \"UEFI QEMU [^\n]*: Access Denied")
        match = vm.expect(refused, 60)
        assert ("DVD-ROM" if medium == "cd" else "USB") in match.group(0), match.group(0)
        vm.expect("No bootable option or device was found", 60)
        time.sleep(2)
        assert "GRUB" not in vm.output and "Linux version" not in vm.output, vm.output[-2000:]
