"""Open any ISO 9660 image and describe it: tree, volume ids, El Torito, partitions, USB verdict.

The tree is read with pycdlib (read-only) and shown with the best names the image
has: Rock Ridge, else Joliet, else plain ISO 9660 (without the ";1" version).
The system area (MBR, GPT) is parsed by `app.iso.partitions`, never by pycdlib:
pycdlib refuses to open some hybrids whose GPT it dislikes, so it is shown the
image with the first 32 KiB blanked.

`IsoImage` is the shared reader; `inspect_iso` builds an `IsoReport` from it and
`app.iso.extract` copies entries out of it.
"""

from __future__ import annotations

import io
import os
import stat
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

import pycdlib
from pycdlib import pycdlibexception

from app.errors import InputError
from app.iso.imageio import open_image
from app.iso.partitions import Partition, SystemArea, read_system_area
from app.reporter import NullReporter, Reporter, check_cancelled

SYSTEM_AREA_SIZE = 16 * 2048  # bytes before the first volume descriptor
VD_SIZE = 2048
MIN_ISO_SIZE = SYSTEM_AREA_SIZE + 2 * VD_SIZE  # system area, PVD, terminator
MAX_VOLUME_DESCRIPTORS = 64
# El Torito catalogs of real images hold a handful of boot entries (BIOS, UEFI, maybe a
# few more platforms); the specification sets no limit, so a crafted catalog could fill
# the image with them. Read before pycdlib parses it, within these bounds.
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
FLAG_ASSOCIATED = 0x04


@dataclass(frozen=True)
class IsoEntry:
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

    def to_json(self) -> dict[str, object]:
        return {
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
            "files": [f.to_json() for f in self.files],
            "eltorito": [e.to_json() for e in self.eltorito],
            "partitions": [p.to_json() for p in self.partitions],
            "partition_problems": list(self.partition_problems),
            "hybrid": self.hybrid,
            "hybrid_reason": self.hybrid_reason,
        }

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


@dataclass(frozen=True)
class TreeItem:
    """An entry plus what extraction needs: its name components and data extents."""

    entry: IsoEntry
    names: tuple[str, ...]  # path components as stored (may be unsafe: checked by users)
    extents: tuple[tuple[int, int], ...] = field(default=())  # (block, length) per extent


class _SystemAreaHidden(io.FileIO):
    """The image as pycdlib sees it: the first 32 KiB read as zeros (we parse them ourselves)."""

    def read(self, size: int | None = -1) -> bytes:
        start = self.tell()
        data = super().read(size)
        if start < SYSTEM_AREA_SIZE and data:
            blank = min(len(data), SYSTEM_AREA_SIZE - start)
            data = b"\0" * blank + data[blank:]
        return data


