"""The hybrid system area: protective MBR + isohybrid boot code + a valid GPT.

Checked by decoding the bytes independently of app.iso.sysarea, and with sgdisk -v,
fdisk -l and xorriso's system area report on real mastered images.
"""

from __future__ import annotations

import re
import struct
import uuid
import zlib
from pathlib import Path

import pytest

from app.iso import sysarea
from app.iso.master import BootSpec, MasterSpec, master_iso
from tests.app.iso.mastering_helpers import (
    BIOS_BOOT,
    EFI_IMAGE,
    make_boot_tree,
    run,
    xorriso_report,
)

ISOHDPFX = Path("/usr/lib/ISOLINUX/isohdpfx.bin")
ESP_TYPE = uuid.UUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")
BASIC_DATA = uuid.UUID("ebd0a0a2-b9e5-4433-87c0-68b6b72699c7")


def _layout(iso_bytes: int, **changes) -> sysarea.HybridLayout:
    values = dict(
        iso_bytes=iso_bytes,
        boot_code=ISOHDPFX.read_bytes(),
        boot_file_block=50,
        efi_block=100,
        efi_bytes=2 * 1024 * 1024,
        disk_id=0x12345678,
        disk_guid=uuid.UUID(int=1, version=4),
        partition_guids=tuple(uuid.UUID(int=i, version=4) for i in (2, 3, 4)),
    )
    values.update(changes)
    return sysarea.HybridLayout(**values)


def _fake_iso(path: Path, size: int) -> None:
    """Zeros with a primary volume descriptor and a terminator, as a volume needs."""
    with open(path, "wb") as f:
        f.truncate(size)
        f.seek(16 * 2048)
        f.write(b"\x01CD001\x01")
        f.seek(17 * 2048)
        f.write(b"\xffCD001\x01")


def _header(data: bytes, lba: int) -> dict:
    raw = data[lba * 512 : lba * 512 + 92]
    fields = struct.unpack("<8sIIIIQQQQ16sQIII", raw)
    names = (
        "sig",
        "rev",
        "size",
        "crc",
        "res",
        "my",
        "alt",
        "first",
        "last",
        "guid",
        "array",
        "count",
        "entry_size",
        "array_crc",
    )
    header = dict(zip(names, fields, strict=True))
    header["crc_ok"] = zlib.crc32(raw[:16] + b"\0\0\0\0" + raw[20:]) == header["crc"]
    return header


def _entries(data: bytes, lba: int) -> list[tuple[uuid.UUID, uuid.UUID, int, int, int, str]]:
    array = data[lba * 512 : lba * 512 + 128 * 128]
    found = []
    for i in range(128):
        type_le, guid_le, first, last, attrs, name = struct.unpack_from(
            "<16s16sQQQ72s", array, i * 128
        )
        if type_le != bytes(16):
            found.append(
                (
                    uuid.UUID(bytes_le=type_le),
                    uuid.UUID(bytes_le=guid_le),
                    first,
                    last,
                    attrs,
                    name.decode("utf-16-le").rstrip("\0"),
                )
            )
    return found


