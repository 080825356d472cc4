"""File objects between pycdlib and the disk: the image being written, the files read.

pycdlib writes through any object with write/seek/tell and reads file data through
any object with seek/read; these two keep system calls and open descriptors down.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from pycdlib.pycdlibexception import PyCdlibException

from app.errors import InputError, StageError

# What a path that is not an image turns out to be, for the message.
_NOT_AN_IMAGE = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
}


def open_image(path: Path, noun: str = "an ISO image") -> int:
    """A read-only descriptor of `path`, which must be a regular file or a block device.

    Opened with O_NONBLOCK, so a FIFO cannot block us waiting for a writer, and checked
    with fstat before anything is read: /dev/zero would never end, /dev/null reads as
    empty, a FIFO would hang. `noun` names what was expected, for the message.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError as exc:
        raise InputError("does not exist", where=str(path)) from exc
    except PermissionError as exc:
        raise InputError(
            "cannot be read: permission denied",
            where=str(path),
            hint="check the file's permissions or run as a user that may read it",
        ) from exc
    except OSError as exc:
        raise InputError(f"cannot be read: {exc.strerror or exc}", where=str(path)) from exc
    try:
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISBLK(mode)):
            what = _NOT_AN_IMAGE.get(stat.S_IFMT(mode), "an unknown kind of file")
            raise InputError(f"is {what}, not {noun}", where=str(path))
        # Regular files and block devices never block; clear the flag for plain reads.
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException as exc:
        os.close(fd)
        if isinstance(exc, OSError):
            raise InputError(f"cannot be read: {exc.strerror or exc}", where=str(path)) from exc
        raise
    return fd


class ImageWriter:
    """The output file object handed to pycdlib: few system calls, sparse zeros.

    pycdlib seeks before every record and every file and pads files with a seek plus
    one byte; on a buffered file each of those is a flush and an lseek. Here contiguous
    writes collect in one buffer that goes out with a single pwrite, and large all-zero
    blocks are skipped, so sparse input (an empty disk image) stays sparse in the ISO.
    Both shortcuts (zeros for a small gap, a hole for zeros) apply only beyond the end
    of everything written so far, where the file reads as zeros anyway: pycdlib also
    jumps back and forth between the path tables and the directories.
    """

    mode = "wb"
    _RUN_LIMIT = 4 * 1024 * 1024
    _GAP_FILL = 64 * 1024
    _DIRECT_MIN = 64 * 1024  # larger writes bypass the buffer; all-zero ones become holes

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._run = bytearray()
        self._run_start = 0
        self._pos = 0
        self._end = 0  # end of everything flushed so far

    @staticmethod
    @lru_cache(maxsize=8)
    def _zeros(size: int) -> bytes:
        return bytes(size)

    def _pwrite(self, data: bytes | bytearray, offset: int) -> int:
        with memoryview(data) as whole:
            view = whole
            while view:
                written = os.pwrite(self._fd, view, offset)
                view, offset = view[written:], offset + written
        self._end = max(self._end, offset)
        return offset

    def _flush(self) -> None:
        if self._run:
            self._run_start = self._pwrite(self._run, self._run_start)
            self._run.clear()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_CUR:
            offset += self._pos
        elif whence == os.SEEK_END:
            offset += max(self._end, self._run_start + len(self._run))
        self._pos = offset
        return offset

    def tell(self) -> int:
        return self._pos

    def write(self, data: bytes) -> int:
        size = len(data)
        run_end = self._run_start + len(self._run)
        if self._pos != run_end:
            gap = self._pos - run_end
            if self._run and 0 < gap <= self._GAP_FILL and run_end >= self._end:
                self._run += self._zeros(gap)
            else:
                self._flush()
                self._run_start = self._pos
        if size < self._DIRECT_MIN:
            self._run += data
            self._pos += size
            if len(self._run) >= self._RUN_LIMIT:
                self._flush()
            return size
        # File data in large blocks: straight to the file (or a hole), not via the buffer.
        self._flush()
        if not (self._pos >= self._end and data == self._zeros(size)):
            self._pwrite(data, self._pos)
        self._pos += size
        self._run_start = self._pos
        return size

    def finish(self) -> int:
        """Write what is left; the file gets its full length even if it ends in a hole."""
        self._flush()
        end = max(self._end, self._pos)
        if os.fstat(self._fd).st_size < end:
            os.ftruncate(self._fd, end)
        return end


class LazySourceFile:
    """A source file for pycdlib's add_fp, opened only while pycdlib reads it.

    add_file would stat every file again and open it through a buffered reader;
    add_fp with an open file would hold one descriptor per file until the end.
    """

    mode = "rb"
    __slots__ = ("_path", "_size", "_fd", "_left")

    def __init__(self, path: str, size: int) -> None:
        self._path = path
        self._size = size
        self._fd = -1
        self._left = 0

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        fresh = self._fd < 0
        if fresh:
            self._fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
        # a file opened just now is at 0; one read before (an hd emulation image's MBR,
        # read when the boot entry is added) is sought back
        position = os.lseek(self._fd, offset, whence) if offset or whence or not fresh else 0
        self._left = self._size - position
        return position

    def read(self, size: int = -1) -> bytes:
        if self._fd < 0:
            self.seek(0)
        want = self._left if size < 0 else min(size, self._left)
        data = os.read(self._fd, want) if want > 0 else b""
        self._left -= len(data)
        if len(data) < want:
            # pycdlib would silently leave the rest of the file as zeros.
            self.close()
            raise StageError(
                "the file became shorter while it was being mastered",
                stage="mastering",
                where=self._path,
            )
        if self._left <= 0:
            self.close()
        return data

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    __del__ = close


@contextlib.contextmanager
def image_errors(output: Path, *, stage: str, verb: str) -> Iterator[None]:
    """pycdlib's errors and I/O errors while writing `output`, as a StageError of `stage`
    ("pycdlib could not {verb} the image: …")."""
    try:
        yield
    except PyCdlibException as exc:
        raise StageError(
            f"pycdlib could not {verb} the image: {exc}", stage=stage, where=str(output)
        ) from exc
    except OSError as exc:
        raise StageError(
            f"could not write the image: {exc.strerror or exc}",
            stage=stage,
            where=str(exc.filename or output),
        ) from exc
