"""The safety gate for a write target: a regular file, or a whole disk nobody depends on.

`resolve_target` checks a target the user named explicitly (`livesmith write IMAGE TARGET`).
The rules behind it work on a disk's sysfs directory plus a mount table and a swap list
passed in as parameters (defaulting to the running system's), so the drive listing shares
them and tests can feed a mount table for a mocked device.

A disk "family" is the disk, its partitions, and everything stacked on any of them (LUKS,
LVM, md: the `holders/` links), because a stick may hold an encrypted root.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import stat
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from app.units import decimal_size
from app.usb.errors import (
    DeviceBusy,
    DeviceNotAllowed,
    DeviceNotFound,
    DeviceReadOnly,
)
from app.usb.identity import BlockIdentity, check_identity, gone_error
from app.usb.sysfs import (
    Devno,
    DiskIdentity,
    disk_identity_at,
    disk_size,
    parse_devno,
    read_attr,
    sys_path_of_devno,
)

MOUNTINFO = Path("/proc/self/mountinfo")
SWAPS = Path("/proc/swaps")

# Mount points whose disk must never be overwritten: the running system lives there.
CRITICAL_MOUNTS = ("/", "/boot", "/boot/efi", "/usr", "/home", "/var")

BLKROGET = 0x125E  # _IO(0x12, 94): int, non-zero if the block device is read-only


class TargetKind(Enum):
    BLOCK = "block"
    FILE = "file"


@dataclass(frozen=True)
class Target:
    """A checked write target."""

    path: Path
    kind: TargetKind
    size: int  # bytes; for FILE the current size (0 for a new file)
    logical_sector: int  # 512 for files
    read_only: bool
    description: str  # "vendor model serial size" for a disk, "file" otherwise
    devno: Devno | None
    # A disk's identity as read when it was resolved: what every later check compares with.
    identity: BlockIdentity | None = None


@dataclass(frozen=True)
class Mount:
    """One mounted filesystem: the block device it comes from and where it is mounted."""

    devno: Devno
    mountpoint: str
    source: str = ""


@dataclass(frozen=True)
class Swap:
    """One active swap area: a partition, or a file on the filesystem of block device `devno`."""

    path: str
    devno: Devno


@dataclass(frozen=True)
class DiskUse:
    """What the running system does with a disk family (all lists hold (devnode, what))."""

    critical_mounts: tuple[tuple[str, str], ...]
    swaps: tuple[tuple[str, str], ...]
    holds_image: bool
    other_mounts: tuple[tuple[str, str], ...]
    holders: tuple[str, ...] = ()  # devices stacked on the disk (open LUKS, LVM, md)

    def refusal(self) -> str | None:
        """Why this disk may never be written, or None."""
        if self.critical_mounts:
            node, point = self.critical_mounts[0]
            return f"holds the running system: {node} is mounted at {point}"
        if self.swaps:
            node, what = self.swaps[0]
            return f"holds active swap ({what} on {node})"
        if self.holds_image:
            return "holds the source image"
        return None


# ---------------------------------------------------------------- mount table and swaps


def _unescape_mount_field(text: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def parse_mountinfo(text: str) -> list[Mount]:
    """Mounts from the text of /proc/<pid>/mountinfo.

    btrfs (and a few others) report an anonymous device number (major 0); for those the
    mount source (/dev/...) names the real block device, so we take its device number.
    """
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 10 or "-" not in fields[6:]:
            continue
        major, _, minor = fields[2].partition(":")
        mountpoint = _unescape_mount_field(fields[4])
        dash = fields.index("-", 6)
        source = _unescape_mount_field(fields[dash + 2]) if len(fields) > dash + 2 else ""
        devno = (int(major), int(minor))
        if devno[0] == 0 and source.startswith("/dev/"):
            real = _block_devno_of_path(source)
            if real is not None:
                devno = real
        mounts.append(Mount(devno, mountpoint, source))
    return mounts


def read_mounts(path: Path = MOUNTINFO) -> list[Mount]:
    return parse_mountinfo(path.read_text())


def _block_devno_of_path(path: str) -> Devno | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISBLK(st.st_mode):
        return None
    return (os.major(st.st_rdev), os.minor(st.st_rdev))


def filesystem_devno(path: str | Path, mounts: Sequence[Mount] | None = None) -> Devno | None:
    """The block device holding the filesystem that `path` lives on, or None if unknown."""
    try:
        st_dev = os.stat(path).st_dev
    except OSError:
        return None
    devno = (os.major(st_dev), os.minor(st_dev))
    if devno[0] != 0:
        return devno
    # Anonymous device (btrfs subvolume, overlay, tmpfs): find the mount and its source.
    for mount in mounts if mounts is not None else read_mounts():
        if mount.source.startswith("/dev/") and _same_anonymous_dev(mount, st_dev):
            return mount.devno
    return None


def _same_anonymous_dev(mount: Mount, st_dev: int) -> bool:
    try:
        return os.stat(mount.mountpoint).st_dev == st_dev
    except OSError:
        return False


def parse_swaps(text: str, mounts: Sequence[Mount] | None = None) -> list[Swap]:
    """Active swap areas from the text of /proc/swaps (a header line, then one per area)."""
    swaps = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if not fields:
            continue
        path = _unescape_mount_field(fields[0])
        kind = fields[1] if len(fields) > 1 else ""
        devno = _block_devno_of_path(path) if kind == "partition" else None
        if devno is None:
            devno = filesystem_devno(path, mounts)
        if devno is not None:
            swaps.append(Swap(path, devno))
    return swaps


def read_swaps(path: Path = SWAPS, mounts: Sequence[Mount] | None = None) -> list[Swap]:
    try:
        return parse_swaps(path.read_text(), mounts)
    except FileNotFoundError:  # kernel without swap support
        return []


# ---------------------------------------------------------------- sysfs


def is_partition(sys_path: str | Path) -> bool:
    return Path(sys_path, "partition").exists()


def partitions_of(disk_sys_path: str | Path) -> list[Path]:
    """Sysfs directories of the disk's partitions (subdirectories with a `partition` file)."""
    try:
        entries = sorted(os.listdir(disk_sys_path))
    except OSError:
        return []
    return [Path(disk_sys_path, e) for e in entries if is_partition(Path(disk_sys_path, e))]


