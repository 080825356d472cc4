"""MBR and GPT partition tables of an ISO image, a disk image or a block device.

Pure Python (`struct`, `zlib.crc32`), no Qt, no external programs. Everything a
firmware or `gdisk` would trip over is collected as a readable problem instead of
raised, so a damaged table never hides the rest of an inspection:
wrong header or entry-array CRCs, a backup GPT that does not match the primary,
a GPT that no protective (0xEE) MBR entry announces, partitions past the end.

LBAs are counted in the device's logical sector size: 512 bytes for image files
(ISO hybrids always use 512-byte LBAs for MBR and GPT), the kernel's logical
sector size for a block device.
"""

from __future__ import annotations

import fcntl
import os
import stat
import struct
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from app.errors import InputError
from app.iso.imageio import open_image

SECTOR_SIZE = 512
BLKSSZGET = 0x1268  # ioctl: logical sector size of a block device

MBR_SIGNATURE = b"\x55\xaa"
MBR_BOOT_CODE = slice(0, 440)  # boot code area, before the disk signature at 440
MBR_TABLE_OFFSET = 446
MBR_ENTRY = struct.Struct("<B3sB3sII")  # status, CHS first, type, CHS last, LBA first, count
MBR_EXTENDED_TYPES = frozenset({0x05, 0x0F, 0x85})
MBR_PROTECTIVE_TYPE = 0xEE
MBR_ESP_TYPE = 0xEF
MAX_LOGICAL_PARTITIONS = 128  # bounds a (possibly looping) EBR chain

GPT_SIGNATURE = b"EFI PART"
GPT_HEADER = struct.Struct("<8sIIII QQQQ 16s QIII")
GPT_HEADER_MIN_SIZE = 92
GPT_ENTRY = struct.Struct("<16s16sQQQ72s")
GPT_MAX_ARRAY_BYTES = 4 * 1024 * 1024  # real arrays are 16 KiB; refuse absurd claims
GPT_ESP_GUID = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
GPT_LEGACY_BIOS_BOOTABLE = 1 << 2

MBR_TYPE_NAMES: dict[int, str] = {
    0x00: "Empty",
    0x01: "FAT12",
    0x04: "FAT16 <32M",
    0x05: "Extended",
    0x06: "FAT16",
    0x07: "HPFS/NTFS/exFAT",
    0x0B: "W95 FAT32",
    0x0C: "W95 FAT32 (LBA)",
    0x0E: "W95 FAT16 (LBA)",
    0x0F: "W95 Extended (LBA)",
    0x11: "Hidden FAT12",
    0x14: "Hidden FAT16 <32M",
    0x16: "Hidden FAT16",
    0x17: "Hidden HPFS/NTFS",
    0x1B: "Hidden W95 FAT32",
    0x1C: "Hidden W95 FAT32 (LBA)",
    0x1E: "Hidden W95 FAT16 (LBA)",
    0x82: "Linux swap",
    0x83: "Linux",
    0x85: "Linux extended",
    0x8E: "Linux LVM",
    0x96: "ISO 9660 (CHRP)",
    0xA5: "FreeBSD",
    0xA6: "OpenBSD",
    0xA9: "NetBSD",
    0xAF: "HFS / HFS+",
    0xCD: "ISO 9660 (grub-mkrescue)",
    0xEE: "GPT protective",
    0xEF: "EFI System",
    0xFD: "Linux RAID autodetect",
}

GPT_TYPE_NAMES: dict[str, str] = {
    GPT_ESP_GUID: "EFI System",
    "21686148-6449-6E6F-744E-656564454649": "BIOS boot",
    "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7": "Microsoft basic data",
    "E3C9E316-0B5C-4DB8-817D-F92DF00215AE": "Microsoft reserved",
    "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC": "Windows recovery environment",
    "0FC63DAF-8483-4772-8E79-3D69D8477DE4": "Linux filesystem",
    "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709": "Linux root (x86-64)",
    "44479540-F297-41B2-9AF7-D131D5F0458A": "Linux root (x86)",
    "B921B045-1DF0-41C3-AF44-4C6F280D3FAE": "Linux root (ARM64)",
    "933AC7E1-2EB4-4F13-B844-0E14E2AEF915": "Linux home",
    "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F": "Linux swap",
    "E6D6D379-F507-44C2-A23C-238F2A3DF928": "Linux LVM",
    "A19D880F-05FC-4D3B-A006-743F0F84911E": "Linux RAID",
    "BC13C2FF-59E6-4262-A352-B275FD6F7172": "Linux extended boot",
    "48465300-0000-11AA-AA11-00306543ECAC": "Apple HFS/HFS+",
    "7C3457EF-0000-11AA-AA11-00306543ECAC": "Apple APFS",
    "516E7CB4-6ECF-11D6-8FF8-00022D09712B": "FreeBSD data",
    "83BD6B9D-7F41-11DC-BE0B-001560B84F0F": "FreeBSD boot",
    "024DEE41-33E7-11D3-9D69-0008C781F39F": "MBR partition scheme",
}


