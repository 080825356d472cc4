"""Which disk the user confirmed, and the check that the device opened for writing is it.

Linux gives the next disk plugged in the lowest free name (sdb, sdc, …) and often the same
device number, so a path, or even a device number, recorded when the user confirmed may
mean another disk a minute later. The kernel's `diskseq` (Linux 5.15 and later) numbers
every disk attached since boot and is never reused: a re-plugged stick or a re-attached
loop device gets a new one. With the device number, serial and size it names the disk the
user chose.

`resolve_target` reads it once, into `Target.identity`, when the user is asked; every
later check compares with that value. Only reads meant to catch a change read it again:
the helper's gate, right before it opens the path, and each *opened descriptor*
(`check_descriptor`: fstat's st_rdev, then BLKGETDISKSEQ and BLKGETSIZE64 on the
descriptor itself and the serial of that device number), so a swap between the check by
path and the open cannot slip through.
"""

from __future__ import annotations

import fcntl
import os
import stat
import struct
from dataclasses import dataclass
from typing import Any

from app.usb.blockio import device_size
from app.usb.errors import DeviceChanged, DeviceNotFound
from app.usb.sysfs import (
    Devno,
    block_devno,
    disk_identity_at,
    disk_size,
    parse_devno,
    sys_path_of_devno,
)

BLKGETDISKSEQ = 0x80081280  # _IOR(0x12, 128, __u64), Linux 5.15

NOTHING_WRITTEN = "nothing was written"
LEFT_ALONE = "the drive now there was left alone"


@dataclass(frozen=True)
class BlockIdentity:
    """A whole disk as confirmed: device number, size in bytes, serial, kernel diskseq."""

    devno: Devno
    size: int
    serial: str
    diskseq: int | None  # None on kernels older than 5.15

    def to_json(self) -> dict[str, Any]:
        return {
            "devno": f"{self.devno[0]}:{self.devno[1]}",
            "size": self.size,
            "serial": self.serial,
            "diskseq": self.diskseq,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BlockIdentity:
        devno = parse_devno(str(data.get("devno", "")))
        if devno is None:
            raise ValueError(f"not a device number: {data.get('devno')!r}")
        diskseq = data.get("diskseq")
        return cls(
            devno,
            int(data["size"]),
            str(data.get("serial") or ""),
            None if diskseq is None else int(diskseq),
        )


def identity_of_devno(devno: Devno) -> BlockIdentity:
    """The identity of the disk the kernel now knows under `devno` (sysfs and udev)."""
    sys_path = sys_path_of_devno(devno)
    if sys_path is None:
        raise DeviceNotFound(f"the kernel knows no block device {devno[0]}:{devno[1]} (unplugged?)")
    disk = disk_identity_at(sys_path)
    return BlockIdentity(devno, disk_size(sys_path), disk.serial, disk.diskseq)


def identity_at(path: str | os.PathLike[str]) -> BlockIdentity:
    """The identity of the block device `path` names now."""
    return identity_of_devno(block_devno(path))


def _fd_diskseq(fd: int) -> int | None:
    try:
        raw = fcntl.ioctl(fd, BLKGETDISKSEQ, b"\0" * 8)
    except OSError:
        return None  # older than Linux 5.15
    return int(struct.unpack("Q", raw)[0])


def identity_of_fd(fd: int) -> BlockIdentity | None:
    """The identity of the block device open on `fd`, or None if it is no block device.

    Device number, size and diskseq come from the descriptor itself, so they describe the
    disk that was opened even if its name has been given to another one since.
    """
    st = os.fstat(fd)
    if not stat.S_ISBLK(st.st_mode):
        return None
    devno = (os.major(st.st_rdev), os.minor(st.st_rdev))
    sys_path = sys_path_of_devno(devno)
    disk = disk_identity_at(sys_path) if sys_path is not None else None
    diskseq = _fd_diskseq(fd)
    if diskseq is None and disk is not None:
        diskseq = disk.diskseq  # an older kernel: sysfs may still say
    return BlockIdentity(devno, device_size(fd), disk.serial if disk else "", diskseq)


def differences(expected: BlockIdentity, actual: BlockIdentity) -> list[str]:
    """What tells `actual` apart from `expected`, in words (empty if they are the same disk)."""
    found = []
    if actual.devno != expected.devno:
        found.append(
            f"device number {actual.devno[0]}:{actual.devno[1]}, not "
            f"{expected.devno[0]}:{expected.devno[1]}"
        )
    # A known diskseq must match; one we cannot read now is no proof of the same disk.
    if expected.diskseq is not None and actual.diskseq != expected.diskseq:
        now = "unknown" if actual.diskseq is None else str(actual.diskseq)
        found.append(f"disk sequence number {now}, not {expected.diskseq}")
    # udev may fill in a serial after the disk was listed: with the same diskseq, a serial
    # that was unknown then is no difference. Two different serials always are.
    late_serial = (
        not expected.serial and expected.diskseq is not None and actual.diskseq == expected.diskseq
    )
    if actual.serial != expected.serial and not late_serial:
        found.append(f"serial {actual.serial or 'none'}, not {expected.serial or 'none'}")
    if actual.size != expected.size:
        found.append(f"{actual.size} bytes, not {expected.size}")
    return found


def changed_error(where: str, found: list[str], consequence: str) -> DeviceChanged:
    return DeviceChanged(
        f"the drive you chose is gone; {where} is now a different drive "
        f"({'; '.join(found)}); {consequence}",
        where=where,
        hint="choose the drive again if you still mean to write it",
    )


def gone_error(where: str, why: str, consequence: str = NOTHING_WRITTEN) -> DeviceChanged:
    return DeviceChanged(f"the drive you chose is gone ({why}); {consequence}", where=where)


def check_identity(
    actual: BlockIdentity,
    expected: BlockIdentity,
    where: str,
    *,
    consequence: str = NOTHING_WRITTEN,
) -> None:
    """Raise DeviceChanged unless `actual` is the disk `expected` describes."""
    found = differences(expected, actual)
    if found:
        raise changed_error(where, found, consequence)


def check_path(
    path: str | os.PathLike[str], expected: BlockIdentity, *, consequence: str = NOTHING_WRITTEN
) -> None:
    """Raise DeviceChanged unless `path` still names the disk `expected` describes."""
    where = str(path)
    try:
        actual = identity_at(path)
    except DeviceNotFound as exc:
        raise gone_error(where, exc.message, consequence) from exc
    check_identity(actual, expected, where, consequence=consequence)


def check_descriptor(
    fd: int, expected: BlockIdentity, where: str, *, consequence: str = NOTHING_WRITTEN
) -> None:
    """Raise DeviceChanged unless the device open on `fd` is the disk `expected` describes."""
    actual = identity_of_fd(fd)
    if actual is None:
        raise gone_error(where, "not a block device now", consequence)
    check_identity(actual, expected, where, consequence=consequence)
