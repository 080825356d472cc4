"""Remastered third-party images boot as their originals do (QEMU, TCG).

Each original and its remastered copy (a file added, see tests/app/iso/remaster_helpers)
boot on the same firmware and medium; both must show the same thing: the loader's text
on the serial console (SeaBIOS mirrors its text screen there; OVMF mirrors its console),
and the VGA screen (QMP screendump) must match. Combinations where the original does
not boot (iPXE's ISO as a UEFI stick: no EFI System partition; floppy emulation as a
BIOS stick: no MBR code) are left out."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtGui import QImage

from tests.app.iso.mastering_helpers import FLOPPY_MARKER
from tests.app.iso.remaster_helpers import remastered_images
from tests.integration.qemu import BootConfig, QemuSession

pytestmark = pytest.mark.slow

IPXE = "Press Ctrl-B for the iPXE command line"  # from the iPXE on the image (-nic none)
GRUB_MENU = "will be executed automatically"

CASES = [
    ("ipxe", "bios", "cd", IPXE),
    ("ipxe", "bios", "usb", IPXE),
    ("ipxe", "uefi", "cd", IPXE),
    ("grub-rescue", "bios", "cd", GRUB_MENU),
    ("grub-rescue", "bios", "usb", GRUB_MENU),
    ("floppy-efi", "bios", "cd", FLOPPY_MARKER),
    ("floppy-efi", "uefi", "cd", IPXE),
    ("floppy-efi", "uefi", "usb", IPXE),
    ("efi-only", "uefi", "cd", IPXE),
    ("efi-only", "uefi", "usb", IPXE),
]


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    return remastered_images(tmp_path_factory.mktemp("remaster-boot"))


def pixels(png: Path) -> tuple[int, int, bytes]:
    image = QImage(str(png)).convertToFormat(QImage.Format.Format_RGB888)
    assert not image.isNull(), png
    return image.width(), image.height(), bytes(image.constBits())


def same_screen(a: Path, b: Path) -> float:
    """The share of bytes two screens have in common (1.0: identical)."""
    wa, ha, da = pixels(a)
    wb, hb, db = pixels(b)
    assert (wa, ha) == (wb, hb), f"{a}: {wa}x{ha}, {b}: {wb}x{hb}"
    return sum(x == y for x, y in zip(da, db, strict=True)) / len(da)


def boot(image: Path, firmware: str, medium: str, marker: str, shot: Path) -> str:
    """Boot `image` until `marker`; save the screen; return the serial console so far."""
    config = BootConfig(
        firmware=firmware,  # type: ignore[arg-type]
        medium=medium,  # type: ignore[arg-type]
        image=image,
        memory_mb=512,
        # SeaBIOS: the text screen on serial too, for loaders that do not write there
        # themselves (the GRUB floppy does; both at once would interleave)
        firmware_console=firmware == "bios" and marker != FLOPPY_MARKER,
    )
    with QemuSession(config) as vm:
        vm.expect(marker, timeout=60)
        vm.screendump(shot)
        text = vm.output
    # The serial console up to the marker, words only: SeaBIOS mirrors the text screen by
    # polling it, so where its lines break depends on timing (a GRUB menu came as one line
    # in one boot and as a line per entry in another); the screens are compared as pictures.
    shown = text[: text.index(marker) + len(marker)]
    return " ".join(shown.split())


@pytest.mark.parametrize(("name", "firmware", "medium", "marker"), CASES)
def test_the_remastered_image_boots_like_the_original(
    images, tmp_path: Path, name: str, firmware: str, medium: str, marker: str
) -> None:
    original, remastered = images[name]
    before = boot(original, firmware, medium, marker, tmp_path / "original.png")
    after = boot(remastered, firmware, medium, marker, tmp_path / "remastered.png")
    assert after == before
    assert same_screen(tmp_path / "original.png", tmp_path / "remastered.png") > 0.97
