"""Figures for stages 2 and 3 on the real Debian kernel package (run by `make bench`)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from app.build.assemble import assemble_root
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


def test_kernel_assembly_versus_dpkg_deb(tmp_path: Path) -> None:
    folder = real_deb_folder(tmp_path, [resolve_kernel_package(), "busybox-static"])
    source = open_source(detect_source(str(folder)))
    packages = tuple(source.packages())
    cache = tmp_path / "cache"
    gathered = gather(source, Resolution(packages), cache, NullReporter())
    warm = _best(3, lambda: gather(source, Resolution(packages), cache, NullReporter()))
    root = tmp_path / "root"

    def ours() -> None:
        shutil.rmtree(root, ignore_errors=True)
        assemble_root(gathered, root, NullReporter())

    def dpkg() -> None:
        shutil.rmtree(root, ignore_errors=True)
        for _, path in gathered:
            subprocess.run(["dpkg-deb", "-x", str(path), str(root)], check=True)

    ours_s, dpkg_s = _best(2, ours), _best(2, dpkg)
    size = sum(p.stat().st_size for _, p in gathered)
    print(f"\ngather (warm cache, verify {size / 1e6:.0f} MB): {warm:.2f} s")
    print(f"assemble_root kernel + busybox: {ours_s:.2f} s; dpkg-deb -x: {dpkg_s:.2f} s; "
          f"ratio {ours_s / dpkg_s:.2f}")