@dataclass(frozen=True)
class Partition:
    """One partition; `start` and `size` are in bytes, `number` as tools show it."""

    scheme: str  # "mbr" | "gpt"
    number: int  # MBR: 1-4 primary, 5+ logical; GPT: index in the entry array + 1
    type_id: str  # MBR: "0xef"; GPT: type GUID, upper case
    type_name: str
    start: int
    size: int
    bootable: bool  # MBR: status 0x80; GPT: "legacy BIOS bootable" attribute
    name: str = ""  # GPT partition name; empty for MBR

    def to_json(self) -> dict[str, object]:
        return {
            "scheme": self.scheme,
            "number": self.number,
            "type_id": self.type_id,
            "type_name": self.type_name,
            "start": self.start,
            "size": self.size,
            "bootable": self.bootable,
            "name": self.name,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Partition:
        return cls(**data)


@dataclass(frozen=True)
class SystemArea:
    """What the first sectors (and the backup GPT at the end) say about USB booting."""

    sector_size: int
    mbr_signature: bool  # 0x55AA at byte 510
    mbr_boot_code: bool  # non-zero bytes in 0..439: a BIOS can run it
    mbr_protective: bool  # an 0xEE entry announces a GPT
    gpt_found: bool  # an "EFI PART" header at LBA 1 (or a backup one)
    gpt_valid: bool  # header and entry array CRCs of the GPT used are right
    partitions: tuple[Partition, ...] = ()
    problems: tuple[str, ...] = field(default=())

    @property
    def mbr_partitions(self) -> tuple[Partition, ...]:
        return tuple(p for p in self.partitions if p.scheme == "mbr")

    @property
    def gpt_partitions(self) -> tuple[Partition, ...]:
        return tuple(p for p in self.partitions if p.scheme == "gpt")

    @property
    def has_partition_table(self) -> bool:
        return bool(self.mbr_partitions) or self.gpt_valid

    @property
    def efi_system_partitions(self) -> tuple[Partition, ...]:
        """ESPs a UEFI firmware can find: MBR type 0xEF, or the ESP GUID in a valid GPT."""
        mbr = [p for p in self.mbr_partitions if p.type_id == f"0x{MBR_ESP_TYPE:02x}"]
        gpt = (
            [p for p in self.gpt_partitions if p.type_id == GPT_ESP_GUID] if self.gpt_valid else []
        )
        return tuple(mbr + gpt)


def read_partitions(source: str | os.PathLike[str] | BinaryIO) -> tuple[list[Partition], list[str]]:
    """MBR and GPT partitions of an image file, block device or open binary file, plus problems."""
    area = read_system_area(source)
    return list(area.partitions), list(area.problems)


def read_system_area(source: str | os.PathLike[str] | BinaryIO) -> SystemArea:
    """Parse the MBR, the primary GPT and the backup GPT of `source`."""
    with _opened(source) as (fileobj, where):
        try:
            return _SystemAreaReader(fileobj, where).read()
        except OSError as exc:
            raise InputError(
                f"cannot read the partition table: {exc.strerror or exc}", where=where
            ) from exc


@contextmanager
def _opened(source: str | os.PathLike[str] | BinaryIO) -> Iterator[tuple[BinaryIO, str]]:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        fileobj = os.fdopen(open_image(path, "an image or a device"), "rb")
        with fileobj:
            yield fileobj, str(path)
    else:
        yield source, str(getattr(source, "name", "<image>"))


def _logical_sector_size(fileobj: BinaryIO) -> int:
    """512 for files; the kernel's logical sector size for a block device."""
    try:
        fd = fileobj.fileno()
        if stat.S_ISBLK(os.fstat(fd).st_mode):
            raw = fcntl.ioctl(fd, BLKSSZGET, b"\0\0\0\0")
            size = int(struct.unpack("<I", raw)[0])
            if size >= SECTOR_SIZE and size & (size - 1) == 0:
                return size
    except (OSError, ValueError, AttributeError):
        pass
    return SECTOR_SIZE


def _guid(raw: bytes) -> str:
    """GPT GUIDs are stored mixed-endian (first three fields little-endian)."""
    return str(uuid.UUID(bytes_le=raw)).upper()


@dataclass
class _GptHeader:
    revision: int
    header_size: int
    header_crc: int
    current_lba: int
    backup_lba: int
    first_usable: int
    last_usable: int
    disk_guid: str
    entries_lba: int
    entry_count: int
    entry_size: int
    array_crc: int
    header_crc_ok: bool


class _SystemAreaReader:
    def __init__(self, fileobj: BinaryIO, where: str) -> None:
        self.f = fileobj
        self.where = where
        self.ss = _logical_sector_size(fileobj)
        self.f.seek(0, os.SEEK_END)
        self.size = self.f.tell()
        self.sectors = self.size // self.ss
        self.problems: list[str] = []

    def _read(self, offset: int, length: int) -> bytes:
        if offset < 0 or offset >= self.size:
            return b""
        self.f.seek(offset)
        return self.f.read(min(length, self.size - offset))

    def read(self) -> SystemArea:
        mbr = self._read(0, SECTOR_SIZE).ljust(SECTOR_SIZE, b"\0")
        signature = mbr[510:512] == MBR_SIGNATURE
        boot_code = signature and any(mbr[MBR_BOOT_CODE])
        mbr_parts = self._mbr_partitions(mbr) if signature else []
        protective = any(p.type_id == f"0x{MBR_PROTECTIVE_TYPE:02x}" for p in mbr_parts)
        gpt_found, gpt_valid, gpt_parts = self._gpt(protective)
        if gpt_found and not protective:
            self.problems.append(
                "GPT present but the MBR has no protective 0xEE entry: UEFI firmware and "
                "partitioning tools treat the disk as MBR-partitioned and may ignore the GPT"
                if signature
                else "GPT present but no MBR (no 0x55AA signature): firmware may not look for it"
            )
        for part in mbr_parts + gpt_parts:
            if part.size and part.start + part.size > self.size:
                self.problems.append(
                    f"{part.scheme.upper()} partition {part.number} ends at byte "
                    f"{part.start + part.size}, beyond the end of the image ({self.size} bytes)"
                )
        return SystemArea(
            sector_size=self.ss,
            mbr_signature=signature,
            mbr_boot_code=boot_code,
            mbr_protective=protective,
            gpt_found=gpt_found,
            gpt_valid=gpt_valid,
            partitions=tuple(mbr_parts + gpt_parts),
            problems=tuple(self.problems),
        )

    # -- MBR ---------------------------------------------------------------

    def _mbr_entry(self, sector: bytes, index: int) -> tuple[int, int, int, int] | None:
        status, _chs1, ptype, _chs2, lba, count = MBR_ENTRY.unpack_from(
            sector, MBR_TABLE_OFFSET + 16 * index
        )
        if ptype == 0 and lba == 0 and count == 0:
            return None  # an unused slot (isohybrid uses type 0x00 with a real range)
        return status, ptype, lba, count

    def _mbr_partition(
        self, number: int, status: int, ptype: int, lba: int, count: int
    ) -> Partition:
        if status not in (0x00, 0x80):
            self.problems.append(
                f"MBR partition {number} has an invalid status byte 0x{status:02x} "
                "(must be 0x00 or 0x80)"
            )
        return Partition(
            scheme="mbr",
            number=number,
            type_id=f"0x{ptype:02x}",
            type_name=MBR_TYPE_NAMES.get(ptype, "unknown"),
            start=lba * self.ss,
            size=count * self.ss,
            bootable=status == 0x80,
        )

    def _mbr_partitions(self, mbr: bytes) -> list[Partition]:
        primaries: list[Partition] = []
        logicals: list[Partition] = []
        for index in range(4):
            entry = self._mbr_entry(mbr, index)
            if entry is None:
                continue
            status, ptype, lba, count = entry
            primaries.append(self._mbr_partition(index + 1, status, ptype, lba, count))
            if ptype in MBR_EXTENDED_TYPES and count and not logicals:
                logicals = self._logical_partitions(lba)
        return primaries + logicals

    def _logical_partitions(self, extended_lba: int) -> list[Partition]:
        """Follow the chain of extended boot records (EBRs) inside an extended partition."""
        parts: list[Partition] = []
        ebr_lba = extended_lba
        seen: set[int] = set()
        while len(parts) < MAX_LOGICAL_PARTITIONS:
            if ebr_lba in seen:
                self.problems.append(f"the chain of logical partitions loops at sector {ebr_lba}")
                break
            seen.add(ebr_lba)
            ebr = self._read(ebr_lba * self.ss, SECTOR_SIZE)
            if len(ebr) < SECTOR_SIZE or ebr[510:512] != MBR_SIGNATURE:
                self.problems.append(
                    f"extended boot record at sector {ebr_lba} is missing or has no 0x55AA "
                    "signature"
                )
                break
            logical = self._mbr_entry(ebr, 0)
            if logical is not None:
                status, ptype, lba, count = logical
                parts.append(
                    self._mbr_partition(5 + len(parts), status, ptype, ebr_lba + lba, count)
                )
            link = self._mbr_entry(ebr, 1)
            if link is None or link[1] not in MBR_EXTENDED_TYPES:
                break
            ebr_lba = extended_lba + link[2]
        return parts

    # -- GPT ---------------------------------------------------------------

    def _gpt_header(self, lba: int) -> _GptHeader | None:
        raw = self._read(lba * self.ss, self.ss)
        if len(raw) < GPT_HEADER.size or raw[:8] != GPT_SIGNATURE:
            return None
        (
            _sig,
            revision,
            header_size,
            header_crc,
            _reserved,
            current_lba,
            backup_lba,
            first_usable,
            last_usable,
            disk_guid,
            entries_lba,
            entry_count,
            entry_size,
            array_crc,
        ) = GPT_HEADER.unpack_from(raw)
        crc_ok = False
        if GPT_HEADER_MIN_SIZE <= header_size <= len(raw):
            zeroed = raw[:16] + b"\0\0\0\0" + raw[20:header_size]
            crc_ok = zlib.crc32(zeroed) == header_crc
        return _GptHeader(
            revision,
            header_size,
            header_crc,
            current_lba,
            backup_lba,
            first_usable,
            last_usable,
            _guid(disk_guid),
            entries_lba,
            entry_count,
            entry_size,
            array_crc,
            crc_ok,
        )

    def _gpt_array(self, header: _GptHeader, which: str) -> bytes | None:
        if header.entry_size < GPT_ENTRY.size or header.entry_size % 8:
            self.problems.append(
                f"{which} GPT header claims an entry size of {header.entry_size} bytes "
                "(must be a multiple of 8, at least 128)"
            )
            return None
        length = header.entry_count * header.entry_size
        if length > GPT_MAX_ARRAY_BYTES:
            self.problems.append(
                f"{which} GPT header claims {header.entry_count} entries of "
                f"{header.entry_size} bytes: implausibly large, not read"
            )
            return None
        array = self._read(header.entries_lba * self.ss, length)
        if len(array) < length:
            self.problems.append(
                f"{which} GPT entry array (sector {header.entries_lba}, {length} bytes) "
                "extends beyond the end of the image"
            )
            return None
        return array

    def _gpt_partitions(self, array: bytes, header: _GptHeader) -> list[Partition]:
        parts: list[Partition] = []
        for index in range(header.entry_count):
            (type_guid, _unique, first, last, attributes, name) = GPT_ENTRY.unpack_from(
                array, index * header.entry_size
            )
            if type_guid == b"\0" * 16:
                continue
            type_id = _guid(type_guid)
            if last < first:
                self.problems.append(
                    f"GPT partition {index + 1} ends (sector {last}) before it starts "
                    f"(sector {first})"
                )
            parts.append(
                Partition(
                    scheme="gpt",
                    number=index + 1,
                    type_id=type_id,
                    type_name=GPT_TYPE_NAMES.get(type_id, "unknown"),
                    start=first * self.ss,
                    size=max(0, last - first + 1) * self.ss,
                    bootable=bool(attributes & GPT_LEGACY_BIOS_BOOTABLE),
                    name=name.decode("utf-16-le", errors="replace").split("\0", 1)[0],
                )
            )
        return parts

    def _gpt(self, protective: bool) -> tuple[bool, bool, list[Partition]]:
        """Returns (found, valid, partitions); problems go to self.problems."""
        primary = self._gpt_header(1)
        if primary is None:
            backup_guess = self._gpt_header(self.sectors - 1) if self.sectors > 2 else None
            if backup_guess is None:
                if protective:
                    self.problems.append(
                        "the MBR announces a GPT (0xEE entry) but there is no GPT header at "
                        "sector 1 nor at the last sector"
                    )
                return False, False, []
            self.problems.append(
                "no primary GPT header at sector 1; only the backup GPT "
                "at the last sector was found"
            )
            return self._gpt_from_backup_only(backup_guess)

        primary_ok = primary.header_crc_ok
        if not primary.header_crc_ok:
            self.problems.append("primary GPT header CRC wrong: the header is damaged")
        if primary.current_lba != 1:
            self.problems.append(
                f"primary GPT header says it is at sector {primary.current_lba}, not 1"
            )
        array = self._gpt_array(primary, "primary")
        array_ok = False
        if array is not None:
            computed = zlib.crc32(array)
            array_ok = computed == primary.array_crc
            if not array_ok:
                self.problems.append(
                    f"GPT entry array CRC wrong: stored 0x{primary.array_crc:08x}, "
                    f"computed 0x{computed:08x} over {primary.entry_count} entries"
                )
        backup_ok = self._check_backup(primary, array)
        valid = primary_ok and array_ok
        parts = self._gpt_partitions(array, primary) if array is not None else []
        if not valid and backup_ok:
            self.problems.append("the backup GPT is intact; tools can restore the primary from it")
        return True, valid or backup_ok, parts

    def _gpt_from_backup_only(self, backup: _GptHeader) -> tuple[bool, bool, list[Partition]]:
        if not backup.header_crc_ok:
            self.problems.append("backup GPT header CRC wrong: the header is damaged")
            return True, False, []
        array = self._gpt_array(backup, "backup")
        if array is None:
            return True, False, []
        if zlib.crc32(array) != backup.array_crc:
            self.problems.append("backup GPT entry array CRC wrong")
            return True, False, self._gpt_partitions(array, backup)
        return True, True, self._gpt_partitions(array, backup)

    def _check_backup(self, primary: _GptHeader, primary_array: bytes | None) -> bool:
        """Compare the backup GPT with the primary; True when the backup is intact."""
        last = self.sectors - 1
        if primary.backup_lba >= self.sectors:
            self.problems.append(
                f"backup GPT header should be at sector {primary.backup_lba}, beyond the end "
                f"of the image (last sector {last})"
            )
            return False
        backup = self._gpt_header(primary.backup_lba)
        if backup is None:
            self.problems.append(
                f"no backup GPT header at sector {primary.backup_lba} (where the primary says "
                "it is)"
            )
            return False
        differences: list[str] = []
        intact = True
        if not backup.header_crc_ok:
            differences.append("header CRC wrong")
            intact = False
        if backup.current_lba != primary.backup_lba or backup.backup_lba != 1:
            differences.append(
                f"its own/other header locations are {backup.current_lba}/{backup.backup_lba}, "
                f"expected {primary.backup_lba}/1"
            )
        if backup.disk_guid != primary.disk_guid:
            differences.append(
                f"disk GUID {backup.disk_guid} differs from the primary's {primary.disk_guid}"
            )
        backup_array = self._gpt_array(backup, "backup")
        if backup_array is None:
            intact = False
        else:
            computed = zlib.crc32(backup_array)
            if computed != backup.array_crc:
                differences.append(
                    f"entry array CRC wrong (stored 0x{backup.array_crc:08x}, computed "
                    f"0x{computed:08x})"
                )
                intact = False
            if primary_array is not None and backup_array != primary_array:
                numbers = self._differing_entries(primary, primary_array, backup, backup_array)
                if numbers:
                    differences.append(
                        "entries differ from the primary's for partition"
                        f"{'s' if len(numbers) > 1 else ''} " + ", ".join(str(n) for n in numbers)
                    )
        if differences:
            self.problems.append("backup GPT: " + "; ".join(differences))
        if primary.backup_lba != last:
            self.problems.append(
                f"backup GPT header is at sector {primary.backup_lba}, not at the last sector "
                f"({last}) — usual after writing an image to a larger disk"
            )
        return intact

    @staticmethod
    def _differing_entries(
        primary: _GptHeader, primary_array: bytes, backup: _GptHeader, backup_array: bytes
    ) -> list[int]:
        count = max(primary.entry_count, backup.entry_count)
        numbers = []
        for index in range(count):
            a = primary_array[index * primary.entry_size : index * primary.entry_size + 128]
            b = backup_array[index * backup.entry_size : index * backup.entry_size + 128]
            if a.ljust(128, b"\0") != b.ljust(128, b"\0"):
                numbers.append(index + 1)
        return numbers
