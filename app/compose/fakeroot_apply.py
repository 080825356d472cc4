"""Apply a root manifest's owners, modes and device nodes to a staged tree.

Run under `fakeroot -s STATE` (see rootimage.make_erofs): fakeroot records the chown and
mknod calls instead of performing them, so an ordinary user gets an image with the right
owners. Usage: python -m app.compose.fakeroot_apply ROOT LISTING

The listing is a sequence of records of seven NUL-terminated fields (kind, octal mode, uid,
gid, device major, device minor, root-relative path as raw bytes): a NUL cannot occur in a
file name, so no name can make a record of its own. Every path is checked again here (no
absolute paths, no empty, `.` or `..` components), directories are walked one component at a
time with O_NOFOLLOW from the root's descriptor, and every call works on a descriptor or on a
name relative to its parent's, never following a symlink: nothing outside ROOT is touched,
not even through a symlink inside it.
"""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

FIELDS = 7
DEVICE_KINDS = {"char": stat.S_IFCHR, "block": stat.S_IFBLK, "fifo": stat.S_IFIFO}
KINDS = {"file", "dir", "symlink", "hardlink", "socket", *DEVICE_KINDS}
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NODE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class ListingError(ValueError):
    """The listing is malformed or names a path that could leave the root."""


@dataclass(frozen=True)
class Record:
    kind: str
    mode: int
    uid: int
    gid: int
    major: int
    minor: int
    parts: tuple[bytes, ...]  # the path's components, checked

    @property
    def path(self) -> str:
        return os.fsdecode(b"/".join(self.parts))


def path_parts(path: bytes) -> tuple[bytes, ...]:
    """The components of a root-relative path; ListingError unless it is normalised and
    stays inside the root."""
    parts = tuple(path.split(b"/"))
    if not path or any(p in (b"", b".", b"..") for p in parts) or b"\0" in path:
        raise ListingError(
            f"unsafe path in the listing: {path!r} (must be relative, normalised and without '..')"
        )
    return parts


def encode_record(
    kind: str, mode: int, uid: int, gid: int, major: int, minor: int, path: str
) -> bytes:
    raw = os.fsencode(path)
    path_parts(raw)
    fields = [
        kind.encode(),
        f"{mode:o}".encode(),
        str(uid).encode(),
        str(gid).encode(),
        str(major).encode(),
        str(minor).encode(),
        raw,
    ]
    return b"".join(field + b"\0" for field in fields)


def read_records(data: bytes) -> list[Record]:
    if data and not data.endswith(b"\0"):
        raise ListingError("the listing does not end with a complete record")
    fields = data.split(b"\0")[:-1]
    if len(fields) % FIELDS:
        raise ListingError("the listing has an incomplete record")
    records = []
    for i in range(0, len(fields), FIELDS):
        kind_b, mode_b, uid_b, gid_b, major_b, minor_b, path = fields[i : i + FIELDS]
        kind = kind_b.decode("ascii", "replace")
        if kind not in KINDS:
            raise ListingError(f"unknown kind {kind!r} for {path!r} in the listing")
        try:
            mode = int(mode_b, 8)
            uid, gid, major, minor = (int(n) for n in (uid_b, gid_b, major_b, minor_b))
        except ValueError as exc:
            raise ListingError(f"bad number in the record for {path!r}") from exc
        if mode & ~0o7777 or min(mode, uid, gid, major, minor) < 0:
            raise ListingError(f"bad mode or id in the record for {path!r}")
        records.append(Record(kind, mode, uid, gid, major, minor, path_parts(path)))
    return records


class _Walker:
    """Directory descriptors opened component by component, never through a symlink; the
    last parent is kept because records come sorted (siblings together)."""

    def __init__(self, root: Path) -> None:
        self.root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.cached: tuple[tuple[bytes, ...], int] | None = None

    def parent_fd(self, parts: tuple[bytes, ...]) -> int | None:
        """The directory's fd; None if it is missing (an entry only in the manifest)."""
        if not parts:
            return self.root_fd
        if self.cached is not None and self.cached[0] == parts:
            return self.cached[1]
        fd = self.root_fd
        for i, part in enumerate(parts):
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                return None
            except OSError as exc:
                where = os.fsdecode(b"/".join(parts[: i + 1]))
                raise ListingError(
                    f"/{where} is not a directory or is a symlink ({exc}); "
                    "symlinks are never followed"
                ) from exc
            finally:
                if fd != self.root_fd:
                    os.close(fd)
            fd = child
        self._drop()
        self.cached = (parts, fd)
        return fd

    def _drop(self) -> None:
        if self.cached is not None:
            os.close(self.cached[1])
            self.cached = None

    def close(self) -> None:
        self._drop()
        os.close(self.root_fd)


def _apply_one(dir_fd: int, name: bytes, rec: Record) -> None:
    if rec.kind == "socket":
        return  # sockets exist only while something listens; an image has none
    if rec.kind in DEVICE_KINDS:
        try:
            old = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:
            if stat.S_ISDIR(old.st_mode):
                raise ListingError(f"/{rec.path}: a directory is in the way of a {rec.kind}")
            os.unlink(name, dir_fd=dir_fd)
        os.mknod(
            name,
            DEVICE_KINDS[rec.kind] | rec.mode,
            os.makedev(rec.major, rec.minor) if rec.kind != "fifo" else 0,
            dir_fd=dir_fd,
        )
        # Just made here, so not a symlink; never opened (opening a device can act on it).
        os.chown(name, rec.uid, rec.gid, dir_fd=dir_fd, follow_symlinks=False)
        os.chmod(name, rec.mode, dir_fd=dir_fd)
        return
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return  # in the manifest only (e.g. removed by a later stage)
    if rec.kind == "symlink" or stat.S_ISLNK(st.st_mode):
        if not stat.S_ISLNK(st.st_mode) or rec.kind != "symlink":
            raise ListingError(
                f"/{rec.path}: the listing says {rec.kind}, the tree has "
                f"{'a symlink' if stat.S_ISLNK(st.st_mode) else 'no symlink'}"
                "; symlinks are never followed"
            )
        os.chown(name, rec.uid, rec.gid, dir_fd=dir_fd, follow_symlinks=False)
        return
    is_dir = stat.S_ISDIR(st.st_mode)
    if (rec.kind == "dir") != is_dir or not (is_dir or stat.S_ISREG(st.st_mode)):
        raise ListingError(f"/{rec.path}: the listing says {rec.kind}, the tree disagrees")
    # Only regular files and directories get here; O_NOFOLLOW: never through a symlink.
    fd = os.open(name, _NODE_FLAGS, dir_fd=dir_fd)
    try:
        os.fchown(fd, rec.uid, rec.gid)
        os.fchmod(fd, rec.mode)
    finally:
        os.close(fd)


def apply(root: Path, listing: Path) -> None:
    records = read_records(listing.read_bytes())
    walker = _Walker(root)
    old_umask = os.umask(0)
    try:
        for rec in records:
            dir_fd = walker.parent_fd(rec.parts[:-1])
            if dir_fd is not None:
                _apply_one(dir_fd, rec.parts[-1], rec)
    finally:
        os.umask(old_umask)
        walker.close()


if __name__ == "__main__":
    try:
        apply(Path(sys.argv[1]), Path(sys.argv[2]))
    except (ListingError, OSError) as exc:
        sys.exit(f"fakeroot_apply: {exc}")
