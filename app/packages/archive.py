"""Streaming decompression of package archives that notices truncation.

Python's readers for zstd streams end quietly when a stream is cut short, and a tar stream
cut at a block boundary looks like a shorter, valid archive. Every decompressor here
therefore checks that its stream really ended (`eof`) and raises `DamagedArchive` otherwise.
Input is fed in small chunks so a "compression bomb" cannot make one call return gigabytes.
"""

from __future__ import annotations

import bz2
import contextlib
import io
import lzma
import queue
import shutil
import subprocess
import threading
import zlib
from collections.abc import Callable
from typing import Any, BinaryIO, Protocol, cast

import zstandard

CHUNK = 16 * 1024

MAGICS: list[tuple[bytes, str]] = [
    (b"\x28\xb5\x2f\xfd", "zst"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x1f\x8b", "gz"),
    (b"BZh", "bz2"),
]


MIB = 1 << 20
# Metadata is read whole into memory, so its size is capped (decompressed bytes). Real
# ones are far smaller: a control file or .PKGINFO has a few KiB, Debian's biggest
# Packages index about 100 MiB.
METADATA_LIMIT = 16 * MIB  # one control file, .PKGINFO, desc or depends
METADATA_TAR_LIMIT = 64 * MIB  # a control.tar, or the part of an Arch package searched
INDEX_LIMIT = 256 * MIB  # a Packages index or a repo database


def size_text(size: int) -> str:
    return f"{size / MIB:.0f} MiB" if size >= MIB else f"{size} bytes"


class DamagedArchive(Exception):
    """The compressed or archive data ends early or is corrupt."""


# Most output one decompress call may return: a few bytes of a "bomb" can stand for
# gigabytes, so output is asked for in bounded steps, never all at once.
MAX_OUTPUT = 1 << 20
# zstandard's decompressobj has no output limit, so zstd input goes in this small slices:
# a zstd block (at most 128 KiB out) needs at least one input byte of its own, so one call
# returns at most (ZSTD_SLICE + 1) * 128 KiB = 32 MiB, and about 8 MiB for real bombs.
ZSTD_SLICE = 256


class _Decompressor(Protocol):
    """lzma/bz2's interface: `decompress(data, max_length)` returns at most `max_length`
    bytes; `needs_input` is False while more output is ready without new input."""

    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    @property
    def needs_input(self) -> bool: ...

    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...


class _ZlibDecompressor:
    """zlib's decompressobj with lzma's interface (it keeps unconsumed input apart)."""

    def __init__(self) -> None:
        self._dec = zlib.decompressobj(wbits=31)
        self._full = False  # the last call stopped at max_length: more may be waiting

    @property
    def eof(self) -> bool:
        return self._dec.eof

    @property
    def unused_data(self) -> bytes:
        return self._dec.unused_data

    @property
    def needs_input(self) -> bool:
        return not self._dec.unconsumed_tail and not self._full

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        out = self._dec.decompress(self._dec.unconsumed_tail + data, max(max_length, 0))
        self._full = max_length > 0 and len(out) >= max_length
        return out


class _ZstdDecompressor:
    """zstandard's decompressobj with lzma's interface, its input fed in ZSTD_SLICE bytes
    at a time so that no call returns much more than max_length (see ZSTD_SLICE)."""

    def __init__(self) -> None:
        # Large windows (zstd --long, --ultra) are allowed: memory follows the frame.
        self._dec = zstandard.ZstdDecompressor(max_window_size=1 << 31).decompressobj()
        self._tail = b""

    @property
    def eof(self) -> bool:
        return self._dec.eof

    @property
    def unused_data(self) -> bytes:
        return self._dec.unused_data + self._tail

    @property
    def needs_input(self) -> bool:
        return not self._tail

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        tail = self._tail + data if data else self._tail
        parts: list[bytes] = []
        size = pos = 0
        while pos < len(tail) and not self._dec.eof and (max_length < 0 or size < max_length):
            part = self._dec.decompress(tail[pos : pos + ZSTD_SLICE])
            pos += ZSTD_SLICE
            parts.append(part)
            size += len(part)
        self._tail = tail[pos:]
        return b"".join(parts)


def _zstd() -> _Decompressor:
    return _ZstdDecompressor()


def _xz() -> _Decompressor:
    return lzma.LZMADecompressor()


def _gz() -> _Decompressor:
    return _ZlibDecompressor()


def _bz2() -> _Decompressor:
    return bz2.BZ2Decompressor()


FACTORIES: dict[str, Callable[[], _Decompressor]] = {
    "zst": _zstd,
    "xz": _xz,
    "gz": _gz,
    "bz2": _bz2,
}


def detect_compression(head: bytes) -> str:
    """'zst', 'xz', 'gz', 'bz2' or '' (uncompressed) from the first bytes of a stream."""
    for magic, name in MAGICS:
        if head.startswith(magic):
            return name
    return ""


class CountingReader(io.RawIOBase):
    """Reads at most `limit` bytes of `raw` (None: all) and counts what it delivered."""

    def __init__(
        self, raw: BinaryIO, limit: int | None = None, on_read: Callable[[int], None] | None = None
    ) -> None:
        self.raw = raw
        self.remaining = limit
        self.count = 0
        self.on_read = on_read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        view = memoryview(buffer)
        size = len(view)
        if self.remaining is not None:
            size = min(size, self.remaining)
        if size <= 0:
            return 0
        data = self.raw.read(size)
        n = len(data)
        view[:n] = data
        self.count += n
        if self.remaining is not None:
            self.remaining -= n
        if self.on_read and n:
            self.on_read(n)
        return n


class DecompressingReader(io.RawIOBase):
    """A readable stream of the decompressed bytes of `raw` in format `fmt`.

    Concatenated streams/frames are followed; end of input inside a stream raises
    DamagedArchive("truncated ...")."""

    def __init__(self, raw: BinaryIO, fmt: str, what: str = "data") -> None:
        self.raw = raw
        self.fmt = fmt
        self.what = what
        self._factory = FACTORIES[fmt]
        self._dec: _Decompressor = self._factory()
        self._pending = b""  # compressed input not yet given to the decompressor
        self._out = b""  # decompressed bytes, returned from _pos on
        self._pos = 0  # (an offset: slicing the rest off each time is quadratic)
        self._started = False  # the current stream has consumed input

    def readable(self) -> bool:
        return True

    def _more_input(self) -> bool:
        if not self._pending:
            self._pending = self.raw.read(CHUNK)
        return bool(self._pending)

    def _fill(self) -> bool:
        """Decompress more; False at a clean end of input."""
        while self._pos >= len(self._out):
            if self._dec.eof:
                # A new stream follows (or only padding is left, which xz allows).
                if not self._more_input():
                    return False
                if self.fmt == "xz" and not self._pending.strip(b"\0"):
                    self._pending = b""
                    continue
                self._dec = self._factory()
                self._started = False
            data, input_ended = b"", False
            if self._dec.needs_input:
                if not self._more_input():
                    if not self._started:
                        return False
                    input_ended = True  # one last call: output the decompressor still holds
                else:
                    data, self._pending = self._pending[:CHUNK], self._pending[CHUNK:]
            try:
                out = self._dec.decompress(data, MAX_OUTPUT)
            except (
                lzma.LZMAError,
                zlib.error,
                OSError,
                EOFError,
                ValueError,
                zstandard.ZstdError,
            ) as exc:
                raise DamagedArchive(f"corrupt {self.fmt} {self.what}: {exc}") from exc
            if input_ended and not out and not self._dec.eof:
                raise DamagedArchive(
                    f"truncated {self.fmt} {self.what}: the "
                    "compressed stream ends before its end marker"
                )
            self._started = True
            self._out, self._pos = out, 0
            if self._dec.eof:
                self._pending = self._dec.unused_data + self._pending
        return True

    def readinto(self, buffer) -> int:
        view = memoryview(buffer)
        if self._pos >= len(self._out) and not self._fill():
            return 0
        n = min(len(view), len(self._out) - self._pos)
        view[:n] = memoryview(self._out)[self._pos : self._pos + n]
        self._pos += n
        return n


class PrefetchingReader(io.RawIOBase):
    """Reads `source` in a background thread, a few blocks ahead of the consumer.

    Decompression releases the GIL, so it overlaps with whatever the consumer does with
    the data (creating and writing files). Errors in the thread are raised to the reader.
    """

    def __init__(self, source: BinaryIO, block: int = 1 << 20, depth: int = 4) -> None:
        self._source = source
        self._block = block
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._buffer = b""
        self._pos = 0  # in _buffer (an offset: slicing the rest off each time is quadratic)
        self._eof = False
        self._thread = threading.Thread(target=self._run, name="decompress", daemon=True)
        self._thread.start()

    def readable(self) -> bool:
        return True

    def _put(self, item: bytes | BaseException) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                data = self._source.read(self._block)
                self._put(data)
                if not data:
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put(exc)

    def readinto(self, buffer) -> int:
        view = memoryview(buffer)
        if self._pos >= len(self._buffer):
            if self._eof:
                return 0
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._eof = True
                raise item
            if not item:
                self._eof = True
                return 0
            self._buffer, self._pos = item, 0
        n = min(len(view), len(self._buffer) - self._pos)
        view[:n] = memoryview(self._buffer)[self._pos : self._pos + n]
        self._pos += n
        return n

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        super().close()


class XzProcessReader(io.RawIOBase):
    """xz data decompressed by the `xz` program with all cores (`-T0`).

    Debian's packages are written in independent xz blocks, which the xz program (unlike
    Python's lzma module) decodes in parallel. A thread feeds the compressed bytes in; an
    unclean exit (e.g. "Unexpected end of input") raises DamagedArchive.
    """

    def __init__(self, source: BinaryIO, xz: str, what: str) -> None:
        self._source = source
        self._what = what
        self._proc = subprocess.Popen(
            [xz, "-dc", "-T0", "-q"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._feed_error: BaseException | None = None
        self._feeder = threading.Thread(target=self._feed, name="xz-feed", daemon=True)
        self._feeder.start()

    def readable(self) -> bool:
        return True

    def _feed(self) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        try:
            while data := self._source.read(1 << 20):
                stdin.write(data)
        except BrokenPipeError:
            pass  # xz stopped early; its exit status tells why
        except BaseException as exc:  # reading the package failed: reported to the reader
            self._feed_error = exc
        finally:
            with contextlib.suppress(BrokenPipeError):
                stdin.close()

    def readinto(self, buffer) -> int:
        stdout = cast(io.BufferedReader, self._proc.stdout)
        n = stdout.readinto(buffer)
        if n:
            return n
        self._feeder.join()
        if self._feed_error is not None:
            raise self._feed_error
        stderr = (
            self._proc.stderr.read().decode(errors="replace").strip() if self._proc.stderr else ""
        )
        if self._proc.wait() != 0:
            raise DamagedArchive(f"truncated or corrupt xz {self._what}: {stderr or 'xz failed'}")
        return 0

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._feeder.join()
        for pipe in (self._proc.stdout, self._proc.stderr):
            if pipe:
                pipe.close()
        super().close()


def open_stream(
    raw: io.RawIOBase | BinaryIO, what: str = "data", *, threaded: bool = False
) -> BinaryIO:
    """A buffered stream of the (decompressed, if compressed) contents of `raw`;
    `threaded` decompresses ahead, beside the reader (for big extractions): xz with the
    xz program on all cores when it is installed, the rest in a background thread."""
    peekable: Any = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)
    fmt = detect_compression(peekable.peek(8)[:8])
    if not fmt:
        return cast(BinaryIO, peekable)
    xz = shutil.which("xz") if threaded and fmt == "xz" else None
    if xz:
        return cast(
            BinaryIO, io.BufferedReader(XzProcessReader(peekable, xz, what), buffer_size=1 << 20)
        )
    stream: Any = io.BufferedReader(DecompressingReader(peekable, fmt, what), buffer_size=1 << 20)
    if threaded:
        stream = io.BufferedReader(PrefetchingReader(stream), buffer_size=1 << 20)
    return cast(BinaryIO, stream)
