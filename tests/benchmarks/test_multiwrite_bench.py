"""Benchmark: writing one image to two sticks at once against writing it to one.

`livesmith write IMAGE STICK… --yes` (write + verify), runs alternated, page cache dropped
before each, median. Goals (issue 14):
- direct-I/O loop devices whose backing files are on disk: 2 sticks <= 1.5x the time of 1;
- sticks slower than the image source: <= 1.2x. Simulated with tests/support/fake_stick.py:
  a genuine FUSE stick whose writes are paced to 40 MB/s (reads stay fast, as on a USB
  stick), one FUSE process per stick, a loop device over each.
Both loop devices of the first case share one disk, so their writes compete for it; real
sticks on their own USB ports do not. Run with `make bench`.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.app.usb.capacity_support import MiB, fake_stick
from tests.app.usb.writer_support import loop_device, run, sparse_file
from tests.conftest import ROOT, needs_root

pytestmark = [pytest.mark.benchmark, needs_root]


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def random_image(path: Path, size: int) -> Path:
    with open(path, "wb") as fh:
        for _ in range(size // (16 * MiB)):
            fh.write(os.urandom(16 * MiB))
    run(
        "sfdisk",
        "-q",
        "--no-reread",
        "--no-tell-kernel",
        str(path),
        input="label: dos\nstart=2048, type=c\n",
    )
    return path


def write_seconds(image: Path, sticks: list[str]) -> float:
    drop_caches()
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "app", "write", str(image), *sticks, "--yes"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    elapsed = time.perf_counter() - started
    assert out.returncode == 0, out.stderr
    return elapsed


def compare(image: Path, sticks: list[str], runs: int) -> tuple[list[float], list[float]]:
    one, two = [], []
    for _ in range(runs):
        one.append(write_seconds(image, sticks[:1]))
        two.append(write_seconds(image, sticks[:2]))
    return one, two


def report(title: str, one: list[float], two: list[float], goal: float) -> float:
    ratio = statistics.median(two) / statistics.median(one)
    print(f"\n{title}")
    print(
        f"  1 stick : {statistics.median(one):6.2f} s  (runs: {', '.join(f'{s:.2f}' for s in one)})"
    )
    print(
        f"  2 sticks: {statistics.median(two):6.2f} s  (runs: {', '.join(f'{s:.2f}' for s in two)})"
    )
    print(f"  ratio {ratio:.2f}x (goal <= {goal}x)")
    return ratio


def test_two_direct_io_loop_devices_against_one(tmp_path: Path) -> None:
    image = random_image(tmp_path / "image.iso", 512 * MiB)
    with ExitStack() as stack:
        sticks = [
            stack.enter_context(loop_device(sparse_file(tmp_path / f"s{i}.img", 600 * MiB)))
            for i in range(2)
        ]
        for stick in sticks:  # allocate the backing files' blocks once, not counted
            write_seconds(image, [stick])
        one, two = compare(image, sticks, runs=5)
    ratio = report("512 MiB, direct-I/O loop devices on one disk, median of 5:", one, two, 1.5)
    assert ratio <= 1.5


def test_two_slow_sticks_against_one(tmp_path: Path) -> None:
    image = random_image(tmp_path / "image.iso", 128 * MiB)
    with ExitStack() as stack:
        sticks = [
            stack.enter_context(
                fake_stick(
                    tmp_path,
                    claimed=160 * MiB,
                    stored=160 * MiB,
                    mode="wrap",
                    write_rate=40 * 10**6,
                    name=f"slow{i}",
                )
            )
            for i in range(2)
        ]
        one, two = compare(image, sticks, runs=3)
    ratio = report("128 MiB, sticks writing at 40 MB/s (FUSE), median of 3:", one, two, 1.2)
    assert ratio <= 1.2
