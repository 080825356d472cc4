"""`livesmith remaster`: third-party images with an added file keep their boot setup.

The sources (see remaster_helpers): iPXE's ISOLINUX hybrid, GRUB's rescue CD (GRUB
hybrid MBR), floppy emulation with an appended EFI partition, UEFI only. Checked with
`inspect` and with xorriso's own reading, and against `xorriso -boot_image any replay`.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from app.errors import ValidationError
from app.iso.inspect import inspect_iso
from app.iso.master import BootSpec, MasterSpec, master_iso
from app.iso.remaster import RemasterSpec, plan_remaster, remaster_iso
from tests.app.iso.mastering_helpers import (
    BIOS_BOOT,
    EFI_IMAGE,
    grub_floppy_image,
    make_boot_tree,
    run,
    xorriso_report,
)
from tests.app.iso.remaster_helpers import (
    ADDED,
    ADDED_TEXT,
    IPXE_ISO,
    SOURCES,
    grub_mkrescue_efi_iso,
    remastered_images,
)
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """name -> (original, remastered with ADDED)."""
    return remastered_images(tmp_path_factory.mktemp("remaster"))


def boot_entries(iso: Path) -> list[tuple[object, ...]]:
    return [
        (e.index, e.platform, e.emulation, e.load_size, e.boot_file, e.bootable)
        for e in inspect_iso(iso).eltorito
    ]


def partitions(iso: Path) -> list[tuple[object, ...]]:
    return [
        (p.scheme, p.number, p.type_id, p.name, p.bootable) for p in inspect_iso(iso).partitions
    ]


def xorriso_boot_lines(iso: Path) -> list[str]:
    """xorriso's El Torito and system area lines, block addresses and sizes left out."""
    lines = []
    for line in xorriso_report(iso).splitlines():
        if line.startswith(("El Torito boot img", "El Torito img opts", "El Torito img path")):
            lines.append(re.sub(r"\s+\d+$", "", line) if "boot img" in line else line)
        elif line.startswith(("System area summary", "MBR partition  ", "GPT type GUID")):
            lines.append(re.sub(r"\s+\d+\s+\d+$", "", line))
    return lines


@pytest.mark.parametrize("name", SOURCES)
def test_the_remastered_image_has_the_same_boot_entries_and_partitions(images, name) -> None:
    original, remastered = images[name]
    assert boot_entries(remastered) == boot_entries(original)
    assert partitions(remastered) == partitions(original)
    before, after = inspect_iso(original), inspect_iso(remastered)
    assert (after.hybrid, after.hybrid_reason) == (before.hybrid, before.hybrid_reason)
    assert after.label == before.label
    # xorriso sees the same: emulation, load sizes, boot info table, grub2-boot-info,
    # isohybrid MBR code, partition types
    assert xorriso_boot_lines(remastered) == xorriso_boot_lines(original)
    # ESPs and appended partitions keep their size
    esp = [(p.number, p.size) for p in before.partitions if "EFI" in p.type_name]
    assert esp == [(p.number, p.size) for p in after.partitions if "EFI" in p.type_name]


@pytest.mark.parametrize("name", SOURCES)
def test_the_added_file_is_there_and_the_old_files_are_unchanged(images, tmp_path, name) -> None:
    original, remastered = images[name]
    out = tmp_path / "added.txt"
    run("xorriso", "-osirrox", "on", "-indev", remastered, "-extract", ADDED, out)
    assert out.read_text() == ADDED_TEXT
    old = {e.path: e.size for e in inspect_iso(original).files}
    new = {e.path: e.size for e in inspect_iso(remastered).files}
    assert {p: s for p, s in new.items() if p in old} == old
    assert set(new) - set(old) == {"/livesmith", ADDED}


# xorriso 1.5.4 cannot replay the UEFI-only image ("GPT partitions 0 and 1 overlap by 48
# blocks": it keeps the old ESP range while moving efi.img); remastering can.
@pytest.mark.parametrize("name", SOURCES[:3])
def test_the_boot_setup_is_the_one_xorriso_replays(images, tmp_path, name) -> None:
    original, remastered = images[name]
    added = tmp_path / "added.txt"
    added.write_text(ADDED_TEXT)
    replayed = tmp_path / "replayed.iso"
    run(
        "xorriso", "-indev", original, "-outdev", replayed, "-map", added, ADDED,
        "-boot_image", "any", "replay",
    )  # fmt: skip
    assert boot_entries(remastered) == boot_entries(replayed)
    assert partitions(remastered) == partitions(replayed)


