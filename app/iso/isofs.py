"""A streaming reader of ISO 9660 directory records, with Rock Ridge and Joliet.

It reads one directory extent at a time (`os.pread`) and parses its records with
`struct`, keeping nothing but what the caller asks for: no object tree of the whole
image. Everything it reads is bounded by the image: a record pointing outside it, a
continuation area beyond it or a chain of them longer than any real image has is
reported as `IsoFsError`, which `app.iso.inspect` turns into an InputError.
"""

from __future__ import annotations

import os
import struct
from typing import NamedTuple

BLOCK = 2048
DIR_RECORD_MIN = 34
FLAG_DIRECTORY = 0x02
FLAG_ASSOCIATED = 0x04
FLAG_MULTI_EXTENT = 0x80
MAX_CE_HOPS = 32  # continuation areas chained for one record (real images: one at most)
MAX_DIRECTORY_BYTES = 256 * 1024 * 1024  # one directory's records (xorriso: ~2 KiB per 20 files)
JOLIET_ESCAPES = (b"%/@", b"%/C", b"%/E")

_U32 = struct.Struct("<I")
_RECORD = struct.Struct("<BBI4xI4x7sBBBH2xB")  # len, ext len, extent, size, date, flags, ...


class IsoFsError(Exception):
    """The directory structure is damaged; the message says how."""


class Record(NamedTuple):
    """One directory record, with the Rock Ridge facts inspection shows."""

    ident: bytes  # the ISO 9660 or Joliet file identifier, as stored
    extent: int
    size: int
    flags: int
    rr_name: bytes | None  # NM
    px: tuple[int, int, int] | None  # mode, uid, gid
    symlink: bytes | None  # SL target, joined as pycdlib does
    child_link: int | None  # CL: extent of the relocated directory
    relocated: bool  # RE: this directory is shown where its CL entry is


