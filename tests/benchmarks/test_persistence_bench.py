"""Benchmark: `livesmith write --persistence rest` of ipxe.iso onto a 64 GiB loop device
(sparse backing file), against the same write without persistence.

The ext4 file system is made in a sparse temporary file and only its allocated extents are
copied (plus the partition's first and last MiB), so the time added by persistence must
not grow with the stick: goals, median of 3: at most 10 s more than the plain write, and
at most 64 MiB written to the stick for the file system. Prints the figures; `make bench`.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.app.usb.writer_support import loop_device
from tests.conftest import ROOT, needs_root

pytestmark = [pytest.mark.benchmark, needs_root]

IPXE = Path("/usr/lib/ipxe/ipxe.iso")
STICK = 64 << 30
RUNS = 3


def write(node: str, *extra: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "app", "write", str(IPXE), node, "--yes", *extra],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=600,
    )
    return time.perf_counter() - start


def test_persistence_on_a_large_stick_costs_little(tmp_path: Path) -> None:
    plain: list[float] = []
    persistent: list[float] = []
    allocated: list[int] = []
    for run in range(RUNS):
        backing = tmp_path / f"stick-{run}.img"
        with open(backing, "wb") as f:
            f.truncate(STICK)
        with loop_device(backing) as node:
            plain.append(write(node))
            persistent.append(write(node, "--persistence", "rest"))
        allocated.append(os.stat(backing).st_blocks * 512)
        backing.unlink()
    added = statistics.median(persistent) - statistics.median(plain)
    written = statistics.median(allocated)
    print(
        f"\npersistence on a 64 GiB stick: plain write {statistics.median(plain):.2f} s, "
        f"with persistence {statistics.median(persistent):.2f} s (+{added:.2f} s); "
        f"{written / (1 << 20):.1f} MiB allocated in the backing file"
    )
    assert added <= 10.0
    assert written <= 64 << 20
