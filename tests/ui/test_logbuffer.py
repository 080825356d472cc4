"""LogBuffer: bounded, ordered, replayable, and tells its listeners."""

from __future__ import annotations

import pytest

from app.reporter import Level
from ui.logbuffer import LogBuffer, LogEntry


def test_keeps_the_newest_lines_and_counts_the_dropped() -> None:
    buffer = LogBuffer(max_lines=3)
    for n in range(5):
        buffer.append(Level.INFO, f"line {n}")
    assert [e.text for e in buffer.entries()] == ["line 2", "line 3", "line 4"]
    assert len(buffer) == 3 and buffer.dropped == 2
    buffer.clear()
    assert len(buffer) == 0 and buffer.dropped == 0


def test_levels_from_ints_and_entries_format_with_time_and_level() -> None:
    buffer = LogBuffer()
    entry = buffer.append(30, "disk nearly full", when=0.0)
    assert entry.level is Level.WARNING
    assert entry.format().endswith("  warning: disk nearly full")
    info = buffer.append(Level.INFO, "plain")
    assert info.format().endswith("  plain") and "info:" not in info.format()
    with pytest.raises(ValueError):
        buffer.append(99, "no such level")


def test_listeners_hear_new_lines_and_clearing() -> None:
    buffer = LogBuffer()
    buffer.append(Level.INFO, "before")
    heard: list[LogEntry | None] = []
    buffer.add_listener(heard.append)
    buffer.extend([(Level.DEBUG, "a"), (Level.ERROR, "b")])
    buffer.clear()
    assert [e.text if e else None for e in heard] == ["a", "b", None]
    buffer.remove_listener(heard.append)
    buffer.append(Level.INFO, "after")
    assert len(heard) == 3


def test_a_buffer_holds_at_least_one_line() -> None:
    with pytest.raises(ValueError):
        LogBuffer(max_lines=0)
