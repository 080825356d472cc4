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


class DamagedArchive(Exception):
    """The compressed or archive data ends early or is corrupt."""


class _Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes) -> bytes: ...


def _zstd() -> _Decompressor:
    # Large windows (zstd --long, --ultra) are allowed: memory follows the frame, not this cap.
    return zstandard.ZstdDecompressor(max_window_size=1 << 31).decompressobj()


def _xz() -> _Decompressor:
    return lzma.LZMADecompressor()


def _gz() -> _Decompressor:
    return zlib.decompressobj(wbits=31)


def _bz2() -> _Decompressor:
    return bz2.BZ2Decompressor()


FACTORIES: dict[str, Callable[[], _Decompressor]] = {
    "zst": _zstd, "xz": _xz, "gz": _gz, "bz2": _bz2,
}


def detect_compression(head: bytes) -> str:
    """'zst', 'xz', 'gz', 'bz2' or '' (uncompressed) from the first bytes of a stream."""
    for magic, name in MAGICS:
        if head.startswith(magic):
            return name
    return ""


class CountingReader(io.RawIOBase):
    """Reads at most `limit` bytes of `raw` (None: all) and counts what it delivered."""

    def __init__(self, raw: BinaryIO, limit: int | None = None,
                 on_read: Callable[[int], None] | None = None) -> None:
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
        self._dec: _Decompressor | None = self._factory()
        self._pending = b""      # compressed input not yet given to the decompressor
        self._out = b""          # decompressed bytes not yet returned
        self._started = False    # the current stream has consumed input

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        """Decompress more; False at a clean end of input."""
        while not self._out:
            if not self._pending:
                self._pending = self.raw.read(CHUNK)
                if not self._pending:
                    if self._dec is not None and self._started and not self._dec.eof:
                        raise DamagedArchive(f"truncated {self.fmt} {self.what}: the "
                                             "compressed stream ends before its end marker")
                    return False
            if self._dec is None or self._dec.eof:
                # A new stream follows (or only padding is left, which xz allows).
                if self.fmt == "xz" and not self._pending.strip(b"\0"):
                    self._pending = b""
                    continue
                self._dec = self._factory()
                self._started = False
            data, self._pending = self._pending[:CHUNK], self._pending[CHUNK:]
            try:
                self._out = self._dec.decompress(data)
            except (lzma.LZMAError, zlib.error, OSError, EOFError, ValueError,
                    zstandard.ZstdError) as exc:
                raise DamagedArchive(f"corrupt {self.fmt} {self.what}: {exc}") from exc
            self._started = True
            if self._dec.eof:
                self._pending = self._dec.unused_data + self._pending
        return True

    def readinto(self, buffer) -> int:
        view = memoryview(buffer)
        if not self._out and not self._fill():
            return 0
        n = min(len(view), len(self._out))
        view[:n] = self._out[:n]
        self._out = self._out[n:]
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
        if not self._buffer:
            if self._eof:
                return 0
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._eof = True
                raise item
            if not item:
                self._eof = True
                return 0
            self._buffer = item
        n = min(len(view), len(self._buffer))
        view[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
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
        self._proc = subprocess.Popen([xz, "-dc", "-T0", "-q"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
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
        stderr = self._proc.stderr.read().decode(errors="replace").strip() \
            if self._proc.stderr else ""
        if self._proc.wait() != 0:
            raise DamagedArchive(f"truncated or corrupt xz {self._what}: "
                                 f"{stderr or 'xz failed'}")
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


def open_stream(raw: io.RawIOBase | BinaryIO, what: str = "data", *,
                threaded: bool = False) -> BinaryIO:
    """A buffered stream of the (decompressed, if compressed) contents of `raw`;
    `threaded` decompresses ahead, beside the reader (for big extractions): xz with the
    xz program on all cores when it is installed, the rest in a background thread."""
    peekable: Any = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)
    fmt = detect_compression(peekable.peek(8)[:8])
    if not fmt:
        return cast(BinaryIO, peekable)
    xz = shutil.which("xz") if threaded and fmt == "xz" else None
    if xz:
        return cast(BinaryIO, io.BufferedReader(XzProcessReader(peekable, xz, what),
                                                buffer_size=1 << 20))
    stream: Any = io.BufferedReader(DecompressingReader(peekable, fmt, what),
                                    buffer_size=1 << 20)
    if threaded:
        stream = io.BufferedReader(PrefetchingReader(stream), buffer_size=1 << 20)
    return cast(BinaryIO, stream)
