"""DriveMonitor against the real kernel: loop devices coming and going, a mount appearing.

Loop devices are never offered, so the monitor lists with include_excluded to see them.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from app.usb.drives import Drive
from app.usb.hotplug import DriveMonitor
from tests.conftest import needs_root

MiB = 1024 * 1024


class Recorder:
    def __init__(self) -> None:
        self.changes: list[list[Drive]] = []
        self.removals: list[tuple[float, str]] = []
        self.errors: list[BaseException] = []
        self.cond = threading.Condition()

    def on_change(self, drives: list[Drive]) -> None:
        with self.cond:
            self.changes.append(drives)
            self.cond.notify_all()

    def on_removed(self, devnode: str) -> None:
        with self.cond:
            self.removals.append((time.monotonic(), devnode))
            self.cond.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, timeout), \
                f"timed out: {len(self.changes)} changes, removals {self.removals}, " \
                f"errors {self.errors}"

    def sizes(self, node: str) -> list[int]:
        return [d.size for drives in self.changes for d in drives if d.devnode == node]


@needs_root
def test_a_loop_device_attached_and_detached(tmp_path: Path) -> None:
    backing = tmp_path / "stick.img"
    with open(backing, "wb") as f:
        f.truncate(24 * MiB)
    rec = Recorder()
    monitor = DriveMonitor(rec.on_change, rec.on_removed, include_excluded=True,
                           debounce=0.2, on_error=rec.errors.append)
    with monitor:
        rec.wait(lambda: len(rec.changes) >= 1)
        node = subprocess.run(["losetup", "--find", "--show", str(backing)], check=True,
                              capture_output=True, text=True).stdout.strip()
        try:
            rec.wait(lambda: 24 * MiB in rec.sizes(node))
            assert rec.removals == []
        finally:
            subprocess.run(["losetup", "-d", node], check=True)
        detached_at = time.monotonic()
        rec.wait(lambda: any(n == node for _, n in rec.removals))
        removed_at = next(t for t, n in rec.removals if n == node)
        assert removed_at - detached_at < 1.0  # at once, before the debounced re-listing
        rec.wait(lambda: rec.sizes(node)[-1:] == [0])
    assert rec.errors == []


@needs_root
def test_mounting_a_filesystem_updates_the_list(tmp_path: Path) -> None:
    # Mounting makes no uevent: the monitor watches the mount table as well.
    backing = tmp_path / "fs.img"
    with open(backing, "wb") as f:
        f.truncate(16 * MiB)
    subprocess.run(["mkfs.ext4", "-q", str(backing)], check=True)
    node = subprocess.run(["losetup", "--find", "--show", str(backing)], check=True,
                          capture_output=True, text=True).stdout.strip()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    rec = Recorder()
    try:
        with DriveMonitor(rec.on_change, include_excluded=True, debounce=0.1):
            rec.wait(lambda: len(rec.changes) >= 1)
            subprocess.run(["mount", node, str(mnt)], check=True)
            try:
                rec.wait(lambda: any(d.devnode == node and d.mounted_partitions
                                     for d in rec.changes[-1]))
                (drive,) = [d for d in rec.changes[-1] if d.devnode == node]
                assert drive.mounted_partitions == ((node, str(mnt)),)
            finally:
                subprocess.run(["umount", str(mnt)], check=True)
    finally:
        subprocess.run(["losetup", "-d", node], check=True)


def test_start_twice_is_an_error() -> None:
    monitor = DriveMonitor(lambda drives: None)
    with monitor, pytest.raises(RuntimeError):
        monitor.start()
