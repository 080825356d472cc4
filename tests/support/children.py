"""This test process's own child processes, found through /proc."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from app.reporter import RecordingReporter


def child_pids(module: str) -> list[int]:
    """PIDs of this process's children (of any of its threads) running `python -m module`."""
    pids = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except FileNotFoundError:  # it ended meanwhile
                continue
            if module.encode() in argv:
                pids.append(int(pid))
    return pids


class ActAt(RecordingReporter):
    """Does `act()` when the child announces `title`: the moment a user presses Cancel, or
    the child is killed."""

    def __init__(self, title: str, act: Callable[[ActAt], object]) -> None:
        super().__init__()
        self.title = title
        self.act = act

    def step(self, name: str) -> None:
        super().step(name)
        if name == self.title:
            self.act(self)
