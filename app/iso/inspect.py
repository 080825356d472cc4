"""Open any ISO 9660 image and describe it: tree, volume ids, El Torito, partitions, USB verdict.

The tree is read by `app.iso.isofs`, one directory extent at a time, and shown with the
best names the image has: Rock Ridge, else Joliet, else plain ISO 9660 (without the ";1"
version). The system area (MBR, GPT) is parsed by `app.iso.partitions`.

`IsoImage` is the shared reader; `inspect_iso` builds an `IsoReport` from it and
`app.iso.extract` copies entries out of it.
"""

from __future__ import annotations

import io
import json
import os
import stat
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, TextIO

from app.errors import InputError
from app.iso import isofs
from app.iso.imageio import open_image
from app.iso.partitions import Partition, SystemArea, read_system_area
from app.reporter import NullReporter, Reporter, check_cancelled

SYSTEM_AREA_SIZE = 16 * 2048  # bytes before the first volume descriptor
VD_SIZE = 2048
MIN_ISO_SIZE = SYSTEM_AREA_SIZE + 2 * VD_SIZE  # system area, PVD, terminator
MAX_VOLUME_DESCRIPTORS = 64
# El Torito catalogs of real images hold a handful of boot entries (BIOS, UEFI, maybe a
# few more platforms); the specification sets no limit, so a crafted catalog could fill
# the image with them. Read within these bounds.
MAX_BOOT_ENTRIES = 64
MAX_CATALOG_SECTORS = 4
CATALOG_SECTOR = 2048
CATALOG_ENTRY = 32
ELTORITO_ID = b"EL TORITO SPECIFICATION"
CANCEL_CHECK_EVERY = 512  # entries between cancel checks while walking
# Deeper trees cannot be extracted anyway (PATH_MAX is 4096 bytes, two per level at least);
# real images stay far below. The cap bounds the walk whatever the records claim.
MAX_TREE_DEPTH = 1024

PLATFORM_NAMES = {0x00: "BIOS", 0x01: "PowerPC", 0x02: "Mac", 0xEF: "UEFI"}
EMULATION_NAMES = {0: "none", 1: "floppy 1.2", 2: "floppy 1.44", 3: "floppy 2.88", 4: "hard disk"}

# Directory-record file flags (ECMA-119 9.1.6)
FLAG_ASSOCIATED = isofs.FLAG_ASSOCIATED
_json_string = json.encoder.encode_basestring_ascii  # what json.dumps uses by default
FLAG_DIRECTORY = isofs.FLAG_DIRECTORY


class IsoEntry(NamedTuple):
    """One entry of the tree. `size` is the content size of a regular file, else 0.

    `mode` holds the permission bits (`stat.S_IMODE`, e.g. 0o755) from Rock Ridge;
    `mode`, `uid` and `gid` are None on images without Rock Ridge.
    """

    path: str
    type: str  # "file" | "dir" | "symlink" | "other"
    size: int
    mode: int | None
    uid: int | None
    gid: int | None
    target: str | None  # symlink target

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "type": self.type,
            "size": self.size,
            "mode": self.mode,
            "uid": self.uid,
            "gid": self.gid,
            "target": self.target,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IsoEntry:
        return cls(**data)


