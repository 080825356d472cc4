"""One read of an image feeding several writers: the image is read (and decompressed) once.

A producer thread reads the image in blocks and hands each block to every writer still
reading, through a small queue per writer. It starts once every writer has either joined
(opened its reader) or left (failed before its write began), so all of them see the
stream from its first byte. A writer that fails or is cancelled leaves: the producer stops
waiting for it and goes on with the others. The slowest writer sets the pace (each queue
holds a few blocks), as it would for one stick.

Each writer's reader looks like the image's own reader (`readinto`, `consumed`, a context
manager), so the engine writes from it unchanged.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from app.usb.source import ImageSource

BLOCK = 4 << 20
DEPTH = 4
_END = object()
_POLL = 0.1


class FanOut:
    """The shared stream of `source` for `count` writers (indexes 0 … count-1)."""

    def __init__(self, source: ImageSource, count: int, *, block: int = BLOCK) -> None:
        self.source = source
        self.block = block
        self._queues: list[queue.Queue[Any]] = [queue.Queue(maxsize=DEPTH) for _ in range(count)]
        self._joined: set[int] = set()
        self._left: set[int] = set()
        self._lock = threading.Condition()
        self._started = False
        self._thread = threading.Thread(target=self._produce, name="livesmith-fanout", daemon=True)
        self.reads = 0  # how many times the image was opened for the stream (once)

    def reader(self, index: int) -> FanOutReader:
        """The stream for writer `index`; opening it joins the stream."""
        return FanOutReader(self, index)

    def leave(self, index: int) -> None:
        """Writer `index` reads no more (done, failed or cancelled). Safe to call twice."""
        with self._lock:
            self._left.add(index)
            self._maybe_start()
            self._lock.notify_all()
        # Unblock a producer waiting to put into this writer's full queue.
        q = self._queues[index]
        while True:
            try:
                q.get_nowait()
            except queue.Empty:
                break

    def _join(self, index: int) -> None:
        with self._lock:
            if index in self._left or index in self._joined:
                raise RuntimeError(f"writer {index} opened the image stream twice")
            self._joined.add(index)
            self._maybe_start()

    def _maybe_start(self) -> None:
        if not self._started and len(self._joined | self._left) == len(self._queues):
            self._started = True
            if self._joined - self._left:
                self._thread.start()

    def _readers(self) -> list[int]:
        with self._lock:
            return sorted(self._joined - self._left)

    def _put(self, index: int, item: Any) -> None:
        """Hand `item` to writer `index`, unless it leaves while its queue is full."""
        q = self._queues[index]
        while True:
            with self._lock:
                if index in self._left:
                    return
            try:
                q.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def _produce(self) -> None:
        try:
            self.reads += 1
            with self.source.open() as reader:
                while self._readers():
                    # A new buffer each time: the writers read it while the next one fills.
                    buf = bytearray(self.block)
                    n = reader.readinto(memoryview(buf))
                    item = (memoryview(buf)[:n], reader.consumed)
                    for index in self._readers():
                        self._put(index, item)
                    if n == 0:
                        break
        except BaseException as exc:  # every writer gets the error and raises it
            for index in self._readers():
                self._put(index, exc)
            return
        for index in self._readers():
            self._put(index, _END)


class FanOutReader:
    """Writer `index`'s view of the stream: `readinto` fills from the shared blocks."""

    def __init__(self, fan: FanOut, index: int) -> None:
        self._fan = fan
        self._index = index
        self._pending = memoryview(b"")
        self._ended = False
        self.consumed = 0

    def __enter__(self) -> FanOutReader:
        self._fan._join(self._index)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._fan.leave(self._index)

    def _next(self) -> bool:
        if self._ended:
            return False
        item = self._fan._queues[self._index].get()
        if item is _END:
            self._ended = True
            return False
        if isinstance(item, BaseException):
            self._ended = True
            raise item
        data, self.consumed = item
        if not data:
            self._ended = True
            return False
        self._pending = memoryview(data)
        return True

    def readinto(self, view: memoryview) -> int:
        """Fill `view` from the stream; fewer bytes only at its end (like a file)."""
        filled = 0
        while filled < len(view):
            if not self._pending and not self._next():
                break
            take = min(len(view) - filled, len(self._pending))
            view[filled : filled + take] = self._pending[:take]
            self._pending = self._pending[take:]
            filled += take
        return filled
