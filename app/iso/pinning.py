"""Pinning what pycdlib stamps on its own: dates, Rock Ridge owners and modes.

pycdlib stamps every directory record and Rock Ridge TF entry with the current local
time, every Rock Ridge owner with 0, and the volume descriptors with the time of
writing. After layout, every record gets the real metadata of its node (mtime, mode,
uid, gid) and the volume descriptors get fixed dates, all in UTC, so the same tree
and epoch give the same bytes.
"""

from __future__ import annotations

import calendar
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, BinaryIO

from pycdlib import dates as pycdlib_dates

from app.iso.staged import Node

BLOCK = 2048
_TF_FIELDS = (
    "creation_time",
    "access_time",
    "modification_time",
    "attribute_change_time",
    "backup_time",
    "expiration_time",
    "effective_time",
)


@dataclass(frozen=True)
class Meta:
    """What one record should say; mode None keeps the mode pycdlib gave it."""

    mode: int | None
    uid: int
    gid: int
    seconds: int


def _utc_fields(seconds: int) -> time.struct_time:
    # Directory record years are 1900 + one byte; keep the value inside that range.
    low, high = -2208988800, calendar.timegm((2155, 12, 31, 23, 59, 59, 0, 0, 0))
    return time.gmtime(min(max(seconds, low), high))


@lru_cache(maxsize=4096)
def _record_date(seconds: int) -> Any:
    t = _utc_fields(seconds)
    date = pycdlib_dates.DirectoryRecordDate()
    date.parse(
        struct.pack(
            "=BBBBBBb", t.tm_year - 1900, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, 0
        )
    )
    return date


def _volume_date(seconds: int) -> bytes:
    return time.strftime("%Y%m%d%H%M%S", _utc_fields(seconds)).encode() + b"00\x00"


def _rr_record(rec: Any, name: str) -> Any:
    """A Rock Ridge entry of a record; long names push entries to the continuation area."""
    rr = rec.rock_ridge
    if rr is None:
        return None
    found = getattr(rr.dr_entries, name, None)
    if found is None and rr.ce_entries is not None:
        found = getattr(rr.ce_entries, name, None)
    return found


def _apply(rec: Any, meta: Meta) -> None:
    """Pin one directory record: its date, and Rock Ridge mode/owner/time stamps."""
    date = _record_date(meta.seconds)
    rec.date = date
    px = _rr_record(rec, "px_record")
    if px is not None:
        if meta.mode is not None:
            px.posix_file_mode = meta.mode
        px.posix_user_id = meta.uid
        px.posix_group_id = meta.gid
    tf = _rr_record(rec, "tf_record")
    if tf is not None:
        for name in _TF_FIELDS:
            if getattr(tf, name) is not None:
                setattr(tf, name, date)


def pin_tree(
    top: Any,
    root: Node,
    children: dict[int, dict[bytes, Node]],
    meta: Callable[[Node | None], Meta],
) -> None:
    """Pin every record below the root record `top` (the ISO 9660 or the Joliet tree).

    `children[id(directory node)]` maps each child's identifier in this tree to its
    node; records without a node (boot catalog, relocation directory) get meta(None).
    Relocated directories are reached through their Rock Ridge CL placeholder.
    """
    _apply(top, meta(root))
    stack: list[tuple[Any, Node | None, Node | None]] = [(top, root, root)]
    while stack:
        rec, node, parent = stack.pop()
        records = rec.children
        _apply(records[0], meta(node))  # "."
        _apply(records[1], meta(parent))  # ".."
        by_name = children.get(id(node), {}) if node is not None else {}
        for child in records[2:]:
            child_node = by_name.get(child.file_ident)
            rr = child.rock_ridge
            if rr is not None and rr.relocated_record():
                continue
            _apply(child, meta(child_node))
            if rr is not None and rr.child_link_record_exists():
                moved = rr.cl_to_moved_dr
                _apply(moved, meta(child_node))
                stack.append((moved, child_node, node))
            elif child.is_dir():
                stack.append((child, child_node, node))


def pin_volume_descriptors(fp: BinaryIO, seconds: int) -> None:
    """Set the creation/modification/effective dates of every PVD and SVD."""
    date = _volume_date(seconds)
    empty = b"0" * 16 + b"\0"
    sector = 16
    while True:
        fp.seek(sector * BLOCK)
        head = fp.read(7)
        if len(head) < 7 or head[1:6] != b"CD001" or head[0] == 255:
            return
        if head[0] in (1, 2):
            # creation 813, modification 830, expiration 847, effective 864 (ECMA-119 8.4)
            fp.seek(sector * BLOCK + 813)
            fp.write(date + date + empty + date)
        sector += 1
