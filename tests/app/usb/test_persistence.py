"""Persistence on the stick: the partition-table edits on real images (ours, xorriso's, the
MBR-only ipxe.iso), checked with sgdisk -v, fdisk, xorriso and blkid; `livesmith write
--persistence` and `livesmith verify` on image files and on real loop devices."""

from __future__ import annotations

import hashlib
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from app.cli import EXIT_INPUT
from app.errors import InputError
from app.usb.persistence import (
    LABEL,
    LINUX_DATA,
    MIN_SIZE,
    PersistenceError,
    changed_ranges,
    edit_tables,
    find_on_device,
    parse_size,
    plan_persistence,
)
from tests.app.usb.writer_support import loop_device, run
from tests.conftest import ROOT, needs_root
from tests.integration.qemu import make_hybrid_iso

MiB = 1 << 20
IPXE = Path("/usr/lib/ipxe/ipxe.iso")  # Debian package ipxe: an MBR-only isohybrid image


def livesmith(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        text=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )


def hybrid_iso(tmp: Path, method: str) -> Path:
    """A small BIOS+UEFI hybrid ISO: ours (app.iso.master) or xorriso's."""
    tree = tmp / "tree"
    (tree / "boot/syslinux").mkdir(parents=True)
    (tree / "boot/grub").mkdir(parents=True)
    (tree / "live").mkdir()
    for name in ("isolinux.bin",):
        shutil.copy(f"/usr/lib/ISOLINUX/{name}", tree / "boot/syslinux" / name)
    shutil.copy("/usr/lib/syslinux/modules/bios/ldlinux.c32", tree / "boot/syslinux")
    run("mkfs.vfat", "-C", str(tree / "boot/grub/efi.img"), "1440")
    (tree / "live/data").write_bytes(bytes(range(256)) * 8192)  # 2 MiB
    return make_hybrid_iso(tree, tmp / f"{method}.iso", "PERSIST", method=method)


@pytest.fixture(params=["master", "xorriso"])
def gpt_image(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return hybrid_iso(tmp_path, request.param)


def blank_file(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def sgdisk_verify(disk: str | Path) -> str:
    out = subprocess.run(["sgdisk", "-v", str(disk)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "No problems found" in out.stdout, out.stdout
    return out.stdout


def sgdisk_problems(disk: str | Path) -> set[str]:
    out = subprocess.run(["sgdisk", "-v", str(disk)], capture_output=True, text=True)
    lines = {line for line in out.stdout.splitlines() if line.startswith(("Problem", "Warning"))}
    assert lines or "No problems found" in out.stdout, out.stdout
    return lines


def sgdisk_as_clean_as(stick: str | Path, image: Path) -> None:
    """Ours is clean; xorriso's hybrid MBR (partition 1 from sector 0) draws two complaints
    from sgdisk already: the stick must have no problem the image did not have."""
    before = sgdisk_problems(image)
    if image.name == "master.iso":
        assert before == set()
    assert sgdisk_problems(stick) <= before


def el_torito(disk: str | Path) -> list[str]:
    text = run("xorriso", "-indev", str(disk), "-report_el_torito", "plain")
    return [line for line in text.splitlines() if line.startswith("El Torito")]


def blkid_at(disk: Path, offset: int) -> str:
    return run("blkid", "-p", "-O", str(offset), "-o", "export", str(disk))


# --- sizes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [("512M", 512 * MiB), ("1G", 1 << 30), ("2GiB", 2 << 30), ("1536MB", 1536 * MiB),
     ("65536K", 64 * MiB), ("rest", None), ("REST", None)],
)  # fmt: skip
def test_sizes(text: str, size: int | None) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "512", "12X", "1.5G", "-1G", "G", "1 G B", "lots"])
def test_bad_sizes_say_what_is_wrong(text: str) -> None:
    with pytest.raises(InputError) as err:
        parse_size(text)
    assert "is not a size like 512M or 1G, or 'rest'" in str(err.value)
    assert err.value.where == "--persistence"


def test_a_size_below_the_minimum_is_refused() -> None:
    with pytest.raises(InputError, match="below the minimum of 64 MiB"):
        parse_size("32M")
    assert parse_size("64M") == MIN_SIZE


# --- the tables, on images written to files -----------------------------------------------------