def test_boot_info_tables_and_hybrid_pointers_follow_the_boot_images(images) -> None:
    # GRUB: the MBR points at core.img in eltorito.img, eltorito.img at its second sector
    original, remastered = images["grub-rescue"]
    (entry,) = inspect_iso(remastered).eltorito
    assert entry.load_rba != inspect_iso(original).eltorito[0].load_rba  # it did move
    data = remastered.read_bytes()
    block = entry.load_rba
    assert struct.unpack_from("<Q", data, 432)[0] == block * 4 + 4
    assert struct.unpack_from("<Q", data, block * 2048 + 2548)[0] == block * 4 + 5
    assert struct.unpack_from("<II", data, block * 2048 + 8) == (16, block)
    # ISOLINUX: isohdpfx's pointer at 432 is isolinux.bin's 512-byte sector
    original, remastered = images["ipxe"]
    bios = inspect_iso(remastered).eltorito[0]
    data = remastered.read_bytes()
    assert struct.unpack_from("<I", data, 432)[0] == bios.load_rba * 4
    assert struct.unpack_from("<II", data, bios.load_rba * 2048 + 8) == (16, bios.load_rba)
    assert data[:432] == original.read_bytes()[:432]
    assert len(data) % (1024 * 1024) == 0  # isohybrid's cylinder padding is kept


def test_the_appended_partition_and_its_el_torito_entry_move_together(images) -> None:
    original, remastered = images["floppy-efi"]
    old_part = [p for p in inspect_iso(original).partitions if p.type_id == "0xef"][0]
    new_report = inspect_iso(remastered)
    new_part = [p for p in new_report.partitions if p.type_id == "0xef"][0]
    assert new_part.start >= new_report.volume_size  # still after the ISO data
    uefi = [e for e in new_report.eltorito if e.platform_name == "UEFI"][0]
    assert uefi.load_rba * 2048 == new_part.start
    with open(original, "rb") as a, open(remastered, "rb") as b:
        a.seek(old_part.start)
        b.seek(new_part.start)
        assert a.read(old_part.size) == b.read(new_part.size)


def test_remove_a_file_and_relabel(images, tmp_path) -> None:
    original, _ = images["grub-rescue"]
    out = tmp_path / "smaller.iso"
    remaster_iso(
        RemasterSpec(source=original, output=out, remove=("/boot/grub/fonts",), label="RESCUE_2")
    )
    report = inspect_iso(out)
    assert report.label == "RESCUE_2"
    assert not [f for f in report.files if f.path.startswith("/boot/grub/fonts")]
    assert boot_entries(out) == boot_entries(original)


# --------------------------------------------------------------------------- refused


def problems(spec: RemasterSpec) -> list[str]:
    return [str(p) for p in plan_remaster(spec).problems]


def test_an_image_whose_partitions_cannot_be_moved_is_refused(tmp_path) -> None:
    source = grub_mkrescue_efi_iso(tmp_path)
    spec = RemasterSpec(source=source, output=tmp_path / "out.iso")
    found = problems(spec)
    assert len(found) == 1, found
    assert re.fullmatch(
        rf"{source}: GPT partition \d+ \(from byte \d+ to \d+\) does not cover the ISO, an "
        r"El Torito boot image or a partition appended after the ISO data: it cannot be "
        r"moved with them \(the image has structures in the ISO data that only its "
        r"mastering tool knows, e\.g\. an HFS\+ partition for Macs\)",
        found[0],
    ), found[0]
    with pytest.raises(ValidationError):
        remaster_iso(spec)
    assert not (tmp_path / "out.iso").exists()


def test_mbr_code_that_points_at_something_unknown_is_refused(tmp_path) -> None:
    source = tmp_path / "odd.iso"
    shutil.copy(IPXE_ISO, source)
    with open(source, "r+b") as f:
        f.seek(432)
        f.write(struct.pack("<I", 100 * 4))  # not isolinux.bin
    assert problems(RemasterSpec(source=source, output=tmp_path / "out.iso")) == [
        f"{source}: the MBR boot code points at sector 400, which is not a BIOS boot image "
        "of the El Torito catalog: it would point at other data after remastering"
    ]


def test_boot_images_and_the_catalog_cannot_be_removed_or_replaced(tmp_path) -> None:
    local = tmp_path / "x.bin"
    local.write_bytes(b"x")
    spec = RemasterSpec(
        source=IPXE_ISO,
        output=tmp_path / "out.iso",
        add=(("/isolinux.bin", local), ("/new.txt", tmp_path / "missing.txt")),
        remove=("/efi.img", "/nope", "/boot.cat"),
    )
    assert problems(spec) == [
        "/efi.img: removing it would remove El Torito boot image 2 (/efi.img): the image "
        "would not boot",
        "/nope: there is no such file or directory in the ISO",
        "/boot.cat: removing it would remove the El Torito boot catalog (/boot.cat): the "
        "image would not boot",
        "/isolinux.bin: is the El Torito boot catalog or a boot image; replacing it would "
        "change the boot setup, which remastering keeps",
        f"{tmp_path}/missing.txt: cannot read the file to add: No such file or directory",
    ]


