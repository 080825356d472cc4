"""Mastering with other BIOS loaders: GRUB's eltorito.img (hybrid with GRUB's
boot_hybrid.img), floppy and hard disk emulation, load sizes and boot info tables.
Checked with xorriso's reading of the El Torito catalog and the system area."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from app.iso.inspect import inspect_iso
from app.iso.master import (
    BootEntry,
    BootSpec,
    MasterSpec,
    check_master,
    master_iso,
    validate_master,
)
from app.iso.remaster import RemasterSpec, remaster_iso
from tests.app.iso.mastering_helpers import (
    GRUB_PC,
    ISOLINUX_BIN,
    disk_image_with_partitions,
    grub_eltorito_image,
    grub_floppy_image,
    make_efi_image,
    xorriso_report,
)
from tests.app.iso.remaster_helpers import IPXE_EFI
from tests.conftest import ROOT

BLOCK = 2048


def tree_with(tmp_path: Path, name: str, maker, *args) -> Path:
    tree = tmp_path / "tree"
    (tree / "boot").mkdir(parents=True)
    (tree / "README").write_text("hello\n")
    maker(tree / "boot" / name, *args)
    return tree


def spec(tree: Path, **boot) -> MasterSpec:
    return MasterSpec(
        tree=tree, output=tree.parent / "out.iso", label="EMUL", boot=BootSpec(**boot)
    )


def only(problems) -> str:
    assert len(problems) == 1, [str(p) for p in problems]
    return str(problems[0])


def block_of(report: str, index: int) -> int:
    for line in report.splitlines():
        if line.startswith(f"El Torito boot img :   {index} "):
            return int(line.split()[-1])
    raise AssertionError(report)


def test_grub_eltorito_makes_a_hybrid_image_as_grub_mkrescue_does(tmp_path: Path) -> None:
    tree = tree_with(tmp_path, "eltorito.img", grub_eltorito_image)
    result = master_iso(spec(tree, bios_boot="boot/eltorito.img"))
    report = xorriso_report(result.path)
    assert "El Torito img opts :   1  boot-info-table" in report  # needed, so added
    assert "grub2-mbr" in report  # xorriso recognises GRUB's hybrid MBR code
    block = block_of(report, 1)
    data = result.path.read_bytes()
    hybrid = (GRUB_PC / "boot_hybrid.img").read_bytes()
    assert data[:432] == hybrid[:432]
    # the MBR code loads core.img from the 512-byte sector after cdboot.img
    assert struct.unpack_from("<Q", data, 432)[0] == block * 4 + 4
    # and core.img's block list continues one sector later (grub2-boot-info)
    assert struct.unpack_from("<Q", data, block * BLOCK + 2548)[0] == block * 4 + 5
    # the boot info table: primary volume descriptor at 16, the file's own block
    assert struct.unpack_from("<II", data, block * BLOCK + 8) == (16, block)


@pytest.mark.parametrize("size", [1228800, 1474560, 2949120])
def test_floppy_emulation_of_each_floppy_size(tmp_path: Path, size: int) -> None:
    tree = tree_with(tmp_path, "floppy.img", grub_floppy_image, "X", size)
    result = master_iso(
        spec(tree, bios_boot="boot/floppy.img", bios_emulation="floppy", hybrid=False)
    )
    report = xorriso_report(result.path)
    # as xorriso abbreviates them
    emulation = {1228800: "fd1.2", 1474560: "fd1.4", 2949120: "fd2.8"}[size]
    line = next(x for x in report.splitlines() if x.startswith("El Torito boot img :   1"))
    assert line.split()[8] == emulation, report
    assert "boot-info-table" not in report


def test_a_floppy_image_of_the_wrong_size_is_refused(tmp_path: Path) -> None:
    tree = tree_with(tmp_path, "floppy.img", grub_floppy_image, "X", 1440 * 1000)
    text = only(
        validate_master(
            spec(tree, bios_boot="boot/floppy.img", bios_emulation="floppy", hybrid=False)
        )
    )
    assert text == (
        f"{tree}/boot/floppy.img: a floppy emulation image must be 1.2 MB (1228800 bytes), "
        "1.44 MB (1474560 bytes) or 2.88 MB (2949120 bytes); this one is 1440000 bytes "
        "(pad or rebuild the floppy image to one of these sizes)"
    )


def test_floppy_emulation_cannot_be_hybrid(tmp_path: Path) -> None:
    tree = tree_with(tmp_path, "floppy.img", grub_floppy_image)
    text = only(validate_master(spec(tree, bios_boot="boot/floppy.img", bios_emulation="floppy")))
    assert text == (
        f"{tree}/boot/floppy.img: a floppy emulation image cannot be started from a hybrid "
        "image's MBR: only ISOLINUX and GRUB (no emulation) can (master with --no-hybrid "
        "(CD only))"
    )


def test_hard_disk_emulation_needs_exactly_one_partition(tmp_path: Path) -> None:
    tree = tree_with(tmp_path, "one.img", disk_image_with_partitions, 1)
    disk_image_with_partitions(tree / "boot" / "two.img", 2)
    good = spec(tree, bios_boot="boot/one.img", bios_emulation="hd", hybrid=False)
    assert validate_master(good) == []
    bad = spec(tree, bios_boot="boot/two.img", bios_emulation="hd", hybrid=False)
    assert only(validate_master(bad)) == (
        f"{tree}/boot/two.img: a hard disk emulation image must have exactly one "
        "partition; its MBR has 2"
    )
    report = xorriso_report(master_iso(good).path)
    line = next(x for x in report.splitlines() if x.startswith("El Torito boot img :   1"))
    assert line.split()[8] == "hd", report


def test_load_size_and_no_table_with_a_warning_for_a_loader_that_needs_one(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.joinpath("isolinux").mkdir(parents=True)
    shutil.copy(ISOLINUX_BIN, tree / "isolinux" / "isolinux.bin")
    boot = dict(bios_boot="isolinux/isolinux.bin", bios_load_size=8, boot_info_table=False)
    boot["boot_catalog"] = "isolinux/boot.cat"
    check = check_master(spec(tree, **boot))
    assert check.problems == []
    assert check.warnings == [
        f"{tree}/isolinux/isolinux.bin looks like ISOLINUX (isolinux.bin), which needs a "
        "boot info table, but none was asked for: it will probably not boot"
    ]
    report = xorriso_report(master_iso(spec(tree, **boot)).path)
    line = next(x for x in report.splitlines() if x.startswith("El Torito boot img :   1"))
    assert line.split()[-2] == "8", report
    assert "boot-info-table" not in report


def test_an_efi_image_from_outside_the_tree_is_appended_as_the_esp(tmp_path: Path) -> None:
    tree = tree_with(tmp_path, "floppy.img", grub_floppy_image)
    esp = make_efi_image(tmp_path / "esp.img", IPXE_EFI)
    boot = dict(
        bios_boot="boot/floppy.img", bios_emulation="floppy", hybrid=False, efi_partition=esp
    )
    result = master_iso(spec(tree, **boot))
    report = inspect_iso(result.path)
    (part,) = [p for p in report.partitions if p.type_name == "EFI System"]
    assert part.start == report.volume_size  # right after the ISO data
    assert part.size == esp.stat().st_size
    uefi = report.eltorito[1]
    assert (uefi.platform_name, uefi.load_rba * BLOCK, uefi.load_size) == (
        "UEFI",
        part.start,
        esp.stat().st_size // 512,
    )
    assert uefi.boot_file is None  # not a file of the tree
    with open(result.path, "rb") as f:
        f.seek(part.start)
        assert f.read(part.size) == esp.read_bytes()
    assert report.hybrid_reason == (
        "GPT with an EFI System partition (GPT partition 2) but no MBR boot code: boots "
        "from USB on UEFI only"
    )
    assert not [f for f in report.files if "efi" in f.path.lower()]  # no placeholder left


def test_an_appended_efi_image_must_be_a_fat_image(tmp_path: Path) -> None:
    tree = tree_with(tmp_path, "floppy.img", grub_floppy_image)
    bad = tmp_path / "not-fat.img"
    bad.write_bytes(bytes(4096))
    boot = dict(bios_boot="boot/floppy.img", bios_emulation="floppy", hybrid=False)
    assert only(validate_master(spec(tree, efi_partition=bad, **boot))) == (
        f"{bad}: the EFI boot image is not a FAT file system image (no boot sector signature)"
    )


def test_several_entries_per_platform_as_catalog_sections(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "isolinux").mkdir(parents=True)
    shutil.copy(ISOLINUX_BIN, tree / "isolinux" / "isolinux.bin")
    grub_eltorito_image(tree / "isolinux" / "eltorito.img")
    grub_floppy_image(tree / "isolinux" / "floppy.img")
    make_efi_image(tree / "isolinux" / "efi.img", IPXE_EFI)
    shutil.copy(tree / "isolinux" / "efi.img", tree / "isolinux" / "efi2.img")
    iso = tmp_path / "multi.iso"
    out = subprocess.run(
        [sys.executable, "-m", "app", "master", str(tree), "-o", str(iso), "--label", "MULTI",
         "--bios-boot", "isolinux/isolinux.bin", "--efi-image", "isolinux/efi.img",
         "--boot-catalog", "isolinux/boot.cat",
         "--boot-entry", "bios:none:isolinux/eltorito.img",
         "--boot-entry", "bios:floppy:isolinux/floppy.img",
         "--boot-entry", "uefi:none:isolinux/efi2.img"],
        cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    entries = [
        (e.platform_name, e.emulation, e.load_size, e.boot_file) for e in inspect_iso(iso).eltorito
    ]
    assert entries == [
        ("BIOS", "none", 4, "/isolinux/isolinux.bin"),
        ("UEFI", "none", 4096, "/isolinux/efi.img"),
        ("BIOS", "none", 4, "/isolinux/eltorito.img"),
        ("BIOS", "floppy 1.44", 1, "/isolinux/floppy.img"),
        ("UEFI", "none", 4096, "/isolinux/efi2.img"),
    ]
    report = xorriso_report(iso)
    # both no-emulation BIOS loaders got their boot info table
    assert "El Torito img opts :   1  boot-info-table" in report
    assert "El Torito img opts :   3  boot-info-table" in report
    # remastering keeps all five
    added = (("/x.bin", ISOLINUX_BIN),)
    again = remaster_iso(RemasterSpec(source=iso, output=tmp_path / "again.iso", add=added))
    assert [
        (e.platform_name, e.emulation, e.load_size, e.boot_file)
        for e in inspect_iso(again.path).eltorito
    ] == entries


def test_a_further_entry_is_checked_like_the_first(tmp_path: Path) -> None:
    tree = tree_with(tmp_path, "floppy.img", grub_floppy_image, "X", 1000000)
    boot = dict(
        bios_boot="boot/floppy.img",
        hybrid=False,
        bios_emulation="floppy",
        more_entries=(BootEntry("bios", "boot/missing.img"), BootEntry("ppc", "boot/floppy.img")),
    )
    assert [str(p) for p in validate_master(spec(tree, **boot))] == [
        f"{tree}/boot/floppy.img: a floppy emulation image must be 1.2 MB (1228800 bytes), "
        "1.44 MB (1474560 bytes) or 2.88 MB (2949120 bytes); this one is 1000000 bytes "
        "(pad or rebuild the floppy image to one of these sizes)",
        f"{tree}/boot/missing.img: the file of boot entry 1 (bios) is missing from the tree",
        "boot entry 2 (ppc): unknown platform 'ppc': bios or uefi",
    ]
