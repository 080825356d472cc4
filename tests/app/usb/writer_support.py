"""Real loop devices and real images for the writer tests (root only)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import time
from array import array
from collections.abc import Iterator
from pathlib import Path

from app.reporter import RecordingReporter
from app.usb.target import Target, TargetKind

MiB = 1 << 20


def run(*args: str, input: str | None = None) -> str:
    out = subprocess.run(list(args), capture_output=True, text=True, input=input)
    assert out.returncode == 0, f"{args}: {out.stderr}"
    return out.stdout


@contextlib.contextmanager
def loop_device(backing: Path, *, read_only: bool = False, direct_io: bool = True) -> Iterator[str]:
    """`losetup --find --show` on `backing`; detached afterwards, whatever happened."""
    args = ["losetup", "--find", "--show", f"--direct-io={'on' if direct_io else 'off'}"]
    if read_only:
        args.append("--read-only")
    node = run(*args, str(backing)).strip()
    try:
        yield node
    finally:
        subprocess.run(["losetup", "-d", node], capture_output=True)


class LoopSlot:
    """A loop device name we hold; `replug` puts another file under the same name."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.ours = True

    def replug(self, backing: Path) -> None:
        """Detach, and attach `backing` under the same name: what the kernel does when a stick
        is pulled out and the next disk plugged in gets its freed name. Skips the test if
        another process takes the free loop device first (other tests may run alongside)."""
        import pytest

        run("losetup", "-d", self.node)
        self.ours = False
        for _ in range(50):  # udev's probe may hold it open a moment; the detach waits for it
            attached = subprocess.run(
                ["losetup", "--direct-io=on", self.node, str(backing)],
                capture_output=True,
                text=True,
            )
            if attached.returncode == 0:
                self.ours = True
                return
            time.sleep(0.05)
        pytest.skip(f"could not attach {backing.name} to {self.node}: {attached.stderr}")


@contextlib.contextmanager
def replugging_loop(backing: Path) -> Iterator[LoopSlot]:
    """A loop device on `backing` that the test can re-plug (`LoopSlot.replug`)."""
    slot = LoopSlot(run("losetup", "--find", "--show", "--direct-io=on", str(backing)).strip())
    try:
        yield slot
    finally:
        if slot.ours:
            subprocess.run(["losetup", "-d", slot.node], capture_output=True)


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where))
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def sparse_file(path: Path, size: int) -> Path:
    with open(path, "wb") as fh:
        fh.truncate(size)
    return path


def make_image(path: Path, size: int, *, compressible: bool = False) -> bytes:
    """Bytes with an MBR partition table (like a hybrid ISO), an odd tail included.

    Random by default; `compressible` numbers every 8-byte word (so a shifted
    or repeated block would still be caught) plus a little randomness, which `xz` packs fast.
    """
    if compressible:
        data = bytearray(array("Q", range(size // 8 + 1)).tobytes()[:size])
        data[MiB : MiB + 256 * 1024] = os.urandom(256 * 1024)
        path.write_bytes(bytes(data))
    else:
        # Random, but opening as an isohybrid MBR's boot code does: never like a
        # compressed image's magic.
        path.write_bytes(b"\x33\xed" + os.urandom(size - 2))
    run(
        "sfdisk",
        "-q",
        "--no-reread",
        "--no-tell-kernel",
        str(path),
        input="label: dos\nstart=2048, type=c\n",
    )
    data = path.read_bytes()
    assert data[510:512] == b"\x55\xaa"
    return data


def big_zero_image(path: Path, size: int = 1 << 30) -> Path:
    """A sparse image of `size` bytes, an MBR and then zeros: costs nothing to make and reads
    fast, so a cancelled write is cut short by the cancel, not by the source."""
    sparse_file(path, size)
    with open(path, "r+b") as fh:
        fh.seek(510)
        fh.write(b"\x55\xaa")
    return path


MARKER = b"untouched by the writer ".ljust(4096, b".")


def plant_markers(backing: Path, offsets: range) -> list[int]:
    """Write MARKER at each offset of a loop device's backing file (before attaching it)."""
    with open(backing, "r+b") as fh:
        for offset in offsets:
            fh.seek(offset)
            fh.write(MARKER)
    return list(offsets)


def overwritten_markers(node: str, offsets: list[int]) -> list[int]:
    """The offsets whose MARKER the device no longer holds (the writer got that far)."""
    return [offset for offset in offsets if device_bytes(node, len(MARKER), offset) != MARKER]


def compress(image: Path, kind: str) -> Path:
    """`xz`, `zstd` or `gzip` the image with the real tool, keeping the original."""
    tools = {
        "xz": ["xz", "-0", "-T1", "-k", "-f"],
        "zst": ["zstd", "-q", "-1", "-f", "-k"],
        "gz": ["gzip", "-1", "-k", "-f"],
    }
    run(*tools[kind], str(image))
    packed = image.with_name(f"{image.name}.{kind}")
    assert packed.exists()
    return packed


def device_bytes(node: str, length: int, offset: int = 0) -> bytes:
    """Read the device with O_DIRECT-free but cache-dropped reads (fresh open, no holders)."""
    with open(node, "rb") as fh:
        fh.seek(offset)
        return fh.read(length)


def sha256_of_device(node: str) -> str:
    with open(node, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def cmp_prefix(image: Path | bytes, node: str, length: int) -> None:
    """`cmp` the image (a path, or bytes through a temporary file) with the device's prefix."""
    run("cmp", "-n", str(length), str(image), node)


def devno_of(node: str) -> tuple[int, int]:
    rdev = os.stat(node).st_rdev
    return (os.major(rdev), os.minor(rdev))


def raw_block_target(node: str) -> Target:
    """A Target for `node` that skips the safety gate (to test the engine's own checks)."""
    return Target(Path(node), TargetKind.BLOCK, 0, 512, False, "test loop device", devno_of(node))


class CancelAt(RecordingReporter):
    """Asks to cancel once the write has passed `at` bytes; remembers when."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at
        self.cancelled_at: float | None = None
        self.written = 0  # the last progress of the write step: how far the write got

    def progress(self, done: int, total: int) -> None:
        super().progress(done, total)
        if self.steps[-1:] == ["write"]:
            self.written = done
        if done >= self.at and self.cancelled_at is None and self.steps[-1:] == ["write"]:
            self.cancelled_at = time.monotonic()
            self.cancel()


class ProgressByStep(RecordingReporter):
    """Remembers the last progress of every step."""

    def __init__(self) -> None:
        super().__init__()
        self.by_step: dict[str, tuple[int, int]] = {}

    def progress(self, done: int, total: int) -> None:
        super().progress(done, total)
        self.by_step[self.steps[-1] if self.steps else ""] = (done, total)


def host_system_disk() -> str | None:
    """The /dev node of the whole disk holding `/`, or None where `/` is on no block device
    (a container's overlay)."""
    from app.usb.sysfs import sys_path_of_devno
    from app.usb.target import filesystem_devno, is_partition

    devno = filesystem_devno("/")
    sys_path = sys_path_of_devno(devno) if devno else None
    if sys_path is None:
        return None
    if is_partition(sys_path):
        sys_path = sys_path.parent
    return f"/dev/{sys_path.name}"