def test_gpt_image_gets_a_partition_and_the_backup_gpt_moves_to_the_end(
    gpt_image: Path, tmp_path: Path
) -> None:
    stick = blank_file(tmp_path / "stick.img", 200 * MiB)
    out = livesmith("write", str(gpt_image), str(stick), "--yes", "--persistence", "rest")
    assert out.returncode == 0, out.stderr
    assert "written and verified" in out.stdout
    assert "ext4 labelled LIVESMITH-RW" in out.stdout
    assert "bytes 512-603 (primary GPT header)" in out.stdout

    sgdisk_as_clean_as(stick, gpt_image)
    data = stick.read_bytes()
    sectors = len(data) // 512
    # The primary header names the stick's last sector as its backup; a valid backup is there.
    primary = struct.unpack_from("<8sIIIIQQQQ16sQIII", data, 512)
    array_sectors = -(-primary[11] * primary[12] // 512)  # 32 (ours) or 62 (xorriso's)
    assert primary[6] == sectors - 1 and primary[8] == sectors - 2 - array_sectors
    backup = struct.unpack_from("<8sIIIIQQQQ16sQIII", data, (sectors - 1) * 512)
    assert backup[0] == b"EFI PART" and backup[5] == sectors - 1 and backup[6] == 1
    assert backup[10] == sectors - 1 - array_sectors and backup[13] == primary[13]
    header = bytearray(data[(sectors - 1) * 512 : (sectors - 1) * 512 + 92])
    crc = struct.unpack_from("<I", header, 16)[0]
    header[16:20] = bytes(4)
    assert zlib.crc32(header) == crc
    # Ours: the protective MBR entry covers the whole stick now (UEFI: size = disk size - 1).
    # xorriso's hybrid MBR has no 0xEE entry (so Linux reads the MBR, not the GPT): its
    # entries stay, and the partition is added in a free MBR slot too.
    kinds = [data[446 + 16 * i + 4] for i in range(4)]
    if gpt_image.name == "master.iso":
        ee = kinds.index(0xEE)
        assert struct.unpack_from("<II", data, 446 + 16 * ee + 8) == (1, sectors - 1)
    else:
        assert kinds[:2] == list(gpt_image.read_bytes()[450:482:16]) and 0xEE not in kinds
        assert data[446:478] == gpt_image.read_bytes()[446:478] and kinds[2] == 0x83
        assert "MBR partition entry 3" in out.stdout
    # The new partition: after the image, on a MiB boundary, to the last whole MiB.
    image_size = gpt_image.stat().st_size
    start = -(-image_size // MiB) * MiB
    last = (sectors - 2 - array_sectors + 1) // 2048 * 2048 - 1
    entries = [data[1024 + 128 * i : 1024 + 128 * (i + 1)] for i in range(primary[11])]
    linux = [e for e in entries if e[:16] == LINUX_DATA.bytes_le]
    assert len(linux) == 1
    assert struct.unpack_from("<QQ", linux[0], 32) == (start // 512, last)
    assert linux[0][56:].decode("utf-16-le").rstrip("\0") == "LIVESMITH-RW"
    if gpt_image.name == "master.iso":
        assert re.search(
            rf"\n\s+4\s+{start // 512}\s+{last}\s.*8300\s+LIVESMITH-RW\n",
            run("sgdisk", "-p", str(stick)),
        )
    found = blkid_at(stick, start)
    assert f"LABEL={LABEL}" in found and "TYPE=ext4" in found
    # El Torito and the ISO 9660 volume are untouched; the image's bytes verify.
    assert el_torito(stick) == el_torito(gpt_image)
    verify = livesmith("verify", str(gpt_image), str(stick))
    assert verify.returncode == 0, verify.stderr
    assert "except the partition-table bytes the persistence partition changed" in verify.stdout
    assert "bytes 512-603 (primary GPT header)" in verify.stdout


def test_verify_checks_every_other_byte(gpt_image: Path, tmp_path: Path) -> None:
    stick = blank_file(tmp_path / "stick.img", 200 * MiB)
    assert (
        livesmith("write", str(gpt_image), str(stick), "--yes", "--persistence", "100M").returncode
        == 0
    )
    head = gpt_image.read_bytes()[:65536]
    plan = find_on_device(head, gpt_image.stat().st_size, stick.read_bytes()[:65536], 200 * MiB)
    assert plan is not None and plan.size == 100 * MiB
    skipped = changed_ranges(head, plan)
    assert [r.what for r in skipped][-2:] == [
        "primary GPT header",
        f"GPT partition entry {plan.slot + 1}",
    ]
    # Exactly these bytes differ from the image, nothing else in the image's extent.
    written = stick.read_bytes()[: gpt_image.stat().st_size]
    image = gpt_image.read_bytes()
    differing = [i for i in range(65536) if written[i] != image[i]]
    assert differing and all(any(r.start <= i < r.end for r in skipped) for i in differing)
    assert written[65536:] == image[65536:]

    def flip(offset: int) -> None:
        with open(stick, "r+b") as f:
            f.seek(offset)
            byte = f.read(1)
            f.seek(offset)
            f.write(bytes([byte[0] ^ 0xFF]))

    # A damaged new GPT entry breaks the array's CRC: no valid persistence partition is
    # found, so nothing is skipped, and the stick does not pass as the image.
    flip(skipped[-1].start + 40)
    assert livesmith("verify", str(gpt_image), str(stick)).returncode != 0
    flip(skipped[-1].start + 40)
    assert livesmith("verify", str(gpt_image), str(stick)).returncode == 0
    flip(445)  # the last byte of the boot code, just before the MBR partition table
    bad = livesmith("verify", str(gpt_image), str(stick))
    assert bad.returncode != 0 and "byte 445 differs" in bad.stderr
    flip(445)
    flip(32768 + 40)  # the volume label in the ISO 9660 primary volume descriptor
    bad = livesmith("verify", str(gpt_image), str(stick))
    assert bad.returncode != 0 and f"byte {32768 + 40} differs" in bad.stderr


def test_edit_is_pure_and_deterministic(gpt_image: Path) -> None:
    head = gpt_image.read_bytes()[:65536]
    plan = plan_persistence(head, gpt_image.stat().st_size, 300 * MiB, None, where="stick")
    a, backup_a = edit_tables(head, plan)
    b, backup_b = edit_tables(head, plan)
    assert a == b and backup_a == backup_b and len(backup_a) % 512 == 0
    assert plan.last == 300 * MiB // 512 - 2048 - 1  # the last whole MiB before the backup GPT


def test_mbr_only_isohybrid_gets_an_mbr_entry(tmp_path: Path) -> None:
    stick = blank_file(tmp_path / "stick.img", 100 * MiB)
    out = livesmith("write", str(IPXE), str(stick), "--yes", "--persistence", "64M")
    assert out.returncode == 0, out.stderr
    assert "MBR partition 2" in out.stdout and "bytes 462-477 (MBR partition entry 2)" in out.stdout
    table = run("sfdisk", "--dump", str(stick))
    assert "start=        4096, size=      131072, type=83" in table, table
    assert f"LABEL={LABEL}" in blkid_at(stick, 2 * MiB)
    assert el_torito(stick) == el_torito(IPXE)
    verify = livesmith("verify", str(IPXE), str(stick))
    assert verify.returncode == 0 and "MBR partition entry 2" in verify.stdout


def test_mbr_without_a_free_slot_is_refused_before_writing(tmp_path: Path) -> None:
    image = tmp_path / "full.img"
    data = bytearray(IPXE.read_bytes())
    for slot in range(1, 4):  # partitions 2-4 inside the image
        entry = struct.pack("<B3sB3sII", 0, b"\0\0\0", 0x0C, b"\0\0\0", 100 * slot, 10)
        data[446 + 16 * slot : 462 + 16 * slot] = entry
    image.write_bytes(bytes(data))
    stick = tmp_path / "stick.img"
    stick.write_bytes(b"\xa5" * (100 * MiB))
    before = hashlib.sha256(stick.read_bytes()).hexdigest()
    out = livesmith("write", str(image), str(stick), "--yes", "--persistence", "rest")
    assert out.returncode == EXIT_INPUT
    assert "has no free partition slot" in out.stderr
    assert hashlib.sha256(stick.read_bytes()).hexdigest() == before


@pytest.mark.parametrize(
    ("size", "expected"),
    [("rest", "persistence needs at least 64 MiB"), ("1G", "no room for 1 GiB")],
)
def test_a_stick_too_small_is_refused_before_writing(
    gpt_image: Path, tmp_path: Path, size: str, expected: str
) -> None:
    stick = tmp_path / "stick.img"
    stick.write_bytes(b"\xa5" * (gpt_image.stat().st_size + 3 * MiB))
    before = hashlib.sha256(stick.read_bytes()).hexdigest()
    out = livesmith("write", str(gpt_image), str(stick), "--yes", "--persistence", size)
    assert out.returncode == EXIT_INPUT, out.stderr
    assert expected in out.stderr and "nothing was written" in out.stderr
    assert hashlib.sha256(stick.read_bytes()).hexdigest() == before


def test_persistence_size_syntax_error_from_the_command_line(
    gpt_image: Path, tmp_path: Path
) -> None:
    stick = blank_file(tmp_path / "stick.img", 200 * MiB)
    out = livesmith("write", str(gpt_image), str(stick), "--yes", "--persistence", "2 gigs")
    assert out.returncode == EXIT_INPUT
    assert "--persistence: persistence size '2 gigs' is not a size like 512M or 1G" in out.stderr
    assert stick.read_bytes()[: 1 * MiB] == bytes(MiB)  # nothing was written


def test_image_without_table_is_refused(tmp_path: Path) -> None:
    head = bytes(65536)
    with pytest.raises(PersistenceError, match="no MBR or partition table"):
        plan_persistence(head, 10 * MiB, 100 * MiB, None, where="stick")


# --- real loop devices ------------------------------------------------------------------------


@needs_root
@pytest.mark.root
def test_write_with_persistence_to_a_loop_device(gpt_image: Path, tmp_path: Path) -> None:
    backing = blank_file(tmp_path / "stick.img", 256 * MiB)
    with loop_device(backing) as node:
        out = livesmith("write", str(gpt_image), node, "--yes", "--persistence", "rest")
        assert out.returncode == 0, out.stderr
        assert "written and verified" in out.stdout and "not compared" in out.stdout
        sgdisk_as_clean_as(node, gpt_image)
        verify = livesmith("verify", str(gpt_image), node)
        assert verify.returncode == 0, verify.stderr
        assert "bytes 512-603 (primary GPT header)" in verify.stdout
        # The kernel here may have no partition parsers: partx reads the table in user space.
        # Only ours: xorriso's MBR partitions overlap, which the kernel refuses to add.
        start = -(-gpt_image.stat().st_size // MiB) * MiB // 512
        rows = [line.split() for line in run("partx", "-g", "-o", "NR,START", node).splitlines()]
        number = next(nr for nr, first in rows if int(first) == start)
        subprocess.run(["partx", "-d", node], capture_output=True)
        run("partx", "-a", "--nr", number, node)
        try:
            last = f"{node}p{number}"
            info = run("blkid", "-o", "export", last)
            assert f"LABEL={LABEL}" in info and "TYPE=ext4" in info
            if gpt_image.name == "master.iso":  # seen through the GPT (xorriso's: the MBR)
                assert "PARTLABEL=LIVESMITH-RW" in info
            run("e2fsck", "-fn", last)
            mnt = tmp_path / "mnt"
            mnt.mkdir()
            run("mount", last, str(mnt))
            try:
                (mnt / "kept").write_text("yes")
            finally:
                run("umount", str(mnt))
        finally:
            subprocess.run(["partx", "-d", node], capture_output=True)


@needs_root
@pytest.mark.root
@pytest.mark.skipif(shutil.which("bmaptool") is None, reason="needs bmap-tools")
def test_persistence_with_a_block_map(tmp_path: Path) -> None:
    """Only the mapped blocks are written and read back; the tables persistence changed
    lie in the first 64 KiB, which are always written, and are left out of the read-back."""
    from tests.app.usb.test_bmap_write import sparse_bootable_image

    image = sparse_bootable_image(tmp_path / "live.img")
    run("bmaptool", "create", str(image), "-o", str(tmp_path / "live.img.bmap"))
    with loop_device(blank_file(tmp_path / "stick.img", 160 * MiB)) as node:
        out = livesmith("write", str(image), node, "--yes", "--persistence", "rest")
        assert out.returncode == 0, out.stderr
        assert "its block map names" in out.stdout and "written and verified" in out.stdout
        assert "bytes 462-477 (MBR partition entry 2)" in out.stdout
        assert f"LABEL={LABEL}" in run("blkid", "-p", "-O", str(64 * MiB), "-o", "export", node)
        verify = livesmith("verify", str(image), node)
        assert verify.returncode == 0, verify.stderr


def test_persistence_is_for_one_stick_at_a_time(gpt_image: Path, tmp_path: Path) -> None:
    sticks = [blank_file(tmp_path / f"stick{i}.img", 200 * MiB) for i in (1, 2)]
    out = livesmith("write", str(gpt_image), *map(str, sticks), "--yes", "--persistence", "rest")
    assert out.returncode == EXIT_INPUT
    assert "--persistence adds a partition to one stick at a time" in out.stderr
    assert all(s.read_bytes()[:MiB] == bytes(MiB) for s in sticks)
