"""This test process's own child processes, found through /proc."""

from __future__ import annotations

import os
from pathlib import Path


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
