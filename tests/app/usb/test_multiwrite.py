"""Writing one image to several sticks at once, on real loop devices (root only)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.errors import DeviceError
from app.reporter import RecordingReporter
from app.usb.multiwrite import StickOutcome, write_many
from app.usb.source import open_image
from app.usb.target import resolve_target
from tests.app.usb.writer_support import (
    cmp_prefix,
    loop_device,
    make_image,
    sparse_file,
    tmpfs,
)
from tests.conftest import ROOT, needs_root

pytestmark = needs_root
MiB = 1 << 20


class Events:
    def __init__(self) -> None:
        self.steps: list[tuple[int, str]] = []
        self.progress: dict[int, tuple[int, int]] = {}
        self.done: dict[int, StickOutcome] = {}

    def stick_step(self, index: int, name: str) -> None:
        self.steps.append((index, name))

    def stick_progress(self, index: int, done: int, total: int) -> None:
        self.progress[index] = (done, total)

    def stick_done(self, index: int, outcome: StickOutcome) -> None:
        self.done[index] = outcome


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "live.iso"
    make_image(path, 40 * MiB + 2048)
    return path


@pytest.fixture
def dying_backing(tmp_path: Path):
    # A 64 MiB stick whose backing file sits on a 12 MiB tmpfs: it dies part-way.
    with tmpfs(tmp_path / "small", "12M") as where:
        yield sparse_file(where / "dying.img", 64 * MiB)


def test_two_good_sticks_verify_and_the_dying_one_is_named(
    tmp_path: Path, image: Path, dying_backing: Path
) -> None:
    good = [sparse_file(tmp_path / f"good{i}.img", 64 * MiB) for i in range(2)]
    with (
        loop_device(good[0]) as first,
        loop_device(good[1]) as second,
        loop_device(dying_backing, direct_io=False) as dying,
    ):
        targets = [resolve_target(node, image=image) for node in (first, dying, second)]
        events = Events()
        reporter = RecordingReporter()
        result = write_many(open_image(image), targets, reporter=reporter, events=events)
        outcomes = result.outcomes
        assert [o.target for o in outcomes] == [first, dying, second]
        assert outcomes[0].ok and outcomes[2].ok
        for outcome in (outcomes[0], outcomes[2]):
            assert outcome.result is not None and outcome.result.verified
        assert not outcomes[1].ok and outcomes[1].result is None
        assert isinstance(outcomes[1].error, DeviceError)
        assert dying in str(outcomes[1].error)
        assert [o.target for o in result.failed] == [dying]
        assert f"FAILED: {dying}" in result.summary()
        cmp_prefix(image, first, image.stat().st_size)
        cmp_prefix(image, second, image.stat().st_size)
        # Each stick had its own steps, progress and outcome.
        assert {(0, "write"), (0, "verify"), (2, "write"), (2, "verify"), (1, "write")} <= set(
            events.steps
        )
        assert events.progress[0][0] == events.progress[0][1] > 0
        assert set(events.done) == {0, 1, 2} and not events.done[1].ok
        assert any(dying in text for _, text in reporter.logs)


def livesmith(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )


def test_write_command_to_three_sticks_one_dying(
    tmp_path: Path, image: Path, dying_backing: Path
) -> None:
    good = [sparse_file(tmp_path / f"good{i}.img", 64 * MiB) for i in range(2)]
    with (
        loop_device(good[0]) as first,
        loop_device(dying_backing, direct_io=False) as dying,
        loop_device(good[1]) as second,
    ):
        out = livesmith("write", str(image), first, dying, second, "--yes")
        assert out.returncode == 1, out.stderr
        lines = out.stdout.splitlines()
        assert any(line.startswith(f"{first}: written and verified") for line in lines)
        assert any(line.startswith(f"{second}: written and verified") for line in lines)
        assert any(line.startswith(f"{dying}: FAILED") for line in lines), out.stdout
        assert not any(line.startswith(f"{dying}: written") for line in lines)
        assert f"2 of 3 sticks written; FAILED: {dying}" in out.stdout
        assert f"<== {dying}: FAILED" in out.stderr
        cmp_prefix(image, first, image.stat().st_size)
        cmp_prefix(image, second, image.stat().st_size)


def test_write_command_to_two_sticks(tmp_path: Path, image: Path) -> None:
    backing = [sparse_file(tmp_path / f"s{i}.img", 64 * MiB) for i in range(2)]
    with loop_device(backing[0]) as first, loop_device(backing[1]) as second:
        out = livesmith("write", str(image), first, second, "--yes")
        assert out.returncode == 0, out.stderr
        assert "2 of 3" not in out.stdout and "2 of 2 sticks written" in out.stdout
        for node in (first, second):
            cmp_prefix(image, node, image.stat().st_size)


def test_a_stick_too_small_is_left_out_and_the_others_written(tmp_path: Path, image: Path) -> None:
    with (
        loop_device(sparse_file(tmp_path / "big.img", 64 * MiB)) as big,
        loop_device(sparse_file(tmp_path / "small.img", 16 * MiB)) as small,
    ):
        out = livesmith("write", str(image), small, big, "--yes")
        assert out.returncode == 1, out.stderr
        assert f"Left out: {small}" in out.stderr and "does not fit" in out.stderr
        assert f"{small}: NOT WRITTEN" in out.stdout
        assert f"{big}: written and verified" in out.stdout
        cmp_prefix(image, big, image.stat().st_size)


def test_the_same_stick_twice_is_refused(tmp_path: Path, image: Path) -> None:
    with loop_device(sparse_file(tmp_path / "s.img", 64 * MiB)) as node:
        out = livesmith("write", str(image), node, node, "--yes")
        assert out.returncode == 3 and "is named twice" in out.stderr
