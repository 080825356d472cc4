"""Mastering a bootable hybrid ISO from a staged directory tree (the mkisofs role).

    spec = MasterSpec(tree=Path("staging"), output=Path("live.iso"), label="LIVE",
                      boot=BootSpec(bios_boot="boot/syslinux/isolinux.bin",
                                    efi_image="boot/grub/efi.img"))
    problems = validate_master(spec)          # everything wrong, nothing written
    result = master_iso(spec, reporter)        # raises ValidationError first

The image: ISO 9660 level 3 + Rock Ridge 1.09 (real names, modes, owners, symlink
targets) + Joliet, written by pycdlib; El Torito entry 1 BIOS (no emulation, load size
4, boot info table), entry 2 UEFI (the FAT image); a protective MBR with isohybrid boot
code and a valid GPT whose ESP is the EFI image (`app.iso.sysarea`).

With `source_date_epoch` (which `livesmith master` and the build take from
SOURCE_DATE_EPOCH, see app.epoch) the same tree gives the same bytes: every time stamp is
pinned (entries keep their mtime, clamped to the epoch; volume dates are the epoch) and
the MBR id and GPT GUIDs are derived from epoch and label.

The image is written to a hidden temporary file next to the output and renamed into
place when complete; on any error or cancel the temporary file is removed.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import shutil
import struct
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, cast

import pycdlib

from app.errors import Problem, StageError, ValidationError
from app.iso import sysarea
from app.iso.imageio import ImageWriter, LazySourceFile, image_errors
from app.iso.labels import validate_label
from app.iso.names import iso9660_names, joliet_names
from app.iso.pinning import Meta, pin_tree, pin_volume_descriptors
from app.iso.staged import Node, NodeKind, scan_tree
from app.reporter import Level, NullReporter, Reporter, check_cancelled

JOLIET_LABEL_LENGTH = 16  # UCS-2 characters in the 32-byte volume identifier

ISOHDPFX = Path("/usr/lib/ISOLINUX/isohdpfx.bin")  # Debian package: isolinux
GRUB_PC_DIR = Path("/usr/lib/grub/i386-pc")  # Debian package: grub-pc-bin
GRUB_BOOT_HYBRID = GRUB_PC_DIR / "boot_hybrid.img"  # the MBR code grub-mkrescue uses
GRUB_CDBOOT = GRUB_PC_DIR / "cdboot.img"  # the first 2048 bytes of eltorito.img
EMULATIONS = {"none": "noemul", "floppy": "floppy", "hd": "hdemul"}
FLOPPY_SIZES = {1228800: "1.2 MB", 1474560: "1.44 MB", 2949120: "2.88 MB"}
BLOCK = 2048
FOUR_GIB = 4 * 1024**3
EFI_IMAGE_LIMIT = 0xFFFF * 512  # El Torito sector count is 16 bits of 512-byte sectors
MAX_DIRECTORIES = 0xFFFF  # path table parent numbers are 16 bits
RELOCATION_DEPTH = 8  # ECMA-119 6.8.2.1: at most 8 levels
RELOCATED_ISO_NAME = "RR_MOVED"
RELOCATED_RR_NAME = ".rr_moved"
ID_FIELD_LIMIT = 128  # publisher / preparer / application identifiers
WRITE_BLOCK = 1024 * 1024
EFI_PLACEHOLDER = "/LSMEFIPT.IMG;1"  # removed from the tree again: only the entry has it


@dataclass(frozen=True)
class BootEntry:
    """A further El Torito entry (a section of the catalog), after the BIOS and UEFI ones:
    e.g. a second BIOS loader that a firmware menu offers."""

    platform: str  # "bios" | "uefi"
    path: str  # inside the tree
    emulation: str = "none"  # bios only: "none" | "floppy" | "hd"
    load_size: int | None = None
    boot_info_table: bool | None = None  # None: as the loader needs


PLATFORMS = {"bios": 0, "uefi": 0xEF}


@dataclass(frozen=True)
class BootSpec:
    bios_boot: str | None = None  # path inside the tree, e.g. "boot/syslinux/isolinux.bin"
    boot_catalog: str = "boot/boot.cat"  # created by mastering; its directory must exist
    efi_image: str | None = None  # path inside the tree, e.g. "boot/grub/efi.img" (FAT)
    hybrid: bool = True  # isohybrid MBR + GPT (ESP when efi_image)
    bios_emulation: str = "none"  # "none" | "floppy" | "hd" (El Torito media type)
    bios_load_size: int | None = None  # 512-byte sectors; None: 4 without emulation
    boot_info_table: bool | None = None  # None: when the loader needs it (ISOLINUX, GRUB)
    # a FAT image outside the tree, appended after the ISO data as the EFI System
    # partition; the UEFI El Torito entry points into it (xorriso -append_partition)
    efi_partition: Path | None = None
    more_entries: tuple[BootEntry, ...] = ()  # further entries, in catalog order


@dataclass(frozen=True)
class MasterSpec:
    tree: Path
    output: Path
    label: str
    boot: BootSpec = field(default_factory=BootSpec)
    publisher: str = ""
    application: str = "LIVESMITH"
    preparer: str = ""
    source_date_epoch: int | None = None  # None: dated now, random disk ids


@dataclass(frozen=True)
class MasterResult:
    path: Path
    size: int
    warnings: list[str]


@dataclass(frozen=True)
class MasterCheck:
    """What validation found: errors block mastering, warnings are passed on."""

    problems: list[Problem]
    warnings: list[str]
    estimated_size: int


# --------------------------------------------------------------------------- validation


def _tree_path(path: str) -> str | None:
    """Normalized tree-relative path, or None if it leaves the tree."""
    parts = [p for p in PurePosixPath(path).parts if p not in ("/", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def _human(size: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _check_ids(spec: MasterSpec) -> list[Problem]:
    problems = validate_label(spec.label)
    for what, value in (
        ("publisher", spec.publisher),
        ("application", spec.application),
        ("preparer", spec.preparer),
    ):
        if len(value) > ID_FIELD_LIMIT or not all(" " <= ch <= "~" for ch in value):
            problems.append(
                Problem(
                    what,
                    f"the {what} identifier must be at most "
                    f"{ID_FIELD_LIMIT} printable ASCII characters",
                )
            )
    return problems


def _boot_file(
    root: Node, spec_path: str, what: str, tree: Path, problems: list[Problem]
) -> Node | None:
    rel = _tree_path(spec_path)
    if rel is None:
        problems.append(Problem(what, f"'{spec_path}' is not a path inside the tree"))
        return None
    node = root.find(rel)
    if node is None:
        problems.append(Problem(f"{tree}/{rel}", f"the {what} is missing from the tree"))
        return None
    if node.kind is not NodeKind.FILE:
        problems.append(
            Problem(f"{tree}/{rel}", f"the {what} must be a regular file, not a {node.kind.value}")
        )
        return None
    return node


def _read_head(path: Path, size: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(size)


def loader_kind(head: bytes) -> str | None:
    """ "isolinux", "grub" (GRUB's eltorito.img) or None, from a boot file's first 2 KiB."""
    off = sysarea.ISOLINUX_SIGNATURE_OFFSET
    if head[off : off + 4] == sysarea.ISOLINUX_HYBRID_SIGNATURE:
        return "isolinux"
    if GRUB_CDBOOT.is_file() and len(head) >= BLOCK:
        cdboot = GRUB_CDBOOT.read_bytes()[:BLOCK]
        # bytes 8-23 hold the boot info table, patched per image
        if head[:8] == cdboot[:8] and head[24:BLOCK] == cdboot[24:BLOCK]:
            return "grub"
    return None


LOADER_NAMES = {"isolinux": "ISOLINUX (isolinux.bin)", "grub": "GRUB's eltorito.img"}


def _mbr_partition_count(head: bytes) -> int:
    """Used entries of the MBR partition table in `head` (the first sector of a disk)."""
    return sum(1 for i in range(4) if head[446 + 16 * i + 4] != 0)


def _check_emulation(
    boot: BootSpec, tree: Path, bios: Node, problems: list[Problem], warnings: list[str]
) -> str | None:
    """Checks of the BIOS boot file for its emulation; returns its loader kind."""
    where = f"{tree}/{bios.rel}"
    head = _read_head(tree / bios.rel, BLOCK)
    kind = loader_kind(head)
    if boot.bios_emulation == "floppy" and bios.size not in FLOPPY_SIZES:
        problems.append(
            Problem(
                where,
                f"a floppy emulation image must be 1.2 MB (1228800 bytes), 1.44 MB "
                f"(1474560 bytes) or 2.88 MB (2949120 bytes); this one is {bios.size} bytes",
                hint="pad or rebuild the floppy image to one of these sizes",
            )
        )
    elif boot.bios_emulation == "hd":
        count = _mbr_partition_count(head) if len(head) >= 512 else 0
        if len(head) < 512 or head[510:512] != b"\x55\xaa":
            problems.append(
                Problem(where, "a hard disk emulation image must start with an MBR (no 0x55AA)")
            )
        elif count != 1:
            problems.append(
                Problem(
                    where,
                    f"a hard disk emulation image must have exactly one partition; "
                    f"its MBR has {count}",
                )
            )
    if boot.bios_emulation != "none":
        if boot.boot_info_table:
            problems.append(Problem(where, "a boot info table is only for no-emulation boot files"))
    elif boot.boot_info_table is False and kind is not None:
        warnings.append(
            f"{where} looks like {LOADER_NAMES[kind]}, which needs a boot info table, "
            "but none was asked for: it will probably not boot"
        )
    if boot.bios_load_size is not None and not 1 <= boot.bios_load_size <= 0xFFFF:
        problems.append(
            Problem(
                "load size",
                f"the load size must be 1-65535 sectors of 512 bytes, not {boot.bios_load_size}",
            )
        )
    return kind


def _check_hybrid_loader(
    boot: BootSpec, tree: Path, bios: Node, kind: str | None, problems: list[Problem]
) -> None:
    where = f"{tree}/{bios.rel}"
    if boot.bios_emulation != "none":
        problems.append(
            Problem(
                where,
                f"a {boot.bios_emulation} emulation image cannot be started from a hybrid "
                "image's MBR: only ISOLINUX and GRUB (no emulation) can",
                hint="master with --no-hybrid (CD only)",
            )
        )
    elif kind is None:
        problems.append(
            Problem(
                where,
                "the BIOS boot file is not ISOLINUX (isolinux.bin) or GRUB's eltorito.img: "
                "a hybrid image's MBR can only start ISOLINUX or GRUB",
                hint="use isolinux.bin or GRUB's eltorito.img, or master without hybrid",
            )
        )
    elif kind == "isolinux" and not ISOHDPFX.is_file():
        problems.append(
            Problem(
                str(ISOHDPFX),
                "the isohybrid MBR boot code is missing",
                hint="install it with: sudo apt-get install isolinux",
            )
        )
    elif kind == "grub" and not GRUB_BOOT_HYBRID.is_file():
        problems.append(
            Problem(
                str(GRUB_BOOT_HYBRID),
                "GRUB's hybrid MBR boot code is missing",
                hint="install it with: sudo apt-get install grub-pc-bin",
            )
        )


def _check_efi_partition(boot: BootSpec, problems: list[Problem]) -> None:
    path = boot.efi_partition
    assert path is not None
    if boot.efi_image is not None:
        problems.append(
            Problem(str(path), "give one EFI image: inside the tree or appended, not both")
        )
    try:
        size = path.stat().st_size if path.is_file() else -1
    except OSError:
        size = -1
    if size < 0:
        problems.append(Problem(str(path), "the EFI image to append is not a readable file"))
    elif size > EFI_IMAGE_LIMIT:
        problems.append(
            Problem(
                str(path),
                f"the EFI boot image is {_human(size)}; El Torito can describe at most "
                f"{_human(EFI_IMAGE_LIMIT)} (a 16-bit count of 512-byte sectors)",
            )
        )
    elif size < 512 or _read_head(path, 512)[510:512] != b"\x55\xaa":
        problems.append(
            Problem(
                str(path),
                "the EFI boot image is not a FAT file system image (no boot sector signature)",
            )
        )


def _check_more_entries(
    spec: MasterSpec, root: Node, problems: list[Problem], warnings: list[str]
) -> None:
    boot, tree = spec.boot, spec.tree
    if boot.more_entries and boot.bios_boot is None and boot.efi_image is None:
        if boot.efi_partition is None:
            problems.append(
                Problem(
                    "boot entries",
                    "further boot entries need a first one: give --bios-boot or --efi-image",
                )
            )
    for number, entry in enumerate(boot.more_entries, 1):
        what = f"boot entry {number} ({entry.platform})"
        if entry.platform not in PLATFORMS:
            problems.append(Problem(what, f"unknown platform '{entry.platform}': bios or uefi"))
            continue
        if entry.emulation not in EMULATIONS or (
            entry.platform == "uefi" and entry.emulation != "none"
        ):
            problems.append(
                Problem(what, f"emulation '{entry.emulation}' is not possible for this platform")
            )
            continue
        node = _boot_file(root, entry.path, f"file of {what}", tree, problems)
        if node is None:
            continue
        if entry.platform == "bios":
            as_spec = replace(
                boot,
                bios_emulation=entry.emulation,
                bios_load_size=entry.load_size,
                boot_info_table=entry.boot_info_table,
            )
            _check_emulation(as_spec, tree, node, problems, warnings)
        elif node.size < 512 or _read_head(tree / node.rel, 512)[510:512] != b"\x55\xaa":
            problems.append(
                Problem(
                    f"{tree}/{node.rel}",
                    "the EFI boot image is not a FAT file system image (no boot sector signature)",
                )
            )


def _check_boot(spec: MasterSpec, root: Node, problems: list[Problem], warnings: list[str]) -> None:
    boot, tree = spec.boot, spec.tree
    bios = efi = None
    if boot.bios_emulation not in EMULATIONS:
        problems.append(
            Problem(
                "emulation",
                f"unknown BIOS emulation '{boot.bios_emulation}': use none, floppy or hd",
            )
        )
        return
    if boot.bios_boot is not None:
        bios = _boot_file(root, boot.bios_boot, "BIOS boot file", tree, problems)
    if boot.efi_image is not None:
        efi = _boot_file(root, boot.efi_image, "EFI boot image", tree, problems)
    if boot.efi_partition is not None:
        _check_efi_partition(boot, problems)
    if bios is not None and efi is not None and bios is efi:
        problems.append(Problem("boot", "the BIOS boot file and the EFI image are the same file"))
    if bios is not None:
        kind = _check_emulation(boot, tree, bios, problems, warnings)
        if boot.hybrid:
            _check_hybrid_loader(boot, tree, bios, kind, problems)
    if efi is not None:
        if efi.size > EFI_IMAGE_LIMIT:
            problems.append(
                Problem(
                    f"{tree}/{efi.rel}",
                    f"the EFI boot image is {_human(efi.size)}; El Torito can "
                    f"describe at most {_human(EFI_IMAGE_LIMIT)} (a 16-bit count of 512-byte "
                    "sectors)",
                    hint="make the FAT image smaller than 32 MiB",
                )
            )
        elif efi.size < 512 or _read_head(tree / efi.rel, 512)[510:512] != b"\x55\xaa":
            problems.append(
                Problem(
                    f"{tree}/{efi.rel}",
                    "the EFI boot image is not a FAT file system image (no boot sector signature)",
                )
            )
    _check_more_entries(spec, root, problems, warnings)
    if boot.bios_boot is not None or boot.efi_image is not None or boot.efi_partition:
        cat = _tree_path(boot.boot_catalog)
        if cat is None:
            problems.append(
                Problem("boot catalog", f"'{boot.boot_catalog}' is not a path inside the tree")
            )
            return
        parent = root.find(str(PurePosixPath(cat).parent)) if "/" in cat else root
        if parent is None or not parent.is_dir:
            problems.append(
                Problem(
                    f"{tree}/{cat}",
                    "the directory for the El Torito boot catalog does not exist in the tree",
                    hint="create it, or choose another boot catalog path",
                )
            )
        elif root.find(cat) is not None:
            problems.append(
                Problem(
                    f"{tree}/{cat}",
                    "the boot catalog path is already taken by an entry of the tree",
                    hint="remove it, or choose another boot catalog path",
                )
            )


def _check_tree(spec: MasterSpec, root: Node, problems: list[Problem], warnings: list[str]) -> None:
    dirs = 0
    deep = []
    for node in root.walk():
        if node.is_dir:
            dirs += 1
            if node.depth and node.depth % RELOCATION_DEPTH == 0:
                deep.append(node.rel)
        elif node.kind is NodeKind.FILE and node.size >= FOUR_GIB:
            warnings.append(
                f"{spec.tree}/{node.rel} is {_human(node.size)}: files of 4 GiB or more are "
                "stored in several ISO 9660 extents; Linux and xorriso read them, some other "
                "systems do not"
            )
    if dirs > MAX_DIRECTORIES:
        problems.append(
            Problem(
                str(spec.tree),
                f"the tree has {dirs} directories; an ISO 9660 "
                f"path table can hold at most {MAX_DIRECTORIES}",
            )
        )
    if deep:
        warnings.append(
            f"{len(deep)} director{'y is' if len(deep) == 1 else 'ies are'} nested deeper than "
            f"the {RELOCATION_DEPTH} levels ISO 9660 allows (first: {spec.tree}/{deep[0]}); "
            f"they are relocated to /{RELOCATED_RR_NAME} in the ISO 9660 tree. Rock Ridge "
            f"readers (Linux, xorriso) show the real tree plus a hidden /{RELOCATED_RR_NAME}"
        )
        if root.find(RELOCATED_RR_NAME) is not None:
            problems.append(
                Problem(
                    f"{spec.tree}/{RELOCATED_RR_NAME}",
                    "this name is needed for relocating deep directories",
                    hint="rename it",
                )
            )


def _estimate_size(root: Node) -> int:
    """An upper estimate of the image size: data, directories, path tables, system area."""
    total = 16 * BLOCK + 8 * BLOCK + sysarea.TAIL_SECTORS * sysarea.SECTOR
    for node in root.walk():
        if node.kind is NodeKind.FILE:
            total += -(-node.size // BLOCK) * BLOCK
        elif node.is_dir:
            names = [len(c.name.encode()) + len(c.target.encode()) for c in node.children]
            iso_records = 2 * 160 + sum(180 + n for n in names)
            joliet_records = 2 * 40 + sum(34 + 2 * n for n in names)
            total += (-(-iso_records // BLOCK) + -(-joliet_records // BLOCK)) * BLOCK
            total += 4 * 2 * (8 + 64)  # path table records (ISO + Joliet, LE + BE)
    return total + total // 100 + 1024 * 1024


def _check_output(spec: MasterSpec, estimate: int, problems: list[Problem]) -> None:
    out = spec.output
    parent = out.parent
    if not parent.is_dir():
        problems.append(Problem(str(out), f"the output directory {parent} does not exist"))
        return
    if out.is_dir():
        problems.append(Problem(str(out), "the output path is a directory"))
        return
    if not os.access(parent, os.W_OK):
        problems.append(Problem(str(out), f"cannot write to the output directory {parent}"))
        return
    try:
        out.resolve().relative_to(spec.tree.resolve())
    except ValueError:
        pass
    else:
        problems.append(
            Problem(
                str(out),
                "the output file is inside the tree being mastered",
                hint="write the ISO somewhere outside the tree",
            )
        )
    free = shutil.disk_usage(parent).free
    if estimate > free:
        problems.append(
            Problem(
                str(parent),
                f"not enough free space: the ISO needs about {_human(estimate)}, "
                f"only {_human(free)} are free",
                hint="free some space or choose another output",
            )
        )


def _check(spec: MasterSpec) -> tuple[MasterCheck, Node | None]:
    problems = _check_ids(spec)
    warnings: list[str] = []
    if not spec.tree.is_dir():
        problems.append(Problem(str(spec.tree), "the tree to master is not a directory"))
        return MasterCheck(problems, warnings, 0), None
    root, scan_problems = scan_tree(spec.tree)
    problems += scan_problems
    _check_tree(spec, root, problems, warnings)
    _check_boot(spec, root, problems, warnings)
    estimate = _estimate_size(root)
    appended = spec.boot.efi_partition
    if appended is not None and appended.is_file():
        estimate += appended.stat().st_size + BLOCK
    _check_output(spec, estimate, problems)
    return MasterCheck(problems, warnings, estimate), root


def check_master(spec: MasterSpec) -> MasterCheck:
    """Problems (errors) and warnings for `spec`; nothing is written."""
    return _check(spec)[0]


def validate_master(spec: MasterSpec) -> list[Problem]:
    """Every problem that keeps `spec` from being mastered; nothing is written."""
    return check_master(spec).problems


# --------------------------------------------------------------------------- naming


@dataclass(eq=False)
class _Names:
    """ISO 9660 and Joliet names of every node, and lookups from names to nodes."""

    iso_path: dict[int, str] = field(default_factory=dict)  # id(node) -> path
    joliet_path: dict[int, str] = field(default_factory=dict)
    by_iso: dict[int, dict[bytes, Node]] = field(default_factory=dict)  # per directory
    by_joliet: dict[int, dict[bytes, Node]] = field(default_factory=dict)
    catalog_iso: str = ""
    catalog_joliet: str = ""
    catalog_name: str = ""


def _assign_names(root: Node, catalog: str | None, relocation: bool) -> _Names:
    names = _Names()
    names.iso_path[id(root)] = ""
    names.joliet_path[id(root)] = ""
    cat_dir, _, cat_name = catalog.rpartition("/") if catalog else ("", "", "")
    for node in root.walk():
        if not node.is_dir:
            continue
        entries = [(c.name, c.is_dir) for c in node.children]
        has_catalog = catalog is not None and node.rel == cat_dir
        if has_catalog:
            entries.append((cat_name, False))
        reserved = [RELOCATED_ISO_NAME] if relocation and node is root else []
        iso = iso9660_names(entries, reserved)
        jol = joliet_names([name for name, _ in entries])
        base_iso, base_jol = names.iso_path[id(node)], names.joliet_path[id(node)]
        by_iso: dict[bytes, Node] = {}
        by_jol: dict[bytes, Node] = {}
        for child, iso_name, jol_name in zip(node.children, iso, jol, strict=False):
            ident = iso_name if child.is_dir else f"{iso_name};1"
            names.iso_path[id(child)] = f"{base_iso}/{ident}"
            names.joliet_path[id(child)] = f"{base_jol}/{jol_name}"
            by_iso[ident.encode()] = child
            by_jol[jol_name.encode("utf-16-be")] = child
        if has_catalog:
            names.catalog_iso = f"{base_iso}/{iso[-1]};1"
            names.catalog_joliet = f"{base_jol}/{jol[-1]}"
            names.catalog_name = cat_name
        names.by_iso[id(node)] = by_iso
        names.by_joliet[id(node)] = by_jol
    return names


# --------------------------------------------------------------------------- writing


def _derived_ids(epoch: int | None, label: str) -> tuple[int, uuid.UUID, tuple[uuid.UUID, ...]]:
    """MBR disk id, GPT disk GUID and partition GUIDs: from epoch + label, else random."""
    seed = f"livesmith:{epoch}:{label}".encode() if epoch is not None else secrets.token_bytes(32)

    def digest(purpose: str) -> bytes:
        return hashlib.sha256(seed + b"\0" + purpose.encode()).digest()

    disk_id = int.from_bytes(digest("mbr")[:4], "little") or 1
    disk_guid = uuid.UUID(bytes=digest("disk")[:16], version=4)
    parts = tuple(uuid.UUID(bytes=digest(f"part{i}")[:16], version=4) for i in range(3))
    return disk_id, disk_guid, parts


def _build(
    spec: MasterSpec, root: Node, reporter: Reporter, epoch: int | None, volume_seconds: int
) -> tuple[pycdlib.PyCdlib, _Names]:
    boot = spec.boot
    has_boot = (
        boot.bios_boot is not None or boot.efi_image is not None or boot.efi_partition is not None
    )
    catalog = _tree_path(boot.boot_catalog) if has_boot else None
    relocation = any(n.is_dir and n.depth and n.depth % RELOCATION_DEPTH == 0 for n in root.walk())
    names = _assign_names(root, catalog, relocation)

    iso = pycdlib.PyCdlib()
    # Joliet stores the volume id in UCS-2 in the same 32 bytes: at most 16 characters there.
    # The primary descriptor (what blkid, udev and the live initramfs read) keeps all 32.
    iso.new(
        interchange_level=3,
        sys_ident="LINUX",
        vol_ident=spec.label[:JOLIET_LABEL_LENGTH],
        vol_set_ident=spec.label,
        pub_ident_str=spec.publisher,
        preparer_ident_str=spec.preparer,
        app_ident_str=spec.application,
        rock_ridge="1.09",
        joliet=3,
    )
    iso.pvd.volume_identifier = spec.label.encode("ascii").ljust(32)
    if relocation:
        iso.set_relocated_name(RELOCATED_ISO_NAME, RELOCATED_RR_NAME)

    nodes = [n for n in root.walk() if n is not root]
    tree = str(spec.tree)
    for count, node in enumerate(nodes, 1):
        iso_path = names.iso_path[id(node)]
        if node.kind is NodeKind.DIR:
            iso.add_directory(
                iso_path,
                rr_name=node.name,
                joliet_path=names.joliet_path[id(node)],
                file_mode=node.mode,
            )
        elif node.kind is NodeKind.FILE:
            source = cast(BinaryIO, LazySourceFile(os.path.join(tree, node.rel), node.size))
            iso.add_fp(
                source,
                node.size,
                iso_path=iso_path,
                rr_name=node.name,
                joliet_path=names.joliet_path[id(node)],
                file_mode=node.mode,
            )
        else:
            # Joliet has no symlinks; pycdlib would store an empty file there instead.
            iso.add_symlink(symlink_path=iso_path, rr_symlink_name=node.name, rr_path=node.target)
        if count % 512 == 0:
            reporter.progress(count, len(nodes))
            check_cancelled(reporter)
    reporter.progress(len(nodes), len(nodes))

    # El Torito entry 1: BIOS (no emulation: 4 sectors and a boot info table as the
    # loader needs; or floppy / hard disk emulation); then UEFI.
    if boot.bios_boot is not None:
        bios = root.find(_tree_path(boot.bios_boot) or "")
        assert bios is not None
        iso.add_eltorito(
            names.iso_path[id(bios)],
            bootcatfile=names.catalog_iso,
            rr_bootcatname=names.catalog_name,
            joliet_bootcatfile=names.catalog_joliet,
            boot_load_size=_load_size(boot),
            boot_info_table=_wants_table(spec, bios),
            media_name=EMULATIONS[boot.bios_emulation],
        )
    if boot.efi_image is not None:
        efi = root.find(_tree_path(boot.efi_image) or "")
        iso.add_eltorito(
            names.iso_path[id(efi)],
            bootcatfile=names.catalog_iso,
            rr_bootcatname=names.catalog_name,
            joliet_bootcatfile=names.catalog_joliet,
            efi=True,
            platform_id=0xEF,
            media_name="noemul",
        )
    if boot.efi_partition is not None:
        # pycdlib needs a file for the entry: one hidden block, pointed elsewhere later
        iso.add_fp(
            io.BytesIO(bytes(BLOCK)), BLOCK, iso_path=EFI_PLACEHOLDER, rr_name="efi-partition.img"
        )
        iso.add_eltorito(
            EFI_PLACEHOLDER,
            bootcatfile=names.catalog_iso,
            rr_bootcatname=names.catalog_name,
            joliet_bootcatfile=names.catalog_joliet,
            efi=True,
            platform_id=0xEF,
            media_name="noemul",
        )
        iso.rm_hard_link(iso_path=EFI_PLACEHOLDER)
    for entry in boot.more_entries:
        extra = root.find(_tree_path(entry.path) or "")
        assert extra is not None
        as_spec = replace(
            spec,
            boot=replace(
                boot,
                bios_emulation=entry.emulation,
                bios_load_size=entry.load_size,
                boot_info_table=entry.boot_info_table,
            ),
        )
        uefi = entry.platform == "uefi"
        iso.add_eltorito(
            names.iso_path[id(extra)],
            bootcatfile=names.catalog_iso,
            rr_bootcatname=names.catalog_name,
            joliet_bootcatfile=names.catalog_joliet,
            boot_load_size=entry.load_size if uefi else _load_size(as_spec.boot),
            boot_info_table=False if uefi else _wants_table(as_spec, extra),
            media_name=EMULATIONS[entry.emulation],
            efi=uefi,
            platform_id=PLATFORMS[entry.platform],
        )

    def meta(node: Node | None) -> Meta:
        if node is None:
            return Meta(None, 0, 0, volume_seconds)
        seconds = min(node.mtime, epoch) if epoch is not None else node.mtime
        return Meta(node.mode, node.uid, node.gid, seconds)

    pin_tree(iso.get_record(iso_path="/"), root, names.by_iso, meta)
    pin_tree(iso.get_record(joliet_path="/"), root, names.by_joliet, meta)
    return iso, names


def _load_size(boot: BootSpec) -> int | None:
    if boot.bios_load_size is not None:
        return boot.bios_load_size
    return 4 if boot.bios_emulation == "none" else None  # emulation: pycdlib's default 1


def _bios_kind(spec: MasterSpec, bios: Node) -> str | None:
    return loader_kind(_read_head(spec.tree / bios.rel, BLOCK))


def _wants_table(spec: MasterSpec, bios: Node) -> bool:
    if spec.boot.bios_emulation != "none":
        return False
    if spec.boot.boot_info_table is not None:
        return spec.boot.boot_info_table
    return _bios_kind(spec, bios) is not None


def _extent(iso: pycdlib.PyCdlib, iso_path: str) -> int:
    return int(iso.get_record(iso_path=iso_path).extent_location())


def _write(
    spec: MasterSpec,
    root: Node,
    iso: pycdlib.PyCdlib,
    names: _Names,
    fd: int,
    reporter: Reporter,
    epoch: int | None,
    volume_seconds: int,
) -> int:
    def progress(done: int, total: int, _opaque: Any) -> None:
        reporter.progress(done, total)
        check_cancelled(reporter)

    reporter.step("Writing the ISO image")
    writer = ImageWriter(fd)
    iso.write_fp(cast(BinaryIO, writer), blocksize=WRITE_BLOCK, progress_cb=progress)
    size = writer.finish()
    with os.fdopen(os.dup(fd), "r+b") as f:
        pin_volume_descriptors(f, volume_seconds)
        return _write_system_area(spec, root, iso, names, f, size, epoch)


def _write_system_area(
    spec: MasterSpec,
    root: Node,
    iso: pycdlib.PyCdlib,
    names: _Names,
    f: BinaryIO,
    size: int,
    epoch: int | None,
) -> int:
    """MBR + GPT for a hybrid image with boot entries; returns the final image size."""
    boot = spec.boot
    iso_size = size
    if boot.efi_partition is not None:
        size = _append_efi_partition(boot.efi_partition, f, size)
    elif not boot.hybrid or (boot.bios_boot is None and boot.efi_image is None):
        return size
    bios = root.find(_tree_path(boot.bios_boot) or "") if boot.bios_boot else None
    efi = root.find(_tree_path(boot.efi_image) or "") if boot.efi_image else None
    disk_id, disk_guid, part_guids = _derived_ids(epoch, spec.label)
    kind = _bios_kind(spec, bios) if bios is not None else None
    bios_block = _extent(iso, names.iso_path[id(bios)]) if bios is not None else None
    if kind == "grub" and bios_block is not None and bios is not None:
        sysarea.patch_grub_boot_info(f, bios_block)
        if _wants_table(spec, bios):
            sysarea.write_boot_info_table(f, bios_block, bios.size)
    hybrid_code = bios is not None and boot.hybrid
    efi_block, efi_bytes = None, 0
    if efi is not None:
        efi_block, efi_bytes = _extent(iso, names.iso_path[id(efi)]), efi.size
    elif boot.efi_partition is not None:
        efi_block, efi_bytes = iso_size // BLOCK, boot.efi_partition.stat().st_size
    layout = sysarea.HybridLayout(
        iso_bytes=size,
        boot_code=(GRUB_BOOT_HYBRID if kind == "grub" else ISOHDPFX).read_bytes()
        if hybrid_code
        else b"",
        boot_file_block=bios_block if hybrid_code else None,
        boot_lba_offset=sysarea.GRUB_MBR_LBA_OFFSET if kind == "grub" else 0,
        efi_block=efi_block,
        efi_bytes=efi_bytes,
        disk_id=disk_id,
        disk_guid=disk_guid,
        partition_guids=(part_guids[0], part_guids[1], part_guids[2]),
    )
    total = sysarea.write_hybrid_system_area(f, layout)
    if boot.efi_partition is not None:
        # the volume ends with the ISO data: the partition is appended, as xorriso does
        sysarea.set_volume_space_size(f, iso_size // BLOCK)
    return total


def _append_efi_partition(path: Path, f: BinaryIO, iso_size: int) -> int:
    """Copy the EFI image after the ISO data and point the UEFI catalog entry at it;
    returns the size of ISO data + partition (a multiple of 2048)."""
    data = path.read_bytes()
    f.seek(iso_size)
    f.write(data + bytes(-len(data) % BLOCK))
    block = iso_size // BLOCK
    f.seek(17 * BLOCK + 0x47)
    catalog = struct.unpack("<I", f.read(4))[0]
    f.seek(catalog * BLOCK)
    raw = f.read(BLOCK)
    for offset in range(32, BLOCK - 31, 32):
        entry = raw[offset : offset + 32]
        if entry[0] in (0x90, 0x91) and entry[1] == 0xEF:
            target = offset + 32  # the section's first entry
            f.seek(catalog * BLOCK + target + 6)
            f.write(struct.pack("<HI", min(-(-len(data) // 512), 0xFFFF), block))
            break
    else:
        raise StageError("no UEFI entry in the boot catalog", stage="mastering")
    return iso_size + len(data) + (-len(data) % BLOCK)


def master_iso(spec: MasterSpec, reporter: Reporter | None = None) -> MasterResult:
    """Master `spec` into `spec.output`; ValidationError (all problems) before any writing."""
    reporter = reporter or NullReporter()
    reporter.step("Checking the tree")
    check, root = _check(spec)
    if check.problems or root is None:
        raise ValidationError(check.problems)
    for warning in check.warnings:
        reporter.log(Level.WARNING, warning)
    check_cancelled(reporter)

    epoch = spec.source_date_epoch
    volume_seconds = epoch if epoch is not None else int(time.time())
    output = spec.output
    tmp = output.parent / f".{output.name}.{secrets.token_hex(4)}.part"
    iso = None
    try:
        with image_errors(output, stage="mastering", verb="master"):
            reporter.step("Laying out the ISO image")
            iso, names = _build(spec, root, reporter, epoch, volume_seconds)
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
            try:
                size = _write(spec, root, iso, names, fd, reporter, epoch, volume_seconds)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, output)
    finally:
        if iso is not None:
            iso.close()
        tmp.unlink(missing_ok=True)
    reporter.log(Level.INFO, f"wrote {output} ({_human(size)})")
    return MasterResult(path=output, size=size, warnings=list(check.warnings))
