"""Persistence on the stick: a partition after the image, in the stick's free space.

After the image is written, a partition is added behind it (from the next MiB boundary)
and an ext4 file system labelled LIVESMITH-RW is made on it. The live init
(resources/initramfs/init) mounts the file system with that label and keeps the overlay's
upper and work directories on it, so what the live system writes survives a reboot.

The image's own bytes stay as they are, except for a few partition-table bytes:

- An image with a GPT (ours, see app/iso/sysarea.py, and xorriso's): a new GPT entry
  "LIVESMITH-RW" (Linux file system data) in the first free slot; the primary header's
  backup LBA and last usable LBA then name the stick's end, where the backup GPT (entry
  array and header) is written; the protective MBR's 0xEE entry, when it covered the
  whole image from sector 1, is extended to the whole stick as UEFI asks (size capped at
  0xFFFFFFFF). The old backup GPT at the image's end is left alone (it is part of the
  image and is verified like the rest); nothing reads it any more, since the primary
  header points to the stick's end. El Torito and the ISO 9660 volume are not touched.
- An image with only an MBR (classic isohybrid, e.g. ipxe.iso): a type 0x83 entry in the
  first all-zero MBR slot; an image whose four slots are all used is refused.

`changed_ranges` names exactly the bytes that were edited; `livesmith verify` finds the
partition on the stick, derives the same ranges, and checks every other byte of the image.

The file system is made by mkfs.ext4 in a sparse temporary file of the partition's size
and copied onto the stick through the descriptor the writer already holds (only the
allocated extents, after zeroing the partition's first and last MiB so no stale signature
remains). So a stick opened through UDisks2 needs no second privileged open, and a disk
image file gets the same treatment as a device.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import tempfile
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

from app.errors import InputError, LivesmithError
from app.reporter import Level, Reporter, check_cancelled
from app.usb.blockio import aligned_buffer, pread_full, pwrite_all, round_up

SECTOR = 512
ALIGN = 1 << 20  # the partition starts on a MiB boundary
MIN_SIZE = 64 << 20  # smaller is refused: ext4 with a journal and room for some changes
LABEL = "LIVESMITH-RW"  # the file system label the live init looks for (and the GPT name)
LINUX_DATA = uuid.UUID("0fc63daf-8483-4772-8e79-3d69d8477de4")
MBR_LINUX = 0x83
MBR_TABLE = 446
MBR_ENTRY = 16
GPT_HEADER_LBA = 1
GPT_HEADER_SIZE = 92
# Head of the image/stick read and written as one unit: the 32 KiB system area before the
# ISO 9660 volume (MBR, GPT header and entry array: ours has 128 entries, xorriso's 248).
HEAD_BYTES = 32 << 10
IO_ALIGN = 4096
COPY_BLOCK = 4 << 20
_HEADER = struct.Struct("<8sIIIIQQQQ16sQIII")
_SIZE = re.compile(r"(\d+)\s*([KMGT]?)(?:i?B)?", re.IGNORECASE)
_UNITS = {"": None, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def human_size(size: int) -> str:
    """Binary units, as the sizes are given (512M = 512 MiB)."""
    for unit, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if size >= unit:
            return f"{size / unit:.1f} {name}".replace(".0 ", " ")
    return f"{size} bytes"


class PersistenceError(InputError):
    """Persistence cannot be added to this image or stick (nothing was written yet)."""


def parse_size(text: str, *, where: str = "--persistence") -> int | None:
    """'512M', '1G', '2GiB', '1536MB' → bytes (binary units); 'rest' → None (all free space)."""
    value = text.strip()
    if value.lower() == "rest":
        return None
    match = _SIZE.fullmatch(value)
    if match is None or _UNITS[match.group(2).upper()] is None:
        raise InputError(
            f"persistence size {text!r} is not a size like 512M or 1G, or 'rest'",
            where=where,
            hint="units: K, M, G, T (powers of 1024); 'rest' takes the stick's free space",
        )
    unit = _UNITS[match.group(2).upper()]
    assert unit is not None
    size = int(match.group(1)) * unit
    if size < MIN_SIZE:
        raise InputError(
            f"persistence size {text!r} is below the minimum of {human_size(MIN_SIZE)}",
            where=where,
        )
    return size


@dataclass(frozen=True)
class Persistence:
    """What the user asked for: `size` bytes, or None for all the free space."""

    size: int | None

    @classmethod
    def parse(cls, text: str, *, where: str = "--persistence") -> Persistence:
        return cls(parse_size(text, where=where))

    def to_arg(self) -> str:
        return "rest" if self.size is None else f"{self.size // 1024}K"


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # exclusive
    what: str

    def __str__(self) -> str:
        return f"bytes {self.start}-{self.end - 1} ({self.what})"


@dataclass(frozen=True)
class PersistencePlan:
    scheme: str  # "gpt" or "mbr"
    slot: int  # GPT entry index or MBR slot (0-3)
    first: int  # first sector
    last: int  # last sector (inclusive)
    device_bytes: int
    image_bytes: int
    guid: uuid.UUID = uuid.UUID(int=0)  # the GPT entry's unique GUID
    # A GPT image with a hybrid MBR (xorriso's: no 0xEE entry, so Linux reads the MBR, not
    # the GPT) gets the partition in its MBR too, in this slot.
    mbr_slot: int | None = None

    @property
    def offset(self) -> int:
        return self.first * SECTOR

    @property
    def size(self) -> int:
        return (self.last - self.first + 1) * SECTOR

    @property
    def device_sectors(self) -> int:
        return self.device_bytes // SECTOR

    def describe(self) -> str:
        number = self.slot + 1
        table = "GPT" if self.scheme == "gpt" else "MBR"
        return (
            f"persistence: {table} partition {number}, ext4 labelled {LABEL}, "
            f"{human_size(self.size)} at byte {self.offset}"
        )


# --- reading the tables ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Gpt:
    header: tuple  # the unpacked header fields
    entries: bytes  # the whole entry array

    @property
    def count(self) -> int:
        return int(self.header[11])

    @property
    def entry_size(self) -> int:
        return int(self.header[12])

    def entry(self, index: int) -> bytes:
        return self.entries[index * self.entry_size : (index + 1) * self.entry_size]

    def span(self, index: int) -> tuple[int, int]:
        first, last = struct.unpack_from("<QQ", self.entry(index), 32)
        return first, last

    def used(self, index: int) -> bool:
        return self.entry(index)[:16] != bytes(16)


def _read_gpt(head: bytes, where: str) -> _Gpt | None:
    """The primary GPT in `head` (None if there is no "EFI PART" header)."""
    raw = head[SECTOR : SECTOR + _HEADER.size]
    if len(raw) < _HEADER.size or raw[:8] != b"EFI PART":
        return None
    fields = _HEADER.unpack(raw)
    header_size, crc = fields[2], fields[3]
    if header_size != GPT_HEADER_SIZE:
        raise PersistenceError(f"the GPT header is {header_size} bytes, not 92", where=where)
    check = bytearray(raw)
    check[16:20] = bytes(4)
    if zlib.crc32(check) != crc:
        raise PersistenceError("the GPT header's checksum is wrong", where=where)
    array_lba, count, entry_size, array_crc = fields[10:14]
    length = count * entry_size
    if array_lba != 2 or entry_size < 128 or array_lba * SECTOR + length > HEAD_BYTES:
        raise PersistenceError(
            f"unusual GPT (entry array at sector {array_lba}, {count} entries of "
            f"{entry_size} bytes): persistence cannot be added",
            where=where,
        )
    entries = head[2 * SECTOR : 2 * SECTOR + length]
    if zlib.crc32(entries) != array_crc:
        raise PersistenceError("the GPT entry array's checksum is wrong", where=where)
    return _Gpt(fields, entries)


def _mbr_entries(head: bytes) -> list[bytes]:
    return [head[MBR_TABLE + i * MBR_ENTRY : MBR_TABLE + (i + 1) * MBR_ENTRY] for i in range(4)]


def _mbr_span(entry: bytes) -> tuple[int, int]:
    start, count = struct.unpack_from("<II", entry, 8)
    return start, start + count  # sectors, end exclusive


# --- planning --------------------------------------------------------------------------------


def plan_persistence(
    image_head: bytes,
    image_bytes: int,
    device_bytes: int,
    size: int | None,
    *,
    where: str,
) -> PersistencePlan:
    """Where the partition goes; raises PersistenceError (before anything is written) when
    the image has no usable table or the stick lacks room for `size` (None: all of it)."""
    if image_head[510:512] != b"\x55\xaa":
        raise PersistenceError(
            "the image has no MBR or partition table: persistence cannot be added", where=where
        )
    first = round_up(image_bytes, ALIGN) // SECTOR
    gpt = _read_gpt(image_head, where)
    device_sectors = device_bytes // SECTOR
    if gpt is not None:
        array_sectors = -(-gpt.count * gpt.entry_size // SECTOR)
        limit = device_sectors - 2 - array_sectors  # last usable sector
        scheme = "gpt"
    else:
        limit = min(device_sectors, 1 << 32) - 1
        scheme = "mbr"
    end = (limit + 1) // (ALIGN // SECTOR) * (ALIGN // SECTOR)  # whole MiBs only
    room = max(0, (end - first) * SECTOR)
    if size is None:
        if room < MIN_SIZE:
            raise PersistenceError(
                f"no room for persistence: after the image ({human_size(image_bytes)}) the "
                f"stick ({human_size(device_bytes)}) has {human_size(room)} free, and "
                f"persistence needs at least {human_size(MIN_SIZE)}; nothing was written",
                where=where,
            )
        last = end - 1
    else:
        size = round_up(size, ALIGN)
        if size > room:
            raise PersistenceError(
                f"no room for {human_size(size)} of persistence: after the image "
                f"({human_size(image_bytes)}) the stick ({human_size(device_bytes)}) has "
                f"{human_size(room)} free; nothing was written",
                where=where,
                hint="ask for less, or 'rest' for all the free space",
            )
        last = first + size // SECTOR - 1
    if scheme == "gpt":
        assert gpt is not None
        for index in range(gpt.count):
            if gpt.used(index) and gpt.span(index)[1] >= first:
                raise PersistenceError(
                    f"GPT partition {index + 1} reaches past the image's end", where=where
                )
        slot = next((i for i in range(gpt.count) if not gpt.used(i)), None)
        if slot is None:
            raise PersistenceError("the image's GPT has no free entry", where=where)
        mbr_slot = None
        if all(entry[4] != 0xEE for entry in _mbr_entries(image_head)):
            mbr_slot = _free_mbr_slot(image_head, first, where)
            if last >= 1 << 32:
                raise PersistenceError(
                    "the image has a hybrid MBR, which cannot reach past 2 TiB", where=where
                )
        return PersistencePlan(
            "gpt", slot, first, last, device_bytes, image_bytes, uuid.uuid4(), mbr_slot
        )
    slot = _free_mbr_slot(image_head, first, where)
    return PersistencePlan("mbr", slot, first, last, device_bytes, image_bytes)


def _free_mbr_slot(image_head: bytes, first: int, where: str) -> int:
    entries = _mbr_entries(image_head)
    for index, entry in enumerate(entries):
        if entry[4] != 0 and _mbr_span(entry)[1] > first:
            raise PersistenceError(
                f"MBR partition {index + 1} reaches past the image's end", where=where
            )
    slot = next((i for i, entry in enumerate(entries) if entry == bytes(MBR_ENTRY)), None)
    if slot is None:
        raise PersistenceError(
            "the image's MBR has no free partition slot (all four are used): "
            "persistence cannot be added to it",
            where=where,
        )
    return slot


# --- editing ---------------------------------------------------------------------------------


def _chs(lba: int) -> bytes:
    cylinder, rest = divmod(lba, 255 * 63)
    if cylinder > 1023:
        return b"\xfe\xff\xff"
    head, sector = divmod(rest, 63)
    return bytes([head, ((cylinder >> 2) & 0xC0) | (sector + 1), cylinder & 0xFF])


def _mbr_entry(kind: int, first: int, last: int, *, active: bool = False) -> bytes:
    return (
        (b"\x80" if active else b"\x00")
        + _chs(first)
        + bytes([kind])
        + _chs(last)
        + struct.pack("<II", first, min(last - first + 1, 0xFFFFFFFF))
    )


def _protective_slot(head: bytes, image_bytes: int) -> int | None:
    """The 0xEE entry that covered the whole image from sector 1, if there is one."""
    for index, entry in enumerate(_mbr_entries(head)):
        start, end = _mbr_span(entry)
        if entry[4] == 0xEE and start == 1 and end >= image_bytes // SECTOR - 1:
            return index
    return None


def _header_bytes(fields: list, *, my_lba: int, alternate: int, array_lba: int) -> bytes:
    fields = list(fields)
    fields[3] = 0
    fields[5], fields[6], fields[10] = my_lba, alternate, array_lba
    fields[3] = zlib.crc32(_HEADER.pack(*fields))
    return _HEADER.pack(*fields).ljust(SECTOR, b"\0")


def edit_tables(image_head: bytes, plan: PersistencePlan) -> tuple[bytes, bytes]:
    """(the new head, the backup GPT to write at the stick's end or b"") — pure."""
    head = bytearray(image_head[:HEAD_BYTES].ljust(HEAD_BYTES, b"\0"))
    if plan.scheme == "mbr":
        at = MBR_TABLE + plan.slot * MBR_ENTRY
        head[at : at + MBR_ENTRY] = _mbr_entry(MBR_LINUX, plan.first, plan.last)
        return bytes(head), b""
    gpt = _read_gpt(image_head, "image")
    assert gpt is not None
    name = LABEL.encode("utf-16-le").ljust(72, b"\0")
    entry = struct.pack(
        "<16s16sQQQ72s", LINUX_DATA.bytes_le, plan.guid.bytes_le, plan.first, plan.last, 0, name
    ).ljust(gpt.entry_size, b"\0")
    entries = bytearray(gpt.entries)
    entries[plan.slot * gpt.entry_size : (plan.slot + 1) * gpt.entry_size] = entry
    array_sectors = -(-len(entries) // SECTOR)
    device_last = plan.device_sectors - 1
    fields = list(gpt.header)
    fields[8] = device_last - array_sectors - 1  # last usable
    fields[13] = zlib.crc32(entries)
    head[2 * SECTOR : 2 * SECTOR + len(entries)] = entries
    head[SECTOR : 2 * SECTOR] = _header_bytes(
        fields, my_lba=GPT_HEADER_LBA, alternate=device_last, array_lba=2
    )
    if plan.mbr_slot is not None:
        at = MBR_TABLE + plan.mbr_slot * MBR_ENTRY
        head[at : at + MBR_ENTRY] = _mbr_entry(MBR_LINUX, plan.first, plan.last)
    protective = _protective_slot(image_head, plan.image_bytes)
    if protective is not None:
        at = MBR_TABLE + protective * MBR_ENTRY
        old = bytes(head[at : at + MBR_ENTRY])
        new = _mbr_entry(0xEE, 1, device_last, active=old[0] == 0x80)
        head[at : at + MBR_ENTRY] = new
    backup = bytes(entries).ljust(array_sectors * SECTOR, b"\0") + _header_bytes(
        fields,
        my_lba=device_last,
        alternate=GPT_HEADER_LBA,
        array_lba=device_last - array_sectors,
    )
    return bytes(head), backup


def changed_ranges(image_head: bytes, plan: PersistencePlan) -> list[ByteRange]:
    """The bytes of the image that adding this partition changes, by table field."""
    new_head, _ = edit_tables(image_head, plan)
    ranges: list[ByteRange] = []
    for index in range(4):
        at = MBR_TABLE + index * MBR_ENTRY
        if new_head[at : at + MBR_ENTRY] != image_head[at : at + MBR_ENTRY]:
            ranges.append(ByteRange(at, at + MBR_ENTRY, f"MBR partition entry {index + 1}"))
    if plan.scheme == "gpt":
        ranges.append(ByteRange(SECTOR, SECTOR + GPT_HEADER_SIZE, "primary GPT header"))
        gpt = _read_gpt(image_head, "image")
        assert gpt is not None
        at = 2 * SECTOR + plan.slot * gpt.entry_size
        ranges.append(ByteRange(at, at + gpt.entry_size, f"GPT partition entry {plan.slot + 1}"))
    return [r for r in ranges if r.start < plan.image_bytes]


def find_on_device(
    image_head: bytes, image_bytes: int, device_head: bytes, device_bytes: int
) -> PersistencePlan | None:
    """The persistence partition on a stick the image was written to, if there is one:
    a partition the image's table does not have, starting after the image."""
    if image_head[510:512] != b"\x55\xaa":
        return None
    try:
        image_gpt = _read_gpt(image_head, "image")
    except PersistenceError:
        image_gpt = None
    if image_gpt is not None:
        try:
            device_gpt = _read_gpt(device_head, "device")
        except PersistenceError:
            return None
        if device_gpt is None or device_gpt.count != image_gpt.count:
            return None
        for index in range(device_gpt.count):
            first, last = device_gpt.span(index)
            if (
                device_gpt.used(index)
                and not image_gpt.used(index)
                and first * SECTOR >= image_bytes
            ):
                guid = uuid.UUID(bytes_le=device_gpt.entry(index)[16:32])
                mbr_slot = next(
                    (
                        i
                        for i, (old, new) in enumerate(
                            zip(_mbr_entries(image_head), _mbr_entries(device_head), strict=True)
                        )
                        if old == bytes(MBR_ENTRY) and new[4] == MBR_LINUX
                    ),
                    None,
                )
                return PersistencePlan(
                    "gpt", index, first, last, device_bytes, image_bytes, guid, mbr_slot
                )
        return None
    for index, (old, new) in enumerate(
        zip(_mbr_entries(image_head), _mbr_entries(device_head), strict=True)
    ):
        start, end = _mbr_span(new)
        if old == bytes(MBR_ENTRY) and new[4] != 0 and start * SECTOR >= image_bytes:
            return PersistencePlan("mbr", index, start, end - 1, device_bytes, image_bytes)
    return None


def read_head(fd: int) -> bytes:
    view = memoryview(aligned_buffer(HEAD_BYTES))
    n = pread_full(fd, view, 0)
    return bytes(view[:n])


def _write_aligned(fd: int, data: bytes, offset: int) -> None:
    """Write `data` at `offset` (both multiples of 4 KiB) through a possibly O_DIRECT,
    write-only descriptor."""
    buf = memoryview(aligned_buffer(len(data)))
    buf[:] = data
    pwrite_all(fd, buf, offset)


def write_tables(fd: int, image_head: bytes, plan: PersistencePlan) -> None:
    """Write the edited tables; no reads, so a write-only descriptor (UDisks2) will do."""
    new_head, backup = edit_tables(image_head, plan)
    if backup:
        # From a 4 KiB boundary: the sectors before the backup array are unused (the
        # partition ends on a MiB boundary before the last usable sector).
        end = plan.device_bytes - plan.device_bytes % IO_ALIGN
        start = end - round_up(len(backup), IO_ALIGN)
        tail = backup.rjust(end - start, b"\0")
        if end != plan.device_bytes:  # an odd-sized file: write the exact end
            start, tail = plan.device_bytes - len(backup), backup
        _write_aligned(fd, tail, start)
    # The head region is the image's own bytes with the tables edited.
    _write_aligned(fd, new_head, 0)
    os.fsync(fd)


# --- the file system -------------------------------------------------------------------------


def _data_extents(fd: int, size: int) -> list[tuple[int, int]]:
    extents = []
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError:
            break  # ENXIO: only a hole is left
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        extents.append((start, end))
        offset = end
    return extents


def make_filesystem(fd: int, plan: PersistencePlan, reporter: Reporter, *, where: str) -> None:
    """mkfs.ext4 in a sparse temporary file, copied to the partition through `fd`."""
    mkfs = shutil.which("mkfs.ext4") or next(
        (p for p in ("/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4") if os.path.exists(p)), None
    )
    if mkfs is None:
        raise LivesmithError(
            "mkfs.ext4 is not installed", where=where, hint="install the package e2fsprogs"
        )
    with tempfile.TemporaryDirectory(prefix="livesmith-persistence-") as tmp:
        image = Path(tmp) / "fs.img"
        with open(image, "wb") as f:
            f.truncate(plan.size)
        argv = [
            mkfs,
            "-q",
            "-F",
            "-L",
            LABEL,
            "-E",
            "lazy_itable_init=1,lazy_journal_init=1,nodiscard",
            str(image),
        ]
        reporter.log(Level.DEBUG, "running " + " ".join(argv))
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise LivesmithError(
                f"mkfs.ext4 failed (exit status {done.returncode}): {done.stderr.strip()}",
                where=where,
            )
        zeros = memoryview(aligned_buffer(ALIGN))
        pwrite_all(fd, zeros, plan.offset)
        pwrite_all(fd, zeros, plan.offset + plan.size - ALIGN)
        buf = memoryview(aligned_buffer(COPY_BLOCK))
        with open(image, "rb") as src:
            extents = _data_extents(src.fileno(), plan.size)
            total = sum(end - start for start, end in extents)
            copied = 0
            for start, end in extents:
                at = start
                while at < end:
                    check_cancelled(reporter)
                    n = min(COPY_BLOCK, end - at)
                    got = os.preadv(src.fileno(), [buf[:n]], at)
                    padded = round_up(got, IO_ALIGN)
                    buf[got:padded] = bytes(padded - got)
                    pwrite_all(fd, buf[:padded], plan.offset + at)
                    at += got
                    copied += got
                    reporter.progress(copied, total)
        os.fsync(fd)


def add_persistence(
    fd: int, image_head: bytes, plan: PersistencePlan, reporter: Reporter, *, where: str
) -> list[ByteRange]:
    """Add the partition and its file system; returns the image bytes that changed."""
    make_filesystem(fd, plan, reporter, where=where)
    write_tables(fd, image_head, plan)
    reporter.log(Level.INFO, plan.describe())
    return changed_ranges(image_head, plan)