@dataclass(frozen=True)
class ElToritoEntry:
    """One boot image of the El Torito catalog; index 1 is the initial/default entry."""

    index: int
    platform: int
    platform_name: str
    emulation: str
    load_size: int  # in 512-byte sectors, as in the catalog
    load_rba: int  # 2048-byte block where the boot image starts
    boot_file: str | None  # path of the file whose data starts at load_rba
    bootable: bool

    def to_json(self) -> dict[str, object]:
        return {
            "index": self.index,
            "platform": self.platform,
            "platform_name": self.platform_name,
            "emulation": self.emulation,
            "load_size": self.load_size,
            "load_rba": self.load_rba,
            "boot_file": self.boot_file,
            "bootable": self.bootable,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ElToritoEntry:
        return cls(**data)


def _json_value(value: int | str | None) -> str:
    if value is None:
        return "null"
    return str(value) if isinstance(value, int) else _json_string(value)


def _entry_json(e: IsoEntry) -> str:
    """`json.dumps(e.to_json())`, without the dict."""
    return (
        f'{{"path": {_json_string(e.path)}, "type": "{e.type}", "size": {e.size}, '
        f'"mode": {_json_value(e.mode)}, "uid": {_json_value(e.uid)}, '
        f'"gid": {_json_value(e.gid)}, "target": {_json_value(e.target)}}}'
    )


@dataclass(frozen=True)
class IsoReport:
    path: Path
    label: str
    system_id: str
    publisher: str
    application: str
    preparer: str
    created: datetime | None
    size: int  # bytes of the file or device
    block_size: int
    files: list[IsoEntry]
    eltorito: list[ElToritoEntry]
    partitions: list[Partition]
    partition_problems: list[str]
    hybrid: bool
    hybrid_reason: str
    volume_size: int = 0  # bytes the ISO 9660 volume claims (may be less than `size`)
    name_source: str = "iso9660"  # "rock_ridge" | "joliet" | "iso9660"

    def to_json(self, files: bool = True) -> dict[str, object]:
        data: dict[str, object] = {
            "path": str(self.path),
            "label": self.label,
            "system_id": self.system_id,
            "publisher": self.publisher,
            "application": self.application,
            "preparer": self.preparer,
            "created": self.created.isoformat() if self.created else None,
            "size": self.size,
            "volume_size": self.volume_size,
            "block_size": self.block_size,
            "name_source": self.name_source,
            "files": [f.to_json() for f in self.files] if files else None,
            "eltorito": [e.to_json() for e in self.eltorito],
            "partitions": [p.to_json() for p in self.partitions],
            "partition_problems": list(self.partition_problems),
            "hybrid": self.hybrid,
            "hybrid_reason": self.hybrid_reason,
        }
        if not files:
            del data["files"]
        return data

    def write_json(self, out: TextIO, chunk: int = 4096) -> None:
        """`json.dump(self.to_json(), out, indent=2)`, but with one line per file and without
        building the files' dicts: fast and small for trees of many thousand files."""
        marker = "\0files\0"
        head = {**self.to_json(files=False), "files": marker}
        text = json.dumps(head, indent=2)
        before, after = text.split(json.dumps(marker), 1)
        out.write(before + "[")
        files = self.files
        for start in range(0, len(files), chunk):
            lines = [_entry_json(f) for f in files[start : start + chunk]]
            out.write(("," if start else "") + "\n    " + ",\n    ".join(lines))
        out.write(("\n  ]" if files else "]") + after)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IsoReport:
        created = data["created"]
        return cls(
            **{
                **data,
                "path": Path(data["path"]),
                "created": None if created is None else datetime.fromisoformat(created),
                "files": [IsoEntry.from_json(f) for f in data["files"]],
                "eltorito": [ElToritoEntry.from_json(e) for e in data["eltorito"]],
                "partitions": [Partition.from_json(p) for p in data["partitions"]],
                "partition_problems": list(data["partition_problems"]),
            }
        )


class TreeItem(NamedTuple):
    """An entry plus what extraction needs: its name components and data extents."""

    entry: IsoEntry
    names: tuple[str, ...]  # path components as stored (may be unsafe: checked by users)
    extents: tuple[tuple[int, int], ...] = ()  # (block, length) per extent


def _check_volume(path: Path, fileobj: io.FileIO, size: int) -> tuple[int, int]:
    """Cheap checks first: is it ISO 9660, and is it complete? Returns (blocks, bsize).

    Also bounds the El Torito catalog, which the specification does not.
    """
    if size < MIN_ISO_SIZE:
        raise InputError(
            f"not an ISO 9660 image: the file is only {size} bytes, smaller than the "
            f"{MIN_ISO_SIZE} bytes the smallest ISO 9660 volume needs",
            where=str(path),
        )
    volume: tuple[int, int] | None = None
    catalogs: list[int] = []
    for index in range(MAX_VOLUME_DESCRIPTORS):
        offset = SYSTEM_AREA_SIZE + index * VD_SIZE
        if offset + VD_SIZE > size:
            break
        fileobj.seek(offset)
        vd = fileobj.read(VD_SIZE)
        if vd[1:6] != b"CD001":
            if index == 0:
                raise InputError(
                    'not an ISO 9660 image: no volume descriptor ("CD001") at byte '
                    f"{SYSTEM_AREA_SIZE}",
                    where=str(path),
                )
            break
        if vd[0] == 255:  # set terminator
            break
        if vd[0] == 0 and vd[7:39].rstrip(b"\0") == ELTORITO_ID:  # El Torito boot record
            catalogs.append(struct.unpack_from("<I", vd, 71)[0])
        if vd[0] == 1 and volume is None:  # primary volume descriptor
            (blocks,) = struct.unpack_from("<I", vd, 80)
            (block_size,) = struct.unpack_from("<H", vd, 128)
            if block_size not in (512, 1024, 2048):
                raise InputError(
                    f"not a valid ISO 9660 image: logical block size {block_size}", where=str(path)
                )
            if blocks * block_size > size:
                raise InputError(
                    f"truncated: the ISO 9660 volume is {blocks * block_size} bytes but the file "
                    f"has only {size} bytes",
                    where=str(path),
                    hint="the download or copy is incomplete; fetch or copy it again",
                )
            volume = blocks, block_size
    if volume is None:
        raise InputError("not an ISO 9660 image: no primary volume descriptor", where=str(path))
    for extent in catalogs:
        _check_boot_catalog(path, fileobj, size, extent)
    return volume


def _check_boot_catalog(path: Path, fileobj: io.FileIO, size: int, extent: int) -> None:
    """Refuse an El Torito catalog with more boot entries than any real image has.

    Follows pycdlib's reading (as `IsoImage.eltorito` does) of where a catalog ends (an empty entry, or anything
    after the final section header) just far enough to count; anything else odd is
    left to `IsoImage.eltorito`.
    """
    start = extent * CATALOG_SECTOR
    fileobj.seek(start)
    data = fileobj.read(min(MAX_CATALOG_SECTORS * CATALOG_SECTOR, max(0, size - start)))
    boot_entries = 0
    owed = 0  # entries the last section header announced and we have not seen yet
    for number, offset in enumerate(range(0, len(data) - CATALOG_ENTRY + 1, CATALOG_ENTRY)):
        rec = data[offset : offset + CATALOG_ENTRY]
        kind = rec[0]
        if number == 0 or kind == 0x44:
            continue  # the validation entry, or an extension of the previous entry
        if kind in (0x90, 0x91):  # section header
            owed = struct.unpack_from("<H", rec, 2)[0]
        elif number == 1 or kind == 0x88 or (kind == 0x00 and owed and any(rec)):
            boot_entries += 1  # the initial entry, or a bootable or non-bootable section entry
            if number > 1 and owed:
                owed -= 1
            if boot_entries > MAX_BOOT_ENTRIES:
                raise InputError(
                    f"the El Torito boot catalog at block {extent} has more than "
                    f"{MAX_BOOT_ENTRIES} boot entries; real images have a handful",
                    where=str(path),
                )
        else:
            return  # the end (an empty entry, or padding after the final header), or damage
    if len(data) == MAX_CATALOG_SECTORS * CATALOG_SECTOR:
        raise InputError(
            f"the El Torito boot catalog at block {extent} does not end within "
            f"{MAX_CATALOG_SECTORS} sectors; real catalogs fit in one",
            where=str(path),
        )


def _text(raw: bytes) -> str:
    return raw.decode("latin-1").rstrip(" \0")


def _vd_date(raw: bytes) -> datetime | None:
    """A volume descriptor date: 16 digits (year to hundredths) and a 15-minute offset."""
    try:
        digits = raw[:16].decode("ascii")
        year = int(digits[0:4])
        if not year:
            return None
        offset = struct.unpack_from("b", raw, 16)[0]
        return datetime(
            year,
            int(digits[4:6]),
            int(digits[6:8]),
            int(digits[8:10]),
            int(digits[10:12]),
            int(digits[12:14]),
            int(digits[14:16]) * 10000,
            tzinfo=timezone(timedelta(minutes=15 * offset)),
        )
    except (ValueError, TypeError, OverflowError, UnicodeError, struct.error):
        return None  # an unset or nonsensical date is shown as unknown


def _iso9660_name(ident: bytes) -> str:
    name = ident.decode("latin-1").split(";", 1)[0]
    return name[:-1] if name.endswith(".") else name


def _joliet_name(ident: bytes) -> str:
    name = ident.decode("utf-16-be", errors="replace")
    return name[:-2] if name.endswith(";1") else name


def _fs_text(raw: bytes) -> str:
    """Rock Ridge names and targets are bytes; keep undecodable ones round-trippable."""
    return raw.decode("utf-8", errors="surrogateescape")


class IsoImage:
    """An ISO opened read-only: its volume ids, system area, El Torito catalog and tree.

    The tree is read directory by directory with `app.iso.isofs` while it is walked.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._file: io.FileIO | None = None
        self._reader: isofs.Reader | None = None
        self._pvd = b""
        self._tree_vd = b""
        self._catalogs: list[int] = []
        self._link_targets: set[int] = set()
        self.name_source = "iso9660"
        self.size = 0
        self.volume_blocks = 0
        self.block_size = VD_SIZE

    # -- opening -------------------------------------------------------------

    def __enter__(self) -> IsoImage:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        fileobj = io.FileIO(open_image(self.path), "rb")
        try:
            fileobj.seek(0, os.SEEK_END)
            self.size = fileobj.tell()
            self.volume_blocks, self.block_size = _check_volume(self.path, fileobj, self.size)
            self._read_descriptors(fileobj)
        except InputError:
            fileobj.close()
            raise
        except OSError as exc:
            # Opening was checked by open_image; what is left are read errors (EIO).
            fileobj.close()
            raise InputError(
                f"cannot be read: {exc.strerror or exc}", where=str(self.path)
            ) from exc
        except isofs.IsoFsError as exc:
            fileobj.close()
            raise self._invalid(exc) from exc
        self._file = fileobj

    def _invalid(self, exc: isofs.IsoFsError) -> InputError:
        text = str(exc)
        if not text.startswith("damaged"):
            text = f"damaged directory structure: {text}"
        return InputError(f"not a valid ISO 9660 image: {text}", where=str(self.path))

    def _read_descriptors(self, fileobj: io.FileIO) -> None:
        pvd = joliet = b""
        for index in range(MAX_VOLUME_DESCRIPTORS):
            offset = SYSTEM_AREA_SIZE + index * VD_SIZE
            if offset + VD_SIZE > self.size:
                break
            vd = os.pread(fileobj.fileno(), VD_SIZE, offset)
            if vd[1:6] != b"CD001" or vd[0] == 255:
                break
            if vd[0] == 0 and vd[7:39].rstrip(b"\0") == ELTORITO_ID:
                self._catalogs.append(struct.unpack_from("<I", vd, 71)[0])
            elif vd[0] == 1 and not pvd:
                pvd = vd
            elif isofs.is_joliet(vd) and not joliet:
                joliet = vd
        self._pvd = pvd
        reader = isofs.Reader(fileobj.fileno(), self.size, self.block_size, rock_ridge=False)
        reader.directory(*isofs.root_record(pvd))  # the ISO 9660 tree is damaged at its root?
        if isofs.has_rock_ridge(reader, pvd):
            reader.rock_ridge = True
            self.name_source, self._tree_vd = "rock_ridge", pvd
        elif joliet:
            self.name_source, self._tree_vd = "joliet", joliet
        else:
            self._tree_vd = pvd
        self._reader = reader

    def close(self) -> None:
        self._reader = None
        if self._file is not None:
            self._file.close()
            self._file = None

    @property
    def reader(self) -> isofs.Reader:
        if self._reader is None:
            raise RuntimeError("IsoImage is not open")
        return self._reader

    # -- reading data ------------------------------------------------------------

    def read_at(self, offset: int, length: int) -> bytes:
        assert self._file is not None
        return os.pread(self._file.fileno(), length, offset)

    # -- the tree ------------------------------------------------------------------

    def walk(
        self, reporter: Reporter | None = None, max_depth: int | None = None
    ) -> Iterator[TreeItem]:
        """Every entry, depth first, children sorted by name; the root ("/") comes first.

        A Rock Ridge child link (CL) may point at any directory, also one above it or
        one already shown: each directory is entered once, never inside itself, so a
        hostile image ends in an InputError instead of an endless tree. With `max_depth`,
        folders that deep are listed but not entered (1: the root's entries only).
        """
        try:
            yield from self._walk(reporter or NullReporter(), max_depth)
        except isofs.IsoFsError as exc:
            raise self._invalid(exc) from exc

    def _walk(self, reporter: Reporter, max_depth: int | None) -> Iterator[TreeItem]:
        root_extent, root_size = isofs.root_record(self._tree_vd)
        records = self.reader.directory(root_extent, root_size)
        root = self._item((), records[0], [records[0]], is_dir=True)
        # (item, (extent, size) of the directory to enter or None, relocated?, extents above)
        stack: list[tuple[TreeItem, tuple[int, int] | None, bool, frozenset[int]]] = [
            (root, (root_extent, root_size), False, frozenset())
        ]
        entered: dict[int, str] = {}  # extent of every directory entered -> its path
        self._link_targets = set()  # extents of directories a CL entry points at
        count = 0
        first: list[isofs.Record] | None = records
        while stack:
            item, where, relocated, above = stack.pop()
            yield item
            count += 1
            if count % CANCEL_CHECK_EVERY == 0:
                reporter.progress(count, 0)  # the number of entries is unknown up front
                check_cancelled(reporter)
            if where is None or (max_depth is not None and len(item.names) >= max_depth):
                continue
            self._check_enter(item, where[0], relocated, above, entered)
            if first is None:
                records = self.reader.directory(*where)
            first = None
            inner = above | {where[0]}
            children = self._children(item.names, records)
            children.sort(key=lambda child: child[0].names[-1], reverse=True)
            # reversed, so the stack pops them in name order
            stack.extend((child, at, moved, inner) for child, at, moved in children)

    def _check_enter(
        self,
        item: TreeItem,
        extent: int,
        relocated: bool,
        above: frozenset[int],
        entered: dict[int, str],
    ) -> None:
        path = item.entry.path
        relocated = relocated or extent in self._link_targets
        what = "Rock Ridge relocation" if relocated else "directory tree"
        if extent in above:
            raise InputError(
                f"{what} loops at {path}: it points back at a folder above it", where=str(self.path)
            )
        seen = entered.setdefault(extent, path)
        if seen != path:
            raise InputError(
                f"{what} loops at {path}: it points at {seen}, which is already in the tree",
                where=str(self.path),
            )
        if len(item.names) > MAX_TREE_DEPTH:
            shown = path if len(path) <= 200 else path[:200] + "..."
            raise InputError(
                f"the folder tree is more than {MAX_TREE_DEPTH} levels deep at {shown}",
                where=str(self.path),
            )

    def _children(
        self, names: tuple[str, ...], records: list[isofs.Record]
    ) -> list[tuple[TreeItem, tuple[int, int] | None, bool]]:
        """(item, directory to descend into or None, relocated?) for each child of a directory."""
        result: list[tuple[TreeItem, tuple[int, int] | None, bool]] = []
        group: list[isofs.Record] = []
        for rec in records[2:]:
            if rec.flags & FLAG_ASSOCIATED:
                continue
            if rec.relocated and rec.flags & FLAG_DIRECTORY:
                continue  # a deep directory moved to rr_moved; shown where its CL entry is
            # Records of a multi-extent file (> 4 GiB) follow each other with one name.
            if group and (rec.flags & FLAG_DIRECTORY or rec.ident != group[0].ident):
                result.append(self._child(names, group))
                group = []
            group.append(rec)
        if group:
            result.append(self._child(names, group))
        return result

    def _child(
        self, names: tuple[str, ...], records: list[isofs.Record]
    ) -> tuple[TreeItem, tuple[int, int] | None, bool]:
        rec = records[0]
        source = self.name_source
        if source == "rock_ridge":
            name = _fs_text(rec.rr_name) if rec.rr_name is not None else _iso9660_name(rec.ident)
        elif source == "joliet":
            name = _joliet_name(rec.ident)
        else:
            name = _iso9660_name(rec.ident)
        if rec.child_link is not None:
            # Rock Ridge relocation: the real directory, its attributes on its "." record
            block = rec.child_link
            self._link_targets.add(block)
            moved = self.reader.directory(block, self._directory_size(block))[0]
            item = self._item(names + (name,), moved, records, is_dir=True)
            return item, (block, moved.size), True
        if rec.flags & FLAG_DIRECTORY:
            return (
                self._item(names + (name,), rec, records, is_dir=True),
                (
                    rec.extent,
                    rec.size,
                ),
                False,
            )
        return self._item(names + (name,), rec, records, is_dir=False), None, False

    def _directory_size(self, extent: int) -> int:
        """The size a directory's "." record claims (a CL entry gives only the extent)."""
        start = extent * self.block_size
        head = self.reader.read(start, isofs.DIR_RECORD_MIN) if start < self.size else b""
        if len(head) < isofs.DIR_RECORD_MIN or head[32] != 1 or head[33] != 0:
            raise isofs.IsoFsError(
                f"damaged directory structure: a record points at block {extent}, "
                "where the image has no such directory"
            )
        return int(struct.unpack_from("<I", head, 10)[0])

    def _item(
        self,
        names: tuple[str, ...],
        meta: isofs.Record,
        records: list[isofs.Record],
        *,
        is_dir: bool,
    ) -> TreeItem:
        path = "/" + "/".join(names)
        mode = uid = gid = None
        target = None
        kind = "dir" if is_dir else "file"
        px = meta.px
        symlink = meta.symlink
        if px is not None:
            full_mode, uid, gid = px
            mode = full_mode & 0o7777
            if not is_dir:
                file_type = full_mode & 0o170000
                if file_type == stat.S_IFLNK or symlink is not None:
                    kind = "symlink"
                elif file_type in (stat.S_IFREG, stat.S_IFDIR) or full_mode == 0:
                    kind = "file"
                else:
                    kind = "other"
        elif symlink is not None:
            kind = "symlink"
        if kind == "symlink":
            if symlink is None:
                raise InputError(
                    f"damaged Rock Ridge symlink entry for {path}: Entry is not a symlink!",
                    where=str(self.path),
                )
            target = _fs_text(symlink)
        if kind != "file":
            return TreeItem(IsoEntry(path, kind, 0, mode, uid, gid, target), names)
        if len(records) == 1:
            extents: tuple[tuple[int, int], ...] = ((meta.extent, meta.size),)
            size = meta.size
        else:
            extents = tuple((r.extent, r.size) for r in records)
            size = sum(length for _, length in extents)
        return TreeItem(IsoEntry(path, kind, size, mode, uid, gid, target), names, extents)

    # -- boot structures -------------------------------------------------------------

    def eltorito(self, extent_paths: dict[int, str]) -> list[ElToritoEntry]:
        """The boot entries of the first El Torito catalog: initial, sections, standalone."""
        if not self._catalogs:
            return []
        start = self._catalogs[0] * CATALOG_SECTOR
        data = self.read_at(start, min(MAX_CATALOG_SECTORS * CATALOG_SECTOR, self.size - start))
        if len(data) < 2 * CATALOG_ENTRY or data[0] != 1 or data[30:32] != b"\x55\xaa":
            raise InputError(
                "not a valid ISO 9660 image: the El Torito boot catalog has no valid "
                "validation entry",
                where=str(self.path),
            )
        default_platform = data[1]
        initial: list[tuple[int, bytes]] = [(default_platform, data[32:64])]
        sections: list[tuple[int, bytes]] = []
        standalone: list[tuple[int, bytes]] = []
        platform, owed = default_platform, 0
        for offset in range(2 * CATALOG_ENTRY, len(data) - CATALOG_ENTRY + 1, CATALOG_ENTRY):
            rec = data[offset : offset + CATALOG_ENTRY]
            kind = rec[0]
            if kind == 0x44:
                continue
            if kind in (0x90, 0x91):
                platform, owed = rec[1], struct.unpack_from("<H", rec, 2)[0]
            elif owed and (kind == 0x88 or (kind == 0x00 and any(rec))):
                sections.append((platform, rec))
                owed -= 1
            elif kind == 0x88:
                standalone.append((default_platform, rec))
            else:
                break
        entries = []
        for index, (plat, rec) in enumerate(initial + sections + standalone, start=1):
            media, count, rba = rec[1], *struct.unpack_from("<HI", rec, 6)
            entries.append(
                ElToritoEntry(
                    index=index,
                    platform=plat,
                    platform_name=PLATFORM_NAMES.get(plat, f"0x{plat:02x}"),
                    emulation=EMULATION_NAMES.get(media, f"unknown ({media})"),
                    load_size=count,
                    load_rba=rba,
                    boot_file=extent_paths.get(rba),
                    bootable=rec[0] == 0x88,
                )
            )
        return entries

    def volume_ids(self) -> dict[str, Any]:
        pvd = self._pvd
        return {
            "label": _text(pvd[40:72]),
            "system_id": _text(pvd[8:40]),
            "publisher": _text(pvd[318:446]),
            "application": _text(pvd[574:702]),
            "preparer": _text(pvd[446:574]),
            "created": _vd_date(pvd[813:830]),
        }


def hybrid_verdict(area: SystemArea, eltorito: Sequence[ElToritoEntry] = ()) -> tuple[bool, str]:
    """Can the image boot when written raw to a USB stick? (verdict, reason in words)."""
    uefi_cd = any(e.platform == 0xEF for e in eltorito)
    if not area.has_partition_table:
        if area.gpt_found:
            why = "a GPT that is damaged and no MBR partition entries"
        elif area.mbr_signature:
            why = "an MBR signature but no partition entries"
        else:
            why = "no partition table"
        return False, f"{why}: CD only, will not boot from a USB stick"
    bios = area.mbr_boot_code
    esps = area.efi_system_partitions
    esp = (
        f"an EFI System partition ({esps[0].scheme.upper()} partition {esps[0].number})"
        if esps
        else ""
    )
    table = "GPT" if area.gpt_valid and (area.mbr_protective or not area.mbr_partitions) else "MBR"
    if bios and esps:
        return True, f"MBR with boot code and {esp}: boots from USB on BIOS and UEFI"
    if bios:
        reason = "MBR with boot code but no EFI System partition: boots from USB on BIOS only"
        if uefi_cd:
            reason += " (its UEFI El Torito image is used only when it boots as a CD)"
        return True, reason
    if esps:
        return True, f"{table} with {esp} but no MBR boot code: boots from USB on UEFI only"
    return False, (
        f"{table} partition table without MBR boot code or an EFI System "
        "partition: will not boot from a USB stick"
    )


def inspect_iso(
    path: Path, reporter: Reporter | None = None, max_depth: int | None = None
) -> IsoReport:
    """Everything there is to know about `path` before writing it to a stick.

    With `max_depth`, the files are only those that many levels deep (see `IsoImage.walk`):
    a quick first look at a big tree."""
    reporter = reporter or NullReporter()
    path = Path(path)
    reporter.step(f"Inspecting {path.name}")
    check_cancelled(reporter)
    with IsoImage(path) as image:
        files: list[IsoEntry] = []
        extent_paths: dict[int, str] = {}
        for item in image.walk(reporter, max_depth):
            files.append(item.entry)
            if item.extents and item.entry.size:
                extent_paths.setdefault(item.extents[0][0], item.entry.path)
        eltorito = image.eltorito(extent_paths)
        ids = image.volume_ids()
        area = read_system_area(path)
        hybrid, reason = hybrid_verdict(area, eltorito)
        return IsoReport(
            path=path,
            label=ids["label"],
            system_id=ids["system_id"],
            publisher=ids["publisher"],
            application=ids["application"],
            preparer=ids["preparer"],
            created=ids["created"],
            size=image.size,
            block_size=image.block_size,
            files=files,
            eltorito=eltorito,
            partitions=list(area.partitions),
            partition_problems=list(area.problems),
            hybrid=hybrid,
            hybrid_reason=reason,
            volume_size=image.volume_blocks * image.block_size,
            name_source=image.name_source,
        )
