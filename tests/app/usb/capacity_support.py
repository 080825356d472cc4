"""A fake-capacity stick for tests: a loop device over tests/support/fake_stick.py's FUSE file."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app.usb.writer_support import loop_device

FAKE_STICK = Path(__file__).resolve().parents[2] / "support" / "fake_stick.py"
# fusepy is Debian's python3-fusepy, for the system Python (packaging/deps/apt-test.txt).
SYSTEM_PYTHON = "/usr/bin/python3"
MiB = 1 << 20
GiB = 1 << 30


@contextlib.contextmanager
def fake_stick(
    where: Path, *, claimed: int, stored: int, mode: str, write_rate: int = 0, name: str = "fake"
) -> Iterator[str]:
    """A block device that claims `claimed` bytes and keeps `stored` (wrap or drop); with
    `write_rate` (bytes/s) it writes that slowly. `name` tells several apart in `where`."""
    if not os.path.exists("/dev/fuse") or shutil.which("fusermount") is None:
        pytest.skip("needs /dev/fuse and fusermount (package fuse)")
    mountpoint = where / f"{name}-stick"
    mountpoint.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(
        [
            SYSTEM_PYTHON,
            str(FAKE_STICK),
            str(mountpoint),
            str(claimed),
            str(stored),
            mode,
            str(write_rate),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        image = mountpoint / "stick.img"
        deadline = time.monotonic() + 30
        while not image.exists():
            if server.poll() is not None:
                raise RuntimeError(f"the FUSE fake stick did not start: {server.stderr.read()}")
            if time.monotonic() > deadline:
                raise RuntimeError("the FUSE fake stick did not appear within 30 s")
            time.sleep(0.05)
        # No direct I/O on the loop device: the FUSE file is opened with direct_io instead,
        # so every read reaches the fake stick and none comes from a cache of the file.
        with loop_device(image, direct_io=False) as node:
            yield node
    finally:
        subprocess.run(["fusermount", "-u", "-z", str(mountpoint)], capture_output=True)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
