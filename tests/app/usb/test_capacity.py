"""The fake-capacity check on real loop devices: genuine ones, and fakes made with FUSE."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.errors import Cancelled
from app.reporter import RecordingReporter
from app.usb.blockio import aligned_buffer, pread_full, pwrite_all
from app.usb.capacity import CheckMode, Failure, check_capacity
from tests.app.usb.capacity_support import GiB, MiB, fake_stick
from tests.app.usb.writer_support import loop_device, make_image, sparse_file

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="loop devices and FUSE need root")


def fill_random(node: str, length: int) -> None:
    """Random data over the first `length` bytes, written past the cache."""
    fd = os.open(node, os.O_WRONLY | os.O_DIRECT)
    try:
        buf = aligned_buffer(4 * MiB)
        for offset in range(0, length, 4 * MiB):
            buf[:] = os.urandom(4 * MiB)
            pwrite_all(fd, memoryview(buf)[: min(4 * MiB, length - offset)], offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def direct_digest(node: str, length: int) -> str:
    """SHA-256 of the first `length` bytes, read past the cache."""
    digest = hashlib.sha256()
    fd = os.open(node, os.O_RDONLY | os.O_DIRECT)
    try:
        buf = memoryview(aligned_buffer(4 * MiB))
        for offset in range(0, length, 4 * MiB):
            view = buf[: min(4 * MiB, length - offset)]
            assert pread_full(fd, view, offset) == len(view)
            digest.update(view)
    finally:
        os.close(fd)
    return digest.hexdigest()


def check(node: str, mode: CheckMode = CheckMode.QUICK, reporter=None):
    fd = os.open(node, os.O_RDWR | os.O_DIRECT)
    try:
        return check_capacity(fd, node, mode=mode, reporter=reporter)
    finally:
        os.close(fd)


def livesmith(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )


def test_a_genuine_stick_passes_with_its_data_unchanged(tmp_path: Path) -> None:
    with loop_device(sparse_file(tmp_path / "real.img", 256 * MiB)) as node:
        fill_random(node, 256 * MiB)
        before = direct_digest(node, 256 * MiB)
        result = check(node)
        assert result.genuine, result.summary()
        assert result.usable == result.claimed == 256 * MiB
        assert result.probes > 100
        assert direct_digest(node, 256 * MiB) == before
        assert "genuine" in result.summary()


def test_a_stick_that_wraps_around_is_caught_with_its_real_size(tmp_path: Path) -> None:
    # The common fake: 4 GiB claimed, 64 MiB real, high address bits ignored.
    with fake_stick(tmp_path, claimed=4 * GiB, stored=64 * MiB, mode="wrap") as node:
        fill_random(node, 64 * MiB)
        before = direct_digest(node, 64 * MiB)
        result = check(node)
        assert not result.genuine
        assert result.failure is Failure.WRAPS
        assert result.claimed == 4 * GiB
        assert result.usable == 64 * MiB
        assert "FAKE" in result.summary() and "64.0 MiB" in result.summary()
        # Non-destructive, also where test blocks shared one physical place.
        assert direct_digest(node, 64 * MiB) == before


def test_a_stick_that_wraps_by_a_size_that_is_no_power_of_two(tmp_path: Path) -> None:
    with fake_stick(tmp_path, claimed=4 * GiB, stored=48 * MiB, mode="wrap") as node:
        result = check(node)
        assert result.failure is Failure.WRAPS
        assert result.usable == 48 * MiB


def test_a_stick_that_loses_writes_is_caught_with_its_real_size(tmp_path: Path) -> None:
    with fake_stick(tmp_path, claimed=4 * GiB, stored=100 * MiB, mode="drop") as node:
        fill_random(node, 100 * MiB)
        before = direct_digest(node, 100 * MiB)
        result = check(node)
        assert result.failure is Failure.LOSES_WRITES
        assert result.usable == 100 * MiB
        assert direct_digest(node, 100 * MiB) == before


class CancelAfter(RecordingReporter):
    def __init__(self, polls: int) -> None:
        super().__init__()
        self.polls = polls

    def cancelled(self) -> bool:
        self.polls -= 1
        return self.polls < 0


def test_a_cancelled_check_puts_the_data_back(tmp_path: Path) -> None:
    with fake_stick(tmp_path, claimed=1 * GiB, stored=32 * MiB, mode="wrap") as node:
        fill_random(node, 32 * MiB)
        before = direct_digest(node, 32 * MiB)
        with pytest.raises(Cancelled):
            check(node, reporter=CancelAfter(40))  # in the middle of writing test blocks
        assert direct_digest(node, 32 * MiB) == before


@pytest.mark.parametrize(
    ("stored", "mode", "failure"),
    [
        (48 * MiB, "wrap", Failure.WRAPS),
        (77 * MiB, "wrap", Failure.WRAPS),
        (40 * MiB, "drop", Failure.LOSES_WRITES),
    ],
)
def test_the_full_check_finds_every_kind_of_fake(
    tmp_path: Path, stored: int, mode: str, failure: Failure
) -> None:
    with fake_stick(tmp_path, claimed=512 * MiB, stored=stored, mode=mode) as node:
        result = check(node, CheckMode.FULL)
        assert result.failure is failure
        assert result.usable == stored
        assert result.probes == 512 * MiB // 4096


def test_the_full_check_passes_a_genuine_stick(tmp_path: Path) -> None:
    with loop_device(sparse_file(tmp_path / "real.img", 64 * MiB)) as node:
        result = check(node, CheckMode.FULL)
        assert result.genuine and result.usable == 64 * MiB


def test_check_stick_command_reports_a_fake_and_fails(tmp_path: Path) -> None:
    with fake_stick(tmp_path, claimed=2 * GiB, stored=64 * MiB, mode="wrap") as node:
        out = livesmith("check-stick", node)
        assert out.returncode == 1, out.stderr
        assert "FAKE" in out.stdout and "64.0 MiB (67108864 bytes)" in out.stdout
        out = livesmith("check-stick", node, "--json")
        data = json.loads(out.stdout)
        assert data["genuine"] is False and data["usable"] == 64 * MiB
        assert data["failure"] == "wraps" and data["claimed"] == 2 * GiB


def test_check_stick_command_passes_a_genuine_stick(tmp_path: Path) -> None:
    with loop_device(sparse_file(tmp_path / "real.img", 64 * MiB)) as node:
        out = livesmith("check-stick", node)
        assert out.returncode == 0, out.stderr
        assert "genuine" in out.stdout


def test_full_check_shows_its_estimate_and_wants_confirmation(tmp_path: Path) -> None:
    with loop_device(sparse_file(tmp_path / "real.img", 64 * MiB)) as node:
        fill_random(node, 64 * MiB)
        before = direct_digest(node, 64 * MiB)
        out = livesmith("check-stick", node, "--full")
        assert out.returncode != 0
        assert "writes and reads all 64.0 MiB: about" in out.stderr
        assert "standard input is not a terminal" in out.stderr
        assert direct_digest(node, 64 * MiB) == before


def test_check_stick_refuses_a_file_and_a_partition(tmp_path: Path) -> None:
    out = livesmith("check-stick", str(sparse_file(tmp_path / "x.img", 8 * MiB)))
    assert out.returncode != 0 and "not a block device" in out.stderr


def test_write_with_capacity_check_refuses_an_image_larger_than_the_real_size(
    tmp_path: Path,
) -> None:
    image = tmp_path / "live.iso"
    make_image(image, 80 * MiB)
    with fake_stick(tmp_path, claimed=1 * GiB, stored=64 * MiB, mode="wrap") as node:
        fill_random(node, 64 * MiB)
        before = direct_digest(node, 64 * MiB)
        out = livesmith("write", str(image), node, "--yes", "--check-capacity")
        assert out.returncode != 0
        assert "FAKE" in out.stderr
        assert "is larger than what this fake stick really holds (67.1 MB, 67108864 bytes" in (
            out.stderr
        )
        assert "nothing was written" in out.stderr
        assert direct_digest(node, 64 * MiB) == before


def test_write_with_capacity_check_writes_what_fits(tmp_path: Path) -> None:
    image = tmp_path / "live.iso"
    data = make_image(image, 20 * MiB)
    with fake_stick(tmp_path, claimed=1 * GiB, stored=64 * MiB, mode="wrap") as node:
        out = livesmith("write", str(image), node, "--yes", "--check-capacity")
        assert out.returncode == 0, out.stderr
        assert "the image fits in the 67.1 MB the stick really holds" in out.stderr
        assert direct_digest(node, len(data)) == hashlib.sha256(data).hexdigest()
