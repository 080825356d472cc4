"""Inspection and extraction speed versus xorriso (run by `make bench`; prints figures)."""

from __future__ import annotations

import filecmp
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from app.iso.extract import extract
from app.iso.inspect import inspect_iso
from tests.ui.test_preview_large import make_large_iso

RUNS = 5


def median_seconds(action: Callable[[], object]) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def make_iso(tree: Path, iso: Path) -> Path:
    subprocess.run(
        ["xorriso", "-as", "mkisofs", "-R", "-J", "-o", str(iso), str(tree)],
        capture_output=True,
        check=True,
    )
    return iso


@pytest.mark.benchmark
@pytest.mark.parametrize("count", [5_000, 20_000])
def test_inspect_many_files(tmp_path: Path, count: int) -> None:
    tree = tmp_path / "tree"
    for i in range(count):
        path = tree / f"d{i // 500:03d}" / f"file-{i:06d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(i))
    iso = make_iso(tree, tmp_path / "many.iso")
    ours = median_seconds(lambda: inspect_iso(iso))
    theirs = median_seconds(
        lambda: subprocess.run(
            ["xorriso", "-indev", str(iso), "-find", "/", "-exec", "lsdl"],
            capture_output=True,
            check=True,
        )
    )
    assert len(inspect_iso(iso).files) == count + count // 500 + 1
    print(
        f"\ninspect {count} files: livesmith {ours:.3f} s, xorriso listing {theirs:.3f} s, "
        f"ratio {ours / theirs:.2f}x ({ours / count * 1e6:.0f} us/file)"
    )


@pytest.mark.benchmark
def test_extract_300_mb(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    source = tree / "big.bin"
    source.write_bytes(os.urandom(300 * 1024 * 1024))
    iso = make_iso(tree, tmp_path / "big.iso")
    counter = iter(range(10 * RUNS))
    kept: dict[str, Path] = {}  # the first output of each tool, checked after the timing

    def keep_first(tool: str, out: Path) -> None:
        if tool in kept:
            out.unlink()
        else:
            kept[tool] = out

    def ours() -> None:
        out = tmp_path / f"ours{next(counter)}"
        extract(iso, "/big.bin", out)
        keep_first("livesmith", out)

    def theirs() -> None:
        out = tmp_path / f"theirs{next(counter)}"
        subprocess.run(
            ["xorriso", "-osirrox", "on", "-indev", str(iso), "-extract", "/big.bin", str(out)],
            capture_output=True,
            check=True,
        )
        keep_first("xorriso", out)

    a, b = median_seconds(ours), median_seconds(theirs)
    print(
        f"\nextract 300 MB: livesmith {a:.3f} s ({300 / a:.0f} MB/s), xorriso {b:.3f} s, "
        f"ratio {a / b:.2f}x"
    )
    assert sorted(kept) == ["livesmith", "xorriso"]
    for tool, out in kept.items():
        assert filecmp.cmp(out, source, shallow=False), f"{tool}: {out} differs from big.bin"


def timed(*command: str) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of `command` under GNU time."""
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%e %M", *command], capture_output=True, text=True, check=True
    )
    seconds, kilobytes = done.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(kilobytes) / 1024


@pytest.mark.benchmark
@pytest.mark.parametrize("count", [5_000, 50_000])
def test_inspect_json_versus_xorriso_and_isoinfo(tmp_path: Path, count: int) -> None:
    iso = make_large_iso(tmp_path, count)
    commands = {
        "livesmith": [sys.executable, "-m", "app", "inspect", "--json", str(iso)],
        "xorriso": ["xorriso", "-indev", str(iso), "-find", "/", "-exec", "lsdl"],
        "isoinfo": ["isoinfo", "-R", "-l", "-i", str(iso)],
    }
    runs: dict[str, list[tuple[float, float]]] = {tool: [] for tool in commands}
    for _ in range(3):  # side by side, so the machine's load hits all alike
        for tool, command in commands.items():
            runs[tool].append(timed(*command))
    print(f"\ninspect {count} files (median of 3: wall, peak RSS):")
    for tool, figures in runs.items():
        seconds = statistics.median(s for s, _ in figures)
        rss = statistics.median(m for _, m in figures)
        print(f"  {tool:10} {seconds:6.2f} s {rss:6.0f} MB")
    if count == 50_000:  # the goal of issue 15, in the same run as xorriso
        ours = runs["livesmith"]
        seconds = statistics.median(s for s, _ in ours)
        rss = statistics.median(m for _, m in ours)
        assert seconds <= 0.6, f"inspect --json of 50,000 files took {seconds:.2f} s (goal 0.6 s)"
        assert rss <= 100, f"inspect --json of 50,000 files peaked at {rss:.0f} MB (goal 100 MB)"
