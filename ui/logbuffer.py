"""A bounded, Qt-free record of log lines, so a log view opened late can replay what it missed.

The buffer keeps the newest `max_lines` entries (older ones fall off the front and are
counted in `dropped`). Listeners hear every new entry; a view subscribes with
`add_listener` and replays `entries()` first. Use it from one thread (the GUI thread):
worker threads reach it through BackgroundTask's `logLines` signal.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from app.reporter import Level

DEFAULT_MAX_LINES = 20_000


@dataclass(frozen=True, slots=True)
class LogEntry:
    time: float  # seconds since the epoch (time.time())
    level: Level
    text: str

    def format(self) -> str:
        """One line as a user reads it: time, level (unless info) and the message."""
        stamp = time.strftime("%H:%M:%S", time.localtime(self.time))
        prefix = "" if self.level == Level.INFO else f"{self.level.name.lower()}: "
        return f"{stamp}  {prefix}{self.text}"


Listener = Callable[[LogEntry | None], None]  # None: the buffer was cleared


class LogBuffer:
    def __init__(self, max_lines: int = DEFAULT_MAX_LINES) -> None:
        if max_lines < 1:
            raise ValueError("a log buffer holds at least one line")
        self.max_lines = max_lines
        self._entries: deque[LogEntry] = deque(maxlen=max_lines)
        self._listeners: list[Listener] = []
        self.dropped = 0  # entries that fell off the front since the last clear()

    def append(self, level: Level | int, text: str, when: float | None = None) -> LogEntry:
        entry = LogEntry(time.time() if when is None else when, Level(level), str(text))
        if len(self._entries) == self.max_lines:
            self.dropped += 1
        self._entries.append(entry)
        for listener in list(self._listeners):
            listener(entry)
        return entry

    def extend(self, lines: Iterable[tuple[Level | int, str]]) -> None:
        for level, text in lines:
            self.append(level, text)

    def entries(self) -> list[LogEntry]:
        """A snapshot, oldest first."""
        return list(self._entries)

    def clear(self) -> None:
        self._entries.clear()
        self.dropped = 0
        for listener in list(self._listeners):
            listener(None)

    def __len__(self) -> int:
        return len(self._entries)

    def add_listener(self, listener: Listener) -> None:
        """`listener(entry)` for every new entry; `listener(None)` when the buffer is cleared."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)
