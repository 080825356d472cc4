"""Low-level block I/O for the writer: ioctls, aligned buffers, full reads/writes, errno meaning.

O_DIRECT needs page-aligned buffers (anonymous mmap gives them) and transfer sizes that are
multiples of the logical sector size. Some file systems refuse O_DIRECT (EINVAL); then we
drop the flag on that descriptor and go on buffered — correct, only the cache is involved.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import stat
import struct
from pathlib import Path

from app.errors import LivesmithError
from app.usb.errors import (
    DeviceBusy,
    DeviceIOError,
    DevicePermissionDenied,
    DeviceReadOnly,
    DeviceUnplugged,
)

# <linux/fs.h>
BLKROGET = 0x125E  # _IO(0x12, 94): int
BLKRRPART = 0x125F  # _IO(0x12, 95): re-read the partition table
BLKFLSBUF = 0x1261  # _IO(0x12, 97): flush and drop the device's buffer cache
BLKSSZGET = 0x1268  # _IO(0x12, 104): logical sector size, int
BLKGETSIZE64 = 0x80081272  # _IOR(0x12, 114, size_t): size in bytes, u64

SYSFS_DEVNO = Path("/sys/dev/block")
UNPLUGGED_ERRNOS = {errno.ENODEV, errno.ENXIO, errno.ENOMEDIUM}

Devno = tuple[int, int]


def aligned_buffer(size: int) -> mmap.mmap:
    """A zero-filled, page-aligned buffer usable for O_DIRECT transfers."""
    return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)


def round_up(value: int, unit: int) -> int:
    return -(-value // unit) * unit


def is_block_fd(fd: int) -> bool:
    return stat.S_ISBLK(os.fstat(fd).st_mode)


def device_size(fd: int) -> int:
    """Size in bytes: BLKGETSIZE64 for a block device, st_size for a file."""
    if not is_block_fd(fd):
        return os.fstat(fd).st_size
    raw = fcntl.ioctl(fd, BLKGETSIZE64, b"\0" * 8)
    return int(struct.unpack("Q", raw)[0])


def logical_sector_size(fd: int) -> int:
    if not is_block_fd(fd):
        return 512
    raw = fcntl.ioctl(fd, BLKSSZGET, b"\0" * 4)
    return int(struct.unpack("i", raw)[0]) or 512


def is_read_only(fd: int) -> bool:
    if not is_block_fd(fd):
        return False
    raw = fcntl.ioctl(fd, BLKROGET, b"\0" * 4)
    return bool(struct.unpack("i", raw)[0])


def drop_cache(fd: int) -> None:
    """Make the next buffered reads come from the medium, not from RAM (best effort)."""
    if is_block_fd(fd):
        try:
            fcntl.ioctl(fd, BLKFLSBUF)
        except OSError:
            pass
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass


def reread_partitions(fd: int) -> None:
    """Ask the kernel to re-read the partition table (best effort: EBUSY, EINVAL are fine)."""
    if is_block_fd(fd):
        try:
            fcntl.ioctl(fd, BLKRRPART)
        except OSError:
            pass


def has_direct_io(fd: int) -> bool:
    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)


def clear_direct_io(fd: int) -> None:
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_DIRECT)


def set_direct_io(fd: int) -> bool:
    """Turn O_DIRECT on for an already opened descriptor (a UDisks fd); False if refused."""
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_DIRECT)
    except OSError:
        return False
    return True


def pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    """Write all of `view` at `offset`; a file system refusing O_DIRECT falls back to buffered."""
    done = 0
    while done < len(view):
        try:
            n = os.pwrite(fd, view[done:], offset + done)
        except OSError as exc:
            if exc.errno == errno.EINVAL and has_direct_io(fd):
                clear_direct_io(fd)
                continue
            exc.filename = str(offset + done)  # the failing byte, for the caller's message
            raise
        if n <= 0:
            raise OSError(errno.EIO, "short write", str(offset + done))
        done += n


def pread_full(fd: int, view: memoryview, offset: int) -> int:
    """Read into `view` from `offset` until it is full or the end of the device/file."""
    done = 0
    while done < len(view):
        try:
            n = os.preadv(fd, [view[done:]], offset + done)
        except OSError as exc:
            if exc.errno == errno.EINVAL and has_direct_io(fd):
                clear_direct_io(fd)
                drop_cache(fd)
                continue
            exc.filename = str(offset + done)
            raise
        if n == 0:
            break
        done += n
    return done


def failing_offset(exc: OSError, default: int) -> int:
    """The byte offset `pwrite_all`/`pread_full` stored in the exception, else `default`."""
    try:
        return int(exc.filename) if exc.filename is not None else default
    except (TypeError, ValueError):
        return default


def still_present(devno: Devno | None) -> bool:
    """False once the kernel no longer knows the block device (unplugged)."""
    if devno is None:
        return True
    return (SYSFS_DEVNO / f"{devno[0]}:{devno[1]}").exists()


def io_error(
    exc: OSError, *, doing: str, offset: int, where: str, is_block: bool, devno: Devno | None = None
) -> LivesmithError:
    """A typed, worded error for an OSError raised at byte `offset` while `doing` it."""
    code = exc.errno
    if code in UNPLUGGED_ERRNOS or (is_block and not still_present(devno)):
        return DeviceUnplugged(
            f"the device was unplugged (at byte {offset} while {doing})",
            where=where,
            hint="plug it in again and start over",
        )
    if code == errno.ENOSPC:
        if is_block:
            return DeviceIOError(
                f"the device refused data at byte {offset} while {doing}: no space left",
                where=where,
                offset=offset,
                hint="the stick may be smaller than it claims (a fake-capacity stick)",
            )
        return DeviceIOError(
            f"no space left on the file system at byte {offset} while {doing}",
            where=where,
            offset=offset,
            hint="free some space and try again",
        )
    if code in (errno.EROFS, errno.EPERM) and doing.startswith("writ"):
        return DeviceReadOnly(
            f"is read-only (refused at byte {offset})",
            where=where,
            hint="check the write-protect switch of the card or stick",
        )
    if code == errno.EACCES:
        return DevicePermissionDenied("permission denied", where=where)
    if code == errno.EBUSY:
        return DeviceBusy("is in use by another program", where=where)
    if code == errno.EIO:
        return DeviceIOError(
            f"I/O error at byte {offset} while {doing}",
            where=where,
            offset=offset,
            hint="the stick may be failing; try another one",
        )
    return DeviceIOError(
        f"{exc.strerror or exc} at byte {offset} while {doing}", where=where, offset=offset
    )
