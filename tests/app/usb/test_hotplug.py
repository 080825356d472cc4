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
    """What the monitor reported, with times. Other test sessions may attach and detach
    loop devices meanwhile: their events arrive too, so checks pick out our own device."""

    def __init__(self) -> None:
        self.listings: list[tuple[float, list[Drive]]] = []
        self.removals: list[tuple[float, str]] = []
        self.errors: list[BaseException] = []
        self.cond = threading.Condition()

    @property
    def changes(self) -> list[list[Drive]]:
        return [drives for _, drives in self.listings]

    def on_change(self, drives: list[Drive]) -> None:
        with self.cond:
            self.listings.append((time.monotonic(), drives))
            self.cond.notify_all()

    def on_removed(self, devnode: str) -> None:
        with self.cond:
            self.removals.append((time.monotonic(), devnode))
            self.cond.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        # Generous: other sessions' loop devices keep restarting the debounce.
        with self.cond:
            assert self.cond.wait_for(predicate, timeout), (
                f"timed out: {len(self.listings)} changes, removals {self.removals}, "
                f"errors {self.errors}"
            )

    def removed_after(self, node: str, since: float) -> float | None:
        return next((t for t, n in self.removals if n == node and t >= since), None)

    def listings_after(self, since: float) -> list[list[Drive]]:
        return [drives for t, drives in self.listings if t > since]


@needs_root
def test_a_loop_device_attached_and_detached(tmp_path: Path) -> None:
    backing = tmp_path / "stick.img"
    with open(backing, "wb") as f:
        f.truncate(24 * MiB)
    rec = Recorder()
    debounce = 0.3
    monitor = DriveMonitor(
        rec.on_change,
        rec.on_removed,
        include_excluded=True,
        debounce=debounce,
        on_error=rec.errors.append,
    )
    with monitor:
        rec.wait(lambda: len(rec.listings) >= 1)
        attached_at = time.monotonic()
        node = subprocess.run(
            ["losetup", "--find", "--show", str(backing)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        try:

            def listed() -> list[Drive]:
                return [
                    d
                    for drives in rec.listings_after(attached_at)
                    for d in drives
                    if d.devnode == node and d.size == 24 * MiB
                ]

            rec.wait(lambda: bool(listed()))
            ours = listed()[0]
            assert rec.removed_after(node, attached_at) is None
        finally:
            detached_at = time.monotonic()
            subprocess.run(["losetup", "-d", node], check=True)
        rec.wait(lambda: rec.removed_after(node, detached_at) is not None)
        removed_at = rec.removed_after(node, detached_at)
        assert removed_at is not None
        rec.wait(lambda: bool(rec.listings_after(removed_at)))
        (relisted_at, drives), *_ = [(t, d) for t, d in rec.listings if t > removed_at]
        # Gone from the list (its name may be empty, or already another session's device).
        assert not any(
            d.devnode == node and d.size == ours.size and d.diskseq == ours.diskseq for d in drives
        ), drives
        # Reported at once, not with the re-listing: that one waits a whole quiet period
        # after the event that reported the removal. (No upper limit: a loaded machine
        # may deliver the event late, but never in the wrong order.)
        assert relisted_at - removed_at >= debounce
    assert rec.errors == []


@needs_root
def test_mounting_a_filesystem_updates_the_list(tmp_path: Path) -> None:
    # Mounting makes no uevent: the monitor watches the mount table as well.
    backing = tmp_path / "fs.img"
    with open(backing, "wb") as f:
        f.truncate(16 * MiB)
    subprocess.run(["mkfs.ext4", "-q", str(backing)], check=True)
    node = subprocess.run(
        ["losetup", "--find", "--show", str(backing)], check=True, capture_output=True, text=True
    ).stdout.strip()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    rec = Recorder()
    try:
        with DriveMonitor(rec.on_change, include_excluded=True, debounce=0.1):
            rec.wait(lambda: len(rec.changes) >= 1)
            subprocess.run(["mount", node, str(mnt)], check=True)
            try:
                rec.wait(
                    lambda: any(d.devnode == node and d.mounted_partitions for d in rec.changes[-1])
                )
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
