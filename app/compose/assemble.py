"""Stage 3, assemble root: extract packages into a staging root, safely and without root.

Safety: member paths are never trusted. Absolute paths and `..` components are refused.
Every directory is opened component by component with O_NOFOLLOW relative to the root's
file descriptor, and files are created with O_EXCL|O_NOFOLLOW, so the kernel itself
refuses to follow a symlink while extracting: nothing can be written outside `root`, not
even through a symlink a package planted (`etc -> /etc`, `x -> ../../..`). Symlinks are
created as they are (absolute ones too: `/bin/sh -> /bin/busybox` is normal in a root
filesystem); they are simply never followed. A member whose parent is a symlink is refused.

Rootless: the staging tree holds contents only, owned by the building user with plain
permissions (0644/0755 and no setuid); the returned RootManifest holds the truth from the
packages: owner, group, full mode incl. setuid/setgid/sticky, device numbers. Device nodes
and FIFOs exist only in the manifest. Hard links become Kind.HARDLINK entries and real
hard links (or copies) on disk.

Two packages owning one path (other than a directory, or an identical symlink) is a file
conflict; all of them are collected into one ValidationError. Debian's `Replaces:` lets a
package take over another's files, as dpkg allows. On any failure or cancel the staging
root is emptied again.
"""

from __future__ import annotations

import contextlib
import errno
import io
import lzma
import os
import shutil
import stat
import tarfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import zstandard

from app.compose.manifest import FileMeta, Kind, RootManifest
from app.display import control_character
from app.errors import InputError, Problem, StageError, ValidationError
from app.packages.arch import METADATA_MEMBERS
from app.packages.archive import CountingReader, DamagedArchive, open_stream
from app.packages.deb import open_member_tar
from app.packages.model import PackageInfo, SourceKind
from app.reporter import Level, Reporter, check_cancelled

BLOCK = 1 << 20
MAX_OPEN_DIRS = 256
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_DAMAGE = (
    DamagedArchive,
    tarfile.TarError,
    EOFError,
    zstandard.ZstdError,
    lzma.LZMAError,
    zlib.error,
)


