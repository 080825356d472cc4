"""Restoring through UDisks2 (OpenForRestore, Block.Format, CreatePartitionAndFormat), the way
a desktop user's restore goes, on the real daemons of tests/app/usb/test_udisks.py (a private
system bus, udevd and udisksd, started as root; a daemon that does not start fails).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import EXIT_FAILURE
from app.reporter import RecordingReporter
from app.usb.errors import DeviceChanged
from app.usb.restore import (
    PHASE_CHECK,
    PHASE_FORMAT,
    PHASE_PARTITION,
    PHASE_WIPE,
    FileSystem,
    plan_restore,
    restore_disk,
)
from tests.app.usb.restore_support import (
    assert_restored,
    drop_partitions,
    make_hybrid_iso,
    signatures,
)
from tests.app.usb.test_udisks import loop_device, udisks_bus  # noqa: F401 (fixture)
from tests.app.usb.writer_support import MiB, replugging_loop, sha256_of_device, sparse_file
from tests.conftest import ROOT, is_root

pytestmark = [
    pytest.mark.skipif(not is_root(), reason="starting udevd and udisksd needs root"),
    pytest.mark.root,
]


@pytest.fixture(scope="module")
def hybrid_iso(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_hybrid_iso(tmp_path_factory.mktemp("hybrid"))


@pytest.fixture
def stick(hybrid_iso: Path, tmp_path: Path, udisks_bus: str) -> Iterator[str]:  # noqa: F811
    backing = tmp_path / "stick.img"
    shutil.copyfile(hybrid_iso, backing)
    with loop_device(backing, udisks_bus) as node:
        # A loop device keeps partitions added by BLKPG when it is detached; one inherited
        # from an earlier run would keep UDisks2's Format waiting for an empty disk (a real
        # stick's old partitions go when UDisks2 has the kernel re-read the wiped table).
        drop_partitions(node)
        try:
            yield node
        finally:
            drop_partitions(node)


@pytest.mark.parametrize(
    ("fs", "label"),
    [(FileSystem.EXFAT, "Mein Stick"), (FileSystem.FAT32, "OLD RADIO"), (FileSystem.EXT4, "daten")],
)
def test_udisks_restores_a_hybrid_iso_stick(
    stick: str,
    udisks_bus: str,  # noqa: F811
    fs: FileSystem,
    label: str,
    tmp_path: Path,
) -> None:
    assert {"iso9660", "dos", "gpt"} <= {t for _o, t in signatures(stick)}
    reporter = RecordingReporter()
    plan = plan_restore(stick, fs, label, via="udisks")
    result = restore_disk(plan, reporter=reporter, via="udisks", bus=udisks_bus)
    assert result.via == "udisks" and result.label == label
    assert result.partition == f"{stick}p1"
    assert reporter.steps == [PHASE_WIPE, PHASE_PARTITION, PHASE_FORMAT, PHASE_CHECK]
    if fs is FileSystem.FAT32 and result.fs_version != "FAT32":
        # UDisks2 before 2.10 takes no mkfs options: mkfs.vfat picks FAT16 for 63 MiB.
        assert result.fs_version == "FAT16" and "FAT16" in result.notes[0]
    assert_restored(stick, result.partition, fs, label, tmp_path)


def test_udisks_refuses_a_swapped_stick_before_writing(
    hybrid_iso: Path,
    udisks_bus: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    chosen = tmp_path / "chosen.img"
    shutil.copyfile(hybrid_iso, chosen)
    other = sparse_file(tmp_path / "other.img", 64 * MiB)
    with replugging_loop(chosen) as slot:
        plan = plan_restore(slot.node, FileSystem.EXFAT, "X", via="udisks")
        slot.replug(other)
        before = sha256_of_device(slot.node)
        with pytest.raises(DeviceChanged, match="nothing was written"):
            restore_disk(plan, via="udisks", bus=udisks_bus)
        assert sha256_of_device(slot.node) == before


def test_an_unprivileged_user_goes_through_udisks_and_is_refused_by_it(
    stick: str,
    udisks_bus: str,  # noqa: F811
) -> None:
    """`livesmith restore` as nobody: not root, so UDisks2 is asked (on our bus, where no
    polkit agent says yes); its refusal is the error, and the stick is left as it was."""
    if udisks_bus == "SYSTEM":
        pytest.skip("the host's polkit decides for the system UDisks2; not testable here")
    before = sha256_of_device(stick)
    out = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            sys.executable,
            "-P",
            "-m",
            "app",
            "restore",
            stick,
            "--label",
            "X",
            "--yes",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": udisks_bus, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == EXIT_FAILURE, out.stdout + out.stderr
    assert "not allowed to open the drive for writing" in out.stderr
    assert sha256_of_device(stick) == before
