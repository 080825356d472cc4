"""Real boots of the bootloaders: BIOS and UEFI, from a CD and from a USB stick.

The ISO carries our isolinux and GRUB, the real Debian kernel and a tiny initramfs whose
/init prints a marker with /proc/cmdline on the serial console and powers off. Each boot
must show the menu on serial, boot the default entry by itself (menu timeout) and hand the
kernel the contract's command line (docs/live-medium.md).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from app.compose.bootloader import (
    BootMenu,
    default_menu,
    id_file_path,
    install_grub_efi,
    install_isolinux,
)
from app.reporter import NullReporter
from tests.integration.guest import MARKER, write_marker_initramfs
from tests.integration.qemu import (
    BootConfig,
    Firmware,
    Medium,
    QemuSession,
    make_hybrid_iso,
)
from tests.support.debian import busybox_static, kernel_tree

pytestmark = pytest.mark.slow

BUILD_ID = "5eed1e55c0ffee42"
LABEL = "LIVESMITH_BOOT_TEST"
TITLE = "Livesmith boot test"
EXTRA = "quiet livesmith.test=1"


# ----------------------------------------------------------------------------- the ISO


def _menu() -> BootMenu:
    # A short menu timeout keeps the boots quick; the default entry still has to start alone.
    return default_menu(
        title=TITLE, build_id=BUILD_ID, label=LABEL, extra_cmdline=EXTRA, timeout_s=1
    )


def _build_iso(work: Path, *, with_id_file: bool = True) -> Path:
    stage = work / "stage"
    (stage / "live").mkdir(parents=True)
    vmlinuz, _modules, _version = kernel_tree()
    shutil.copyfile(vmlinuz, stage / "live" / "vmlinuz")
    write_marker_initramfs(stage / "live" / "initramfs.img", busybox_static())
    if with_id_file:
        (stage / id_file_path(BUILD_ID)).write_text(f"{BUILD_ID}\n{LABEL}\n")
    bios_boot = install_isolinux(stage, _menu(), NullReporter())
    efi_image = install_grub_efi(stage, _menu(), NullReporter(), epoch=1_700_000_000)
    return make_hybrid_iso(
        stage, work / "boot-test.iso", LABEL, bios_boot=bios_boot, efi_image=efi_image
    )


@pytest.fixture(scope="module")
def boot_iso(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_iso(tmp_path_factory.mktemp("bootiso"))


def _menu_shown(vm: QemuSession, firmware: str) -> None:
    """The bootloader's own menu on the serial port (not the firmware's screen mirror:
    SeaBIOS does not mirror in these sessions)."""
    vm.expect("ISOLINUX" if firmware == "bios" else "GNU GRUB", timeout=30)
    vm.expect(f"{TITLE} (live)", timeout=10)
    vm.expect(f"{TITLE} (copy to RAM)", timeout=10)
    vm.expect(f"{TITLE} (safe graphics)", timeout=10)
    vm.expect(f"{TITLE} (without persistence)", timeout=10)


def _boot_default_entry(config: BootConfig) -> str:
    """Boot to the marker initramfs; returns the kernel command line it printed."""
    with QemuSession(config) as vm:
        _menu_shown(vm, config.firmware)
        cmdline = vm.expect(MARKER, timeout=60).group(1)
        vm.wait_exit(timeout=20)
        print(f"{config.describe()}: {vm.elapsed:.1f} s from power-on to power-off")
        if config.firmware == "uefi":
            # OVMF mirrors its own screen to the serial port too; GRUB's serial terminal is
            # the one that draws the menu frame in plain ASCII.
            assert re.search(r"\+-{40,}\+", vm.output), "GRUB drew no menu on its serial terminal"
    return cmdline


def _without_loader_additions(cmdline: str) -> str:
    # GRUB prepends BOOT_IMAGE=..., isolinux appends initrd=...; the rest is ours.
    return " ".join(w for w in cmdline.split() if not w.startswith(("BOOT_IMAGE=", "initrd=")))


BOOTS = [
    pytest.param("bios", "cd", False, id="bios-cd"),
    pytest.param("bios", "usb", False, id="bios-usb"),
    pytest.param("uefi", "cd", False, id="uefi-cd"),
    pytest.param("uefi", "usb", True, id="uefi-usb-eltorito-blanked"),
]


@pytest.mark.parametrize(("firmware", "medium", "blank"), BOOTS)
def test_the_default_entry_boots_with_the_contract_cmdline(
    boot_iso: Path, firmware: Firmware, medium: Medium, blank: bool
) -> None:
    config = BootConfig(firmware, medium, boot_iso, blank_eltorito=blank, memory_mb=512)
    cmdline = _boot_default_entry(config)
    live = _menu().entries[0]
    assert live.key == "live"
    assert _without_loader_additions(cmdline) == live.cmdline
    words = cmdline.split()
    assert f"livesmith.id={BUILD_ID}" in words
    assert "console=ttyS0,115200" in words
    assert "livesmith.copytoram" not in words and "nomodeset" not in words


def test_uefi_stick_with_a_changed_label_is_found_by_its_id_file(boot_iso: Path) -> None:
    config = BootConfig(
        "uefi", "usb", boot_iso, blank_eltorito=True, new_label="RENAMED", memory_mb=512
    )
    with QemuSession(config) as vm:
        # The menu comes from boot/grub/grub.cfg on the ISO 9660 file system, so GRUB found
        # the medium; the label cannot have led it there (there is no such label any more),
        # and the early config says nothing (it speaks only when the ID file is not found).
        _menu_shown(vm, "uefi")
        assert "Livesmith: " not in vm.output
        print(f"{config.describe()}: {vm.elapsed:.1f} s to the menu")


def test_uefi_falls_back_to_the_label_without_the_id_file(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    iso = _build_iso(tmp_path_factory.mktemp("noid"), with_id_file=False)
    with QemuSession(BootConfig("uefi", "cd", iso, memory_mb=512)) as vm:
        vm.expect(f"found the medium by its label {LABEL}", timeout=40)
        vm.expect(f"{TITLE} (live)", timeout=10)  # its grub.cfg was read: the menu is there
