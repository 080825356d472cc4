"""initramfs generation (our newc writer + zstd on all cores) against
`find . | cpio -o -H newc | zstd -T0 -<level>` on the same tree. Goal: <= 1.1x.

Run with `make bench` (pytest -m benchmark -s). Prints medians of 5 runs, alternating the
two contenders so that load from other processes hits both alike.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from app.compose.compress import Compression, open_compressed_writer
from app.compose.cpio import write_tree
from app.compose.initramfs import InitramfsSpec, build_initramfs
from app.compose.kmod import LIVE_MODULES, resolve_modules
from app.reporter import NullReporter
from tests.support.debian import busybox_static, kernel_tree

pytestmark = pytest.mark.benchmark
RUNS = 5


def ours(tree: Path, out: Path, level: int) -> None:
    with open_compressed_writer(out, Compression.ZSTD, level) as stream:
        write_tree(tree, None, stream, NullReporter())


def gnu(tree: Path, out: Path, level: int) -> None:
    # The same pipeline as a shell would run, without a shell.
    find = subprocess.Popen(["find", "."], cwd=tree, stdout=subprocess.PIPE)
    cpio = subprocess.Popen(
        ["cpio", "-o", "-H", "newc", "--quiet"], cwd=tree, stdin=find.stdout, stdout=subprocess.PIPE
    )
    assert find.stdout is not None and cpio.stdout is not None
    find.stdout.close()
    with open(out, "wb") as sink:
        zstd = subprocess.Popen(
            ["zstd", "-T0", f"-{level}", "-q", "-c"], stdin=cpio.stdout, stdout=sink
        )
        cpio.stdout.close()
        assert zstd.wait() == 0 and cpio.wait() == 0 and find.wait() == 0


def names_in(archive: Path) -> set[str]:
    data = subprocess.run(
        ["zstd", "-d", "-c", "-q", str(archive)], capture_output=True, check=True
    ).stdout
    listed = (
        subprocess.run(["cpio", "-it", "--quiet"], input=data, capture_output=True, check=True)
        .stdout.decode()
        .split("\n")
    )
    return {n.removeprefix("./") for n in listed if n and n != "."}


def compare(name: str, tree: Path, level: int, work: Path) -> float:
    contenders: dict[str, Callable[[Path, Path, int], None]] = {"livesmith": ours, "gnu": gnu}
    times: dict[str, list[float]] = {k: [] for k in contenders}
    outputs = {k: work / f"{name}-{k}.cpio.zst" for k in contenders}
    for key, run in contenders.items():  # warm the page cache, check the results agree
        run(tree, outputs[key], level)
    assert names_in(outputs["livesmith"]) == names_in(outputs["gnu"])
    for _ in range(RUNS):
        for key, run in contenders.items():
            start = time.perf_counter()
            run(tree, outputs[key], level)
            times[key].append(time.perf_counter() - start)
    median = {k: statistics.median(v) for k, v in times.items()}
    size = sum(f.stat().st_size for f in tree.rglob("*") if f.is_file() and not f.is_symlink())
    ratio = median["livesmith"] / median["gnu"]
    print(
        f"\n[initramfs bench] {name}: {size / 1e6:.1f} MB tree, zstd -{level}, "
        f"median of {RUNS}: livesmith {median['livesmith']:.2f} s "
        f"({outputs['livesmith'].stat().st_size / 1e6:.2f} MB), "
        f"find|cpio|zstd -T0 {median['gnu']:.2f} s "
        f"({outputs['gnu'].stat().st_size / 1e6:.2f} MB), ratio {ratio:.2f}x "
        f"(goal <= 1.10x)"
    )
    return ratio


@pytest.fixture(scope="module")
def live_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What an initramfs holds: the live module set (decompressed) and busybox."""
    _, mod_dir, version = kernel_tree()
    tree = tmp_path_factory.mktemp("live-tree")
    base = tree / ".livesmith/lib/modules" / version
    for module in resolve_modules(mod_dir, LIVE_MODULES):
        target = base / module.plain_relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(module.read())
    (tree / ".livesmith/bin").mkdir(parents=True)
    shutil.copy(busybox_static(), tree / ".livesmith/bin/busybox")
    return tree


def test_live_initramfs_tree(live_tree: Path, tmp_path: Path) -> None:
    compare("live modules + busybox", live_tree, 9, tmp_path)


def test_whole_kernel_package(tmp_path: Path) -> None:
    vmlinuz, _, _ = kernel_tree()
    package = vmlinuz.parents[1]  # the unpacked linux-image .deb, ~400 MB
    for level in (3, 9):
        compare("unpacked kernel package", package, level, tmp_path)


def test_full_build_initramfs_time(tmp_path: Path) -> None:
    """For the record: the whole stage (module resolution, cpio, zstd 9) end to end."""
    _, mod_dir, version = kernel_tree()
    spec = InitramfsSpec(
        busybox=busybox_static(),
        kernel_version=version,
        modules_dir=mod_dir,
        build_id="0123456789abcdef",
        label="BENCH",
        epoch=1_700_000_000,
    )
    times = []
    for _ in range(3):
        start = time.perf_counter()
        result = build_initramfs(spec, tmp_path / "initramfs.img", NullReporter())
        times.append(time.perf_counter() - start)
    print(
        f"\n[initramfs bench] build_initramfs ({len(result.modules)} modules, zstd 9): "
        f"median {statistics.median(times):.2f} s, {result.size / 1e6:.2f} MB"
    )
    # What was timed is a real initramfs: our /init, busybox and every module it chose.
    assert result.size == result.path.stat().st_size > 0
    names = names_in(result.path)
    assert {"init", ".livesmith/bin/busybox"} <= names
    base = f".livesmith/lib/modules/{version}/"
    packed = {
        Path(n).name.removesuffix(".ko").replace("-", "_")
        for n in names
        if n.startswith(base) and n.endswith(".ko")
    }
    assert packed == set(result.modules)
    assert {"isofs", "squashfs", "overlay"} <= packed
