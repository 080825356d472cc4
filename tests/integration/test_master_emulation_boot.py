"""Trees mastered with other BIOS loaders boot in QEMU (TCG):

- seed 003: a live CD that boots by floppy emulation, from a 1.44 MB GRUB boot floppy
  in the tree (`livesmith master --bios-emulation floppy --no-hybrid`), as a CD;
- GRUB's eltorito.img, hybrid with GRUB's boot_hybrid.img: as a CD and as a USB stick;
- floppy emulation plus an EFI System partition appended from outside the tree: BIOS CD,
  UEFI CD (El Torito entry into the partition) and UEFI stick (the GPT's ESP);
- ISOLINUX hybrid with an ESP appended from outside the tree: BIOS and UEFI sticks.
The loaders print a marker on the serial console and the screen."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.app.iso.mastering_helpers import (
    BIOS_MARKER,
    FLOPPY_MARKER,
    GRUB_BIOS_MARKER,
    UEFI_MARKER,
    grub_eltorito_image,
    grub_floppy_image,
    make_boot_tree,
    make_efi_image,
)
from tests.app.iso.remaster_helpers import IPXE_EFI
from tests.conftest import ROOT
from tests.integration.qemu import BootConfig, QemuSession

pytestmark = pytest.mark.slow

IPXE_BANNER = "Open Source Network Boot Firmware"  # iPXE's, on OVMF's console (serial too)


def master(tree: Path, iso: Path, *args: str) -> Path:
    out = subprocess.run(
        [sys.executable, "-m", "app", "master", str(tree), "-o", str(iso), "--label", "SEED",
         *args],
        cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return iso


def test_seed_003_a_floppy_emulation_cd_mastered_from_a_tree_boots(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "boot").mkdir(parents=True)
    (tree / "README").write_text("a live CD that boots from a floppy image\n")
    grub_floppy_image(tree / "boot" / "boot.img")
    iso = master(
        tree, tmp_path / "floppy.iso", "--bios-boot", "boot/boot.img",
        "--bios-emulation", "floppy", "--no-hybrid",
    )  # fmt: skip
    with QemuSession(BootConfig(firmware="bios", medium="cd", image=iso)) as vm:
        vm.expect(FLOPPY_MARKER, timeout=60)


@pytest.mark.parametrize("medium", ["cd", "usb"])
def test_a_grub_hybrid_image_boots_as_cd_and_as_stick(tmp_path: Path, medium: str) -> None:
    tree = tmp_path / "tree"
    (tree / "boot" / "grub").mkdir(parents=True)
    grub_eltorito_image(tree / "boot" / "grub" / "eltorito.img")
    # SeaBIOS cannot read a USB disk of only a few hundred KiB ("could not read the boot
    # disk"); a real image is larger
    with open(tree / "data.bin", "wb") as f:
        f.truncate(4 * 1024 * 1024)
    iso = master(tree, tmp_path / "grub.iso", "--bios-boot", "boot/grub/eltorito.img")
    with QemuSession(BootConfig(firmware="bios", medium=medium, image=iso)) as vm:
        vm.expect(GRUB_BIOS_MARKER, timeout=60)


@pytest.fixture(scope="module")
def floppy_with_esp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seed 003's floppy CD with iPXE's EFI binary in an appended EFI System partition
    (`--efi-image /abs/esp.img`, outside the tree)."""
    work = tmp_path_factory.mktemp("floppy-esp")
    tree = work / "tree"
    (tree / "boot").mkdir(parents=True)
    grub_floppy_image(tree / "boot" / "boot.img")
    esp = make_efi_image(work / "esp.img", IPXE_EFI)
    return master(
        tree, work / "floppy-esp.iso", "--bios-boot", "boot/boot.img",
        "--bios-emulation", "floppy", "--no-hybrid", "--efi-image", str(esp),
    )  # fmt: skip


@pytest.mark.parametrize(("firmware", "medium"), [("bios", "cd"), ("uefi", "cd"), ("uefi", "usb")])
def test_floppy_emulation_with_an_appended_esp_boots_on_bios_and_uefi(
    floppy_with_esp: Path, firmware: str, medium: str
) -> None:
    config = BootConfig(firmware=firmware, medium=medium, image=floppy_with_esp)  # type: ignore[arg-type]
    marker = FLOPPY_MARKER if firmware == "bios" else IPXE_BANNER
    with QemuSession(config) as vm:
        vm.expect(marker, timeout=60)


@pytest.fixture(scope="module")
def isolinux_with_appended_esp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ISOLINUX hybrid with GRUB's EFI image appended from outside the tree."""
    work = tmp_path_factory.mktemp("isolinux-esp")
    tree = make_boot_tree(work / "tree")
    esp = work / "esp.img"
    (tree / "boot" / "grub" / "efi.img").rename(esp)
    return master(
        tree, work / "isolinux-esp.iso", "--bios-boot", "boot/syslinux/isolinux.bin",
        "--efi-image", str(esp),
    )  # fmt: skip


@pytest.mark.parametrize(("firmware", "marker"), [("bios", BIOS_MARKER), ("uefi", UEFI_MARKER)])
def test_isolinux_hybrid_with_an_appended_esp_boots_from_a_stick(
    isolinux_with_appended_esp: Path, firmware: str, marker: str
) -> None:
    config = BootConfig(firmware=firmware, medium="usb", image=isolinux_with_appended_esp)  # type: ignore[arg-type]
    with QemuSession(config) as vm:
        vm.expect(marker, timeout=60)
