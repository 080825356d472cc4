"""Metadata of a staged root tree, kept apart from the files on disk.

Builds run as an ordinary user: extraction cannot chown, create device nodes or keep
setuid bits safely on the host. The staging directory therefore holds the *contents*
(regular files, directories, symlinks, owned by the building user) and a RootManifest
holds the *truth* for every path: type, permission bits (incl. setuid/setgid/sticky),
owner, group, device numbers. Image writers (cpio, mksquashfs pseudo files, fakeroot for
mkfs.erofs) take their metadata from the manifest, never from the host's stat().
"""

from __future__ import annotations

import enum
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path


class Kind(enum.Enum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"  # `target` names the first path of the same inode (root-relative)
    CHAR = "char"
    BLOCK = "block"
    FIFO = "fifo"
    SOCKET = "socket"


@dataclass(frozen=True, slots=True)
class FileMeta:
    # slots: a desktop root has ~100,000 entries; no per-instance __dict__ saves ~50 bytes each.
    path: str  # root-relative POSIX path without leading "/", e.g. "usr/bin/sh"
    kind: Kind
    mode: int  # permission bits incl. setuid/setgid/sticky (0o7777 mask), no type bits
    uid: int = 0
    gid: int = 0
    target: str = ""  # symlink target (as stored) or hardlink source path
    rdev_major: int = 0
    rdev_minor: int = 0
    mtime: int = 0
    owner: str = "root"  # package that put it there ("" for generated files)

    @property
    def type_bits(self) -> int:
        return {
            Kind.FILE: stat.S_IFREG,
            Kind.HARDLINK: stat.S_IFREG,
            Kind.DIR: stat.S_IFDIR,
            Kind.SYMLINK: stat.S_IFLNK,
            Kind.CHAR: stat.S_IFCHR,
            Kind.BLOCK: stat.S_IFBLK,
            Kind.FIFO: stat.S_IFIFO,
            Kind.SOCKET: stat.S_IFSOCK,
        }[self.kind]

    @property
    def st_mode(self) -> int:
        return self.type_bits | (self.mode & 0o7777)


def normalize(path: str) -> str:
    """Root-relative POSIX form; raises ValueError for paths that escape the root."""
    # Plain string work: this runs several times per package member (thousands per kernel).
    parts = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise ValueError(f"path escapes the root: {path!r}")
        parts.append(part)
    return "/".join(parts)


class RootManifest:
    """Ordered map path -> FileMeta (parents are added before children by producers)."""

    def __init__(self) -> None:
        self._entries: dict[str, FileMeta] = {}

    def add(self, meta: FileMeta) -> None:
        path = normalize(meta.path)
        if path == meta.path:
            self._entries[meta.path] = meta  # the key is the entry's own string, not a copy
        else:
            self._entries[path] = replace(meta, path=path)

    def get(self, path: str) -> FileMeta | None:
        return self._entries.get(normalize(path))

    def remove(self, path: str) -> None:
        self._entries.pop(normalize(path), None)

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and normalize(path) in self._entries

    def __iter__(self) -> Iterator[FileMeta]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def sorted(self) -> list[FileMeta]:
        """Entries in path order (parents before children), for reproducible images."""
        return [self._entries[k] for k in sorted(self._entries)]

    def add_tree(self, root: Path, *, uid: int = 0, gid: int = 0, owner: str = "") -> None:
        """Record files generated on disk under `root` (not from packages) as owned by uid/gid,
        keeping their on-disk permission bits; entries already present are left alone."""
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in [*dirnames, *sorted(filenames)]:
                full = Path(dirpath, name)
                rel = full.relative_to(root).as_posix()
                if rel in self._entries:
                    continue
                st = full.lstat()
                if stat.S_ISLNK(st.st_mode):
                    kind, target = Kind.SYMLINK, os.readlink(full)
                elif stat.S_ISDIR(st.st_mode):
                    kind, target = Kind.DIR, ""
                else:
                    kind, target = Kind.FILE, ""
                self.add(
                    FileMeta(
                        rel,
                        kind,
                        stat.S_IMODE(st.st_mode),
                        uid,
                        gid,
                        target,
                        mtime=int(st.st_mtime),
                        owner=owner,
                    )
                )
