"""Remastering an ISO image: other files, the same boot setup (`xorriso ... replay`).

    spec = RemasterSpec(source=Path("in.iso"), output=Path("out.iso"),
                        add=(("/boot/grub/grub.cfg", Path("my-grub.cfg")),),
                        remove=("/README.TXT",), label="MYLIVE")
    plan = plan_remaster(spec)          # every problem, nothing written
    result = remaster_iso(spec, reporter)

pycdlib reads the image and writes it again with the files changed; it keeps the El
Torito catalog (entries, platforms, emulation, load sizes) and moves the boot images.
Everything pycdlib does not know is replayed here, for the new places of the boot images:

- boot info tables (bytes 8-63 of a no-emulation boot file) are written again, with
  the new block and checksum;
- GRUB's grub2-boot-info (eltorito.img byte 2548: where core.img continues) is patched;
- the system area (the first 32 KiB) is copied, and the MBR boot code's pointer to the
  BIOS boot image (byte 432: ISOLINUX's isohdpfx and GRUB's boot_hybrid.img) patched;
- MBR and GPT partitions are moved with what they cover: the whole image, an El Torito
  boot image inside the ISO, or a partition appended after the ISO data (copied);
- El Torito entries that point into an appended partition (xorriso's
  `--interval:appended_partition_N`) follow the partition.

A boot setup that cannot be kept this way (a partition that starts or ends elsewhere,
MBR code that points somewhere unknown, a boot image removed or replaced) is refused with
the reason, rather than written into an image that would not boot.
"""

from __future__ import annotations

import os
import secrets
import stat
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, cast

import pycdlib
from pycdlib.pycdlibexception import PyCdlibException

from app.errors import InputError, Problem, StageError, ValidationError
from app.iso import sysarea
from app.iso.imageio import LazySourceFile, image_errors
from app.iso.inspect import ElToritoEntry, IsoImage
from app.iso.labels import validate_label
from app.iso.names import iso9660_names, joliet_names
from app.reporter import Level, NullReporter, Reporter, check_cancelled

BLOCK = 2048
SECTOR = 512
SYSTEM_AREA = 16 * BLOCK
MIB = 1024 * 1024
MBR_LBA_OFFSET = 432
GRUB_INFO = sysarea.GRUB_BOOT_INFO_OFFSET
GPT_HEADER = struct.Struct("<8sIIIIQQQQ16sQIII")


@dataclass(frozen=True)
class RemasterSpec:
    source: Path
    output: Path
    add: tuple[tuple[str, Path], ...] = ()  # (path in the ISO, local file): add or replace
    remove: tuple[str, ...] = ()  # paths in the ISO: files or whole directories
    label: str | None = None  # None: keep the volume label


@dataclass(frozen=True)
class RemasterResult:
    path: Path
    size: int
    kept: list[str]  # what of the boot setup was replayed, in words


# --------------------------------------------------------------------------- reading


@dataclass
class _BootImage:
    entry: ElToritoEntry
    size: int  # bytes: the file's size, or the load size for an image outside the tree
    table_length: int | None  # length field of its boot info table, if it has one
    grub_info: bool  # GRUB's grub2-boot-info at byte 2548
    in_partition: int | None = None  # index into _Layout.appended when outside the ISO


@dataclass
class _MbrEntry:
    index: int
    raw: bytes  # 16 bytes


@dataclass
class _Layout:
    """What the original's boot setup consists of, in bytes."""

    total: int
    iso_end: int  # end of the ISO 9660 data (before a GPT tail or appended partitions)
    covers_tail: bool  # the volume descriptors count the tail too (livesmith's own images)
    system_area: bytes
    images: list[_BootImage]
    mbr: list[_MbrEntry]
    gpt: tuple[bytes, bytes] | None  # (primary header sector, entry array)
    appended: list[tuple[int, int]] = field(default_factory=list)  # (start, end) bytes
    mbr_pointer: str | None = None  # "isolinux" | "grub": MBR code points at the BIOS image


def _u32(data: bytes, offset: int) -> int:
    return int(struct.unpack_from("<I", data, offset)[0])


def _u64(data: bytes, offset: int) -> int:
    return int(struct.unpack_from("<Q", data, offset)[0])


def _read_at(f: BinaryIO, offset: int, length: int) -> bytes:
    f.seek(offset)
    return f.read(length)


