"""Restoring a stick that holds a hybrid ISO to a normal drive, on real loop devices with the
real tools (sfdisk, partx, mkfs.exfat, mkfs.vfat, mke2fs, blkid, wipefs), as root.

The label rules and the refusals that need no device run for everyone.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.errors import InputError, ValidationError
from app.reporter import RecordingReporter
from app.usb.errors import DeviceBusy, DeviceChanged, DeviceNotAllowed
from app.usb.restore import (
    EXFAT_MAX,
    PHASE_CHECK,
    PHASE_FORMAT,
    PHASE_PARTITION,
    PHASE_WIPE,
    FileSystem,
    InvalidLabel,
    RestoreResult,
    check_label,
    label_problem,
    plan_restore,
    restore_disk,
)
from app.usb.target import Mount
from tests.app.usb.restore_support import (
    assert_restored,
    hybrid_stick,
    make_hybrid_iso,
    signatures,
)
from tests.app.usb.test_target import mounted, partitioned_loop
from tests.app.usb.writer_support import (
    MiB,
    device_bytes,
    devno_of,
    host_system_disk,
    replugging_loop,
    run,
    sha256_of_device,
    sparse_file,
)
from tests.conftest import needs_root

# --- labels (no device) ----------------------------------------------------------------------


def test_fat_labels_are_upper_cased_and_kept_to_11_plain_characters() -> None:
    assert check_label(FileSystem.FAT32, "my stick") == "MY STICK"
    assert check_label(FileSystem.FAT32, "A" * 11) == "A" * 11
    assert check_label(FileSystem.FAT32, "") == ""  # no label
    with pytest.raises(InvalidLabel, match=r"12 characters, at most 11 fit") as long:
        check_label(FileSystem.FAT32, "twelve chars")
    assert "nothing was written" in str(long.value)
    assert "A-Z, 0-9" in str(long.value)  # the rules come with the refusal
    for bad in ("a:b", "a.b", "a*b", "grüße", 'a"b', "a/b", "a+b"):
        with pytest.raises(InvalidLabel, match="cannot be used for FAT32: it holds"):
            check_label(FileSystem.FAT32, bad)


def test_exfat_labels_count_utf16_units() -> None:
    assert check_label(FileSystem.EXFAT, "Mein Stick") == "Mein Stick"  # case kept
    assert check_label(FileSystem.EXFAT, "Grüße €") == "Grüße €"
    assert check_label(FileSystem.EXFAT, "a" * EXFAT_MAX) == "a" * EXFAT_MAX
    # An emoji outside the BMP takes two UTF-16 units.
    assert check_label(FileSystem.EXFAT, "\U0001f600" * 5 + "a") == "\U0001f600" * 5 + "a"
    with pytest.raises(InvalidLabel, match="takes 12 UTF-16 units, at most 11 fit"):
        check_label(FileSystem.EXFAT, "\U0001f600" * 6)
    with pytest.raises(InvalidLabel, match="takes 12 UTF-16 units"):
        check_label(FileSystem.EXFAT, "a" * 12)
    for bad in ("a:b", "a?", "<x>", "a|b", "a\\b", "a/b"):
        with pytest.raises(InvalidLabel, match="for exFAT: it holds"):
            check_label(FileSystem.EXFAT, bad)


def test_ext4_labels_count_utf8_bytes() -> None:
    assert check_label(FileSystem.EXT4, "a" * 16) == "a" * 16
    assert check_label(FileSystem.EXT4, "Linux: Ä/ö") == "Linux: Ä/ö"
    with pytest.raises(InvalidLabel, match="takes 17 bytes in UTF-8, at most 16 fit"):
        check_label(FileSystem.EXT4, "Ä" * 8 + "a")


@pytest.mark.parametrize("fs", list(FileSystem))
def test_spaces_around_and_control_characters_are_refused(fs: FileSystem) -> None:
    for bad in (" lead", "trail ", "tab\there", "nl\nx", "del\x7f"):
        with pytest.raises(InvalidLabel):
            check_label(fs, bad)
    assert label_problem(fs, "OK") is None
    assert label_problem(fs, " x") == (
        f"This label cannot be used for {fs.title}: it begins or ends with a space."
    )
    assert issubclass(InvalidLabel, InputError)  # the CLI's exit status 3


def test_a_missing_mkfs_program_names_its_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    real_which = shutil.which

    def which(name: str, *args: object, **kwargs: object) -> str | None:
        return None if name == "mkfs.exfat" else real_which(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(shutil, "which", which)
    with pytest.raises(ValidationError) as refused:
        plan_restore("/dev/null", FileSystem.EXFAT, "X", via="direct")
    assert "mkfs.exfat" in str(refused.value)
    assert "sudo apt-get install exfatprogs" in str(refused.value)
    with pytest.raises(ValidationError, match="apt-get install exfatprogs"):
        plan_restore("/dev/null", FileSystem.EXFAT, "X", via="udisks")


def test_every_program_a_restore_runs_is_a_run_time_dependency() -> None:
    from app.tools import DEBIAN_PACKAGES
    from app.usb.restore import tools_needed
    from tests.conftest import ROOT

    listed = {
        line.split("#")[0].strip()
        for line in (ROOT / "packaging/deps/apt-run.txt").read_text().splitlines()
    }
    for fs in FileSystem:
        for tool in tools_needed(fs, "direct"):
            package = DEBIAN_PACKAGES[tool]
            assert package in listed or package == "util-linux", (tool, package)


def test_a_regular_file_is_not_a_drive(tmp_path: Path) -> None:
    image = sparse_file(tmp_path / "disk.img", 64 * MiB)
    with pytest.raises(DeviceNotAllowed, match="is not a drive"):
        plan_restore(image, FileSystem.EXFAT, "X")
    assert image.read_bytes() == bytes(64 * MiB)


def test_the_result_round_trips_through_json() -> None:
    result = RestoreResult(
        "/dev/sdb", "/dev/sdb1", "fat32", "FAT32", "STICK", 99, 100, 1.5, "direct", ("n",)
    )
    assert RestoreResult.from_json(result.to_json()) == result
    assert "99.0% of the drive" in result.summary()
    assert "labelled 'STICK'" in result.summary()


# --- real sticks (root) ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def hybrid_iso(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_hybrid_iso(tmp_path_factory.mktemp("hybrid"))


@pytest.fixture
def stick(hybrid_iso: Path, tmp_path: Path) -> Iterator[str]:
    with hybrid_stick(hybrid_iso, tmp_path / "stick.img") as node:
        yield node


LABELS = {
    FileSystem.EXFAT: "Mein Stick",
    FileSystem.FAT32: "live stick",
    FileSystem.EXT4: "Daten ÄÖÜ",
}


@needs_root
@pytest.mark.root
@pytest.mark.parametrize("fs", list(FileSystem))
def test_a_hybrid_iso_stick_becomes_one_partition_of_the_asked_file_system(
    stick: str, fs: FileSystem, tmp_path: Path
) -> None:
    before = {t for _o, t in signatures(stick)}
    assert {"iso9660", "dos", "gpt"} <= before
    reporter = RecordingReporter()
    plan = plan_restore(stick, fs, LABELS[fs], via="direct")
    result = restore_disk(plan, reporter=reporter, via="direct")
    label = LABELS[fs].upper() if fs is FileSystem.FAT32 else LABELS[fs]
    assert result.label == label and result.fs == fs.value and result.via == "direct"
    assert reporter.steps == [PHASE_WIPE, PHASE_PARTITION, PHASE_FORMAT, PHASE_CHECK]
    if fs is FileSystem.FAT32:
        assert result.fs_version == "FAT32" and not result.notes
    assert result.partition_size >= 0.95 * result.device_size
    assert_restored(stick, result.partition, fs, label, tmp_path)


@needs_root
@pytest.mark.root
def test_a_mounted_stick_is_refused_and_left_untouched(tmp_path: Path) -> None:
    with partitioned_loop(tmp_path) as (disk, p1, _p2):
        with mounted(p1, tmp_path / "mnt"):
            before = ends_of(disk)  # a mounted ext4 updates its own superblock: not compared
            with pytest.raises(DeviceBusy, match="has mounted partitions"):
                plan_restore(disk, FileSystem.EXFAT, "X")
        # Mounted after it was planned (the desktop mounted it while the user confirmed):
        plan = plan_restore(disk, FileSystem.EXFAT, "X")
        with mounted(p1, tmp_path / "mnt"):
            with pytest.raises(DeviceBusy, match="has mounted partitions"):
                restore_disk(plan, via="direct")
            assert ends_of(disk) == before
        assert signatures(disk) == [(0x1FE, "dos")]


def ends_of(node: str) -> tuple[bytes, bytes]:
    """What a restore overwrites first: the partition table's MiB and the last MiB (the
    ext4 of partition 1, from 1 MiB on, changes by itself while mounted)."""
    size = int(run("blockdev", "--getsize64", node))
    return device_bytes(node, MiB), device_bytes(node, MiB, size - MiB)


@needs_root
@pytest.mark.root
def test_a_bad_label_is_refused_before_anything_is_written(stick: str) -> None:
    before = sha256_of_device(stick)
    with pytest.raises(InvalidLabel, match="nothing was written"):
        plan_restore(stick, FileSystem.FAT32, "no:colons")
    assert sha256_of_device(stick) == before


@needs_root
@pytest.mark.root
def test_the_system_disk_is_refused() -> None:
    disk = host_system_disk()
    if disk is None:
        pytest.skip("/ is on no block device here (container overlay)")
    with pytest.raises(DeviceNotAllowed, match=r"holds the running system: .* mounted at /$"):
        plan_restore(disk, FileSystem.EXFAT, "X")


@needs_root
@pytest.mark.root
@pytest.mark.parametrize("point", ["/", "/boot/efi", "/home"])
def test_a_disk_holding_a_system_mount_is_refused(tmp_path: Path, point: str) -> None:
    with partitioned_loop(tmp_path) as (disk, _p1, p2):
        before = sha256_of_device(disk)
        with pytest.raises(DeviceNotAllowed, match=f"{p2} is mounted at {point}$"):
            plan_restore(disk, FileSystem.EXT4, "X", mounts=[Mount(devno_of(p2), point, p2)])
        assert sha256_of_device(disk) == before


@needs_root
@pytest.mark.root
def test_a_stick_swapped_after_it_was_chosen_is_refused_and_left_alone(
    hybrid_iso: Path, tmp_path: Path
) -> None:
    chosen = tmp_path / "chosen.img"
    shutil.copyfile(hybrid_iso, chosen)
    other = sparse_file(tmp_path / "other.img", 64 * MiB)
    with open(other, "r+b") as fh:
        fh.write(b"someone else's stick".ljust(4096, b"."))
    with replugging_loop(chosen) as slot:
        plan = plan_restore(slot.node, FileSystem.EXFAT, "X")
        slot.replug(other)  # the next stick gets the freed name
        before = sha256_of_device(slot.node)
        with pytest.raises(DeviceChanged, match="is now a different drive.*nothing was written"):
            restore_disk(plan, via="direct")
        assert sha256_of_device(slot.node) == before
    assert chosen.read_bytes() == hybrid_iso.read_bytes()


@needs_root
@pytest.mark.root
def test_a_cancel_before_the_first_write_changes_nothing(stick: str) -> None:
    before = sha256_of_device(stick)
    reporter = RecordingReporter()
    reporter.cancel()
    plan = plan_restore(stick, FileSystem.EXFAT, "X")
    started = time.monotonic()
    with pytest.raises(Exception, match="cancelled"):
        restore_disk(plan, reporter=reporter, via="direct")
    assert time.monotonic() - started < 5
    assert reporter.steps == [] and sha256_of_device(stick) == before