def livesmith(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )


def test_the_command_line(tmp_path) -> None:
    added = tmp_path / "menu.txt"
    added.write_text(ADDED_TEXT)
    out = tmp_path / "out.iso"
    result = livesmith(
        "remaster", IPXE_ISO, "-o", out, "--add", f"/menu.txt={added}", "--label", "IPXE_2"
    )
    assert result.returncode == 0, result.stderr
    assert "kept: ISOLINUX isohybrid MBR boot code" in result.stdout
    assert result.stdout.splitlines()[-1] == f"{out}: {out.stat().st_size} bytes"
    assert inspect_iso(out).label == "IPXE_2"
    check = livesmith("remaster", IPXE_ISO, "-o", tmp_path / "c.iso", "--check")
    assert check.returncode == 0, check.stderr
    assert check.stdout.splitlines() == [
        "keeps: El Torito 1: BIOS, none emulation, /isolinux.bin (load size 4, boot info table)",
        "keeps: El Torito 2: UEFI, none emulation, /efi.img (load size 1728)",
        "keeps: ISOLINUX isohybrid MBR boot code",
        "keeps: MBR partition table (1 entries)",
    ]
    assert not (tmp_path / "c.iso").exists()
    bad = livesmith("remaster", IPXE_ISO, "-o", out, "--add", "menu.txt")
    assert bad.returncode == 2
    assert "'menu.txt' is not ISO_PATH=LOCAL_PATH" in bad.stderr
    refused = livesmith("remaster", IPXE_ISO, "-o", tmp_path / "x.iso", "--remove", "/efi.img")
    assert refused.returncode == 3
    assert "removing it would remove El Torito boot image 2" in refused.stderr
    assert not (tmp_path / "x.iso").exists()


def test_livesmiths_own_hybrid_images_with_a_gpt_are_kept(tmp_path) -> None:
    """ISOLINUX + ESP inside the tree (the volume covers the backup GPT), and floppy
    emulation + an appended ESP: the GPT is rewritten valid for the new size."""
    tree = make_boot_tree(tmp_path / "tree")
    own = master_iso(
        MasterSpec(
            tree=tree,
            output=tmp_path / "own.iso",
            label="OWN",
            boot=BootSpec(bios_boot=BIOS_BOOT, efi_image=EFI_IMAGE),
        )
    ).path
    floppy_tree = tmp_path / "floppy-tree"
    (floppy_tree / "boot").mkdir(parents=True)
    grub_floppy_image(floppy_tree / "boot" / "floppy.img")
    appended = master_iso(
        MasterSpec(
            tree=floppy_tree,
            output=tmp_path / "appended.iso",
            label="APPENDED",
            boot=BootSpec(
                bios_boot="boot/floppy.img",
                bios_emulation="floppy",
                hybrid=False,
                efi_partition=tree / "boot" / "grub" / "efi.img",
            ),
        )
    ).path
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * 4096)  # 1 MiB: everything after it moves
    for source in (own, appended):
        out = tmp_path / f"{source.stem}-new.iso"
        remaster_iso(RemasterSpec(source=source, output=out, add=(("/big.bin", big),)))
        assert boot_entries(out) == boot_entries(source)
        before, after = inspect_iso(source), inspect_iso(out)
        assert [(p.scheme, p.type_id, p.name) for p in after.partitions] == [
            (p.scheme, p.type_id, p.name) for p in before.partitions
        ]
        assert after.hybrid_reason == before.hybrid_reason
        assert after.partition_problems == []
        verify = run("sgdisk", "-v", out)
        assert "No problems found" in verify, verify
        esp_before = [p for p in before.partitions if p.type_name == "EFI System"][0]
        esp_after = [p for p in after.partitions if p.type_name == "EFI System"][0]
        assert esp_after.size == esp_before.size
        # the appended ESP follows the grown ISO data (efi.img in the tree comes earlier)
        assert esp_after.start > esp_before.start or source == own
        uefi = [e for e in after.eltorito if e.platform_name == "UEFI"][0]
        assert uefi.load_rba * 2048 == esp_after.start


def test_an_image_without_rock_ridge_names_gets_no_file_changes(tmp_path) -> None:
    import io

    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(joliet=3)
    iso.add_fp(io.BytesIO(b"hello"), 5, "/HELLO.TXT;1", joliet_path="/hello.txt")
    source = tmp_path / "plain.iso"
    iso.write(str(source))
    iso.close()
    local = tmp_path / "x.txt"
    local.write_text("x")
    spec = RemasterSpec(source=source, output=tmp_path / "out.iso", add=(("/x.txt", local),))
    assert problems(spec) == [
        f"{source}: the image has no Rock Ridge names (joliet names only); remastering "
        "changes files only of images with Rock Ridge"
    ]