def _read_gpt(f: BinaryIO, total: int) -> tuple[bytes, bytes] | None:
    header = _read_at(f, SECTOR, SECTOR)
    if header[:8] != b"EFI PART":
        return None
    fields = GPT_HEADER.unpack_from(header)
    size, array_lba, count, entry_size = fields[2], fields[10], fields[11], fields[12]
    check = bytearray(header[:size])
    check[16:20] = b"\0\0\0\0"
    if zlib.crc32(bytes(check)) != fields[3] or count * entry_size > 1024 * 1024:
        return None
    array = _read_at(f, array_lba * SECTOR, count * entry_size)
    if zlib.crc32(array) != fields[13]:
        return None
    return header, array


def _gpt_entries(gpt: tuple[bytes, bytes]) -> list[tuple[int, int, int]]:
    """(index, first sector, last sector) of the used entries."""
    header, array = gpt
    entry_size = GPT_HEADER.unpack_from(header)[12]
    used = []
    for i in range(len(array) // entry_size):
        entry = array[i * entry_size : (i + 1) * entry_size]
        if any(entry[:16]):
            first, last = struct.unpack_from("<QQ", entry, 32)
            used.append((i, first, last))
    return used


def _mbr_entries(sector: bytes) -> list[_MbrEntry]:
    if sector[510:512] != b"\x55\xaa":
        return []
    entries = []
    for i in range(4):
        raw = sector[446 + 16 * i : 462 + 16 * i]
        if raw[4] != 0:
            entries.append(_MbrEntry(i, raw))
    return entries


def _read_layout(path: Path, image: IsoImage, entries: list[ElToritoEntry]) -> _Layout:
    sizes: dict[int, int] = {}
    for item in image.walk(NullReporter()):
        if item.extents and item.entry.size:
            sizes.setdefault(item.extents[0][0], item.entry.size)
    with open(path, "rb") as f:
        total = os.fstat(f.fileno()).st_size
        system_area = _read_at(f, 0, SYSTEM_AREA)
        volume_end = image.volume_blocks * BLOCK
        gpt = _read_gpt(f, total)
        iso_end = min(volume_end, total)
        covers_tail = False
        if gpt is not None:
            backup_array = (GPT_HEADER.unpack_from(gpt[0])[6] - 32) * SECTOR
            if backup_array < iso_end:  # livesmith's images: the volume covers the GPT tail
                iso_end = backup_array // BLOCK * BLOCK
                covers_tail = True
        mbr = _mbr_entries(system_area[:SECTOR])
        appended = sorted(
            {
                (start, end)
                for start, end in _partition_ranges(mbr, gpt)
                if start >= iso_end and end <= total and end > start
            }
        )
        images = []
        for entry in entries:
            start = entry.load_rba * BLOCK
            size = sizes.get(entry.load_rba) if entry.boot_file else None
            in_partition = next((i for i, (s, e) in enumerate(appended) if s <= start < e), None)
            if size is None:
                size = entry.load_size * SECTOR
            head = _read_at(f, start, GRUB_INFO + 8) if start < total else b""
            table = None
            if entry.emulation == "none" and len(head) >= 24:
                pvd_block, own_block, length = struct.unpack_from("<III", head, 8)
                if pvd_block == 16 and own_block == entry.load_rba and 0 < length <= size:
                    table = length
            grub_info = len(head) >= GRUB_INFO + 8 and _u64(head, GRUB_INFO) == (
                entry.load_rba * 4 + 5
            )
            images.append(_BootImage(entry, size, table, grub_info, in_partition))
    layout = _Layout(
        total=total,
        iso_end=iso_end,
        covers_tail=covers_tail,
        system_area=system_area,
        images=images,
        mbr=mbr,
        gpt=gpt,
        appended=appended,
    )
    return layout


def _partition_ranges(
    mbr: list[_MbrEntry], gpt: tuple[bytes, bytes] | None
) -> list[tuple[int, int]]:
    ranges = []
    for e in mbr:
        if e.raw[4] != 0xEE:
            first, count = struct.unpack_from("<II", e.raw, 8)
            ranges.append((first * SECTOR, (first + count) * SECTOR))
    if gpt is not None:
        ranges += [(a * SECTOR, (b + 1) * SECTOR) for _, a, b in _gpt_entries(gpt)]
    return ranges


# --------------------------------------------------------------------------- checking


def _iso_path(path: str) -> str | None:
    parts = [p for p in PurePosixPath(path).parts if p not in ("/", ".")]
    if not parts or ".." in parts:
        return None
    return "/" + "/".join(parts)


def _check_mbr_code(layout: _Layout, problems: list[Problem], where: str) -> None:
    """Which boot image the MBR code points at (byte 432), if it has code at all."""
    code = layout.system_area[:MBR_LBA_OFFSET]
    pointer = _u64(layout.system_area, MBR_LBA_OFFSET)
    if not any(code) or pointer == 0:
        return
    for image in layout.images:
        if image.entry.platform != 0 or image.entry.emulation != "none":
            continue
        if pointer == image.entry.load_rba * 4:
            layout.mbr_pointer = "isolinux"
            return
        if pointer == image.entry.load_rba * 4 + 4:
            layout.mbr_pointer = "grub"
            return
    if pointer < layout.iso_end // SECTOR:
        problems.append(
            Problem(
                where,
                f"the MBR boot code points at sector {pointer}, which is not a BIOS boot "
                "image of the El Torito catalog: it would point at other data after "
                "remastering",
            )
        )


def _landmarks(layout: _Layout) -> set[int]:
    """Byte offsets a partition may start or end at to be kept."""
    points = {0, SECTOR, SYSTEM_AREA, layout.iso_end, layout.total}
    for image in layout.images:
        if image.in_partition is None:
            start = image.entry.load_rba * BLOCK
            points |= {start, start + -(-image.size // SECTOR) * SECTOR}
    for start, end in layout.appended:
        points |= {start, end}
    return points


def _named_ranges(layout: _Layout) -> list[tuple[str, int, int]]:
    named = [
        (f"MBR partition {e.index + 1}", *struct.unpack_from("<II", e.raw, 8))
        for e in layout.mbr
        if e.raw[4] != 0xEE
    ]
    ranges = [(name, first * SECTOR, (first + count) * SECTOR) for name, first, count in named]
    if layout.gpt is not None:
        ranges += [
            (f"GPT partition {i + 1}", a * SECTOR, (b + 1) * SECTOR)
            for i, a, b in _gpt_entries(layout.gpt)
        ]
    return ranges


def _check_partitions(layout: _Layout, problems: list[Problem], where: str) -> None:
    points = _landmarks(layout)
    tail = layout.total - 64 * SECTOR
    for name, start, end in _named_ranges(layout):
        for point in (start, end):
            if point not in points and not (layout.gpt is not None and point >= tail):
                problems.append(
                    Problem(
                        where,
                        f"{name} (from byte {start} to {end}) does not cover the ISO, an El "
                        "Torito boot image or a partition appended after the ISO data: it "
                        "cannot be moved with them",
                        hint="the image has structures in the ISO data that only its "
                        "mastering tool knows, e.g. an HFS+ partition for Macs",
                    )
                )
                return


def _boot_paths(layout: _Layout) -> dict[str, int]:
    return {
        image.entry.boot_file: image.entry.index
        for image in layout.images
        if image.entry.boot_file is not None
    }


def _covered(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def _check_changes(
    spec: RemasterSpec,
    layout: _Layout | None,
    files: dict[str, bool],
    catalog: str | None,
    problems: list[Problem],
) -> None:
    boot = _boot_paths(layout) if layout else {}
    for raw in spec.remove:
        path = _iso_path(raw)
        if path is None:
            problems.append(Problem(raw, "not a path inside the ISO"))
        elif path not in files:
            problems.append(Problem(raw, "there is no such file or directory in the ISO"))
        else:
            hit = [b for b in boot if _covered(b, path)]
            if hit or (catalog and _covered(catalog, path)):
                what = (
                    f"El Torito boot image {boot[hit[0]]} ({hit[0]})"
                    if hit
                    else f"the El Torito boot catalog ({catalog})"
                )
                problems.append(
                    Problem(raw, f"removing it would remove {what}: the image would not boot")
                )
    for raw, local in spec.add:
        path = _iso_path(raw)
        if path is None:
            problems.append(Problem(raw, "not a path inside the ISO"))
            continue
        try:
            st = local.stat()
        except OSError as exc:
            problems.append(Problem(str(local), f"cannot read the file to add: {exc.strerror}"))
            continue
        if not stat.S_ISREG(st.st_mode):
            problems.append(Problem(str(local), "only regular files can be added"))
        if path in boot or path == catalog:
            problems.append(
                Problem(
                    raw,
                    "is the El Torito boot catalog or a boot image; replacing it would "
                    "change the boot setup, which remastering keeps",
                )
            )
        elif files.get(path) is True:
            problems.append(Problem(raw, "is a directory in the ISO; a file cannot replace it"))
        parent = str(PurePosixPath(path).parent)
        while parent != "/":
            if files.get(parent) is False:
                problems.append(Problem(raw, f"{parent} is a file in the ISO, not a directory"))
                break
            parent = str(PurePosixPath(parent).parent)


def _check_output(spec: RemasterSpec, problems: list[Problem]) -> None:
    out = spec.output
    if not out.parent.is_dir():
        problems.append(Problem(str(out), f"the output directory {out.parent} does not exist"))
    elif out.is_dir():
        problems.append(Problem(str(out), "the output path is a directory"))
    elif not os.access(out.parent, os.W_OK):
        problems.append(Problem(str(out), f"cannot write to the output directory {out.parent}"))
    elif out.exists() and spec.source.exists() and out.resolve() == spec.source.resolve():
        problems.append(Problem(str(out), "the output must not be the image being remastered"))


@dataclass(frozen=True)
class RemasterPlan:
    problems: list[Problem]
    kept: list[str]  # the boot setup that will be replayed, in words


def _plan(spec: RemasterSpec) -> tuple[RemasterPlan, _Layout | None]:
    problems: list[Problem] = []
    if spec.label is not None:
        problems += validate_label(spec.label)
    _check_output(spec, problems)
    where = str(spec.source)
    layout = None
    files: dict[str, bool] = {}
    catalog = None
    try:
        with IsoImage(spec.source) as image:
            extent_paths: dict[int, str] = {}
            for item in image.walk(NullReporter()):
                files[item.entry.path] = item.entry.type == "dir"
                if item.extents and item.entry.size:
                    extent_paths.setdefault(item.extents[0][0], item.entry.path)
            entries = image.eltorito(extent_paths)
            layout = _read_layout(spec.source, image, entries)
            catalog = _catalog_path(image, extent_paths)
            if (spec.add or spec.remove) and image.name_source != "rock_ridge":
                problems.append(
                    Problem(
                        where,
                        f"the image has no Rock Ridge names ({image.name_source} names only); "
                        "remastering changes files only of images with Rock Ridge",
                    )
                )
    except InputError as exc:
        problems.append(Problem(exc.where or where, str(exc.args[0]) if exc.args else str(exc)))
    except OSError as exc:
        problems.append(Problem(where, f"cannot read the image: {exc.strerror or exc}"))
    if layout is not None:
        for image_ in layout.images:
            e = image_.entry
            if e.boot_file is None and image_.in_partition is None:
                start = e.load_rba * BLOCK
                if start < layout.iso_end:
                    problems.append(
                        Problem(
                            where,
                            f"El Torito boot image {e.index} ({e.platform_name}) at block "
                            f"{e.load_rba} is not a file of the ISO tree; pycdlib cannot "
                            "move it with the files",
                        )
                    )
                else:
                    problems.append(
                        Problem(
                            where,
                            f"El Torito boot image {e.index} ({e.platform_name}) at block "
                            f"{e.load_rba} is outside the ISO data and not in a partition",
                        )
                    )
        _check_mbr_code(layout, problems, where)
        _check_partitions(layout, problems, where)
    _check_changes(spec, layout, files, catalog, problems)
    return RemasterPlan(problems, _kept(layout) if layout else []), layout


def _catalog_path(image: IsoImage, extent_paths: dict[int, str]) -> str | None:
    catalogs = getattr(image, "_catalogs", None)
    return extent_paths.get(catalogs[0]) if catalogs else None


def _kept(layout: _Layout) -> list[str]:
    kept = []
    for image in layout.images:
        e = image.entry
        where = e.boot_file or (
            f"appended partition {image.in_partition + 1}"
            if image.in_partition is not None
            else f"block {e.load_rba}"
        )
        extras = [f"load size {e.load_size}"]
        if image.table_length is not None:
            extras.append("boot info table")
        if image.grub_info:
            extras.append("grub2-boot-info")
        kept.append(
            f"El Torito {e.index}: {e.platform_name}, {e.emulation} emulation, "
            f"{where} ({', '.join(extras)})"
        )
    if layout.mbr_pointer:
        name = "ISOLINUX isohybrid" if layout.mbr_pointer == "isolinux" else "GRUB hybrid"
        kept.append(f"{name} MBR boot code")
    if layout.mbr:
        kept.append(f"MBR partition table ({len(layout.mbr)} entries)")
    if layout.gpt:
        kept.append(f"GPT ({len(_gpt_entries(layout.gpt))} partitions)")
    for i, (start, end) in enumerate(layout.appended, 1):
        kept.append(f"appended partition {i} ({end - start} bytes)")
    return kept


def plan_remaster(spec: RemasterSpec) -> RemasterPlan:
    """Every problem that keeps `spec` from being remastered, and what will be kept."""
    return _plan(spec)[0]


# --------------------------------------------------------------------------- files


class _Tree:
    """Adds and removals on a pycdlib image, by real (Rock Ridge) paths."""

    def __init__(self, iso: pycdlib.PyCdlib) -> None:
        self.iso = iso
        self.rock_ridge = iso.has_rock_ridge() is not None and bool(iso.has_rock_ridge())
        self.joliet = bool(iso.has_joliet())

    def record(self, path: str) -> Any:
        # only images with Rock Ridge get here (checked in _plan)
        return self.iso.get_record(rr_path=path)

    def iso_path(self, path: str) -> str:
        return str(self.iso.full_path_from_dirrecord(self.record(path)))

    def joliet_path(self, path: str) -> str | None:
        if not self.joliet:
            return None
        if not self.rock_ridge:
            return path
        # Joliet names follow the real names; found by listing the parent
        parent, name = str(PurePosixPath(path).parent), PurePosixPath(path).name
        jparent = self.joliet_path(parent) if parent != "/" else "/"
        if jparent is None:
            return None
        try:
            for child in self.iso.list_children(joliet_path=jparent):
                ident = child.file_identifier().decode("utf-16-be").split(";")[0]
                if ident == name or ident == joliet_names([name])[0]:
                    return f"{jparent.rstrip('/')}/{ident}"
        except PyCdlibException:
            return None
        return None

    def children_names(self, iso_dir: str) -> list[str]:
        names = []
        for child in self.iso.list_children(iso_path=iso_dir):
            if child.is_dot() or child.is_dotdot():
                continue
            names.append(child.file_identifier().decode("ascii", "replace").split(";")[0])
        return names

    def exists(self, path: str) -> bool:
        try:
            self.record(path)
        except PyCdlibException:
            return False
        return True

    def remove(self, path: str) -> None:
        rec = self.record(path)
        if rec.is_dir():
            for child in self.iso.list_children(iso_path=self.iso_path(path)):
                if child.is_dot() or child.is_dotdot():
                    continue
                name = self._real_name(child)
                self.remove(f"{path.rstrip('/')}/{name}")
            self.iso.rm_directory(iso_path=self.iso_path(path))
        else:
            self.iso.rm_file(iso_path=self.iso_path(path))

    def _real_name(self, rec: Any) -> str:
        if self.rock_ridge and rec.rock_ridge is not None:
            return str(rec.rock_ridge.name().decode("utf-8"))
        return str(rec.file_identifier().decode("ascii").split(";")[0])

    def _new_names(self, path: str, is_dir: bool) -> tuple[str, str | None]:
        parent, name = str(PurePosixPath(path).parent), PurePosixPath(path).name
        iso_parent = self.iso_path(parent) if parent != "/" else "/"
        taken = self.children_names(iso_parent)
        ident = iso9660_names([(name, is_dir)], reserved=taken)[0]
        iso = f"{iso_parent.rstrip('/')}/{ident}" + ("" if is_dir else ";1")
        joliet = None
        if self.joliet:
            jparent = self.joliet_path(parent) if parent != "/" else "/"
            if jparent is not None:
                jtaken = [
                    c.file_identifier().decode("utf-16-be")
                    for c in self.iso.list_children(joliet_path=jparent)
                    if not (c.is_dot() or c.is_dotdot())
                ]
                joliet = f"{jparent.rstrip('/')}/{joliet_names([name], reserved=jtaken)[0]}"
        return iso, joliet

    def makedirs(self, path: str) -> None:
        if path == "/" or self.exists(path):
            return
        self.makedirs(str(PurePosixPath(path).parent))
        iso, joliet = self._new_names(path, True)
        if self.rock_ridge:
            name = PurePosixPath(path).name
            self.iso.add_directory(iso, rr_name=name, joliet_path=joliet, file_mode=0o40755)
        else:
            self.iso.add_directory(iso, joliet_path=joliet)

    def add(self, path: str, local: Path) -> None:
        mode = 0o100644
        if self.exists(path):
            rec = self.record(path)
            if self.rock_ridge and rec.rock_ridge is not None:
                mode = rec.rock_ridge.get_file_mode() or mode
            self.remove(path)
        self.makedirs(str(PurePosixPath(path).parent))
        iso, joliet = self._new_names(path, False)
        size = local.stat().st_size
        source = cast(BinaryIO, LazySourceFile(str(local), size))
        if self.rock_ridge:
            name = PurePosixPath(path).name
            self.iso.add_fp(
                source, size, iso_path=iso, rr_name=name, joliet_path=joliet, file_mode=mode
            )
        else:
            self.iso.add_fp(source, size, iso_path=iso, joliet_path=joliet)


# --------------------------------------------------------------------------- writing


def _new_catalog(f: BinaryIO, size: int) -> tuple[int, list[tuple[int, int]]]:
    """(catalog block, [(byte offset of each entry's RBA field, rba)]) in entry order."""
    record = _read_at(f, 17 * BLOCK, BLOCK)
    block = _u32(record, 0x47)
    data = _read_at(f, block * BLOCK, BLOCK)
    fields = [(block * BLOCK + 32 + 8, _u32(data, 40))]
    owed = 0
    for offset in range(64, BLOCK - 31, 32):
        kind = data[offset]
        if kind in (0x90, 0x91):
            owed = struct.unpack_from("<H", data, offset + 2)[0]
        elif owed and (kind == 0x88 or (kind == 0 and any(data[offset : offset + 32]))):
            fields.append((block * BLOCK + offset + 8, _u32(data, offset + 8)))
            owed -= 1
        elif kind == 0x44:
            continue
        elif kind == 0x88:
            fields.append((block * BLOCK + offset + 8, _u32(data, offset + 8)))
        else:
            break
    return block, fields


def _chs(lba: int, heads: int, sectors: int) -> bytes:
    cylinder, rest = divmod(lba, heads * sectors)
    if cylinder > 1023:
        return b"\xfe\xff\xff"
    head, sector = divmod(rest, sectors)
    return bytes([head, ((cylinder >> 2) & 0xC0) | (sector + 1), cylinder & 0xFF])


def _geometry(entries: list[_MbrEntry]) -> tuple[int, int]:
    """The heads and sectors per track the original's CHS fields were written with."""
    for heads, sectors in ((64, 32), (255, 63), (16, 63), (128, 32), (255, 32)):
        for e in entries:
            first, count = struct.unpack_from("<II", e.raw, 8)
            if (
                e.raw[4] != 0xEE
                and _chs(first + count - 1, heads, sectors) == e.raw[5:8]
                and e.raw[5:8] != b"\xfe\xff\xff"
            ):
                return heads, sectors
    return 64, 32  # as xorriso and isohybrid write them


class _Mover:
    """Maps byte offsets of the original to the remastered image."""

    def __init__(self, layout: _Layout, new_images: list[int], new_iso_end: int) -> None:
        self.layout = layout
        self.new_iso_end = new_iso_end
        old_content = max([layout.iso_end] + [e for _, e in layout.appended])
        # appended partitions keep their alignment (xorriso: 2048 bytes, or cylinders)
        align = MIB if layout.appended and layout.appended[0][0] % MIB == 0 else BLOCK
        self.delta = 0
        if layout.appended:
            first = layout.appended[0][0]
            gap = first - layout.iso_end
            target = -(-(new_iso_end + gap) // align) * align if align == MIB else new_iso_end + gap
            self.delta = target - first
        new_content = max([new_iso_end] + [e + self.delta for _, e in layout.appended])
        tail = layout.total - old_content
        new_total = new_content + tail
        if tail and layout.gpt is None and layout.total % MIB == 0:
            new_total = -(-new_content // MIB) * MIB  # isohybrid's cylinder padding
        self.new_total = new_total
        self.points = {0: 0, SECTOR: SECTOR, SYSTEM_AREA: SYSTEM_AREA}
        self.points[layout.iso_end] = new_iso_end
        for image, rba in zip(layout.images, new_images, strict=True):
            if image.in_partition is None:
                start = image.entry.load_rba * BLOCK
                end = start + -(-image.size // SECTOR) * SECTOR
                self.points[start] = rba * BLOCK
                self.points[end] = rba * BLOCK + (end - start)
        for start, end in layout.appended:
            self.points[start] = start + self.delta
            self.points[end] = end + self.delta
        self.points[layout.total] = new_total

    def __call__(self, offset: int) -> int:
        if offset in self.points:
            return self.points[offset]
        if offset >= self.layout.total - 64 * SECTOR:
            return offset - self.layout.total + self.new_total
        raise ValueError(offset)


def _write_mbr(out: BinaryIO, layout: _Layout, move: _Mover, new_bios: int | None) -> None:
    sector = bytearray(layout.system_area[:SECTOR])
    if layout.mbr_pointer and new_bios is not None:
        extra = sysarea.GRUB_MBR_LBA_OFFSET if layout.mbr_pointer == "grub" else 0
        struct.pack_into("<Q", sector, MBR_LBA_OFFSET, new_bios * 4 + extra)
    heads, sectors = _geometry(layout.mbr)
    total_sectors = move.new_total // SECTOR
    for e in layout.mbr:
        raw = bytearray(e.raw)
        first, count = struct.unpack_from("<II", raw, 8)
        if raw[4] == 0xEE:
            new_first, new_count = first, min(total_sectors - first, 0xFFFFFFFF)
        else:
            new_first = move(first * SECTOR) // SECTOR
            new_count = (move((first + count) * SECTOR) - new_first * SECTOR) // SECTOR
        if first != new_first or count != new_count:
            raw[1:4] = _chs(new_first, heads, sectors)
            raw[5:8] = _chs(new_first + new_count - 1, heads, sectors)
            struct.pack_into("<II", raw, 8, new_first, new_count)
        sector[446 + 16 * e.index : 462 + 16 * e.index] = raw
    out.seek(0)
    out.write(layout.system_area)
    out.seek(0)
    out.write(sector)


def _write_gpt(out: BinaryIO, layout: _Layout, move: _Mover) -> None:
    assert layout.gpt is not None
    header, array = layout.gpt
    fields = list(GPT_HEADER.unpack_from(header))
    entry_size = fields[12]
    new_array = bytearray(array)
    for i, first, last in _gpt_entries(layout.gpt):
        new_first = move(first * SECTOR) // SECTOR
        new_last = move((last + 1) * SECTOR) // SECTOR - 1
        struct.pack_into("<QQ", new_array, i * entry_size + 32, new_first, new_last)
    array_crc = zlib.crc32(bytes(new_array))
    old_last = layout.total // SECTOR - 1
    new_last = move.new_total // SECTOR - 1
    last_usable = fields[8] - old_last + new_last
    array_sectors = -(-len(array) // SECTOR)

    def pack(my_lba: int, alternate: int, array_lba: int) -> bytes:
        values = list(fields)
        values[3] = 0
        values[5], values[6], values[8], values[10] = my_lba, alternate, last_usable, array_lba
        values[13] = array_crc
        raw = bytearray(GPT_HEADER.pack(*values))
        struct.pack_into("<I", raw, 16, zlib.crc32(bytes(raw[: fields[2]])))
        return bytes(raw).ljust(SECTOR, b"\0")

    out.seek(SECTOR)
    out.write(pack(1, new_last, fields[10]))
    out.seek(fields[10] * SECTOR)
    out.write(new_array)
    out.seek((new_last - array_sectors) * SECTOR)
    out.write(new_array)
    out.write(pack(new_last, 1, new_last - array_sectors))


def _copy(src: BinaryIO, out: BinaryIO, start: int, end: int, to: int) -> None:
    src.seek(start)
    out.seek(to)
    left = end - start
    while left > 0:
        chunk = src.read(min(left, 4 * MIB))
        if not chunk:
            break
        out.write(chunk)
        left -= len(chunk)


def _detach_appended_images(iso: pycdlib.PyCdlib, layout: _Layout) -> None:
    """pycdlib takes a boot image outside the ISO data (in an appended partition) for a
    hidden file of its load size and would move it into the ISO: it gets one block there
    instead (the catalog entry is pointed at the partition again afterwards)."""
    catalog = iso.eltorito_boot_catalog
    if catalog is None:
        return
    entries = [catalog.initial_entry]
    entries += [e for section in catalog.sections for e in section.section_entries]
    entries += list(catalog.standalone_entries)
    for entry, image in zip(entries, layout.images, strict=False):
        if image.in_partition is not None and entry.inode is not None:
            entry.inode.data_length = BLOCK
            for vd in [*iso.pvds, *([iso.joliet_vd] if iso.joliet_vd else [])]:
                vd.add_to_space_size(BLOCK)


def _even_path_tables(iso: pycdlib.PyCdlib) -> None:
    """pycdlib counts path table blocks in pairs; an image whose path tables take one
    block each (xorriso's) makes it fail when a directory is removed ("Extent number
    should never grow when removing PTR"). The pair is made whole, with its space."""
    for vd in [*iso.pvds, *([iso.joliet_vd] if iso.joliet_vd else [])]:
        missing = vd._path_table_extents() - vd.path_table_num_extents
        if missing > 0:
            vd.path_table_num_extents += missing
            for other in [*iso.pvds, *([iso.joliet_vd] if iso.joliet_vd else [])]:
                other.add_to_space_size(2 * missing * BLOCK)


def _set_label(iso: pycdlib.PyCdlib, label: str) -> None:
    iso.pvd.volume_identifier = label.encode("ascii").ljust(32)
    joliet = getattr(iso, "joliet_vd", None)
    if joliet is not None:
        joliet.volume_identifier = label[:16].encode("utf-16-be").ljust(32, b"\0 "[:1])


def _replay(
    spec: RemasterSpec, layout: _Layout, out: BinaryIO, new_iso_end: int
) -> tuple[int, list[int]]:
    """Boot tables, MBR, GPT and appended partitions for the image pycdlib wrote to `out`."""
    _, fields = _new_catalog(out, new_iso_end)
    if len(fields) != len(layout.images):
        raise StageError(
            f"the new boot catalog has {len(fields)} entries, the original {len(layout.images)}",
            stage="remastering",
            where=str(spec.output),
        )
    new_rbas = [rba for _, rba in fields]
    move = _Mover(layout, new_rbas, new_iso_end)
    out.truncate(move.new_total)
    with open(spec.source, "rb") as src:
        for start, end in layout.appended:
            _copy(src, out, start, end, start + move.delta)
    for image, (offset, rba) in zip(layout.images, fields, strict=True):
        if image.in_partition is not None:
            start = layout.appended[image.in_partition][0]
            new_rba = (image.entry.load_rba * BLOCK + move.delta) // BLOCK
            out.seek(offset)
            out.write(struct.pack("<I", new_rba))
            assert start + move.delta <= new_rba * BLOCK
            continue
        if image.grub_info:
            sysarea.patch_grub_boot_info(out, rba)
        if image.table_length is not None:
            sysarea.write_boot_info_table(out, rba, image.table_length)
    bios = next(
        (
            rba
            for image, rba in zip(layout.images, new_rbas, strict=True)
            if image.entry.platform == 0 and image.entry.emulation == "none"
        ),
        None,
    )
    _write_mbr(out, layout, move, bios)
    if layout.gpt is not None:
        _write_gpt(out, layout, move)
    if layout.covers_tail:
        sysarea.set_volume_space_size(out, move.new_total // BLOCK)
    return move.new_total, new_rbas


def remaster_iso(spec: RemasterSpec, reporter: Reporter | None = None) -> RemasterResult:
    """Remaster `spec.source` into `spec.output`; ValidationError before any writing."""
    reporter = reporter or NullReporter()
    reporter.step(f"Reading {spec.source.name}")
    plan, layout = _plan(spec)
    if plan.problems or layout is None:
        raise ValidationError(plan.problems)
    check_cancelled(reporter)
    output = spec.output
    tmp = output.parent / f".{output.name}.{secrets.token_hex(4)}.part"
    iso = pycdlib.PyCdlib()
    try:
        with image_errors(output, stage="remastering", verb="remaster"):
            iso.open(str(spec.source))
            if iso.isohybrid_mbr is not None:
                iso.rm_isohybrid()  # the system area is replayed below, as it was
            _detach_appended_images(iso, layout)
            _even_path_tables(iso)
            tree = _Tree(iso)
            reporter.step("Changing the files")
            for raw in spec.remove:
                tree.remove(_iso_path(raw) or raw)
            for raw, local in spec.add:
                tree.add(_iso_path(raw) or raw, local)
            if spec.label is not None:
                _set_label(iso, spec.label)
            reporter.step("Writing the ISO image")

            def progress(done: int, total: int, _opaque: Any) -> None:
                reporter.progress(done, total)
                check_cancelled(reporter)

            with open(tmp, "w+b") as out:
                iso.write_fp(out, progress_cb=progress)
                out.flush()
                out.seek(0, os.SEEK_END)
                new_iso_end = out.tell()
                reporter.step("Replaying the boot setup")
                size, _ = _replay(spec, layout, out, new_iso_end)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, output)
    finally:
        iso.close()
        tmp.unlink(missing_ok=True)
    for line in plan.kept:
        reporter.log(Level.INFO, f"kept: {line}")
    reporter.log(Level.INFO, f"wrote {output} ({size} bytes)")
    return RemasterResult(path=output, size=size, kept=plan.kept)


__all__ = [
    "RemasterPlan",
    "RemasterResult",
    "RemasterSpec",
    "plan_remaster",
    "remaster_iso",
]
