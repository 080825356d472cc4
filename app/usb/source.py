"""Opening a disk image to write: a plain file, or .xz/.zst/.gz decompressed on the fly.

The format is recognised by its magic bytes, not by its name. Where the container records
the decompressed size we read it without decompressing (.zst frame headers, the .xz index),
so progress is in image bytes and a too-small device is refused before anything is written.
A .gz file only records the size modulo 2^32 (ISIZE) in its last member, which is a lower
bound of the real size but not the size itself: progress then counts compressed bytes read,
which is honest (see `ImageReader.consumed`).
"""

from __future__ import annotations

import enum
import gzip
import io
import lzma
import os
import stat
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import zstandard

from app.errors import InputError

XZ_MAGIC = b"\xfd7zXZ\x00"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# The magic and the one compression method gzip has (deflate): two bytes alone turn up in
# 1 of 65,536 raw images by chance.
GZIP_MAGIC = b"\x1f\x8b\x08"
BZIP2_MAGIC = b"BZh"
ZIP_MAGIC = b"PK\x03\x04"

# How much compressed input a decompressor reads at a time.
COMPRESSED_CHUNK = 1 << 20


class Compression(enum.Enum):
    NONE = "none"
    GZIP = "gzip"
    XZ = "xz"
    ZSTD = "zstd"


@dataclass(frozen=True)
class ImageSource:
    """An image file and what we know about its (decompressed) contents."""

    path: Path
    compression: Compression
    file_size: int
    # Exact decompressed size, or None when the container does not record it.
    size: int | None
    # A size the image certainly reaches (equal to `size` when that is known).
    size_at_least: int

    @property
    def compressed(self) -> bool:
        return self.compression is not Compression.NONE

    def open(self) -> ImageReader:
        return ImageReader(self)

    def describe(self) -> str:
        if not self.compressed:
            return f"{self.path} ({self.file_size} bytes)"
        size = f"{self.size} bytes" if self.size is not None else "size not recorded"
        return f"{self.path} ({self.compression.value}, {size} when decompressed)"


class _Decompressed(Protocol):
    def readinto(self, buf: memoryview, /) -> int | None: ...

    def close(self) -> None: ...


class ImageReader:
    """Reads the decompressed image into caller buffers; counts compressed bytes consumed."""

    def __init__(self, source: ImageSource) -> None:
        self.source = source
        try:
            self._raw: io.FileIO = open_regular(source.path)
        except OSError as exc:
            raise InputError(
                f"cannot open the image: {exc.strerror}", where=str(source.path)
            ) from exc
        try:
            os.posix_fadvise(self._raw.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        except OSError:
            pass
        self._stream: _Decompressed
        if source.compression is Compression.NONE:
            self._stream = self._raw
        elif source.compression is Compression.XZ:
            self._stream = XzStreamReader(self._raw)
        elif source.compression is Compression.GZIP:
            self._stream = gzip.GzipFile(fileobj=self._buffered_raw(), mode="rb")
        else:
            self._stream = zstandard.ZstdDecompressor().stream_reader(
                self._raw, read_size=COMPRESSED_CHUNK, read_across_frames=True, closefd=False
            )
        self.position = 0  # decompressed bytes handed out so far

    def _buffered_raw(self) -> io.BufferedReader:
        # The decompressors read small pieces; a large buffer keeps the syscalls few.
        return io.BufferedReader(self._raw, buffer_size=COMPRESSED_CHUNK)

    @property
    def consumed(self) -> int:
        """Bytes of the image *file* read so far (compressed bytes for compressed images)."""
        try:
            return os.lseek(self._raw.fileno(), 0, os.SEEK_CUR)
        except (OSError, ValueError):
            return 0

    def readinto(self, buf: memoryview) -> int:
        """Fill `buf` as far as the image goes; fewer bytes only at the end of the image."""
        filled = 0
        total = len(buf)
        while filled < total:
            try:
                n = self._stream.readinto(buf[filled:])
            except (
                lzma.LZMAError,
                zlib.error,
                EOFError,
                gzip.BadGzipFile,
                zstandard.ZstdError,
            ) as exc:
                raise InputError(
                    f"the {self.source.compression.value} data is damaged after "
                    f"{self.position + filled} bytes of image ({exc})",
                    where=str(self.source.path),
                    hint="download the image again",
                ) from exc
            except OSError as exc:
                raise InputError(
                    f"cannot read the image at byte {self.position + filled}: {exc.strerror}",
                    where=str(self.source.path),
                ) from exc
            if not n:
                break
            filled += n
        self.position += filled
        return filled

    def close(self) -> None:
        try:
            if self._stream is not self._raw:
                self._stream.close()
        finally:
            self._raw.close()

    def __enter__(self) -> ImageReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class XzStreamReader:
    """Decompresses concatenated .xz streams, skipping the zero padding allowed between them.

    (lzma.LZMAFile stops at stream padding and drops every later stream.)
    """

    def __init__(self, raw: io.FileIO) -> None:
        self._raw = raw
        self._dec = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)

    def readinto(self, buf: memoryview) -> int:
        while True:
            if self._dec.eof:
                rest = self._dec.unused_data.lstrip(b"\0")
                while not rest:
                    chunk = self._raw.read(COMPRESSED_CHUNK)
                    if not chunk:
                        return 0
                    rest = chunk.lstrip(b"\0")
                self._dec = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
                data = rest
            elif self._dec.needs_input:
                data = self._raw.read(COMPRESSED_CHUNK)
                if not data:
                    raise EOFError("the xz data ends early")
            else:
                data = b""
            out = self._dec.decompress(data, len(buf))
            if out:
                buf[: len(out)] = out
                return len(out)

    def close(self) -> None:
        pass


