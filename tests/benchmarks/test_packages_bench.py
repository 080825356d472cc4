"""Figures for stages 2 and 3 on the real Debian kernel package (run by `make bench`)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

from app.compose.assemble import assemble_root
from app.packages.gather import gather
from app.packages.resolve import Resolution
from app.packages.sources import detect_source, open_source
from app.reporter import NullReporter
from tests.app.packages.fixtures import real_deb_folder
from tests.support.debian import resolve_kernel_package

pytestmark = pytest.mark.benchmark


def _best(runs: int, work) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def listing(root: Path) -> dict[str, tuple[str, int | str]]:
    """Every path below `root` with its type and its size (a symlink: its target)."""
    entries: dict[str, tuple[str, int | str]] = {}
    for path in root.rglob("*"):
        info = path.lstat()
        name = str(path.relative_to(root))
        if stat.S_ISLNK(info.st_mode):
            entries[name] = ("symlink", os.readlink(path))
        elif stat.S_ISDIR(info.st_mode):
            entries[name] = ("dir", 0)
        elif stat.S_ISREG(info.st_mode):
            entries[name] = ("file", info.st_size)
        else:
            entries[name] = ("other", 0)
    return entries


def test_kernel_assembly_versus_dpkg_deb(tmp_path: Path) -> None:
    folder = real_deb_folder(tmp_path, [resolve_kernel_package(), "busybox-static"])
    source = open_source(detect_source(str(folder)))
    packages = tuple(source.packages())
    cache = tmp_path / "cache"
    gathered = gather(source, Resolution(packages), cache, NullReporter())
    warm = _best(3, lambda: gather(source, Resolution(packages), cache, NullReporter()))
    ours_root, dpkg_root = tmp_path / "ours", tmp_path / "dpkg"

    def ours() -> None:
        shutil.rmtree(ours_root, ignore_errors=True)
        assemble_root(gathered, ours_root, NullReporter())

    def dpkg() -> None:
        shutil.rmtree(dpkg_root, ignore_errors=True)
        for _, path in gathered:
            subprocess.run(["dpkg-deb", "-x", str(path), str(dpkg_root)], check=True)

    ours_s, dpkg_s = _best(2, ours), _best(2, dpkg)
    size = sum(p.stat().st_size for _, p in gathered)
    print(f"\ngather (warm cache, verify {size / 1e6:.0f} MB): {warm:.2f} s")
    print(
        f"assemble_root kernel + busybox: {ours_s:.2f} s; dpkg-deb -x: {dpkg_s:.2f} s; "
        f"ratio {ours_s / dpkg_s:.2f}"
    )
    # The last run of each left its tree: the same paths, types and sizes, or the figures
    # compare unlike work.
    ours_tree, dpkg_tree = listing(ours_root), listing(dpkg_root)
    assert any(name.startswith(("lib/modules/", "usr/lib/modules/")) for name in dpkg_tree)
    differing = sorted(
        name
        for name in ours_tree.keys() | dpkg_tree.keys()
        if ours_tree.get(name) != dpkg_tree.get(name)
    )
    assert not differing, (
        f"{len(differing)} paths differ, e.g. "
        f"{[(n, ours_tree.get(n), dpkg_tree.get(n)) for n in differing[:5]]}"
    )
