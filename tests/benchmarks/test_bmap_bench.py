"""Benchmark: writing a sparse image with its block map, against `bmaptool copy`.

A 1 GiB image of which 128 MiB (in 64 ranges of 2 MiB) holds random data, its .bmap made by
`bmaptool create`; a `--direct-io=on` loop device on disk; page cache dropped before each run;
runs alternated, median of 3. `livesmith write` writes the mapped blocks and reads them back
past the page cache; `bmaptool copy` writes them and checks the image's checksums, without
reading the stick back. Goal: livesmith, with its read-back, within 1.5x of bmaptool copy;
and far quicker than writing the whole image. Run with `make bench`.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.app.usb.writer_support import loop_device, run, sparse_file
from tests.conftest import ROOT, needs_root

pytestmark = [
    pytest.mark.benchmark,
    needs_root,
    pytest.mark.skipif(shutil.which("bmaptool") is None, reason="needs bmap-tools"),
]
MiB = 1 << 20
GiB = 1 << 30


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def timed(command: list[str]) -> float:
    drop_caches()
    started = time.perf_counter()
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    return time.perf_counter() - started


def test_write_with_a_block_map_against_bmaptool_copy(tmp_path: Path) -> None:
    image = tmp_path / "sparse.img"
    with open(image, "wb") as fh:
        fh.truncate(GiB)
        for i in range(64):
            fh.seek(i * 16 * MiB + 4 * MiB)
            fh.write(os.urandom(2 * MiB))
    run(
        "sfdisk",
        "-q",
        "--no-reread",
        "--no-tell-kernel",
        str(image),
        input="label: dos\nstart=2048, type=c\n",
    )
    run("bmaptool", "create", str(image), "-o", str(image) + ".bmap")
    with loop_device(sparse_file(tmp_path / "stick.img", GiB + 64 * MiB)) as node:
        commands = {
            "livesmith write (bmap, with read-back)": [
                sys.executable,
                "-m",
                "app",
                "write",
                str(image),
                node,
                "--yes",
            ],
            "bmaptool copy": ["bmaptool", "copy", str(image), node],
            "livesmith write --no-bmap (whole image)": [
                sys.executable,
                "-m",
                "app",
                "write",
                str(image),
                node,
                "--yes",
                "--no-bmap",
            ],
        }
        runs: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(3):
            for name, command in commands.items():
                runs[name].append(timed(command))
    medians = {name: statistics.median(times) for name, times in runs.items()}
    print("\n1 GiB image, 128 MiB mapped, direct-I/O loop device, median of 3:")
    for name, times in runs.items():
        listed = ", ".join(f"{t:.2f}" for t in times)
        print(f"  {name:42s} {medians[name]:6.2f} s  (runs: {listed})")
    ours = medians["livesmith write (bmap, with read-back)"]
    ratio = ours / medians["bmaptool copy"]
    print(f"  ratio to bmaptool copy {ratio:.2f}x (goal <= 1.5x)")
    assert ratio <= 1.5
    assert ours < medians["livesmith write --no-bmap (whole image)"]
