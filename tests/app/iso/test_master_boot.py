"""A mastered hybrid ISO boots from a USB disk through its system area, under QEMU.

The ISO is copied raw to a disk image attached as a USB stick, with the El Torito
signature blanked: OVMF would otherwise boot El Torito from a disk (real firmware often
does not), and this test is about the MBR boot code (BIOS) and the GPT ESP (UEFI).
Minimal on purpose; the full boot harness lives elsewhere. TCG, because /dev/kvm here
is a paravirtual backend that crashes firmware.
"""

from __future__ import annotations

import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from app.iso.master import BootSpec, MasterSpec, master_iso
from tests.app.iso.mastering_helpers import (
    BIOS_BOOT,
    BIOS_MARKER,
    EFI_IMAGE,
    UEFI_MARKER,
    make_boot_tree,
)

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
EL_TORITO_ID = 17 * 2048 + 7  # "EL TORITO SPECIFICATION" in the boot record
TIMEOUT = 120


@pytest.fixture(scope="module")
def usb_disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("boot")
    tree = make_boot_tree(base / "tree")
    iso = base / "live.iso"
    master_iso(
        MasterSpec(
            tree=tree,
            output=iso,
            label="BOOT_TEST",
            boot=BootSpec(bios_boot=BIOS_BOOT, efi_image=EFI_IMAGE),
        )
    )
    disk = base / "stick.img"
    shutil.copy(iso, disk)
    with open(disk, "r+b") as f:
        f.seek(EL_TORITO_ID)
        assert f.read(23) == b"EL TORITO SPECIFICATION"
        f.seek(EL_TORITO_ID)
        f.write(bytes(23))
    return disk


def boot_until(marker: str, args: list[str]) -> tuple[bool, str]:
    """Run QEMU until `marker` appears on the serial console (or the timeout)."""
    # -display none, not -nographic: SeaBIOS would mirror the VGA text to the same serial
    # port, and the two copies interleave character by character.
    cmd = [
        "qemu-system-x86_64",
        "-accel",
        "tcg",
        "-m",
        "256",
        "-display",
        "none",
        "-no-reboot",
        "-monitor",
        "none",
        "-serial",
        "stdio",
        *args,
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    assert proc.stdout is not None
    output = b""
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline and marker.encode() not in output:
            ready, _, _ = select.select([proc.stdout], [], [], 1)
            if ready:
                chunk = proc.stdout.read1(65536)
                if not chunk:
                    break
                output += chunk
    finally:
        proc.kill()
        proc.wait()
    return marker.encode() in output, output.decode("utf-8", "replace")[-2000:]


def usb_stick(disk: Path) -> list[str]:
    return [
        "-drive",
        f"if=none,id=stick,format=raw,file={disk}",
        "-device",
        "qemu-xhci",
        "-device",
        "usb-storage,drive=stick,bootindex=0",
    ]


@pytest.mark.slow
def test_bios_boots_isolinux_through_the_mbr(usb_disk: Path) -> None:
    found, console = boot_until(BIOS_MARKER, ["-M", "pc", *usb_stick(usb_disk)])
    assert found, console
    assert "ISOLINUX" in console and f"Loading {BIOS_MARKER}" in console


@pytest.mark.slow
def test_uefi_boots_grub_through_the_gpt_esp(usb_disk: Path, tmp_path: Path) -> None:
    variables = tmp_path / "OVMF_VARS.fd"
    shutil.copy(OVMF_VARS, variables)
    firmware = [
        "-drive",
        f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
        "-drive",
        f"if=pflash,format=raw,file={variables}",
    ]
    found, console = boot_until(UEFI_MARKER, ["-M", "q35", *firmware, *usb_stick(usb_disk)])
    assert found, console
