"""A fake-capacity "stick" for tests: a FUSE file that claims more than it stores.

Run by the system Python (Debian's python3-fusepy), in its own process, as
`python3 fake_stick.py MOUNTPOINT CLAIMED STORED wrap|drop [WRITE_RATE]`. The mount holds
one file, `stick.img`, whose size is CLAIMED bytes; only STORED bytes exist behind it:
- wrap: offset o is stored at o mod STORED, as a controller that ignores high address
  bits does (the most common fake);
- drop: writes at or past STORED are accepted and lost; reads there return zeros.
With CLAIMED == STORED the stick is genuine. WRITE_RATE (bytes per second) makes writes
that slow, as a USB stick's are (reads stay fast): a stick slower than the image source.
A loop device over the file is then a block device that lies about its size the way a
fake USB stick does. The file system is mounted with direct_io so that every read reaches
this process instead of the kernel's cache of the file.
"""

from __future__ import annotations

import errno
import stat
import sys
import threading
import time

import fusepy  # type: ignore[import-not-found]

NAME = "/stick.img"


class FakeStick(fusepy.Operations):  # type: ignore[misc]
    def __init__(self, claimed: int, stored: int, mode: str, write_rate: int = 0) -> None:
        self.write_rate = write_rate
        self.written = 0
        self.started = 0.0
        self.claimed = claimed
        self.stored = stored
        self.mode = mode
        self.store = bytearray(stored)
        self.mutex = threading.Lock()

    def getattr(self, path: str, fh: int | None = None) -> dict[str, float]:
        now = time.time()
        if path == "/":
            return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2, "st_mtime": now}
        if path == NAME:
            return {
                "st_mode": stat.S_IFREG | 0o644,
                "st_nlink": 1,
                "st_size": self.claimed,
                "st_mtime": now,
            }
        raise fusepy.FuseOSError(errno.ENOENT)

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", NAME[1:]]

    def open(self, path: str, flags: int) -> int:
        if path != NAME:
            raise fusepy.FuseOSError(errno.ENOENT)
        return 0

    def truncate(self, path: str, length: int, fh: int | None = None) -> None:
        pass

    def _spans(self, offset: int, size: int):  # type: ignore[no-untyped-def]
        """(file offset, store offset or None, length) pieces of a request."""
        end = min(offset + size, self.claimed)
        while offset < end:
            if self.mode == "wrap":
                at = offset % self.stored
                length = min(end - offset, self.stored - at)
                yield offset, at, length
            elif offset < self.stored:
                length = min(end, self.stored) - offset
                yield offset, offset, length
            else:
                yield offset, None, end - offset
                return
            offset += length

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        out = bytearray()
        with self.mutex:
            for _, at, length in self._spans(offset, size):
                out += bytes(length) if at is None else self.store[at : at + length]
        return bytes(out)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        if self.write_rate:
            self._pace(len(data))
        with self.mutex:
            start = offset
            for file_offset, at, length in self._spans(offset, len(data)):
                if at is not None:
                    piece = data[file_offset - start : file_offset - start + length]
                    self.store[at : at + length] = piece
        return len(data)

    def _pace(self, length: int) -> None:
        """Sleep so that writes, taken together, go at `write_rate` bytes per second."""
        now = time.monotonic()
        if not self.started or now - self.due() > 1.0:  # idle for a while: a fresh start
            self.started, self.written = now, 0
        self.written += length
        wait = self.due() - now
        if wait > 0:
            time.sleep(wait)

    def due(self) -> float:
        return self.started + self.written / self.write_rate

    def fsync(self, path: str, datasync: int, fh: int) -> None:
        pass

    def flush(self, path: str, fh: int) -> None:
        pass


def main() -> None:
    mountpoint, claimed, stored, mode = sys.argv[1:5]
    write_rate = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    if mode not in ("wrap", "drop"):
        raise SystemExit(f"mode must be wrap or drop, not {mode!r}")
    fusepy.FUSE(
        FakeStick(int(claimed), int(stored), mode, write_rate),
        mountpoint,
        foreground=True,
        nothreads=True,
        direct_io=True,
    )


if __name__ == "__main__":
    main()