def test_gpt_headers_entries_and_crcs_are_consistent(tmp_path: Path) -> None:
    path = tmp_path / "fake.iso"
    size = 10 * 1024 * 1024
    _fake_iso(path, size)
    layout = _layout(size)
    with open(path, "r+b") as f:
        total = sysarea.write_hybrid_system_area(f, layout)
    data = path.read_bytes()
    assert total == len(data) == size + 36 * 512 and total % 2048 == 0
    last = total // 512 - 1
    primary, backup = _header(data, 1), _header(data, last)
    for header, my, alt, array in ((primary, 1, last, 2), (backup, last, 1, last - 32)):
        assert header["sig"] == b"EFI PART" and header["crc_ok"]
        assert (header["my"], header["alt"], header["array"]) == (my, alt, array)
        assert (header["first"], header["last"]) == (34, last - 33)
        assert (header["count"], header["entry_size"]) == (128, 128)
        assert uuid.UUID(bytes_le=header["guid"]) == layout.disk_guid
        table = data[array * 512 : array * 512 + 128 * 128]
        assert zlib.crc32(table) == header["array_crc"]  # the whole array, not used part
    assert _entries(data, 2) == _entries(data, last - 32)
    hidden_ro = (1 << 60) | (1 << 62) | (1 << 63)
    assert _entries(data, 2) == [
        (BASIC_DATA, layout.partition_guids[0], 64, 399, hidden_ro, "ISO9660"),
        (ESP_TYPE, layout.partition_guids[1], 400, 400 + 4096 - 1, 0, "EFI System"),
        (BASIC_DATA, layout.partition_guids[2], 4496, size // 512 - 1, hidden_ro, "ISO9660"),
    ]
    # The volume descriptors now cover the appended backup GPT.
    assert struct.unpack_from("<I", data, 16 * 2048 + 80)[0] == total // 2048
    assert struct.unpack_from(">I", data, 16 * 2048 + 84)[0] == total // 2048


def test_mbr_has_boot_code_boot_lba_disk_id_and_protective_entry(tmp_path: Path) -> None:
    path = tmp_path / "fake.iso"
    _fake_iso(path, 4 * 1024 * 1024)
    layout = _layout(4 * 1024 * 1024)
    with open(path, "r+b") as f:
        sysarea.write_hybrid_system_area(f, layout)
    mbr = path.read_bytes()[:512]
    assert mbr[:432] == ISOHDPFX.read_bytes()[:432]
    assert struct.unpack_from("<IIIH", mbr, 432) == (50 * 4, 0, 0x12345678, 0)
    entries = [struct.unpack_from("<B3sB3sII", mbr, 446 + 16 * i) for i in range(4)]
    status, _, ptype, _, start, count = entries[0]
    assert (status, ptype, start, count) == (0x00, 0xEE, 1, layout.total_sectors - 1)
    status, _, ptype, _, start, count = entries[1]
    assert (status, ptype, start, count) == (0x80, 0x00, 0, 1)
    assert entries[2] == entries[3] == (0, bytes(3), 0, bytes(3), 0, 0)
    assert mbr[510:] == b"\x55\xaa"


def test_without_efi_image_one_data_partition(tmp_path: Path) -> None:
    path = tmp_path / "fake.iso"
    _fake_iso(path, 2 * 1024 * 1024)
    layout = _layout(2 * 1024 * 1024, efi_block=None, efi_bytes=0)
    with open(path, "r+b") as f:
        sysarea.write_hybrid_system_area(f, layout)
    data = path.read_bytes()
    assert [(e[0], e[2], e[3]) for e in _entries(data, 2)] == [(BASIC_DATA, 64, 4095)]
    assert "No problems found" in run("sgdisk", "-v", path)


def test_sgdisk_finds_no_problem_in_the_synthetic_layout(tmp_path: Path) -> None:
    path = tmp_path / "fake.iso"
    _fake_iso(path, 10 * 1024 * 1024)
    with open(path, "r+b") as f:
        sysarea.write_hybrid_system_area(f, _layout(10 * 1024 * 1024))
    report = run("sgdisk", "-v", path)
    assert "No problems found" in report
    assert "Warning" not in report and "Caution" not in report


@pytest.fixture(scope="module")
def hybrid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("hybrid")
    tree = make_boot_tree(base / "tree")
    (tree / "filler.bin").write_bytes(bytes(range(256)) * 4096)
    iso = base / "hybrid.iso"
    master_iso(
        MasterSpec(
            tree=tree,
            output=iso,
            label="HYBRID",
            boot=BootSpec(bios_boot=BIOS_BOOT, efi_image=EFI_IMAGE),
        )
    )
    return iso


def _eltorito_lba(report: str, entry: int) -> int:
    match = re.search(
        rf"El Torito boot img :\s+{entry}\s+\S+\s+y\s+none\s+\S+\s+\S+\s+\d+\s+"
        r"(\d+)",
        report,
    )
    assert match, report
    return int(match.group(1))


def test_sgdisk_verifies_a_mastered_hybrid_image(hybrid: Path) -> None:
    report = run("sgdisk", "-v", hybrid)
    assert "No problems found" in report
    assert "Warning" not in report and "Caution" not in report
    scan = run("gdisk", "-l", hybrid)
    assert "MBR: protective" in scan and "Found valid GPT with protective MBR" in scan


def test_fdisk_shows_the_efi_partition_at_the_efi_image(hybrid: Path) -> None:
    efi_lba = _eltorito_lba(xorriso_report(hybrid), 2)
    listing = run("fdisk", "-l", hybrid)
    assert "Disklabel type: gpt" in listing
    rows = re.findall(r"^\S+\s+(\d+)\s+(\d+)\s+(\d+)\s+\S+\s+(.+?)\s*$", listing, re.M)
    assert (str(efi_lba * 4), str(efi_lba * 4 + 4095), "4096", "EFI System") in rows
    assert sum(row[3] == "Microsoft basic data" for row in rows) == 2


def test_xorriso_reports_the_expected_system_area(hybrid: Path) -> None:
    report = xorriso_report(hybrid)
    boot_lba = _eltorito_lba(report, 1)
    size = hybrid.stat().st_size // 512
    assert "System area summary: MBR isohybrid cyl-align-off GPT" in report
    assert re.search(rf"MBR partition      :   1   0x00  0xee\s+1\s+{size - 1}\s", report)
    assert re.search(r"MBR partition      :   2   0x80  0x00\s+0\s+1\s", report)
    assert "GPT partname local :   2  EFI System" in report
    assert "GPT partition path :   2  /boot/grub/efi.img" in report
    assert "GPT type GUID      :   2  28732ac11ff8d211ba4b00a0c93ec93b" in report
    assert f"GPT lba range      :      34  {size - 34}  {size - 1}" in report
    assert struct.unpack_from("<I", hybrid.read_bytes(), 432)[0] == boot_lba * 4


def test_pycdlib_opens_the_hybrid_image(hybrid: Path) -> None:
    import pycdlib

    reader = pycdlib.PyCdlib()
    reader.open(str(hybrid))
    try:
        assert reader.get_record(rr_path="/boot/grub/efi.img").data_length == 2 * 1024 * 1024
    finally:
        reader.close()


@pytest.mark.parametrize(
    "boot",
    [BootSpec(bios_boot=BIOS_BOOT), BootSpec(efi_image=EFI_IMAGE)],
    ids=["bios-only", "uefi-only"],
)
def test_sgdisk_verifies_single_boot_hybrids(tmp_path: Path, boot: BootSpec) -> None:
    tree = make_boot_tree(tmp_path / "tree")
    iso = tmp_path / "x.iso"
    master_iso(MasterSpec(tree=tree, output=iso, label="ONE", boot=boot))
    report = run("sgdisk", "-v", iso)
    assert "No problems found" in report and "Warning" not in report