class _Conflict(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def disk_mode(kind: Kind, mode: int) -> int:
    """Permissions of the staged copy: the owner can always read/write (and enter dirs);
    no setuid/setgid/sticky and no group/other write on the build host."""
    if kind is Kind.DIR:
        return (mode & 0o755) | 0o700
    return (mode & 0o755) | 0o600


def refuse_control(package: str, member: str, value: str, what: str) -> None:
    """InputError naming the package and member if `value` holds a control character."""
    ch = control_character(value)
    if ch is not None:
        raise InputError(
            f"package {package}: member {member!r} has the control character "
            f"{ch!r} in its {what}; refusing to extract it"
        )


def member_path(package: str, name: str, what: str = "member") -> str:
    """Root-relative form of a member name; InputError for absolute paths and `..`.
    (Control characters: `refuse_control`, which `_member` runs first on names and link
    targets.)"""
    if name.startswith("/"):
        raise InputError(
            f"package {package} has a {what} with an absolute path: {name!r}; "
            "refusing to extract it"
        )
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InputError(
            f"package {package} has a {what} whose path leaves the root "
            f"('..'): {name!r}; refusing to extract it"
        )
    return "/".join(parts)


@contextlib.contextmanager
def open_package_tar(
    pkg: PackageInfo, path: Path, on_read: Callable[[int], None] | None = None
) -> Iterator[tarfile.TarFile]:
    """The file tree of a package as a streaming tar reader (data.tar for Debian),
    decompressed ahead in a background thread."""
    if pkg.kind in (SourceKind.DEB, SourceKind.APT):
        with open_member_tar(path, "data.tar", on_read, threaded=True) as tar:
            yield tar
        return
    with open(path, "rb") as raw:
        counted = CountingReader(raw, None, on_read)
        with open_stream(counted, path.name, threaded=True) as stream:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                yield tar


@contextlib.contextmanager
def _tar_of(
    pkg: PackageInfo, path: Path, stream: BinaryIO | None, on_read: Callable[[int], None]
) -> Iterator[tarfile.TarFile]:
    if stream is None:
        with open_package_tar(pkg, path, on_read) as tar:
            yield tar
        return
    counted = io.BufferedReader(CountingReader(stream, None, on_read), buffer_size=BLOCK)
    with tarfile.open(fileobj=counted, mode="r|") as tar:
        yield tar


class _Extractor:
    def __init__(self, root: Path, manifest: RootManifest, reporter: Reporter, total: int) -> None:
        self.root = root
        self.manifest = manifest
        self.reporter = reporter
        self.total = max(total, 1)
        self.read = 0
        self.root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.dir_fds: dict[str, int] = {}
        self.implicit: set[str] = set()  # directories made for a member's parents
        self.problems: list[Problem] = []
        self.current: set[str] = set()  # paths written by the package being extracted
        self.skipped: set[str] = set()  # its paths skipped because of a conflict
        self.pkg: PackageInfo | None = None
        self.path = Path()

    # -- bookkeeping --------------------------------------------------------------------
    def close(self) -> None:
        self._close_dirs()
        os.close(self.root_fd)

    def _close_dirs(self) -> None:
        for fd in self.dir_fds.values():
            os.close(fd)
        self.dir_fds.clear()

    def _on_read(self, n: int) -> None:
        # Called from the decompression thread: only count; the main thread reports.
        self.read += n

    def _report(self) -> None:
        self.reporter.progress(min(self.read, self.total), self.total)

    @property
    def name(self) -> str:
        assert self.pkg is not None
        return self.pkg.name

    def _through_symlink(self, member: str, link: str, target: str, owner: str) -> InputError:
        return InputError(
            f"package {self.name}: member {member!r} would be written through the symlink "
            f"/{link} -> {target} (from package {owner}); symlinks are never followed "
            "while extracting",
            where=str(self.path),
        )

    def _bad_member(self, member: tarfile.TarInfo, reason: str) -> InputError:
        return InputError(
            f"package {self.name}: member {member.name!r} cannot be extracted ({reason})",
            where=str(self.path),
        )

    # -- safe directory walking ---------------------------------------------------------
    def _dir_fd(self, rel: str, member: str) -> int:
        """An O_NOFOLLOW-opened fd of directory `rel`, creating missing directories."""
        if rel == "":
            return self.root_fd
        if rel in self.dir_fds:
            return self.dir_fds[rel]
        parent, _, base = rel.rpartition("/")
        parent_fd = self._dir_fd(parent, member)
        meta = self.manifest.get(rel)
        if meta is not None and meta.kind is Kind.SYMLINK:
            raise self._through_symlink(member, rel, meta.target, meta.owner)
        if meta is not None and meta.kind is not Kind.DIR:
            raise _Conflict(
                Problem(
                    f"/{rel}",
                    f"file conflict: package {self.name} needs a "
                    f"directory here, package {meta.owner} has a "
                    f"{meta.kind.value} (member {member!r})",
                )
            )
        try:
            fd = os.open(base, _DIR_FLAGS, dir_fd=parent_fd)
        except FileNotFoundError:
            os.mkdir(base, 0o755, dir_fd=parent_fd)
            self.manifest.add(FileMeta(rel, Kind.DIR, 0o755, owner=self.name))
            self.implicit.add(rel)
            fd = os.open(base, _DIR_FLAGS, dir_fd=parent_fd)
        except OSError as exc:
            # Not in the manifest but not a plain directory on disk: never follow it.
            st = os.stat(base, dir_fd=parent_fd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(base, dir_fd=parent_fd)
                raise self._through_symlink(member, rel, target, "?") from exc
            raise InputError(
                f"package {self.name}: /{rel} is not a directory", where=str(self.path)
            ) from exc
        self.dir_fds[rel] = fd
        return fd

    # -- claiming paths -----------------------------------------------------------------
    def _claim(self, rel: str, kind: Kind, target: str, parent_fd: int, base: str) -> bool:
        """True if the member may be written at `rel` (anything in the way was removed),
        False if the path is already right (shared directory, identical symlink) or the
        member is skipped because of a recorded conflict."""
        existing = self.manifest.get(rel)
        if existing is None:
            return True
        if existing.kind is Kind.DIR and kind is Kind.DIR:
            if rel in self.implicit:
                self.implicit.discard(rel)
                return True  # the package's own entry replaces the implied one's metadata
            return rel in self.current  # a repeated entry in one package updates it
        if existing.kind is Kind.SYMLINK and kind is Kind.SYMLINK and existing.target == target:
            return False
        same_package = rel in self.current
        replaces = self.pkg is not None and existing.owner in self.pkg.replaces
        if (same_package or replaces) and Kind.DIR not in (existing.kind, kind):
            if replaces and not same_package:
                self.reporter.log(
                    Level.INFO,
                    f"/{rel}: package {self.name} replaces package {existing.owner}'s file",
                )
            if existing.kind not in (Kind.CHAR, Kind.BLOCK, Kind.FIFO, Kind.SOCKET):
                os.unlink(base, dir_fd=parent_fd)
            self.manifest.remove(rel)
            return True
        self.problems.append(
            Problem(
                f"/{rel}",
                f"file conflict: packages {existing.owner} ({existing.kind.value}) and "
                f"{self.name} ({kind.value}) both own this path",
            )
        )
        self.skipped.add(rel)
        return False

    # -- members ------------------------------------------------------------------------
    def extract(self, pkg: PackageInfo, path: Path, stream: BinaryIO | None = None) -> None:
        """Extract the package at `path`, or the plain tar `stream` (`path` then only names
        it in messages)."""
        self.pkg, self.path = pkg, path
        self.current = set()
        self.skipped = set()
        count = 0
        done_before = self.read
        try:
            with _tar_of(pkg, path, stream, self._on_read) as tar:
                for member in tar:
                    # A stream's reader keeps every member it read (tarfile's `members`):
                    # ~600 bytes each, 100 MB for a desktop root. Nothing here looks back.
                    tar.members.clear()  # type: ignore[attr-defined]
                    count += 1
                    if count % 100 == 0:
                        check_cancelled(self.reporter)
                        self._report()
                    try:
                        self._member(tar, member)
                    except _Conflict as conflict:
                        self.problems.append(conflict.problem)
                    except _DAMAGE:
                        raise
                    except OSError as exc:
                        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                            raise  # the build folder's fault, not the package's
                        raise self._bad_member(member, exc.strerror or str(exc)) from exc
                    except (OverflowError, ValueError) as exc:
                        # e.g. a PAX mtime of 1e20, or a NUL in a PAX name
                        raise self._bad_member(member, f"invalid value: {exc}") from exc
        except _DAMAGE as exc:
            raise InputError(f"package {pkg.name} is damaged ({exc})", where=str(path)) from exc
        finally:
            self._close_dirs()
        if stream is None:
            self.read = done_before + path.stat().st_size  # also counts ar headers and padding
        self._report()
        self.reporter.log(Level.INFO, f"installed {pkg.label} ({count} entries)")

    def _member(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        refuse_control(self.name, member.name, member.name, "name")
        if member.issym() or member.islnk():
            refuse_control(self.name, member.name, member.linkname, "link target")
        rel = member_path(self.name, member.name)
        if not rel:
            return  # the root directory itself
        if self.pkg is not None and self.pkg.kind is SourceKind.ARCH and rel in METADATA_MEMBERS:
            return
        kind = _kind(member)
        if kind is None:
            raise InputError(
                f"package {self.name}: member {member.name!r} has an unsupported "
                f"type {member.type!r}",
                where=str(self.path),
            )
        if len(self.dir_fds) >= MAX_OPEN_DIRS:
            # Only between members: fds handed out for this member must stay open.
            self._close_dirs()
        parent, _, base = rel.rpartition("/")
        parent_fd = self._dir_fd(parent, member.name)
        meta = FileMeta(
            rel,
            kind,
            member.mode & 0o7777,
            member.uid,
            member.gid,
            target=member.linkname if kind is Kind.SYMLINK else "",
            rdev_major=member.devmajor if kind in (Kind.CHAR, Kind.BLOCK) else 0,
            rdev_minor=member.devminor if kind in (Kind.CHAR, Kind.BLOCK) else 0,
            mtime=int(member.mtime),
            owner=self.name,
        )
        if kind is Kind.HARDLINK:
            meta = self._hardlink_meta(member, meta)
        if not self._claim(rel, kind, meta.target, parent_fd, base):
            return
        if kind is Kind.DIR:
            try:
                os.mkdir(base, disk_mode(kind, meta.mode), dir_fd=parent_fd)
            except FileExistsError:  # made earlier as a parent: only the mode changes
                fd = os.open(base, _DIR_FLAGS, dir_fd=parent_fd)
                try:
                    os.fchmod(fd, disk_mode(kind, meta.mode))
                finally:
                    os.close(fd)
        elif kind is Kind.FILE:
            self._write_file(tar, member, parent_fd, base, meta)
        elif kind is Kind.SYMLINK:
            os.symlink(member.linkname, base, dir_fd=parent_fd)
        elif kind is Kind.HARDLINK:
            self._write_hardlink(member, parent_fd, base, meta)
        self.manifest.add(meta)
        self.current.add(rel)

    def _write_file(
        self,
        tar: tarfile.TarFile,
        member: tarfile.TarInfo,
        parent_fd: int,
        base: str,
        meta: FileMeta,
    ) -> None:
        mode = disk_mode(Kind.FILE, meta.mode)
        fd = os.open(base, _NEW_FILE_FLAGS, mode, dir_fd=parent_fd)
        with os.fdopen(fd, "wb") as out:
            data = tar.extractfile(member)
            if data is not None:
                shutil.copyfileobj(data, out, BLOCK)
            out.flush()
            os.fchmod(fd, mode)
            os.utime(fd, (meta.mtime, meta.mtime))

    def _hardlink_meta(self, member: tarfile.TarInfo, meta: FileMeta) -> FileMeta:
        target = member_path(self.name, member.linkname, "hard link target")
        if target in self.skipped:
            raise _Conflict(
                Problem(
                    f"/{meta.path}",
                    f"file conflict: package {self.name}'s "
                    f"hard link to /{target}, which is in conflict itself",
                )
            )
        first = self.manifest.get(target)
        if first is not None and first.kind is Kind.HARDLINK:
            target, first = first.target, self.manifest.get(first.target)
        if target == meta.path:
            raise InputError(
                f"package {self.name}: hard link {member.name!r} points to itself",
                where=str(self.path),
            )
        if first is None or first.kind is not Kind.FILE or target not in self.current:
            raise InputError(
                f"package {self.name}: hard link {member.name!r} points to "
                f"{member.linkname!r}, which is not a file of this package",
                where=str(self.path),
            )
        # One inode: owner and mode are those of the first path.
        return FileMeta(
            meta.path,
            Kind.HARDLINK,
            first.mode,
            first.uid,
            first.gid,
            target=target,
            mtime=first.mtime,
            owner=self.name,
        )

    def _write_hardlink(
        self, member: tarfile.TarInfo, parent_fd: int, base: str, meta: FileMeta
    ) -> None:
        src_parent, _, src_base = meta.target.rpartition("/")
        src_fd = self._dir_fd(src_parent, member.name)
        try:
            os.link(src_base, base, src_dir_fd=src_fd, dst_dir_fd=parent_fd, follow_symlinks=False)
            return
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EMLINK, errno.EXDEV, errno.EACCES):
                raise
        fd = os.open(src_base, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_fd)
        with os.fdopen(fd, "rb") as src:
            out_fd = os.open(
                base, _NEW_FILE_FLAGS, disk_mode(Kind.FILE, meta.mode), dir_fd=parent_fd
            )
            with os.fdopen(out_fd, "wb") as out:
                shutil.copyfileobj(src, out, BLOCK)


def _kind(member: tarfile.TarInfo) -> Kind | None:
    if member.isreg():
        return Kind.FILE
    if member.isdir():
        return Kind.DIR
    if member.issym():
        return Kind.SYMLINK
    if member.islnk():
        return Kind.HARDLINK
    if member.ischr():
        return Kind.CHAR
    if member.isblk():
        return Kind.BLOCK
    if member.isfifo():
        return Kind.FIFO
    return None


def _prepare(root: Path) -> bool:
    """Make sure `root` is an empty directory; True if we created it."""
    if root.is_symlink() or (root.exists() and not root.is_dir()):
        raise InputError("the staging root is not a directory", where=str(root))
    if root.exists():
        if any(root.iterdir()):
            raise InputError("the staging root must be empty", where=str(root))
        return False
    root.mkdir(parents=True)
    return True


def _clear(root: Path, created: bool) -> None:
    if created:
        shutil.rmtree(root, ignore_errors=True)
        return
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def assemble_root(
    packages: Sequence[tuple[PackageInfo, Path]], root: Path, reporter: Reporter
) -> RootManifest:
    """Extract `packages` in order into the empty (or new) directory `root`."""
    total = sum(path.stat().st_size for _, path in packages)
    return _assemble(root, reporter, total, [(pkg, path, None) for pkg, path in packages])


def assemble_root_stream(
    pkg: PackageInfo, stream: BinaryIO, root: Path, reporter: Reporter, *, expected: int = 0
) -> RootManifest:
    """Extract the plain tar read from `stream` (e.g. a tool's output, never written to
    disk) as the one package `pkg` into the empty (or new) directory `root`, with the same
    checks as a package file; `expected` is about how many bytes it has, for progress."""
    where = pkg.file or Path(pkg.name)
    return _assemble(root, reporter, expected, [(pkg, where, stream)])


def _assemble(
    root: Path,
    reporter: Reporter,
    total: int,
    packages: Sequence[tuple[PackageInfo, Path, BinaryIO | None]],
) -> RootManifest:
    reporter.step("assemble root")
    created = _prepare(root)
    manifest = RootManifest()
    extractor = _Extractor(root, manifest, reporter, total)
    try:
        for pkg, path, stream in packages:
            check_cancelled(reporter)
            extractor.extract(pkg, path, stream)
        if extractor.problems:
            raise ValidationError(extractor.problems)
    except OSError as exc:
        extractor.close()
        _clear(root, created)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StageError(
                "no space left for the staging root while extracting packages",
                stage="assemble root",
                where=str(root),
                hint="free space or choose a build folder on a larger disk",
            ) from exc
        raise
    except BaseException:
        extractor.close()
        _clear(root, created)
        raise
    extractor.close()
    return manifest