def detect_compression(head: bytes) -> Compression:
    if head.startswith(XZ_MAGIC):
        return Compression.XZ
    if head.startswith(ZSTD_MAGIC):
        return Compression.ZSTD
    if head.startswith(GZIP_MAGIC):
        return Compression.GZIP
    return Compression.NONE


def open_image(path: str | os.PathLike[str]) -> ImageSource:
    """Inspect `path` and describe it; raises InputError for a missing or unusable file."""
    path = Path(path)
    try:
        with open_regular(path) as fh:
            st = os.fstat(fh.fileno())
            head = fh.read(8)
            if head.startswith((BZIP2_MAGIC, ZIP_MAGIC)):
                kind = "bzip2" if head.startswith(BZIP2_MAGIC) else "zip"
                raise InputError(
                    f"{kind} images cannot be written directly",
                    where=str(path),
                    hint="decompress it first, or use .xz/.zst/.gz",
                )
            compression = detect_compression(head)
            file_size = st.st_size
            if file_size == 0:
                raise InputError("the image is empty", where=str(path))
            size: int | None
            at_least: int
            try:
                if compression is Compression.NONE:
                    size = at_least = file_size
                elif compression is Compression.XZ:
                    size = xz_uncompressed_size(fh, file_size)
                    at_least = size
                elif compression is Compression.ZSTD:
                    size = zstd_content_size(fh, file_size)
                    at_least = size or 0
                else:
                    size = None
                    at_least = gzip_size_at_least(fh, file_size)
            except (ValueError, struct.error) as exc:
                raise InputError(
                    f"the {compression.value} container is damaged ({exc})",
                    where=str(path),
                    hint="download the image again",
                ) from exc
    except FileNotFoundError as exc:
        raise InputError("the image does not exist", where=str(path)) from exc
    except IsADirectoryError as exc:
        raise InputError("the image is a directory, not a file", where=str(path)) from exc
    except PermissionError as exc:
        raise InputError("no permission to read the image", where=str(path)) from exc
    return ImageSource(
        path=path, compression=compression, file_size=file_size, size=size, size_at_least=at_least
    )


def _is_regular(mode: int) -> bool:
    return stat.S_ISREG(mode)