def _holders_of(sys_path: Path) -> list[Path]:
    holders_dir = sys_path / "holders"
    try:
        names = sorted(os.listdir(holders_dir))
    except OSError:
        return []
    result = []
    for name in names:
        try:
            result.append(Path(os.path.realpath(holders_dir / name, strict=True)))
        except OSError:
            continue
    return result


def disk_family(disk_sys_path: str | Path) -> dict[Devno, str]:
    """Device number -> /dev node of the disk, its partitions and everything stacked on them."""
    family: dict[Devno, str] = {}
    seen: set[str] = set()
    todo = [Path(disk_sys_path), *partitions_of(disk_sys_path)]
    while todo:
        node = todo.pop()
        if str(node) in seen:
            continue
        seen.add(str(node))
        devno = parse_devno(read_attr(node, "dev"))
        if devno is not None:
            family[devno] = f"/dev/{node.name}"
        todo.extend(_holders_of(node))
    return family


def disk_use(
    disk_sys_path: str | Path,
    *,
    mounts: Sequence[Mount] | None = None,
    swaps: Sequence[Swap] | None = None,
    image: str | Path | None = None,
    family: dict[Devno, str] | None = None,
) -> DiskUse:
    """What the system does with the disk at `disk_sys_path` (mounts, swap, source image)."""
    if mounts is None:
        mounts = read_mounts()
    if swaps is None:
        swaps = read_swaps(mounts=mounts)
    if family is None:
        family = disk_family(disk_sys_path)
    critical: list[tuple[str, str]] = []
    other: list[tuple[str, str]] = []
    for mount in mounts:
        if mount.devno not in family:
            continue
        entry = (family[mount.devno], mount.mountpoint)
        (critical if mount.mountpoint in CRITICAL_MOUNTS else other).append(entry)
    swap_entries = [(family[s.devno], s.path) for s in swaps if s.devno in family]
    holds_image = False
    if image is not None:
        holds_image = filesystem_devno(image, mounts) in family or _loop_backs_onto(
            disk_sys_path, image
        )
    own = {Path(disk_sys_path).name, *(p.name for p in partitions_of(disk_sys_path))}
    holders = tuple(node for node in family.values() if node.removeprefix("/dev/") not in own)
    return DiskUse(
        tuple(critical), tuple(swap_entries), holds_image, tuple(dict.fromkeys(other)), holders
    )