def _check_volume(path: Path, fileobj: io.FileIO, size: int) -> tuple[int, int]:
    """Cheap checks before pycdlib: is it ISO 9660, and is it complete? Returns (blocks, bsize).

    Also bounds what pycdlib would otherwise read without limit: the El Torito catalog.
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

    Follows pycdlib's reading of where a catalog ends (an empty entry, or anything
    after the final section header) just far enough to count; anything else odd is
    left to pycdlib's own checks.
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


def _damage(exc: Exception) -> str:
    """Words for what pycdlib tripped over; bare lookup errors carry only a number."""
    if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], int):
        return (
            f"damaged directory structure: a record points at block {exc.args[0]}, "
            "where the image has no such directory"
        )
    if isinstance(exc, (KeyError, IndexError, struct.error)):
        return "damaged directory structure: a record is cut short or points outside the image"
    return str(exc)


def _text(raw: bytes) -> str:
    return raw.decode("latin-1").rstrip(" \0")


def _identifier(ident: Any) -> str:
    return _text(bytes(getattr(ident, "text", b"")))


def _vd_date(date: Any) -> datetime | None:
    try:
        if not date.year:
            return None
        tz = timezone(timedelta(minutes=15 * int(date.gmtoffset)))
        return datetime(
            date.year,
            date.month,
            date.dayofmonth,
            date.hour,
            date.minute,
            date.second,
            int(date.hundredthsofsecond) * 10000,
            tzinfo=tz,
        )
    except (AttributeError, ValueError, TypeError, OverflowError):
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


def _px(rr: Any) -> Any:
    px = rr.dr_entries.px_record
    if px is None and rr.ce_entries is not None:
        px = rr.ce_entries.px_record
    return px


class IsoImage:
    """An ISO opened read-only: its volume ids, system area, El Torito catalog and tree."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._file: io.FileIO | None = None
        self._iso: Any = None
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
        fileobj = _SystemAreaHidden(open_image(self.path), "rb")
        try:
            fileobj.seek(0, os.SEEK_END)
            self.size = fileobj.tell()
            self.volume_blocks, self.block_size = _check_volume(self.path, fileobj, self.size)
            fileobj.seek(0)
            iso = pycdlib.PyCdlib()
            iso.open_fp(fileobj)
        except InputError:
            fileobj.close()
            raise
        except OSError as exc:
            # Opening was checked by open_image; what is left are read errors (EIO).
            fileobj.close()
            raise InputError(
                f"cannot be read: {exc.strerror or exc}", where=str(self.path)
            ) from exc
        except (
            pycdlibexception.PyCdlibException,
            struct.error,
            KeyError,
            IndexError,
            ValueError,
            UnicodeError,
        ) as exc:
            # pycdlib reports damaged structures with its own exceptions; malformed ones
            # that slip past its checks surface as plain lookup/struct errors.
            fileobj.close()
            raise InputError(
                f"not a valid ISO 9660 image: {_damage(exc)}", where=str(self.path)
            ) from exc
        self._file = fileobj
        self._iso = iso

    def close(self) -> None:
        if self._iso is not None:
            iso, self._iso = self._iso, None
            iso.close()  # opened with open_fp: pycdlib leaves our file object to us
        if self._file is not None:
            self._file.close()
            self._file = None

    @property
    def iso(self) -> Any:
        if self._iso is None:
            raise RuntimeError("IsoImage is not open")
        return self._iso

    @property
    def name_source(self) -> str:
        if self.iso.has_rock_ridge():
            return "rock_ridge"
        if self.iso.joliet_vd is not None:
            return "joliet"
        return "iso9660"

    # -- reading data ------------------------------------------------------------

    def read_at(self, offset: int, length: int) -> bytes:
        assert self._file is not None
        return os.pread(self._file.fileno(), length, offset)

    # -- the tree ------------------------------------------------------------------

    def walk(self, reporter: Reporter | None = None) -> Iterator[TreeItem]:
        """Every entry, depth first, children sorted by name; the root ("/") comes first.

        A Rock Ridge child link (CL) may point at any directory, also one above it or
        one already shown: each directory is entered once, never inside itself, so a
        hostile image ends in an InputError instead of an endless tree.
        """
        reporter = reporter or NullReporter()
        source = self.name_source
        vd = self.iso.joliet_vd if source == "joliet" else self.iso.pvd
        root = vd.root_directory_record()
        # (item, directory record to enter or None, extents of the folders above it)
        stack: list[tuple[TreeItem, Any, frozenset[int]]] = [
            (self._item(source, (), [root], is_root=True), root, frozenset())
        ]
        entered: dict[int, str] = {}  # id() of every directory record entered -> its path
        count = 0
        while stack:
            item, dir_record, above = stack.pop()
            yield item
            count += 1
            if count % CANCEL_CHECK_EVERY == 0:
                reporter.progress(count, 0)  # the number of entries is unknown up front
                check_cancelled(reporter)
            if dir_record is not None:
                self._check_enter(item, dir_record, above, entered)
                inner = above | {dir_record.extent_location()}
                children = self._children(source, item.names, dir_record)
                children.sort(key=lambda pair: pair[0].names[-1], reverse=True)
                # reversed, so the stack pops them in name order
                stack.extend((child, record, inner) for child, record in children)

    def _check_enter(
        self, item: TreeItem, dir_record: Any, above: frozenset[int], entered: dict[int, str]
    ) -> None:
        path = item.entry.path
        # a directory some child link (CL) points at
        relocated = getattr(dir_record.rock_ridge, "moved_to_cl_dr", None) is not None
        what = "Rock Ridge relocation" if relocated else "directory tree"
        if dir_record.extent_location() in above:
            raise InputError(
                f"{what} loops at {path}: it points back at a folder above it", where=str(self.path)
            )
        seen = entered.setdefault(id(dir_record), path)
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
        self, source: str, names: tuple[str, ...], dir_record: Any
    ) -> list[tuple[TreeItem, Any]]:
        """(item, directory record to descend into or None) for each child of a directory."""
        result: list[tuple[TreeItem, Any]] = []
        group: list[Any] = []

        def flush() -> None:
            if group:
                result.append(self._child(source, names, list(group)))
                group.clear()

        for rec in dir_record.children:
            if rec.is_dot() or rec.is_dotdot() or rec.file_flags & FLAG_ASSOCIATED:
                continue
            rr = rec.rock_ridge if source == "rock_ridge" else None
            if rr is not None and rec.is_dir() and rr.relocated_record():
                continue  # a deep directory moved to rr_moved; shown where its CL entry is
            # Records of a multi-extent file (> 4 GiB) follow each other with one name.
            if group and (rec.is_dir() or rec.file_identifier() != group[0].file_identifier()):
                flush()
            group.append(rec)
        flush()
        return result

    def _child(
        self, source: str, names: tuple[str, ...], records: list[Any]
    ) -> tuple[TreeItem, Any]:
        rec = records[0]
        rr = rec.rock_ridge if source == "rock_ridge" else None
        descend = rec if rec.is_dir() else None
        if rr is not None and rr.child_link_record_exists() and rr.cl_to_moved_dr is not None:
            descend = rr.cl_to_moved_dr  # Rock Ridge relocation: the real directory
        if source == "rock_ridge" and rr is not None:
            name = _fs_text(rr.name())
        elif source == "joliet":
            name = _joliet_name(rec.file_identifier())
        else:
            name = _iso9660_name(rec.file_identifier())
        item = self._item(source, names + (name,), records, descend=descend)
        return item, (descend if item.entry.type == "dir" else None)

    def _item(
        self,
        source: str,
        names: tuple[str, ...],
        records: list[Any],
        *,
        is_root: bool = False,
        descend: Any = None,
    ) -> TreeItem:
        rec = records[0]
        path = "/" + "/".join(names)
        is_dir = is_root or descend is not None
        rr = rec.rock_ridge if source == "rock_ridge" else None
        mode = uid = gid = None
        target = None
        kind = "dir" if is_dir else "file"
        meta = rr
        if descend is not None and descend is not rec and descend.rock_ridge is not None:
            meta = descend.rock_ridge  # relocated directory: attributes live with the directory
        if is_root and source == "rock_ridge" and rec.children:
            meta = rec.children[0].rock_ridge  # the root's Rock Ridge data is on its "." entry
        if meta is not None:
            px = _px(meta)
            if px is not None:
                full_mode = px.posix_file_mode
                mode, uid, gid = stat.S_IMODE(full_mode), px.posix_user_id, px.posix_group_id
                if not is_dir:
                    if stat.S_ISLNK(full_mode) or meta.is_symlink():
                        kind = "symlink"
                    elif stat.S_ISDIR(full_mode) or stat.S_ISREG(full_mode) or full_mode == 0:
                        kind = "file"
                    else:
                        kind = "other"
            elif meta.is_symlink():
                kind = "symlink"
            if kind == "symlink":
                try:
                    target = _fs_text(meta.symlink_path())
                except pycdlibexception.PyCdlibException as exc:
                    raise InputError(
                        f"damaged Rock Ridge symlink entry for {path}: {exc}", where=str(self.path)
                    ) from exc
        extents: tuple[tuple[int, int], ...] = ()
        size = 0
        if kind == "file":
            extents = tuple((r.extent_location(), r.get_data_length()) for r in records)
            size = sum(length for _, length in extents)
        entry = IsoEntry(
            path=path, type=kind, size=size, mode=mode, uid=uid, gid=gid, target=target
        )
        return TreeItem(entry=entry, names=names, extents=extents)

    # -- boot structures -------------------------------------------------------------

    def eltorito(self, extent_paths: dict[int, str]) -> list[ElToritoEntry]:
        catalog = self.iso.eltorito_boot_catalog
        if catalog is None:
            return []
        raw: list[tuple[int, Any]] = [(catalog.validation_entry.platform_id, catalog.initial_entry)]
        for section in catalog.sections:
            raw.extend((section.platform_id, e) for e in section.section_entries)
        raw.extend((catalog.validation_entry.platform_id, e) for e in catalog.standalone_entries)
        entries = []
        for index, (platform, entry) in enumerate(raw, start=1):
            entries.append(
                ElToritoEntry(
                    index=index,
                    platform=platform,
                    platform_name=PLATFORM_NAMES.get(platform, f"0x{platform:02x}"),
                    emulation=EMULATION_NAMES.get(
                        entry.boot_media_type, f"unknown ({entry.boot_media_type})"
                    ),
                    load_size=entry.sector_count,
                    load_rba=entry.load_rba,
                    boot_file=extent_paths.get(entry.load_rba),
                    bootable=entry.boot_indicator == 0x88,
                )
            )
        return entries

    def volume_ids(self) -> dict[str, Any]:
        pvd = self.iso.pvd
        return {
            "label": _text(pvd.volume_identifier),
            "system_id": _text(pvd.system_identifier),
            "publisher": _identifier(pvd.publisher_identifier),
            "application": _identifier(pvd.application_identifier),
            "preparer": _identifier(pvd.preparer_identifier),
            "created": _vd_date(pvd.volume_creation_date),
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


def inspect_iso(path: Path, reporter: Reporter | None = None) -> IsoReport:
    """Everything there is to know about `path` before writing it to a stick."""
    reporter = reporter or NullReporter()
    path = Path(path)
    reporter.step(f"Inspecting {path.name}")
    check_cancelled(reporter)
    with IsoImage(path) as image:
        files: list[IsoEntry] = []
        extent_paths: dict[int, str] = {}
        for item in image.walk(reporter):
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
