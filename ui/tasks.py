"""Named slots for a page's background tasks: at most one task per slot, forgotten (and
deleted) when it ends, so no reference to a deleted task remains and a late result of a
replaced task is recognised and ignored (`is_current`)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject

from app.reporter import Reporter
from ui.worker import BackgroundTask


class Job(enum.Enum):
    IMAGE = "image-facts"
    CHECKSUM = "checksum"
    TARGET = "target"
    PREFLIGHT = "preflight"
    CAPACITY = "capacity"
    WRITE = "write"  # one per stick: the slot is (Job.WRITE, index)
    EJECT = "eject"


Slot = Job | tuple[Job, int]


class Tasks:
    def __init__(self, parent: QObject) -> None:
        self._parent = parent
        self._slots: dict[Slot, BackgroundTask] = {}
        self._all: set[BackgroundTask] = set()

    def new(self, slot: Slot, fn: Callable[[Reporter], Any]) -> BackgroundTask:
        """A task in `slot` (a task still there is cancelled: its late result is ignored).
        Connect its signals, then `start()` it."""
        self.cancel(slot)
        name = slot.value if isinstance(slot, Job) else f"{slot[0].value}-{slot[1]}"
        task = BackgroundTask(fn, self._parent, name=f"livesmith-{name}")
        self._all.add(task)
        self._slots[slot] = task
        task.ended.connect(lambda: self._forget(slot, task))
        return task

    def _forget(self, slot: Slot, task: BackgroundTask) -> None:
        # Runs first on `ended` (connected first).
        self._all.discard(task)
        if self._slots.get(slot) is task:
            del self._slots[slot]
        task.deleteLater()

    def get(self, slot: Slot) -> BackgroundTask | None:
        return self._slots.get(slot)

    def is_current(self, slot: Slot, task: BackgroundTask) -> bool:
        return self._slots.get(slot) is task

    def running(self, slot: Slot) -> bool:
        task = self._slots.get(slot)
        return task is not None and task.is_running()

    def cancel(self, slot: Slot) -> None:
        """Cancel the task in `slot` and let go of it (its late signals are ignored)."""
        task = self._slots.pop(slot, None)
        if task is not None:
            task.cancel()

    def shutdown(self) -> None:
        for task in list(self._all):
            task.shutdown()
