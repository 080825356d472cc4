"""Wiping the partition-table signatures of a device after a cancelled or failed write.

Zeroing the first MiB removes the MBR, the primary GPT, an ISO 9660 volume descriptor and
most file-system superblocks; zeroing the last MiB removes the backup GPT. A half-written
stick then looks empty, not half-bootable (GNOME Disks does the same with Format("empty")).
"""

from __future__ import annotations

import os

from app.usb.blockio import (
    aligned_buffer,
    device_size,
    pwrite_all,
    reread_partitions,
)

WIPE_SPAN = 1 << 20

WIPED_MESSAGE = "the stick was wiped so it does not look half-bootable"


def wipe_signatures(
    fd: int, *, size: int | None = None, sector: int = 512, head: int = WIPE_SPAN
) -> list[tuple[int, int]]:
    """Zero the first `head` bytes (a MiB unless told) and the last MiB of `fd` (of `size`
    bytes); returns the zeroed ranges.

    Raises OSError if a write fails (a dying stick); the caller says so.
    """
    total = device_size(fd) if size is None else size
    if total <= 0:
        return []
    head = min(max(head, WIPE_SPAN), total)
    view = memoryview(aligned_buffer(max(head, WIPE_SPAN)))
    ranges = [(0, head)]
    tail_start = max(head, total - WIPE_SPAN)
    # Keep the tail write sector-aligned for O_DIRECT; never write past the end.
    tail_start -= tail_start % sector
    if tail_start < total:
        ranges.append((tail_start, total))
    for start, end in ranges:
        pwrite_all(fd, view[: end - start], start)
    os.fsync(fd)
    reread_partitions(fd)
    return ranges
