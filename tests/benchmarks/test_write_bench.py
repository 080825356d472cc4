"""Benchmark: `livesmith write --yes` (write + verify) against `dd oflag=direct` + `cmp`.

1 GiB of random data onto a `--direct-io=on` loop device whose backing file is on disk,
page cache dropped before every run, runs alternated, median of 5. Goals: time ratio
<= 1.0 and peak RSS <= 100 MB. Prints the figures; run with `make bench`.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from tests.app.usb.writer_support import loop_device, run
from tests.conftest import ROOT, needs_root

pytestmark = [pytest.mark.benchmark, needs_root]

GiB = 1 << 30
RUNS = 5

# Runs the commands one after another in a child; prints wall time and the peak RSS of
# every process it waited for (ru_maxrss of RUSAGE_CHILDREN covers grandchildren too).
TIMER = """
import json, resource, subprocess, sys, time
commands = json.loads(sys.argv[1])
start = time.perf_counter()
for command in commands:
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed,
                  "max_rss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def timed(commands: list[list[str]]) -> dict[str, float]:
    drop_caches()
    out = subprocess.run(
        [sys.executable, "-c", TIMER, json.dumps(commands)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    return json.loads(out.stdout)


def same_bytes(image: Path, node: str, size: int) -> bool:
    return subprocess.run(["cmp", "-s", "-n", str(size), str(image), node]).returncode == 0


def make_random_image(path: Path, size: int) -> None:
    with open(path, "wb") as fh:
        for _ in range(size // (16 << 20)):
            fh.write(os.urandom(16 << 20))
    # An MBR like a hybrid ISO, or the writer refuses the image without --force.
    run(
        "sfdisk",
        "-q",
        "--no-reread",
        "--no-tell-kernel",
        str(path),
        input="label: dos\nstart=2048, type=c\n",
    )


def test_write_and_verify_against_dd_and_cmp(tmp_path: Path) -> None:
    image = tmp_path / "random.iso"
    make_random_image(image, GiB)
    backing = tmp_path / "stick.img"
    with open(backing, "wb") as fh:
        fh.truncate(GiB + (64 << 20))
    with loop_device(backing, direct_io=True) as node:
        livesmith = [[sys.executable, "-m", "app", "write", str(image), node, "--yes"]]
        dd_cmp = [
            [
                "dd",
                f"if={image}",
                f"of={node}",
                "bs=4M",
                "oflag=direct",
                "conv=fsync",
                "status=none",
            ],
            ["cmp", "-n", str(GiB), str(image), node],
        ]
        timed(dd_cmp)  # warm-up: allocates the backing file's blocks once, not counted
        ours, theirs = [], []
        for _ in range(RUNS):
            ours.append(timed(livesmith))
            theirs.append(timed(dd_cmp))
        # dd wrote the same bytes last: wipe the stick and write it once more with livesmith,
        # so that the comparison checks what livesmith wrote.
        run("blkdiscard", node)
        drop_caches()
        assert not same_bytes(image, node, GiB), "the wipe left the image on the stick"
        written = subprocess.run(
            livesmith[0], cwd=ROOT, capture_output=True, text=True, timeout=900
        )
        assert written.returncode == 0, written.stderr
        drop_caches()
        assert same_bytes(image, node, GiB), "the stick does not hold the image"
    ours_s = statistics.median(r["seconds"] for r in ours)
    theirs_s = statistics.median(r["seconds"] for r in theirs)
    rss_mb = max(r["max_rss_kb"] for r in ours) / 1024
    ratio = ours_s / theirs_s

    def runs(results: list[dict[str, float]]) -> str:
        return ", ".join(f"{r['seconds']:.2f}" for r in results)

    print(f"\n1 GiB, direct-io loop on disk, caches dropped, median of {RUNS}:")
    print(f"  livesmith write --yes (write + verify): {ours_s:6.2f} s  (runs: {runs(ours)})")
    print(f"  dd oflag=direct conv=fsync + cmp:       {theirs_s:6.2f} s  (runs: {runs(theirs)})")
    print(f"  ratio {ratio:.2f}x (goal <= 1.0x); peak RSS {rss_mb:.0f} MB (goal <= 100 MB)")
