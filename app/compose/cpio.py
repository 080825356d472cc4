"""A deterministic writer for "newc" cpio archives, the format the kernel unpacks as initramfs.

Layout of one entry: a 110-byte ASCII header ("070701" and 13 eight-digit hex fields:
ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor,
namesize, check), the NUL-terminated name, padding to 4 bytes, the data, padding to 4.
The archive ends with an entry named "TRAILER!!!".

Determinism: inode numbers are assigned in write order, dev is always 0, mtimes come from
the metadata (clamped to the writer's `mtime_clamp`: the build's epoch), and `write_tree`
visits paths in sorted order. Metadata (owner, mode, device numbers) comes from a
RootManifest where one is given, because a rootless build cannot create those on disk.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from app.compose.manifest import FileMeta, Kind, RootManifest, normalize
from app.errors import StageError
from app.reporter import Reporter, check_cancelled

MAGIC = b"070701"
TRAILER = "TRAILER!!!"
HEADER_SIZE = 110
MAX_FIELD = 0xFFFFFFFF
# Below this size a file is read in one call and joins the output buffer; larger files
# are streamed in chunks of this size so memory stays bounded.
CHUNK = 4 << 20
FLUSH_AT = 1 << 20
DIRECT_AT = 64 << 10

_DATA_KINDS = (Kind.FILE, Kind.HARDLINK)


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 4)


class NewcWriter:
    """Writes newc entries to a binary stream; `close()` writes the trailer (not the stream).

    Parent directories that were not added explicitly are created (mode 0755, root) before
    their first child; a directory added twice is written once (the first time wins).
    `mtime_clamp` (None: none) is the latest mtime an entry gets.
    """

    def __init__(self, out: BinaryIO, *, mtime_clamp: int | None = None):
        self._out = out
        self._clamp = mtime_clamp
        self._buf = bytearray()
        self._next_ino = 1
        self._dirs: set[str] = set()
        self._paths: set[str] = set()
        self._closed = False
        self.entries = 0  # entries written, trailer excluded
        self.size = 0  # bytes of archive produced so far (buffered or written)

    # -- public API -------------------------------------------------------------------

    def add(
        self, meta: FileMeta, data: Path | str | bytes | None = None, *, nlink: int | None = None
    ) -> None:
        """Write one entry. FILE data comes from `data` (a file path as Path or str, or the
        bytes themselves; None = empty);
        a symlink's data is its target; devices use meta.rdev_*. Hardlinks: `add_links`."""
        if meta.kind is Kind.HARDLINK:
            raise ValueError(f"{meta.path}: hardlinks are written as a group with add_links()")
        path = self._name(meta.path)
        if meta.kind is Kind.DIR:
            if path in self._dirs:
                return
            self._dirs.add(path)
        self._ensure_parents(path)
        if meta.kind is Kind.FILE:
            self._add_file(meta, path, data, ino=self._take_ino(), nlink=nlink or 1)
        elif meta.kind is Kind.SYMLINK:
            if not meta.target:
                raise StageError(f"symlink {meta.path!r} has an empty target", stage="cpio")
            self._add_bytes(meta, path, os.fsencode(meta.target), self._take_ino(), nlink or 1)
        else:
            default_nlink = 2 if meta.kind is Kind.DIR else 1
            self._add_bytes(meta, path, b"", self._take_ino(), nlink or default_nlink)

    def add_links(self, metas: Sequence[FileMeta], data: Path | str | bytes | None = None) -> None:
        """Write the paths of one hardlinked file: one inode, nlink = len(metas), data only
        on the last entry (newc convention, what the kernel and GNU cpio expect). The inode's
        mode/owner/mtime are those of metas[0]."""
        if not metas:
            return
        first = metas[0]
        for meta in metas:
            if meta.kind not in _DATA_KINDS:
                raise ValueError(f"{meta.path}: only regular files can be hardlinked")
        ino = self._take_ino()
        paths = [self._name(m.path) for m in metas]
        for path in paths:
            self._ensure_parents(path)
        for path in paths[:-1]:
            self._add_bytes(first, path, b"", ino, len(metas), kind_bits=stat.S_IFREG)
        self._add_file(first, paths[-1], data, ino=ino, nlink=len(metas))

    def has(self, path: str) -> bool:
        """True if an entry for `path` was written already."""
        return normalize(path) in self._paths

    def close(self) -> None:
        if self._closed:
            return
        self._emit_header(0, 0, 0, 0, 1, 0, 0, 0, 0, TRAILER)
        self._flush()
        self._closed = True

    def __enter__(self) -> NewcWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.close()

    # -- internals --------------------------------------------------------------------

    @staticmethod
    def _name(path: str) -> str:
        # Fast path for names that are already clean (nearly all of them).
        wrapped = f"/{path}/"
        if (
            path
            and path[0] != "/"
            and path[-1] != "/"
            and "//" not in path
            and "/./" not in wrapped
            and "/../" not in wrapped
            and "\0" not in path
        ):
            return path
        try:
            name = normalize(path)
        except ValueError as exc:
            raise StageError(str(exc), stage="cpio") from None
        if not name or "\0" in name:
            raise StageError(f"invalid archive path {path!r}", stage="cpio")
        return name

    def _take_ino(self) -> int:
        ino = self._next_ino
        self._next_ino += 1
        return ino

    def _ensure_parents(self, path: str) -> None:
        parent = path.rpartition("/")[0]
        missing = []
        while parent and parent not in self._dirs:
            missing.append(parent)
            parent = parent.rpartition("/")[0]
        for directory in reversed(missing):
            self._dirs.add(directory)
            self._emit_header(
                self._take_ino(),
                stat.S_IFDIR | 0o755,
                0,
                0,
                2,
                self._mtime(self._clamp or 0),
                0,
                0,
                0,
                directory,
            )

    def _mtime(self, mtime: int) -> int:
        mtime = max(0, mtime)
        if self._clamp is not None and mtime > self._clamp:
            return self._clamp
        return mtime

    def _emit_header(
        self,
        ino: int,
        mode: int,
        uid: int,
        gid: int,
        nlink: int,
        mtime: int,
        size: int,
        rmajor: int,
        rminor: int,
        name: str,
    ) -> None:
        encoded = os.fsencode(name) + b"\0"
        fields = (ino, mode, uid, gid, nlink, mtime, size, 0, 0, rmajor, rminor, len(encoded))
        if any(v > MAX_FIELD for v in fields):
            what = "file is larger than 4 GiB" if size > MAX_FIELD else "a number is too large"
            raise StageError(f"cannot store {name!r} in a newc cpio archive: {what}", stage="cpio")
        header = b"070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X00000000" % fields
        self._buf += header
        self._buf += encoded
        self._buf += _pad(HEADER_SIZE + len(encoded))
        self.size += HEADER_SIZE + len(encoded) + (-(HEADER_SIZE + len(encoded)) % 4)
        if name != TRAILER:
            self.entries += 1
            self._paths.add(name)

    def _add_bytes(
        self,
        meta: FileMeta,
        path: str,
        payload: bytes,
        ino: int,
        nlink: int,
        kind_bits: int | None = None,
    ) -> None:
        mode = (meta.type_bits if kind_bits is None else kind_bits) | (meta.mode & 0o7777)
        self._emit_header(
            ino,
            mode,
            meta.uid,
            meta.gid,
            nlink,
            self._mtime(meta.mtime),
            len(payload),
            meta.rdev_major,
            meta.rdev_minor,
            path,
        )
        if payload:
            if len(payload) >= DIRECT_AT:
                # Large data goes out as is: copying it into the buffer costs more than a call.
                self._flush()
                self._out.write(payload)
            else:
                self._buf += payload
            self._buf += _pad(len(payload))
            self.size += len(payload) + (-len(payload) % 4)
        if len(self._buf) >= FLUSH_AT:
            self._flush()

    def _add_file(
        self, meta: FileMeta, path: str, data: Path | str | bytes | None, *, ino: int, nlink: int
    ) -> None:
        if not isinstance(data, (Path, str)):
            self._add_bytes(meta, path, bytes(data or b""), ino, nlink, kind_bits=stat.S_IFREG)
            return
        try:
            fd = os.open(data, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise StageError(f"cannot read {data}: {exc.strerror}", stage="cpio") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise StageError(f"{data} is not a regular file", stage="cpio")
            size = st.st_size
            if size < CHUNK:
                payload = os.read(fd, size + 1) if size else b""
                if len(payload) != size:
                    raise StageError(f"{data} changed while it was being archived", stage="cpio")
                self._add_bytes(meta, path, payload, ino, nlink, kind_bits=stat.S_IFREG)
                return
            self._emit_header(
                ino,
                stat.S_IFREG | (meta.mode & 0o7777),
                meta.uid,
                meta.gid,
                nlink,
                self._mtime(meta.mtime),
                size,
                0,
                0,
                path,
            )
            self._flush()
            left = size
            while left:
                chunk = os.read(fd, min(CHUNK, left))
                if not chunk:
                    raise StageError(f"{data} shrank while it was being archived", stage="cpio")
                self._out.write(chunk)
                left -= len(chunk)
            self._buf += _pad(size)
            self.size += size + (-size % 4)
        finally:
            os.close(fd)

    def _flush(self) -> None:
        if self._buf:
            self._out.write(self._buf)
            self._buf = bytearray()


# -- whole trees --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Item:
    """One thing to write: a single entry, or a hardlink group (metas[0] is the FILE)."""

    metas: tuple[FileMeta, ...]
    source: str | None  # file on disk holding the data (regular files only)
    size: int
    nlink: int | None = None


def _scan(root: Path) -> dict[str, os.stat_result]:
    """Every path under `root` (root excluded) -> lstat, never following symlinks."""
    found: dict[str, os.stat_result] = {}
    pending = [("", str(root))]
    while pending:
        rel_dir, abs_dir = pending.pop()
        try:
            entries = list(os.scandir(abs_dir))
        except OSError as exc:
            raise StageError(f"cannot list {abs_dir}: {exc.strerror}", stage="cpio") from None
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            st = entry.stat(follow_symlinks=False)
            found[rel] = st
            if stat.S_ISDIR(st.st_mode):
                pending.append((rel, entry.path))
    return found


def _meta_from_stat(root: Path, rel: str, st: os.stat_result) -> FileMeta:
    mode = st.st_mode
    target = ""
    if stat.S_ISLNK(mode):
        kind, target = Kind.SYMLINK, os.readlink(root / rel)
    elif stat.S_ISDIR(mode):
        kind = Kind.DIR
    elif stat.S_ISREG(mode):
        kind = Kind.FILE
    elif stat.S_ISCHR(mode):
        kind = Kind.CHAR
    elif stat.S_ISBLK(mode):
        kind = Kind.BLOCK
    elif stat.S_ISFIFO(mode):
        kind = Kind.FIFO
    else:
        kind = Kind.SOCKET
    device = kind in (Kind.CHAR, Kind.BLOCK)
    return FileMeta(
        rel,
        kind,
        stat.S_IMODE(mode),
        st.st_uid,
        st.st_gid,
        target,
        os.major(st.st_rdev) if device else 0,
        os.minor(st.st_rdev) if device else 0,
        int(st.st_mtime),
        owner="",
    )


def plan_tree(root: Path, manifest: RootManifest | None) -> list[_Item]:
    """What `write_tree` writes, in order: manifest metadata first, lstat for the rest."""
    disk = _scan(root)
    metas: dict[str, FileMeta] = {}
    if manifest is not None:
        for meta in manifest:
            metas[meta.path] = meta
    # Hardlinks among files the manifest does not describe: group by inode.
    inode_groups: dict[tuple[int, int], list[str]] = {}
    for rel, st in disk.items():
        if rel in metas:
            continue
        metas[rel] = _meta_from_stat(root, rel, st)
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            inode_groups.setdefault((st.st_dev, st.st_ino), []).append(rel)
    for paths in inode_groups.values():
        paths.sort()
        for other in paths[1:]:
            metas[other] = replace(metas[other], kind=Kind.HARDLINK, target=paths[0])

    groups: dict[str, list[str]] = {}
    for meta in metas.values():
        if meta.kind is Kind.HARDLINK:
            target = normalize(meta.target)
            first = metas.get(target)
            if first is None or first.kind is not Kind.FILE:
                raise StageError(
                    f"hardlink {meta.path!r} points to {meta.target!r}, which is "
                    "not a regular file in the root",
                    stage="cpio",
                )
            groups.setdefault(target, [target]).append(meta.path)
    last_member = {max(members): first for first, members in groups.items()}
    in_group = {p for members in groups.values() for p in members}

    subdirs: dict[str, int] = {}
    for path, meta in metas.items():
        if meta.kind is Kind.DIR and "/" in path:
            parent = path.rpartition("/")[0]
            subdirs[parent] = subdirs.get(parent, 0) + 1

    items: list[_Item] = []
    for path in sorted(metas):
        meta = metas[path]
        if path in in_group:
            group_first = last_member.get(path)
            if group_first is None:
                continue
            # The FILE entry first: its mode and owner are the inode's.
            members = (
                metas[group_first],
                *(metas[p] for p in sorted(groups[group_first]) if p != group_first),
            )
            source = _regular_source(root, group_first, disk)
            items.append(_Item(members, source, disk[group_first].st_size))
        elif meta.kind is Kind.FILE:
            source = _regular_source(root, path, disk)
            items.append(_Item((meta,), source, disk[path].st_size))
        elif meta.kind is Kind.DIR:
            items.append(_Item((meta,), None, 0, 2 + subdirs.get(path, 0)))
        else:
            items.append(_Item((meta,), None, len(meta.target)))
    return items


def _regular_source(root: Path, rel: str, disk: dict[str, os.stat_result]) -> str:
    st = disk.get(rel)
    if st is None:
        raise StageError(
            f"{rel!r} is listed in the root manifest but missing from the staging root {root}",
            stage="cpio",
        )
    if not stat.S_ISREG(st.st_mode):
        raise StageError(
            f"{rel!r} is a regular file in the root manifest but not on disk in {root}",
            stage="cpio",
        )
    return os.path.join(root, rel)  # a str: pathlib costs more than the copy for small files


def _prefixed(meta: FileMeta, prefix: str) -> FileMeta:
    return replace(meta, path=f"{prefix}/{meta.path}") if prefix else meta


def write_tree(
    root: Path,
    manifest: RootManifest | None,
    out: BinaryIO | NewcWriter,
    reporter: Reporter,
    *,
    prefix: str = "",
) -> int:
    """Archive the tree under `root` (not root itself), parents before children, sorted.

    `out` is either a stream (a complete archive with trailer is written) or a NewcWriter
    that other content shares (the caller closes it). Returns the number of entries.
    """
    items = plan_tree(root, manifest)
    prefix = normalize(prefix) if prefix else ""
    writer = out if isinstance(out, NewcWriter) else NewcWriter(out)
    total = sum(item.size for item in items) or 1
    done = 0
    written = 0
    for number, item in enumerate(items):
        if number % 256 == 0:
            check_cancelled(reporter)
            reporter.progress(done, total)
        metas = [_prefixed(m, prefix) for m in item.metas]
        if len(metas) > 1:
            writer.add_links(metas, item.source)
        else:
            writer.add(metas[0], item.source, nlink=item.nlink)
        written += len(metas)
        done += item.size
    reporter.progress(total, total)
    if not isinstance(out, NewcWriter):
        writer.close()
    return written