def _loop_backs_onto(disk_sys_path: str | Path, image: str | Path) -> bool:
    """True if the disk is a loop device whose backing file is the image itself."""
    backing = read_attr(disk_sys_path, "loop/backing_file")
    if not backing:
        return False
    try:
        return os.path.samefile(backing, image)
    except OSError:
        return False


VIRTUAL_KINDS = (
    (re.compile(r"zram\d+$"), "zram device (compressed RAM)"),
    (re.compile(r"md\d+$|md_"), "md RAID device"),
    (re.compile(r"dm-\d+$"), "device-mapper device (LVM, LUKS)"),
    (re.compile(r"ram\d+$"), "RAM disk"),
    (re.compile(r"sr\d+$"), "optical drive"),
)


def kind_refusal(disk_sys_path: str | Path, *, allow_loop: bool) -> str | None:
    """Why this kind of block device may not be written (virtual, optical), or None."""
    name = Path(disk_sys_path).name
    for pattern, what in VIRTUAL_KINDS:
        if pattern.match(name):
            return what
    if Path(disk_sys_path, "md").is_dir():
        return "md RAID device"
    if Path(disk_sys_path, "dm").is_dir():
        return "device-mapper device (LVM, LUKS)"
    if not allow_loop and (name.startswith("loop") or Path(disk_sys_path, "loop").is_dir()):
        return "loop device (name it explicitly to use it)"
    return None


def logical_sector_size(disk_sys_path: str | Path) -> int:
    value = read_attr(disk_sys_path, "queue/logical_block_size")
    return int(value) if value and value.isdigit() else 512


def human_size(size: int) -> str:
    """Decimal units, as printed on the stick's packaging: 16 GB is 16 * 10**9 bytes."""
    return decimal_size(size)


def describe_disk(disk: DiskIdentity, size: int) -> str:
    """ "Vendor Model Serial Size" of a whole disk (only the size if nothing else is known)."""
    parts = [disk.vendor, disk.model, disk.serial, human_size(size)]
    return " ".join(p for p in parts if p)


