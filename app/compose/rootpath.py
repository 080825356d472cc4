"""Resolving paths inside a staged root the way a chroot would, never escaping it.

Packages may legitimately ship absolute symlinks (`/bin/sh -> /bin/busybox`) or a
usr-merged layout (`bin -> usr/bin`). When *we* write into the root (configure, overlay),
a symlink must be followed as the live system would see it — relative to the root —
and never to the building machine's own files.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from app.errors import InputError

MAX_LINKS = 40


def resolve_in_root(root: Path, path: str, *, follow_last: bool = True) -> Path:
    """Host path for root-relative `path`, following symlinks inside `root` only."""
    parts = [p for p in PurePosixPath("/", path).parts[1:] if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        try:
            st = candidate.lstat()
        except FileNotFoundError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode) and (parts or follow_last):
            links += 1
            if links > MAX_LINKS:
                raise InputError("too many levels of symbolic links", where=f"/{path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in PurePosixPath(target).parts if p not in ("/", "", ".")] + parts
            continue
        resolved.append(part)
    return root.joinpath(*resolved)


def root_relative(root: Path, host_path: Path) -> str:
    return host_path.relative_to(root).as_posix()
