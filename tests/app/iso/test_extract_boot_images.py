"""`livesmith extract ISO --boot-images DIR`: every El Torito image, byte for byte:
floppy and hard disk emulation images, files of the tree, an image in an appended
partition outside the tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.errors import InputError
from app.iso.extract import extract_boot_images
from app.iso.master import BootSpec, MasterSpec, master_iso
from tests.app.iso.mastering_helpers import disk_image_with_partitions, run
from tests.app.iso.remaster_helpers import GRUB_RESCUE_ISO, floppy_efi_iso
from tests.conftest import ROOT


def test_a_floppy_image_and_an_efi_image_in_an_appended_partition(tmp_path: Path) -> None:
    iso = floppy_efi_iso(tmp_path)
    out = tmp_path / "boot-images"
    written = extract_boot_images(iso, out)
    assert [p.name for p in written] == ["boot1-bios-floppy1.44.img", "boot2-uefi-noemul.img"]
    floppy = tmp_path / "floppy-tree" / "boot" / "floppy.img"
    assert written[0].read_bytes() == floppy.read_bytes()
    # the appended partition: the ESP image given to xorriso -append_partition
    assert written[1].read_bytes() == (tmp_path / "floppy-esp.img").read_bytes()
    with pytest.raises(InputError, match="would overwrite an existing file"):
        extract_boot_images(iso, out)


def test_a_hard_disk_emulation_image(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    disk = disk_image_with_partitions(tree / "disk.img", 1, size=2 * 1024 * 1024)
    iso = master_iso(
        MasterSpec(
            tree=tree,
            output=tmp_path / "hd.iso",
            label="HD",
            boot=BootSpec(
                bios_boot="disk.img", bios_emulation="hd", hybrid=False, boot_catalog="boot.cat"
            ),
        )
    ).path
    (written,) = extract_boot_images(iso, tmp_path / "out")
    assert written.name == "boot1-bios-hd.img"
    assert written.read_bytes() == disk.read_bytes()


def test_the_command_line_with_grubs_eltorito_image(tmp_path: Path) -> None:
    out = tmp_path / "images"
    result = subprocess.run(
        [sys.executable, "-m", "app", "extract", str(GRUB_RESCUE_ISO), "--boot-images", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    image = out / "boot1-bios-noemul.img"
    assert result.stdout == f"{image}: {image.stat().st_size} bytes\n"
    reference = tmp_path / "eltorito.img"
    run(
        "xorriso", "-osirrox", "on", "-indev", GRUB_RESCUE_ISO,
        "-extract", "/boot/grub/i386-pc/eltorito.img", reference,
    )  # fmt: skip
    assert image.read_bytes() == reference.read_bytes()
