"""Making a written stick a normal drive again: one partition, one file system, all of it.

A stick that holds a hybrid ISO looks odd to every desktop: an ISO 9660 file system, an MBR
whose partitions overlap it, and often a GPT with its backup copy at the image's end (or the
device's). Restoring wipes every one of those signatures and writes what sticks are sold
with: an MBR partition table with one partition from 1 MiB to the end, formatted exFAT (the
default), FAT32 (for old devices: car radios, TVs, cameras) or ext4 (Linux only).

Why MBR ("dos") and not GPT: Windows (every version, also for removable drives), macOS,
Linux, and the firmware of cameras, TVs, car radios and game consoles all read an MBR; many
of those devices do not read GPT at all. A single partition of up to 2 TiB needs nothing
more, and sticks leave the factory that way.

Two ways, as for writing:
- as root, directly: the first 2 MiB and the last MiB are zeroed (MBR, both GPT headers,
  the ISO 9660 and UDF descriptors, and anything left where the new partition begins),
  then `sfdisk` writes the table and `mkfs.exfat` / `mkfs.vfat` / `mke2fs` the file system;
- otherwise through UDisks2 (polkit asks): the same zeroing on a descriptor from
  `OpenForRestore`, then `Block.Format("dos")` (which also wipes every signature libblkid
  knows) and `PartitionTable.CreatePartitionAndFormat`.

Safety is the writer's: `plan_restore` runs the same gate as a write (`resolve_target`: no
system disk, no disk holding swap, no mounted or otherwise used disk, no partition, no
virtual device) and records the disk's identity; `restore_disk` checks that identity again
by path, then on the opened descriptor, before the first byte is written, so a stick
swapped in the meantime is refused and left alone. Labels are checked before anything is
written; each file system has its own rules (`check_label`).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from app.errors import DeviceError, InputError, LivesmithError, ValidationError, VerificationError
from app.reporter import Level, NullReporter, Reporter, check_cancelled
from app.tools import find_tool, missing_tool_problems
from app.usb.errors import DeviceNotAllowed, DeviceNotFound
from app.usb.identity import LEFT_ALONE, BlockIdentity, check_descriptor, check_path
from app.usb.sysfs import Devno, read_attr, sys_path_of_devno
from app.usb.target import (
    Mount,
    Swap,
    Target,
    TargetKind,
    human_size,
    partitions_of,
    resolve_target,
)
from app.usb.wipe import WIPE_SPAN, wipe_signatures

# The one partition starts 1 MiB in (aligned for every flash erase block and 4K sector).
PARTITION_START = 1 << 20
# Zeroed at the start: the old MBR/GPT/ISO descriptors, and the new partition's first MiB,
# so no stale superblock shows through the new file system.
HEAD_WIPE = PARTITION_START + WIPE_SPAN
# The kernel may take a moment to create the partition's device node (udev).
PARTITION_WAIT = 10.0
# Tools get a UTF-8 locale: mkfs.exfat converts the label with mbstowcs.
TOOL_ENV = {"LC_ALL": "C.UTF-8"}

PHASE_WIPE = "wipe"
PHASE_PARTITION = "partition"
PHASE_FORMAT = "format"
PHASE_CHECK = "check"
PHASE_TITLES = {
    PHASE_WIPE: "Wiping the old signatures (ISO 9660, MBR, both GPT copies)",
    PHASE_PARTITION: "Writing a new partition table",
    PHASE_FORMAT: "Creating the file system",
    PHASE_CHECK: "Checking the new file system",
}

VIA_DIRECT = "direct"
VIA_UDISKS = "udisks"

AFTER_WIPE = "the drive was wiped and holds no usable file system now; run the restore again"


class InvalidLabel(InputError):
    """A volume label the chosen file system cannot hold; `reason` says why, in a few words."""

    def __init__(self, message: str, *, reason: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason


class FileSystem(Enum):
    EXFAT = "exfat"
    FAT32 = "fat32"
    EXT4 = "ext4"

    @property
    def title(self) -> str:
        return {"exfat": "exFAT", "fat32": "FAT32", "ext4": "ext4"}[self.value]

    @property
    def blkid_type(self) -> str:
        """TYPE as blkid (and UDisks2's IdType, and its Format) names it."""
        return {"exfat": "exfat", "fat32": "vfat", "ext4": "ext4"}[self.value]

    @property
    def mbr_type(self) -> int:
        # 0x07: exFAT/NTFS; 0x0c: FAT32 with LBA; 0x83: Linux.
        return {"exfat": 0x07, "fat32": 0x0C, "ext4": 0x83}[self.value]

    @property
    def mkfs(self) -> str:
        return {"exfat": "mkfs.exfat", "fat32": "mkfs.vfat", "ext4": "mke2fs"}[self.value]

    @property
    def use(self) -> str:
        """What it is for, in a few words (help texts, the dialog)."""
        return {
            "exfat": "Windows, macOS and Linux; files of any size",
            "fat32": "old devices too (car radios, TVs, cameras); files up to 4 GiB",
            "ext4": "Linux only",
        }[self.value]


DEFAULT_FS = FileSystem.EXFAT

# --- labels ----------------------------------------------------------------------------------

# FAT keeps labels in the OEM code page: plain ASCII is what every system shows alike.
FAT_LABEL_SIGNS = " !#$%&'()-@^_`{}~"
FAT_LABEL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" + FAT_LABEL_SIGNS)
# exFAT: the characters a file name may not hold (exFAT specification, 7.7.3).
EXFAT_FORBIDDEN = frozenset('"*/:<>?\\|')
FAT_MAX = 11  # characters (bytes)
EXFAT_MAX = 11  # UTF-16 code units: the volume label entry holds 11 (exFAT specification, 7.3)
EXT4_MAX = 16  # bytes of UTF-8

LABEL_RULES = {
    FileSystem.FAT32: f"at most {FAT_MAX} characters: A-Z, 0-9, spaces and "
    f"{' '.join(FAT_LABEL_SIGNS.strip())} (lower case becomes upper case)",
    FileSystem.EXFAT: f"at most {EXFAT_MAX} characters (UTF-16 units), none of "
    f"{' '.join(sorted(EXFAT_FORBIDDEN))} and no control characters",
    FileSystem.EXT4: f"at most {EXT4_MAX} bytes of UTF-8, no control characters",
}


def _shown(label: str) -> str:
    return repr(label)


def check_label(fs: FileSystem, label: str) -> str:
    """The label as it will be written (FAT: upper-cased), or InvalidLabel saying why not.

    An empty label means none.
    """
    rules = f"{fs.title} labels: {LABEL_RULES[fs]}"

    def bad(why: str) -> InvalidLabel:
        return InvalidLabel(
            f"the label {_shown(label)} cannot be used for {fs.title}: {why}; nothing was written",
            reason=why,
            hint=rules,
        )

    if not label:
        return ""
    if label != label.strip():
        raise bad("it begins or ends with a space")
    controls = [ch for ch in label if ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0]
    if controls:
        raise bad("it holds a control character")
    if fs is FileSystem.FAT32:
        text = label.upper()
        if len(text) > FAT_MAX:
            raise bad(f"it has {len(text)} characters, at most {FAT_MAX} fit")
        wrong = sorted({ch for ch in text if ch not in FAT_LABEL_CHARS})
        if wrong:
            raise bad(f"it holds {', '.join(repr(ch) for ch in wrong)}")
        return text
    if fs is FileSystem.EXFAT:
        units = len(label.encode("utf-16-le")) // 2
        if units > EXFAT_MAX:
            raise bad(f"it takes {units} UTF-16 units, at most {EXFAT_MAX} fit")
        wrong = sorted({ch for ch in label if ch in EXFAT_FORBIDDEN})
        if wrong:
            raise bad(f"it holds {', '.join(repr(ch) for ch in wrong)}")
        return label
    size = len(label.encode())
    if size > EXT4_MAX:
        raise bad(f"it takes {size} bytes in UTF-8, at most {EXT4_MAX} fit")
    return label


def label_problem(fs: FileSystem, label: str) -> str | None:
    """Why `label` cannot be used, in a sentence, or None (for a form that checks as you
    type; the rules are `LABEL_RULES[fs]`)."""
    try:
        check_label(fs, label)
    except InvalidLabel as exc:
        return f"This label cannot be used for {fs.title}: {exc.reason}."
    return None


# --- plan ------------------------------------------------------------------------------------


def tools_needed(fs: FileSystem, via: str) -> list[str]:
    """The programs a restore runs (through UDisks2, udisksd runs the mkfs program itself,
    on this machine: without it UDisks2 refuses the file system)."""
    if via == VIA_UDISKS:
        return [fs.mkfs]
    return ["sfdisk", "partx", "blkid", fs.mkfs]


def default_via() -> str:
    """Root works directly (it needs no D-Bus service); anyone else through UDisks2."""
    return VIA_DIRECT if os.geteuid() == 0 else VIA_UDISKS


@dataclass(frozen=True)
class RestorePlan:
    """A drive that passed the gate, with the file system and the label it will get."""

    target: Target
    fs: FileSystem
    label: str  # as it will be written

    @property
    def identity(self) -> BlockIdentity:
        assert self.target.identity is not None
        return self.target.identity

    def describe(self) -> str:
        label = f", labelled {self.label!r}" if self.label else ", without a label"
        return (
            f"{self.target.path} ({self.target.description}) gets one {self.fs.title} "
            f"partition over the whole drive{label}"
        )


# Below this the tools refuse (FAT32 needs 65525 clusters) or the result is useless.
_MIN_FS_SIZE = {FileSystem.EXFAT: 4 << 20, FileSystem.FAT32: 34 << 20, FileSystem.EXT4: 4 << 20}


def plan_restore(
    path: str | Path,
    fs: FileSystem = DEFAULT_FS,
    label: str = "",
    *,
    via: str | None = None,
    mounts: list[Mount] | None = None,
    swaps: list[Swap] | None = None,
) -> RestorePlan:
    """Check everything before anything is written: the label, the tools, and the drive
    (the writer's gate; mounted partitions are refused, not unmounted). `mounts` and
    `swaps` default to the running system's."""
    checked = check_label(fs, label)
    problems = missing_tool_problems(tools_needed(fs, via or default_via()), "restore")
    if problems:
        raise ValidationError(problems)
    target = resolve_target(path, mounts=mounts, swaps=swaps)
    if target.kind is not TargetKind.BLOCK or target.identity is None:
        raise DeviceNotAllowed(
            "is not a drive: restoring makes a whole disk (a USB stick, an SD card) normal again",
            where=str(target.path),
        )
    minimum = PARTITION_START + 2 * WIPE_SPAN + _MIN_FS_SIZE[fs]
    if target.size < minimum:
        raise DeviceNotAllowed(
            f"is too small for {fs.title} ({human_size(target.size)}; at least "
            f"{human_size(minimum)} are needed)",
            where=str(target.path),
        )
    return RestorePlan(target, fs, checked)


# --- result ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreResult:
    target: str
    partition: str  # the new partition's device node
    fs: str  # FileSystem value
    fs_version: str  # as the file system reports itself ("FAT32", "1.0", ...), may be ""
    label: str
    partition_size: int
    device_size: int
    seconds: float
    via: str
    notes: tuple[str, ...] = ()

    @property
    def file_system(self) -> FileSystem:
        return FileSystem(self.fs)

    def summary(self) -> str:
        share = self.partition_size * 100 / self.device_size if self.device_size else 0
        label = f"labelled {self.label!r}" if self.label else "without a label"
        return (
            f"restored {self.target}: one {self.file_system.title} partition {self.partition} "
            f"of {human_size(self.partition_size)} ({share:.1f}% of the drive), {label}; "
            "the old ISO 9660, MBR and GPT signatures are gone"
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["notes"] = list(self.notes)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RestoreResult:
        return cls(**{**data, "notes": tuple(data.get("notes", ()))})


# --- restore ---------------------------------------------------------------------------------


def restore_task(
    plan: RestorePlan, *, via: str | None = None, bus: str = "SYSTEM"
) -> Callable[[Reporter], RestoreResult]:
    """`restore_disk` as a task for a worker thread (the GUI's BackgroundTask)."""

    def run(reporter: Reporter) -> RestoreResult:
        return restore_disk(plan, reporter=reporter, via=via, bus=bus)

    return run


def restore_disk(
    plan: RestorePlan,
    *,
    reporter: Reporter | None = None,
    via: str | None = None,
    bus: str = "SYSTEM",
) -> RestoreResult:
    """Wipe, partition and format the planned drive; see the module's docstring.

    Raises DeviceChanged (and writes nothing) if the path names another disk now, the
    gate's errors if the drive became unusable since it was planned (mounted meanwhile),
    DeviceError if a step fails (saying that the drive is wiped, once it is).
    A cancel is honoured until the first byte is written; after that the restore, a few
    seconds, runs to its end.
    """
    reporter = reporter or NullReporter()
    via = via or default_via()
    started = time.monotonic()
    where = str(plan.target.path)
    check_cancelled(reporter)
    # The gate again, at the moment of writing, for the disk the user confirmed.
    target = resolve_target(plan.target.path, expect=plan.identity)
    steady = _Steady(reporter)
    if via == VIA_UDISKS:
        partition, props = _restore_through_udisks(plan, target, steady, bus)
    else:
        partition, props = _restore_directly(plan, target, steady)
    found_type, found_label = props.get("TYPE", ""), props.get("LABEL", "")
    if found_type != plan.fs.blkid_type or (plan.label and found_label != plan.label):
        raise VerificationError(
            f"the new partition {partition} reads as {found_type or 'nothing'} labelled "
            f"{found_label!r}, not {plan.fs.blkid_type} labelled {plan.label!r}",
            where=where,
            hint=AFTER_WIPE,
        )
    notes: list[str] = []
    version = props.get("VERSION", "")
    if plan.fs is FileSystem.FAT32 and version and version != "FAT32":
        notes.append(
            f"the file system is {version}, not FAT32: UDisks2 before 2.10 lets mkfs.vfat "
            "choose, and it picks FAT16 below 512 MiB (every device that reads FAT32 reads "
            "FAT16 too)"
        )
    return RestoreResult(
        target=where,
        partition=partition,
        fs=plan.fs.value,
        fs_version=version,
        label=found_label,
        partition_size=int(props.get("SIZE", "0") or 0),
        device_size=target.size,
        seconds=time.monotonic() - started,
        via=via,
        notes=tuple(notes),
    )


class _Steady:
    """The caller's reporter, minus cancelling: once the drive is wiped, a restore half done
    is worse than one finished a second later."""

    def __init__(self, reporter: Reporter) -> None:
        self._reporter = reporter

    def step(self, name: str) -> None:
        self._reporter.step(name)

    def progress(self, done: int, total: int) -> None:
        self._reporter.progress(done, total)

    def log(self, level: Level, message: str) -> None:
        self._reporter.log(level, message)

    def cancelled(self) -> bool:
        return False


def _wipe(fd: int, plan: RestorePlan, reporter: Reporter) -> None:
    where = str(plan.target.path)
    # The descriptor itself must be the confirmed disk: the path may have changed hands
    # between the check above and the open.
    check_descriptor(fd, plan.identity, where)
    reporter.step(PHASE_WIPE)
    try:
        ranges = wipe_signatures(fd, sector=plan.target.logical_sector, head=HEAD_WIPE)
    except OSError as exc:
        raise DeviceError(
            f"wiping the old signatures failed: {exc.strerror or exc}",
            where=where,
            hint="the stick may be failing or write-protected",
        ) from exc
    reporter.log(Level.INFO, "zeroed " + ", ".join(f"bytes {a}-{b - 1}" for a, b in ranges))


def _restore_directly(
    plan: RestorePlan, target: Target, reporter: Reporter
) -> tuple[str, dict[str, str]]:
    from app.usb.engine import open_target

    where = str(target.path)
    fd = open_target(target, True)
    try:
        _wipe(fd, plan, reporter)
    finally:
        os.close(fd)
    try:
        check_path(target.path, plan.identity, consequence=LEFT_ALONE)
        reporter.step(PHASE_PARTITION)
        sector = target.logical_sector
        _run(
            ["sfdisk", "--wipe", "always", "--wipe-partitions", "always", where],
            reporter,
            where=where,
            stdin=f"label: dos\nstart={PARTITION_START // sector}, type={plan.fs.mbr_type:x}\n",
        )
        assert target.devno is not None
        partition = _partition_node(target.devno, where, reporter)
        check_path(target.path, plan.identity, consequence=LEFT_ALONE)
        reporter.step(PHASE_FORMAT)
        _run(_mkfs_args(plan, partition), reporter, where=where)
        reporter.step(PHASE_CHECK)
        props = _probe(partition, reporter, where)
    except LivesmithError as exc:
        exc.hint = f"{exc.hint}; {AFTER_WIPE}" if exc.hint else AFTER_WIPE
        raise
    return partition, props


def _mkfs_args(plan: RestorePlan, partition: str) -> list[str]:
    if plan.fs is FileSystem.EXFAT:
        return ["mkfs.exfat", *(["-L", plan.label] if plan.label else []), partition]
    if plan.fs is FileSystem.FAT32:
        return ["mkfs.vfat", "-F", "32", *(["-n", plan.label] if plan.label else []), partition]
    # -F: the partition may still carry an old signature mke2fs would ask about.
    label = ["-L", plan.label] if plan.label else []
    return ["mke2fs", "-t", "ext4", "-F", "-q", *label, partition]


def _run(args: list[str], reporter: Reporter, *, where: str, stdin: str | None = None) -> str:
    program = find_tool(args[0])
    reporter.log(Level.DEBUG, "running " + " ".join(args))
    try:
        out = subprocess.run(
            [program, *args[1:]],
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            errors="replace",
            env={**os.environ, **TOOL_ENV},
            check=False,
            timeout=600,
        )
    except subprocess.TimeoutExpired as exc:
        raise DeviceError(f"{args[0]} did not finish within 10 minutes", where=where) from exc
    for line in (out.stdout + out.stderr).splitlines():
        if line.strip():
            reporter.log(Level.DEBUG, line)
    if out.returncode != 0:
        tail = "\n".join((out.stderr or out.stdout).strip().splitlines()[-8:])
        raise DeviceError(
            f"{args[0]} failed with exit status {out.returncode}: {tail}", where=where
        )
    return out.stdout


def _partition_sys_path(disk: Path, number: int) -> Path | None:
    for part in partitions_of(disk):
        if read_attr(part, "partition") == str(number):
            return part
    return None


def _partition_node(devno: Devno, where: str, reporter: Reporter) -> str:
    """The /dev node of partition 1, once the kernel knows it as written.

    sfdisk asks the kernel to re-read the table; where that does nothing (a loop device
    without partition scanning, a kernel without the MBR parser, a busy disk) partx tells
    it the partitions one by one (BLKPG).
    """
    disk = sys_path_of_devno(devno)
    if disk is None:
        raise DeviceNotFound("went away while it was being partitioned", where=where)
    want_start = PARTITION_START // 512  # sysfs counts 512-byte sectors

    def as_written() -> Path | None:
        parts = partitions_of(disk)
        first = _partition_sys_path(disk, 1)
        if first is None or len(parts) != 1 or read_attr(first, "start") != str(want_start):
            return None
        return first

    part = as_written()
    if part is None:
        reporter.log(Level.DEBUG, "the kernel did not re-read the table: partx --update")
        _run(["partx", "--update", where], reporter, where=where)
        part = as_written()
    if part is None:
        raise DeviceError(
            "the kernel did not take the new partition table",
            where=where,
            hint="unplug the stick, plug it in again and run the restore once more",
        )
    node = Path("/dev", part.name)
    deadline = time.monotonic() + PARTITION_WAIT
    while not node.exists():
        if time.monotonic() > deadline:
            raise DeviceNotFound(f"the partition {node} never appeared", where=where)
        time.sleep(0.05)
    return str(node)


def _probe(partition: str, reporter: Reporter, where: str) -> dict[str, str]:
    """TYPE, LABEL and VERSION of the new file system, as blkid reads it from the device
    itself (-p: no cache), and the partition's SIZE in bytes."""
    out = _run(["blkid", "-p", "-o", "udev", partition], reporter, where=where)
    # udev's format: the *_ENC values keep every byte, escaped as \xNN.
    found = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    props = {
        "TYPE": found.get("ID_FS_TYPE", ""),
        "LABEL": _udev_decode(found.get("ID_FS_LABEL_ENC", "")),
        "VERSION": found.get("ID_FS_VERSION", ""),
    }
    try:
        with open(partition, "rb") as fh:
            props["SIZE"] = str(fh.seek(0, os.SEEK_END))
    except OSError:
        props["SIZE"] = "0"
    return props


def _udev_decode(text: str) -> str:
    raw = re.sub(rb"\\x([0-9a-fA-F]{2})", lambda m: bytes([int(m.group(1), 16)]), text.encode())
    return raw.decode(errors="replace")


def _restore_through_udisks(
    plan: RestorePlan, target: Target, reporter: Reporter, bus: str
) -> tuple[str, dict[str, str]]:
    from app.usb import udisks

    where = str(target.path)
    with udisks.UDisksClient(bus) as client:
        fd = client.open_for_write(target.path)
        try:
            _wipe(fd, plan, reporter)
        finally:
            os.close(fd)
        try:
            check_path(target.path, plan.identity, consequence=LEFT_ALONE)
            reporter.step(PHASE_PARTITION)
            # No "erase": "zero" (it overwrites the whole stick, minutes on a large one):
            # the zeroing above and Format's own wipe of every signature are what is needed.
            disk = client.format_disk(target.path, "dos")
            reporter.step(PHASE_FORMAT)
            options: dict[str, tuple[str, Any]] = {}
            if plan.label:
                options["label"] = ("s", plan.label)
            if plan.fs is FileSystem.EXT4:
                options["take-ownership"] = ("b", True)  # the caller owns the root folder
            if plan.fs is FileSystem.FAT32:
                # Honoured by UDisks2 2.10 and later; older ones pick FAT16 below 512 MiB.
                options["mkfs-args"] = ("as", ["-F", "32"])
            created = client.create_partition_and_format(
                disk,
                offset=PARTITION_START,
                size=0,  # up to the end
                partition_type=f"0x{plan.fs.mbr_type:02x}",
                fs_type=plan.fs.blkid_type,
                fs_options=options,
                where=where,
            )
            reporter.step(PHASE_CHECK)
            block = client.block_properties(created)
        except LivesmithError as exc:
            exc.hint = f"{exc.hint}; {AFTER_WIPE}" if exc.hint else AFTER_WIPE
            raise
    partition = bytes(block.get("Device", b"")).rstrip(b"\0").decode(errors="replace")
    props = {
        "TYPE": str(block.get("IdType", "")),
        "LABEL": str(block.get("IdLabel", "")),
        "VERSION": str(block.get("IdVersion", "")),
        "SIZE": str(block.get("Size", 0)),
    }
    return partition, props
