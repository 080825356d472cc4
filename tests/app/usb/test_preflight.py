"""The shared path to a write: gate a target, list and unmount its filesystems, write."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from app.reporter import RecordingReporter
from app.usb.errors import DeviceBusy, DeviceTooSmall
from app.usb.preflight import (
    PHASE_UNMOUNT,
    check_target,
    read_image_facts,
    unmount_partitions,
    write_task,
)
from tests.app.usb.test_target import mounted, partitioned_loop
from tests.app.usb.writer_support import MiB, cmp_prefix, make_image
from tests.conftest import needs_root

pytestmark = [needs_root, pytest.mark.root]


def test_mounted_partitions_are_listed_then_unmounted_and_the_write_lands(tmp_path: Path) -> None:
    image = tmp_path / "live.iso"
    make_image(image, 8 * MiB)
    facts = read_image_facts(image, RecordingReporter())
    with partitioned_loop(tmp_path) as (node, p1, _p2), mounted(p1, tmp_path / "mnt") as mnt:
        preflight = check_target(node, facts.source)
        assert preflight.mounted == ((p1, str(mnt)),)
        reporter = RecordingReporter()
        result = write_task(facts.source, preflight, verify=True, force=True)(reporter)
        assert reporter.steps[0] == PHASE_UNMOUNT
        assert not os.path.ismount(mnt)
        assert result.verified
        cmp_prefix(image, node, image.stat().st_size)


def test_a_busy_filesystem_is_a_device_error_naming_partition_and_mount_point(
    tmp_path: Path,
) -> None:
    image = tmp_path / "live.iso"
    make_image(image, 4 * MiB)
    facts = read_image_facts(image, RecordingReporter())
    with partitioned_loop(tmp_path) as (node, p1, _p2), mounted(p1, tmp_path / "mnt") as mnt:
        # A process working inside the filesystem keeps it busy: umount must fail.
        holder = subprocess.Popen(["sleep", "60"], cwd=mnt)
        try:
            preflight = check_target(node, facts.source)
            with pytest.raises(DeviceBusy) as caught:
                unmount_partitions(preflight)
            text = str(caught.value)
            assert p1 in text and str(mnt) in text and "could not be unmounted" in text
            assert os.path.ismount(mnt)  # nothing was written, nothing else was touched
        finally:
            holder.kill()
            holder.wait()


def test_an_image_larger_than_the_device_is_refused_before_anything_is_unmounted(
    tmp_path: Path,
) -> None:
    image = tmp_path / "big.iso"
    make_image(image, 80 * MiB)  # the loop disk has 64 MiB
    facts = read_image_facts(image, RecordingReporter())
    with partitioned_loop(tmp_path) as (node, p1, _p2), mounted(p1, tmp_path / "mnt") as mnt:
        with pytest.raises(DeviceTooSmall) as caught:
            check_target(node, facts.source)
        assert node in str(caught.value) and "nothing was written" in str(caught.value)
        assert os.path.ismount(mnt)
