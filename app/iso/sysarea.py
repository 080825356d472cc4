"""The system area of a hybrid ISO: a protective MBR with isohybrid boot code, and a GPT.

pycdlib's own isohybrid GPT is invalid (its entry-array CRC covers only the used
entries, the backup header has other GUIDs, there is no protective MBR entry), so the
first 17 KiB of the image and a backup GPT after the ISO data are written here.

Layout, in 512-byte sectors (ECMA-119 leaves the first 32 KiB to the system):

    0        MBR: syslinux boot code (bytes 0-431), LBA of isolinux.bin at 432, disk id
             at 440; partition 1: 0xEE (protective), not active, from sector 1 over the
             whole image, as UEFI asks; partition 2: type 0x00, active, sector 0 only.
             The active dummy is for BIOSes that boot only a disk with an active
             partition, and for readers (pycdlib) that expect one in an isohybrid MBR;
             an active 0xEE entry instead violates the GPT specification (gdisk warns
             that some UEFI firmware then ignores the GPT; OVMF does not).
             xorriso writes the same pair for --mbr-force-bootable with a GPT.
    1        primary GPT header
    2-33     primary partition entry array (128 entries of 128 bytes)
    64-...   the ISO 9660 volume; GPT partitions: "ISO9660" (Basic Data) before the
             EFI image, "EFI System" exactly over the EFI image's extent, "ISO9660"
             after it. They never overlap, so `sgdisk -v` finds no problem; the Basic
             Data ones are hidden and get no drive letter (Windows would otherwise
             offer to format them: no file system starts at their first sector).
    end-36   3 sectors of padding (the image stays a multiple of 2048 bytes)
    end-33   backup partition entry array, then the backup GPT header (last sector)

UEFI firmware boots a USB stick written with this image through the GPT ESP; BIOSes
run the MBR boot code, which loads isolinux.bin from the ISO.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from dataclasses import dataclass
from typing import BinaryIO

SECTOR = 512
ISO_BLOCK = 2048
MBR_CODE_SIZE = 432
GPT_ENTRY_COUNT = 128
GPT_ENTRY_SIZE = 128
GPT_ARRAY_SECTORS = GPT_ENTRY_COUNT * GPT_ENTRY_SIZE // SECTOR  # 32
FIRST_USABLE = 2 + GPT_ARRAY_SECTORS  # 34
ISO_DATA_START = 16 * ISO_BLOCK // SECTOR  # 64: the volume descriptors
TAIL_PAD_SECTORS = 3  # 3 + 32 + 1 sectors = 18 KiB keeps the image a multiple of 2048
TAIL_SECTORS = TAIL_PAD_SECTORS + GPT_ARRAY_SECTORS + 1

BASIC_DATA = uuid.UUID("ebd0a0a2-b9e5-4433-87c0-68b6b72699c7")
EFI_SYSTEM = uuid.UUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")

# Microsoft Basic Data attributes: read-only (60), hidden (62), no drive letter (63).
DATA_ATTRIBUTES = (1 << 60) | (1 << 62) | (1 << 63)

# The isolinux.bin entry point that isohybrid boot code jumps to is marked with this
# signature at offset 0x40 (pycdlib's add_isohybrid checks the same bytes).
ISOLINUX_HYBRID_SIGNATURE = b"\xfb\xc0\x78\x70"
ISOLINUX_SIGNATURE_OFFSET = 0x40

# GRUB's boot_hybrid.img reads a 64-bit LBA at byte 432 of the MBR: the 512-byte sector
# of core.img in eltorito.img (its block * 4 + 4, after the 2048-byte cdboot.img), and
# core.img's own block list at byte 2548 of eltorito.img starts one sector later.
GRUB_MBR_LBA_OFFSET = 4
GRUB_BOOT_INFO_OFFSET = 2548


@dataclass(frozen=True)
class GptPartition:
    first: int  # first sector (inclusive)
    last: int  # last sector (inclusive)
    type_guid: uuid.UUID
    guid: uuid.UUID
    name: str
    attributes: int = 0

    def entry(self) -> bytes:
        name = self.name.encode("utf-16-le")[:72]
        return struct.pack(
            "<16s16sQQQ72s",
            self.type_guid.bytes_le,
            self.guid.bytes_le,
            self.first,
            self.last,
            self.attributes,
            name,
        )


@dataclass(frozen=True)
class HybridLayout:
    """Everything the system area depends on."""

    iso_bytes: int  # size pycdlib wrote (a multiple of 2048)
    boot_code: bytes  # MBR boot code (isohdpfx.bin), or b"" for none
    boot_file_block: int | None  # 2048-byte block of isolinux.bin
    efi_block: int | None  # 2048-byte block of the EFI (FAT) image
    efi_bytes: int  # size of the EFI image
    disk_id: int  # MBR disk signature
    disk_guid: uuid.UUID
    partition_guids: tuple[uuid.UUID, uuid.UUID, uuid.UUID]
    boot_lba_offset: int = 0  # added to the boot file's 512-byte LBA at 432 (GRUB: 4)

    @property
    def total_sectors(self) -> int:
        return self.iso_bytes // SECTOR + TAIL_SECTORS

    @property
    def total_bytes(self) -> int:
        return self.total_sectors * SECTOR


def partitions(layout: HybridLayout) -> list[GptPartition]:
    """GPT partitions: the ISO data around the ESP, never overlapping."""
    iso_end = layout.iso_bytes // SECTOR  # first sector after the ISO data
    data_guid_1, esp_guid, data_guid_2 = layout.partition_guids
    if layout.efi_block is None:
        return [
            GptPartition(
                ISO_DATA_START, iso_end - 1, BASIC_DATA, data_guid_1, "ISO9660", DATA_ATTRIBUTES
            )
        ]
    esp_first = layout.efi_block * (ISO_BLOCK // SECTOR)
    esp_last = esp_first + max(1, -(-layout.efi_bytes // SECTOR)) - 1
    parts = []
    if esp_first > ISO_DATA_START:
        parts.append(
            GptPartition(
                ISO_DATA_START, esp_first - 1, BASIC_DATA, data_guid_1, "ISO9660", DATA_ATTRIBUTES
            )
        )
    parts.append(GptPartition(esp_first, esp_last, EFI_SYSTEM, esp_guid, "EFI System"))
    if esp_last + 1 < iso_end:
        parts.append(
            GptPartition(
                esp_last + 1, iso_end - 1, BASIC_DATA, data_guid_2, "ISO9660", DATA_ATTRIBUTES
            )
        )
    return parts


def _chs(lba: int) -> bytes:
    """CHS address with the usual 255 heads x 63 sectors, or the 'too far' marker."""
    cylinder, rest = divmod(lba, 255 * 63)
    if cylinder > 1023:
        return b"\xfe\xff\xff"
    head, sector = divmod(rest, 63)
    return bytes([head, ((cylinder >> 2) & 0xC0) | (sector + 1), cylinder & 0xFF])


def build_mbr(layout: HybridLayout) -> bytes:
    """Sector 0: boot code, isolinux.bin's LBA, disk id, protective 0xEE + active dummy."""
    code = layout.boot_code[:MBR_CODE_SIZE].ljust(MBR_CODE_SIZE, b"\0")
    boot_lba = 0
    if layout.boot_file_block is not None:
        boot_lba = layout.boot_file_block * (ISO_BLOCK // SECTOR) + layout.boot_lba_offset
    size = min(layout.total_sectors - 1, 0xFFFFFFFF)
    protective = (
        b"\x00" + _chs(1) + b"\xee" + _chs(layout.total_sectors - 1) + struct.pack("<II", 1, size)
    )
    active_dummy = b"\x80" + _chs(0) + b"\x00" + _chs(0) + struct.pack("<II", 0, 1)
    return (
        code
        + struct.pack("<QIH", boot_lba, layout.disk_id, 0)
        + protective
        + active_dummy
        + b"\0" * 32
        + b"\x55\xaa"
    )


def _gpt_header(layout: HybridLayout, array_crc: int, *, primary: bool) -> bytes:
    last = layout.total_sectors - 1
    my_lba, alternate = (1, last) if primary else (last, 1)
    array_lba = 2 if primary else last - GPT_ARRAY_SECTORS
    last_usable = last - GPT_ARRAY_SECTORS - 1

    def pack(crc: int) -> bytes:
        return struct.pack(
            "<8sIIIIQQQQ16sQIII",
            b"EFI PART",
            0x00010000,
            92,
            crc,
            0,
            my_lba,
            alternate,
            FIRST_USABLE,
            last_usable,
            layout.disk_guid.bytes_le,
            array_lba,
            GPT_ENTRY_COUNT,
            GPT_ENTRY_SIZE,
            array_crc,
        )

    header = pack(zlib.crc32(pack(0)))
    return header.ljust(SECTOR, b"\0")


def build_gpt(layout: HybridLayout) -> tuple[bytes, bytes]:
    """(primary header + entry array for sectors 1-33, backup array + header for the end)."""
    entries = b"".join(p.entry() for p in partitions(layout))
    array = entries.ljust(GPT_ENTRY_COUNT * GPT_ENTRY_SIZE, b"\0")
    crc = zlib.crc32(array)  # over the whole array, used entries or not
    primary = _gpt_header(layout, crc, primary=True) + array
    backup = array + _gpt_header(layout, crc, primary=False)
    return primary, backup


def set_volume_space_size(fp: BinaryIO, blocks: int) -> None:
    """Make the primary and supplementary (Joliet) descriptors cover the whole image."""
    sector = 16
    while True:
        fp.seek(sector * ISO_BLOCK)
        head = fp.read(7)
        if len(head) < 7 or head[1:6] != b"CD001" or head[0] == 255:
            return
        if head[0] in (1, 2):
            fp.seek(sector * ISO_BLOCK + 80)
            fp.write(struct.pack("<I", blocks) + struct.pack(">I", blocks))
        sector += 1


def write_hybrid_system_area(fp: BinaryIO, layout: HybridLayout) -> int:
    """Write MBR + GPT into an ISO that pycdlib wrote; returns the new image size in bytes."""
    if layout.iso_bytes % ISO_BLOCK:
        raise ValueError(f"ISO size {layout.iso_bytes} is not a multiple of {ISO_BLOCK}")
    primary, backup = build_gpt(layout)
    fp.seek(0)
    fp.write(build_mbr(layout))
    fp.write(primary)
    fp.seek(layout.iso_bytes)
    fp.write(b"\0" * (TAIL_PAD_SECTORS * SECTOR) + backup)
    fp.truncate(layout.total_bytes)
    set_volume_space_size(fp, layout.total_bytes // ISO_BLOCK)
    return layout.total_bytes


def boot_info_table_checksum(data: bytes) -> int:
    """El Torito boot info table checksum: 32-bit sum of the words after byte 64."""
    data = data[64:]
    data += b"\0" * (-len(data) % 4)
    return sum(struct.unpack(f"<{len(data) // 4}I", data)) & 0xFFFFFFFF


def write_boot_info_table(fp: BinaryIO, block: int, length: int, pvd_block: int = 16) -> None:
    """(Re)write the boot info table of the boot file at `block` (after any other patch)."""
    fp.seek(block * ISO_BLOCK)
    data = fp.read(length)
    table = struct.pack("<IIII", pvd_block, block, length, boot_info_table_checksum(data))
    fp.seek(block * ISO_BLOCK + 8)
    fp.write(table)


def patch_grub_boot_info(fp: BinaryIO, block: int) -> None:
    """grub-mkrescue's grub2-boot-info: where core.img's block list continues (eltorito.img
    at `block`), so that GRUB's hybrid MBR code finds the rest of core.img on a disk."""
    fp.seek(block * ISO_BLOCK + GRUB_BOOT_INFO_OFFSET)
    fp.write(struct.pack("<Q", block * (ISO_BLOCK // SECTOR) + GRUB_MBR_LBA_OFFSET + 1))
