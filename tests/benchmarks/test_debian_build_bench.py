"""The built-in `rescue` profile (a Debian system made by mmdebstrap) with a warm cache.

Goals (issue: configured Debian systems):
- time: Livesmith's whole build <= 1.2x `mmdebstrap` + `mksquashfs` of the same package set,
  run side by side with the same warm package cache;
- memory: <= 300 MB peak for the whole process tree (Livesmith and every tool it runs),
  reported per stage.

The tree's memory is sampled from /proc every 50 ms: the sum of the resident sets of the
build process and all its descendants, which is what the machine must hold at that moment
(/usr/bin/time reports only the largest single process).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from app.compose.install import debian
from app.compose.profile import builtin_profile
from tests.support.unprivileged import REPO

pytestmark = pytest.mark.benchmark
TIME_GOAL = 1.2
MEMORY_GOAL_MB = 300
EPOCH = "1767225600"


def tree_rss_kib(pid: int) -> int:
    """Resident memory of `pid` and every process below it, in KiB."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        ppid = int(re.search(r"^PPid:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]
        found = re.search(r"^VmRSS:\s+(\d+)", status, re.M)
        rss[int(entry)] = int(found.group(1)) if found else 0
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += rss.get(current, 0)
        todo += children.get(current, [])
    return total


class TreeSampler:
    """Peak tree memory of a running command, per stage (the `==> Stage` lines it prints)."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            argv, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.stage = "start"
        self.peaks: dict[str, int] = {}
        self.lines: list[str] = []
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while self.proc.poll() is None:
            kib = tree_rss_kib(self.proc.pid)
            self.peaks[self.stage] = max(self.peaks.get(self.stage, 0), kib)
            time.sleep(0.05)

    def wait(self) -> int:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("==> "):
                self.stage = line[4:].strip()
        code = self.proc.wait()
        self._sampler.join()
        return code


def reference_seconds(packages: tuple[str, ...], cache: Path, work: Path) -> float:
    """mmdebstrap into a folder, then mksquashfs of it, as a user would run them."""
    root = debian.DebianRoot(debian.host_suite(), packages)
    shared = cache / "debian" / root.cache_key
    folder, image = work / "ref-root", work / "ref.sfs"
    started = time.monotonic()
    subprocess.run(
        [
            "mmdebstrap",
            "--mode=root",
            "--variant=apt",
            f"--include={','.join(packages)}",
            "--skip=download/empty,output/dev",
            '--setup-hook=mkdir -p "$1/var/cache/apt/archives"',
            f"--setup-hook=sync-in {shared} /var/cache/apt/archives",
            root.suite,
            str(folder),
            *debian.mirror_args(root),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH},
    )
    subprocess.run(
        [
            "mksquashfs",
            str(folder),
            str(image),
            "-comp",
            "zstd",
            "-Xcompression-level",
            "3",
            "-noappend",
            "-no-progress",
            "-quiet",
        ],
        check=True,
        capture_output=True,
    )
    seconds = time.monotonic() - started
    subprocess.run(["rm", "-rf", str(folder), str(image)], check=True)
    return seconds


@pytest.mark.skipif(os.geteuid() != 0, reason="the reference mmdebstrap run needs root")
def test_rescue_against_mmdebstrap_and_mksquashfs(tmp_path: Path) -> None:
    cache = Path.home() / ".cache" / "livesmith-tests" / "package-cache"
    profile = builtin_profile("rescue")
    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "app", "build", "--profile", "rescue", "--cache-dir", str(cache)]
    # The first build fills the package cache; it is not counted.
    subprocess.run(
        [*argv, "-o", str(tmp_path / "warm.iso")],
        env=env,
        check=True,
        capture_output=True,
        cwd=REPO,
    )
    (tmp_path / "warm.iso").unlink()

    started = time.monotonic()
    sampler = TreeSampler([*argv, "-o", str(tmp_path / "rescue.iso")], env)
    assert sampler.wait() == 0, "\n".join(sampler.lines[-30:])
    ours = time.monotonic() - started
    reference = reference_seconds(profile.packages.packages, cache, tmp_path)
    ratio = ours / reference
    peak_mb = max(sampler.peaks.values()) / 1024
    size_mb = (tmp_path / "rescue.iso").stat().st_size / 2**20
    print(
        f"\nrescue, warm cache: livesmith {ours:.1f} s, mmdebstrap + mksquashfs "
        f"{reference:.1f} s, ratio {ratio:.2f}x (goal <= {TIME_GOAL}x); ISO {size_mb:.0f} MiB"
    )
    print(f"peak memory of the whole process tree: {peak_mb:.0f} MB (goal <= {MEMORY_GOAL_MB} MB)")
    for stage, kib in sampler.peaks.items():
        print(f"  {stage:32} {kib / 1024:7.0f} MB")
    timing = next((line for line in sampler.lines if line.strip().startswith("time ")), "")
    print(f"  {timing.strip()}")