def open_regular(path: str | os.PathLike[str]) -> io.FileIO:
    """`path` opened for reading, unbuffered, if it is a regular file; InputError otherwise.

    Opened without blocking first: opening a FIFO for reading would wait for a writer
    forever.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(21, "Is a directory", str(path))
        if not _is_regular(mode):
            raise InputError("the image is not a regular file", where=str(path))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return io.FileIO(fd, "rb", closefd=True)


# --- .xz: sizes from the index at the end of each stream -------------------------------------


def _read_at(fh: BinaryIO, offset: int, length: int) -> bytes:
    fh.seek(offset)
    data = fh.read(length)
    if len(data) != length:
        raise ValueError(f"truncated at byte {offset}")
    return data


def _multibyte_int(data: bytes, pos: int) -> tuple[int, int]:
    """xz variable-length integer at `pos`: (value, next position)."""
    value = 0
    for i in range(9):
        if pos >= len(data):
            raise ValueError("truncated index")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos
    raise ValueError("bad integer in index")


def xz_uncompressed_size(fh: BinaryIO, file_size: int) -> int:
    """Sum of the uncompressed sizes in every stream's index, walking from the end."""
    total = 0
    pos = file_size
    while pos > 0:
        # Stream padding: zero bytes in multiples of four between and after streams.
        while pos >= 4 and _read_at(fh, pos - 4, 4) == b"\0\0\0\0":
            pos -= 4
        if pos < 24:
            raise ValueError("no stream footer")
        footer = _read_at(fh, pos - 12, 12)
        if footer[10:12] != b"YZ":
            raise ValueError("no stream footer")
        if zlib.crc32(footer[4:10]) != struct.unpack("<I", footer[0:4])[0]:
            raise ValueError("stream footer checksum wrong")
        backward_size = (struct.unpack("<I", footer[4:8])[0] + 1) * 4
        index_start = pos - 12 - backward_size
        if index_start < 12:
            raise ValueError("index out of range")
        index = _read_at(fh, index_start, backward_size)
        if index[0] != 0 or zlib.crc32(index[:-4]) != struct.unpack("<I", index[-4:])[0]:
            raise ValueError("index damaged")
        count, p = _multibyte_int(index, 1)
        blocks = 0
        for _ in range(count):
            unpadded, p = _multibyte_int(index, p)
            uncompressed, p = _multibyte_int(index, p)
            blocks += (unpadded + 3) & ~3
            total += uncompressed
        pos = index_start - blocks - 12
        if pos < 0 or _read_at(fh, pos, 6) != XZ_MAGIC:
            raise ValueError("stream header not where the index says")
    return total


# --- .zst: content sizes from every frame header ---------------------------------------------

ZSTD_SKIPPABLE_MASK = 0xFFFFFFF0
ZSTD_SKIPPABLE_MAGIC = 0x184D2A50
ZSTD_FRAME_MAGIC = 0xFD2FB528


def zstd_content_size(fh: BinaryIO, file_size: int) -> int | None:
    """Sum of the frames' content sizes, or None if any frame does not record its size.

    Frames are walked by their block headers (3 bytes each, no decompression), so a
    multi-frame file (pzstd, zstd --long with -B) is sized correctly too.
    """
    total = 0
    pos = 0
    while pos < file_size:
        magic = struct.unpack("<I", _read_at(fh, pos, 4))[0]
        if magic & ZSTD_SKIPPABLE_MASK == ZSTD_SKIPPABLE_MAGIC:
            length = struct.unpack("<I", _read_at(fh, pos + 4, 4))[0]
            pos += 8 + length
            continue
        if magic != ZSTD_FRAME_MAGIC:
            raise ValueError(f"no zstd frame at byte {pos}")
        header = _read_at(fh, pos, min(18, file_size - pos))
        params = zstandard.get_frame_parameters(header)
        if params.content_size in (zstandard.CONTENTSIZE_UNKNOWN, zstandard.CONTENTSIZE_ERROR):
            return None
        total += params.content_size
        pos += zstandard.frame_header_size(header)
        while True:
            raw = _read_at(fh, pos, 3)
            block = raw[0] | raw[1] << 8 | raw[2] << 16
            last, kind, size = block & 1, (block >> 1) & 3, block >> 3
            if kind == 3:
                raise ValueError(f"reserved block type at byte {pos}")
            pos += 3 + (1 if kind == 1 else size)
            if last:
                break
        if params.has_checksum:
            pos += 4
    if pos != file_size:
        raise ValueError("truncated frame")
    return total


# --- .gz: ISIZE is the last member's size mod 2^32 -------------------------------------------


def gzip_size_at_least(fh: BinaryIO, file_size: int) -> int:
    """A lower bound of the decompressed size: the last member's ISIZE.

    The true size of the last member is ISIZE + k * 2^32 for some k >= 0, and the whole
    image is at least that member, so ISIZE can never overstate the size.
    """
    if file_size < 18:
        raise ValueError("too short for gzip")
    return int(struct.unpack("<I", _read_at(fh, file_size - 4, 4))[0])