class Reader:
    """Directory extents of one open image (a file descriptor it does not own)."""

    def __init__(self, fd: int, size: int, block_size: int, rock_ridge: bool) -> None:
        self.fd = fd
        self.size = size
        self.block_size = block_size
        self.rock_ridge = rock_ridge
        self.skip = 0  # SUSP "SP" bytes to skip at the start of each system use area

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise IsoFsError("a record is cut short or points outside the image")
        data = os.pread(self.fd, length, offset)
        if len(data) != length:
            raise IsoFsError("a record is cut short or points outside the image")
        return data

    def directory(self, extent: int, size: int) -> list[Record]:
        """The records of the directory at `extent` (its "." record first, ".." second)."""
        start = extent * self.block_size
        if size < DIR_RECORD_MIN or size > MAX_DIRECTORY_BYTES or start + size > self.size:
            raise _nowhere(extent)
        data = self.read(start, size)
        if data[0] < DIR_RECORD_MIN or data[32] != 1 or data[33] != 0 or not data[25] & 2:
            raise _nowhere(extent)
        records: list[Record] = []
        offset = 0
        rock_ridge = self.rock_ridge
        unpack = _RECORD.unpack_from
        while offset < size:
            length = data[offset]
            if length == 0:  # the rest of this sector is padding
                offset = (offset // BLOCK + 1) * BLOCK
                continue
            if length < DIR_RECORD_MIN or offset + length > size:
                raise IsoFsError("a record is cut short or points outside the image")
            _, _, rec_extent, rec_size, _, flags, _, _, _, name_len = unpack(data, offset)
            if DIR_RECORD_MIN - 1 + name_len > length:
                raise IsoFsError("a record is cut short or points outside the image")
            ident = data[offset + 33 : offset + 33 + name_len]
            if rock_ridge:
                su = offset + 33 + name_len + (1 - name_len % 2) + self.skip
                records.append(
                    self._rock_ridge(ident, rec_extent, rec_size, flags, data, su, offset + length)
                )
            else:
                records.append(
                    Record(ident, rec_extent, rec_size, flags, None, None, None, None, False)
                )
            offset += length
        return records

    def _rock_ridge(
        self, ident: bytes, extent: int, size: int, flags: int, data: bytes, at: int, end: int
    ) -> Record:
        name = b""
        has_name = False
        px = None
        sl: list[tuple[bytes, bool]] = []
        cl = None
        re = False
        hops = 0
        while True:
            ce = None
            # Signatures compared as two byte values: no slice per entry (hot loop).
            while at + 4 <= end:
                length = data[at + 2]
                if length < 4 or at + length > end:
                    break  # padding or damage: the rest of the area is not entries
                first, second = data[at], data[at + 1]
                if first == 0x4E and second == 0x4D:  # NM
                    if not data[at + 4] & 0x06:  # neither "." nor ".."
                        name += data[at + 5 : at + length]
                        has_name = True
                elif first == 0x50 and second == 0x58:  # PX
                    if length >= 36:
                        px = (
                            _U32.unpack_from(data, at + 4)[0],
                            _U32.unpack_from(data, at + 20)[0],
                            _U32.unpack_from(data, at + 28)[0],
                        )
                elif first == 0x53:
                    if second == 0x4C:  # SL
                        sl.append(_sl_components(data[at + 5 : at + length]))
                    elif second == 0x54:  # ST
                        break
                elif first == 0x43:
                    if second == 0x45 and length >= 28:  # CE
                        ce = (
                            _U32.unpack_from(data, at + 4)[0],
                            _U32.unpack_from(data, at + 12)[0],
                            _U32.unpack_from(data, at + 20)[0],
                        )
                    elif second == 0x4C and length >= 12:  # CL
                        cl = _U32.unpack_from(data, at + 4)[0]
                elif first == 0x52 and second == 0x45:  # RE
                    re = True
                at += length
            if ce is None:
                break
            hops += 1
            if hops > MAX_CE_HOPS:
                raise IsoFsError(
                    f"a Rock Ridge entry continues in more than {MAX_CE_HOPS} continuation areas"
                )
            block, offset, length = ce
            data = self.read(block * self.block_size + offset, length)
            at, end = 0, length
        symlink = None
        if sl:
            parts: list[bytes] = []
            saved = b""
            for text, continued in sl:
                saved += text
                if not continued:
                    parts.append(saved)
                    saved = b""
            if saved:
                raise IsoFsError("a continued Rock Ridge symlink record has no end")
            symlink = b"/".join(parts)
        return Record(ident, extent, size, flags, name if has_name else None, px, symlink, cl, re)


def _sl_components(body: bytes) -> tuple[bytes, bool]:
    """One SL entry's text (its components joined as pycdlib joins them) and whether its
    last component continues in the next SL entry."""
    out: list[bytes] = []
    continued = False
    at = 0
    while at + 2 <= len(body):
        flags, length = body[at], body[at + 1]
        text = body[at + 2 : at + 2 + length]
        at += 2 + length
        if flags & 0x02:
            text = b"."
        elif flags & 0x04:
            text = b".."
        elif flags & 0x08:
            out = []
            continued = False
            text = b""
        if continued:
            out[-1] += text
        else:
            out.append(text)
        continued = bool(flags & 0x01)
    return b"/".join(out), continued


def _nowhere(extent: int) -> IsoFsError:
    return IsoFsError(
        f"damaged directory structure: a record points at block {extent}, "
        "where the image has no such directory"
    )


def root_record(vd: bytes) -> tuple[int, int]:
    """(extent, size) of a volume descriptor's root directory record."""
    return _U32.unpack_from(vd, 158)[0], _U32.unpack_from(vd, 166)[0]


def is_joliet(vd: bytes) -> bool:
    return vd[0] == 2 and vd[88:91] in JOLIET_ESCAPES


def has_rock_ridge(reader: Reader, vd: bytes) -> bool:
    """Whether the root's "." record starts its system use area with SUSP "SP"."""
    extent, size = root_record(vd)
    start = extent * reader.block_size
    if size < DIR_RECORD_MIN or start + DIR_RECORD_MIN > reader.size:
        return False
    first = reader.read(start, min(size, BLOCK, reader.size - start))
    length = first[0]
    su = 34  # "." has a one-byte identifier and no padding
    if length < su + 7 or first[su : su + 2] != b"SP" or first[su + 4 : su + 6] != b"\xbe\xef":
        return False
    reader.skip = first[su + 6]
    return True
