"""Benchmark: the quick fake-capacity check of 4 GiB, against f3probe where it is installed.

Sticks: a genuine 4 GiB `--direct-io=on` loop device whose sparse backing file is on disk,
and a fake that claims 4 GiB and wraps around 256 MiB (tests/support/fake_stick.py, over
FUSE). `livesmith check-stick --json`, median of 3. Goal (issue 14): seconds, here <= 10 s
each, with the right verdict and real size. f3probe (Debian package f3, non-destructive
mode) runs on the genuine stick for comparison. Run with `make bench`.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.app.usb.capacity_support import GiB, MiB, fake_stick
from tests.app.usb.writer_support import loop_device, sparse_file
from tests.conftest import ROOT, needs_root

pytestmark = [pytest.mark.benchmark, needs_root]

RUNS = 3
GOAL_S = 10.0


def check_stick(node: str) -> tuple[float, dict[str, object]]:
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "app", "check-stick", "--json", node],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    elapsed = time.perf_counter() - started
    assert out.returncode in (0, 1), out.stderr
    return elapsed, json.loads(out.stdout)


def f3probe_seconds(node: str) -> float | None:
    if shutil.which("f3probe") is None:
        return None
    started = time.perf_counter()
    subprocess.run(["f3probe", node], capture_output=True, timeout=600, check=True)
    return time.perf_counter() - started


def test_quick_check_of_4_gib_takes_seconds(tmp_path: Path) -> None:
    figures: dict[str, list[float]] = {"genuine": [], "fake": []}
    with loop_device(sparse_file(tmp_path / "genuine.img", 4 * GiB)) as node:
        for _ in range(RUNS):
            seconds, result = check_stick(node)
            assert result["genuine"] is True and result["usable"] == 4 * GiB
            figures["genuine"].append(seconds)
        theirs = f3probe_seconds(node)
    with fake_stick(tmp_path, claimed=4 * GiB, stored=256 * MiB, mode="wrap") as node:
        for _ in range(RUNS):
            seconds, result = check_stick(node)
            assert result["genuine"] is False and result["usable"] == 256 * MiB
            figures["fake"].append(seconds)
    print("\nlivesmith check-stick (quick), 4 GiB claimed, median of 3 (whole command):")
    for kind, runs in figures.items():
        listed = ", ".join(f"{s:.2f}" for s in runs)
        print(f"  {kind:8s} {statistics.median(runs):6.2f} s  (runs: {listed})")
    if theirs is not None:
        print(f"  f3probe on the genuine stick: {theirs:.2f} s")
    for kind, runs in figures.items():
        assert statistics.median(runs) <= GOAL_S, f"{kind}: {runs} (goal <= {GOAL_S} s)"