def _ioctl_read_only(devnode: Path) -> bool | None:
    """BLKROGET on the device (catches `blockdev --setro`, which sysfs does not show)."""
    try:
        fd = os.open(devnode, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        buf = fcntl.ioctl(fd, BLKROGET, struct.pack("i", 0))
        return struct.unpack("i", buf)[0] != 0
    except OSError:
        return None
    finally:
        os.close(fd)


# ---------------------------------------------------------------- the gate


def _format_mounts(entries: Iterable[tuple[str, str]]) -> str:
    return ", ".join(f"{node} on {point}" for node, point in entries)


def resolve_target(
    path: str | Path,
    *,
    image: Path | None = None,
    allow_loop: bool = True,
    allow_mounted: bool = False,
    mounts: Sequence[Mount] | None = None,
    swaps: Sequence[Swap] | None = None,
    expect: BlockIdentity | None = None,
) -> Target:
    """Check an explicitly named target and describe it, or raise a typed DeviceError.

    `allow_mounted=True` skips only the "other partitions mounted" rule (DeviceBusy), for a
    caller that unmounts them itself; the system-disk rules always apply.

    A disk's identity is read here, once, into `Target.identity`. With `expect` (the disk
    the user confirmed) a path that names another disk now is DeviceChanged, before the
    other rules, which would refuse a disk that took its name for a less telling reason.
    """
    given = Path(path)
    try:
        st = os.stat(given)
    except FileNotFoundError:
        if expect is not None:
            raise gone_error(str(given), "no such device, unplugged?") from None
        return _new_file_target(given)
    except NotADirectoryError as exc:
        raise DeviceNotFound("no such file or device", where=str(given)) from exc
    if expect is not None and not stat.S_ISBLK(st.st_mode):
        raise gone_error(str(given), "not a block device now")
    if stat.S_ISREG(st.st_mode):
        return _file_target(given, st, image)
    if stat.S_ISDIR(st.st_mode):
        raise DeviceNotAllowed("is a directory; name a file or a whole disk", where=str(given))
    if not stat.S_ISBLK(st.st_mode):
        raise DeviceNotAllowed("is neither a block device nor a regular file", where=str(given))
    return _block_target(
        given,
        st,
        image=image,
        allow_loop=allow_loop,
        allow_mounted=allow_mounted,
        mounts=mounts,
        swaps=swaps,
        expect=expect,
    )


def _new_file_target(given: Path) -> Target:
    absolute = Path(os.path.abspath(given))
    parent = Path(os.path.realpath(absolute.parent))
    # A typo such as /dev/sdx must not quietly create a regular file in /dev.
    if parent == Path("/dev") or Path("/dev") in parent.parents:
        raise DeviceNotFound(
            "no such device",
            where=str(given),
            hint="run `livesmith drives` to see the drives you can write",
        )
    if not parent.is_dir():
        raise DeviceNotFound(
            f"no such file or device, and the directory {parent} does not exist", where=str(given)
        )
    return Target(absolute, TargetKind.FILE, 0, 512, not os.access(parent, os.W_OK), "file", None)


def _file_target(given: Path, st: os.stat_result, image: Path | None) -> Target:
    absolute = Path(os.path.abspath(given))
    if image is not None:
        with contextlib.suppress(OSError):
            if os.path.samefile(absolute, image):
                raise DeviceNotAllowed("is the source image itself", where=str(given))
    return Target(
        absolute, TargetKind.FILE, st.st_size, 512, not os.access(absolute, os.W_OK), "file", None
    )


def _block_target(
    given: Path,
    st: os.stat_result,
    *,
    image: Path | None,
    allow_loop: bool,
    allow_mounted: bool,
    mounts: Sequence[Mount] | None,
    swaps: Sequence[Swap] | None,
    expect: BlockIdentity | None,
) -> Target:
    devno = (os.major(st.st_rdev), os.minor(st.st_rdev))
    devnode = Path(os.path.realpath(given))
    where = str(devnode)
    sys_path = sys_path_of_devno(devno)
    if sys_path is None:
        if expect is not None:
            raise gone_error(where, "the kernel does not know this block device, unplugged?")
        raise DeviceNotFound("the kernel does not know this block device (unplugged?)", where=where)
    size = disk_size(sys_path)
    disk = disk_identity_at(sys_path)
    identity = BlockIdentity(devno, size, disk.serial, disk.diskseq)
    if expect is not None:
        check_identity(identity, expect, where)
    if is_partition(sys_path):
        whole_disk = f"/dev/{sys_path.parent.name}"
        raise DeviceNotAllowed(
            f"is a partition of {whole_disk}; name the whole disk",
            where=where,
            hint=f"to write the image, name {whole_disk}",
        )
    refusal = kind_refusal(sys_path, allow_loop=allow_loop)
    if refusal:
        raise DeviceNotAllowed(f"cannot be a write target: {refusal}", where=where)
    if mounts is None:
        mounts = read_mounts()
    use = disk_use(sys_path, mounts=mounts, swaps=swaps, image=image)
    refusal = use.refusal()
    if refusal:
        raise DeviceNotAllowed(f"refusing to write: this disk {refusal}", where=where)
    if size == 0:
        raise DeviceNotFound(
            "has no medium (size 0)",
            where=where,
            hint="insert the card or stick, or attach the loop device's file",
        )
    read_only = read_attr(sys_path, "ro") == "1" or _ioctl_read_only(devnode) is True
    if read_only:
        raise DeviceReadOnly(
            "is read-only", where=where, hint="check the write-protect switch of the card or stick"
        )
    if use.other_mounts and not allow_mounted:
        raise DeviceBusy(
            f"has mounted partitions: {_format_mounts(use.other_mounts)}",
            where=where,
            hint="unmount them (or eject the drive's filesystems) and try again",
        )
    if use.holders and not allow_mounted:
        raise DeviceBusy(
            f"is in use by {', '.join(use.holders)} (an open LUKS container, LVM or RAID)",
            where=where,
            hint="lock or deactivate it (e.g. eject the drive) and try again",
        )
    return Target(
        devnode,
        TargetKind.BLOCK,
        size,
        logical_sector_size(sys_path),
        False,
        describe_disk(disk, size),
        devno,
        identity,
    )


def mounted_partitions(
    devno: Devno, *, mounts: Sequence[Mount] | None = None
) -> list[tuple[str, str]]:
    """(devnode, mountpoint) of every mounted filesystem on the disk `devno` and its family."""
    sys_path = sys_path_of_devno(devno)
    if sys_path is None:
        return []
    use = disk_use(sys_path, mounts=mounts, swaps=[])
    return list(use.critical_mounts + use.other_mounts)
