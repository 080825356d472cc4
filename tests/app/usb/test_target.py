"""The target safety gate, on real files, real loop devices and the host's own system disk."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.usb.errors import DeviceBusy, DeviceNotAllowed, DeviceNotFound, DeviceReadOnly
from app.usb.sysfs import sys_path_of_devno
from app.usb.target import (
    Mount,
    Swap,
    TargetKind,
    disk_family,
    filesystem_devno,
    human_size,
    mounted_partitions,
    parse_mountinfo,
    parse_swaps,
    read_swaps,
    resolve_target,
)
from tests.app.usb.writer_support import host_system_disk
from tests.conftest import is_root, needs_root

MiB = 1024 * 1024


def run(*args: str) -> str:
    out = subprocess.run(list(args), capture_output=True, text=True)
    assert out.returncode == 0, f"{args}: {out.stderr}"
    return out.stdout


@contextlib.contextmanager
def loop_device(backing: Path, *, read_only: bool = False) -> Iterator[str]:
    args = ["losetup", "--find", "--show", "--direct-io=on"]
    if read_only:
        args.append("--read-only")
    node = run(*args, str(backing)).strip()
    try:
        yield node
    finally:
        subprocess.run(["losetup", "-d", node], capture_output=True)


def devno_of(node: str) -> tuple[int, int]:
    rdev = os.stat(node).st_rdev
    return (os.major(rdev), os.minor(rdev))


@contextlib.contextmanager
def partitioned_loop(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """A loop device with two partitions (p1 ext4), whatever the kernel's partition parsers.

    The test kernel may have no partition-table parsers, so `losetup -P` alone finds
    nothing; `partx -a` reads the table in user space and adds the partitions by ioctl.
    """
    backing = tmp_path / "disk.img"
    with open(backing, "wb") as f:
        f.truncate(64 * MiB)
    subprocess.run(
        ["sfdisk", "-q", str(backing)],
        input="label: dos\n,32M,L\n,,L\n",
        text=True,
        check=True,
        capture_output=True,
    )
    with loop_device(backing) as node:
        # Partitions another run left on this (then detached) loop device go first.
        subprocess.run(["partx", "-d", node], capture_output=True)
        run("partx", "-a", node)
        p1, p2 = f"{node}p1", f"{node}p2"
        assert Path(p1).exists() and Path(p2).exists()
        run("mkfs.ext4", "-q", p1)
        try:
            yield node, p1, p2
        finally:
            subprocess.run(["partx", "-d", node], capture_output=True)


@contextlib.contextmanager
def mounted(node: str, where: Path) -> Iterator[Path]:
    where.mkdir(exist_ok=True)
    run("mount", node, str(where))
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], capture_output=True)


# ---------------------------------------------------------------- files


def test_existing_file_is_a_file_target(tmp_path: Path) -> None:
    target_file = tmp_path / "vm.img"
    target_file.write_bytes(b"x" * 4096)
    target = resolve_target(target_file)
    assert target.kind is TargetKind.FILE
    assert target.path == target_file and target.size == 4096
    assert target.logical_sector == 512 and target.devno is None
    assert target.description == "file" and not target.read_only


def test_new_file_in_existing_directory_is_a_file_target(tmp_path: Path) -> None:
    target = resolve_target(str(tmp_path / "new.img"))
    assert target.kind is TargetKind.FILE and target.size == 0
    assert not (tmp_path / "new.img").exists()  # resolving creates nothing


def test_new_file_in_missing_directory_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(DeviceNotFound, match="does not exist"):
        resolve_target(tmp_path / "nope" / "new.img")


def test_a_mistyped_device_name_does_not_become_a_file_in_dev() -> None:
    with pytest.raises(DeviceNotFound, match="no such device") as exc:
        resolve_target("/dev/sdzz")
    assert exc.value.where == "/dev/sdzz"
    assert not Path("/dev/sdzz").exists()


def test_directory_and_character_device_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DeviceNotAllowed, match="is a directory"):
        resolve_target(tmp_path)
    with pytest.raises(DeviceNotAllowed, match="neither a block device nor a regular file"):
        resolve_target("/dev/null")


def test_the_image_itself_is_not_a_target(tmp_path: Path) -> None:
    image = tmp_path / "live.iso"
    image.write_bytes(b"\0" * 2048)
    link = tmp_path / "same.iso"
    link.symlink_to(image)
    with pytest.raises(DeviceNotAllowed, match="source image itself"):
        resolve_target(link, image=image)


# ---------------------------------------------------------------- host system disk


def test_the_host_system_disk_is_refused() -> None:
    disk = host_system_disk()
    if disk is None:
        # A container: the same refusal is tested on a loop device with a mount table fed
        # in (test_a_disk_with_a_system_mount_is_refused) and on a fake disk under umockdev
        # (umock_cases.py test_the_disk_holding_the_running_system_is_refused_as_the_target).
        pytest.skip("/ is on no block device here (container overlay): no system disk to try")
    with pytest.raises(DeviceNotAllowed, match=r"holds the running system: .* mounted at /$"):
        resolve_target(disk)


ZRAM_CONTROL = Path("/sys/class/zram-control")


@pytest.fixture
def kernel_zram() -> Iterator[str]:
    """A zram device of the running kernel: zram0 if there is one, else one added through
    zram-control (removed afterwards), else zram0 from `modprobe zram` (Debian package kmod).

    Skips only where the kernel has no zram at all (or we may not load it); the refusal
    itself is covered there too, on a fake zram0: umock_cases.py
    test_a_zram_device_named_as_the_target_is_refused.
    """
    if Path("/sys/class/block/zram0").exists():
        yield "/dev/zram0"
        return
    if not is_root():
        pytest.skip("no zram0, and adding a zram device needs root")
    if not ZRAM_CONTROL.exists() and shutil.which("modprobe"):
        subprocess.run(["modprobe", "zram"], capture_output=True)
        if Path("/sys/class/block/zram0").exists():
            yield "/dev/zram0"
            return
    if not ZRAM_CONTROL.exists():
        pytest.skip("this kernel has no zram (neither built in nor loadable)")
    number = (ZRAM_CONTROL / "hot_add").read_text().strip()
    try:
        yield f"/dev/zram{number}"
    finally:
        (ZRAM_CONTROL / "hot_remove").write_text(number)


def test_zram_is_refused(kernel_zram: str) -> None:
    assert Path(kernel_zram).is_block_device()
    with pytest.raises(DeviceNotAllowed, match="cannot be a write target: zram device"):
        resolve_target(kernel_zram)


# ---------------------------------------------------------------- loop devices


@needs_root
def test_a_loop_device_is_a_block_target(tmp_path: Path) -> None:
    backing = tmp_path / "stick.img"
    with open(backing, "wb") as f:
        f.truncate(48 * MiB)
    with loop_device(backing) as node:
        target = resolve_target(node, image=tmp_path / "elsewhere.iso")
        assert target.kind is TargetKind.BLOCK
        assert target.path == Path(node)
        assert target.size == 48 * MiB
        assert target.logical_sector == 512
        assert target.devno == devno_of(node)
        assert not target.read_only
        assert target.description.endswith(human_size(48 * MiB))
        with pytest.raises(DeviceNotAllowed, match="loop device"):
            resolve_target(node, allow_loop=False)


@needs_root
def test_a_read_only_loop_device_is_refused(tmp_path: Path) -> None:
    backing = tmp_path / "locked.img"
    with open(backing, "wb") as f:
        f.truncate(8 * MiB)
    with loop_device(backing, read_only=True) as node, pytest.raises(DeviceReadOnly) as exc:
        resolve_target(node)
    assert exc.value.where == node


@needs_root
def test_a_loop_device_backed_by_the_image_is_refused(tmp_path: Path) -> None:
    image = tmp_path / "live.iso"
    with open(image, "wb") as f:
        f.truncate(8 * MiB)
    with loop_device(image) as node, pytest.raises(DeviceNotAllowed, match="source image"):
        resolve_target(node, image=image)


@needs_root
def test_a_partition_is_refused_and_the_disk_named(tmp_path: Path) -> None:
    with partitioned_loop(tmp_path) as (disk, p1, _p2):
        with pytest.raises(DeviceNotAllowed, match=f"is a partition of {disk}; name the whole"):
            resolve_target(p1)
        family = disk_family(sys_path_of_devno(devno_of(disk)))  # type: ignore[arg-type]
        assert set(family.values()) == {disk, p1, f"{disk}p2"}
        assert resolve_target(disk).size == 64 * MiB


@needs_root
def test_a_disk_with_a_mounted_partition_is_busy(tmp_path: Path) -> None:
    with partitioned_loop(tmp_path) as (disk, p1, _p2), mounted(p1, tmp_path / "mnt") as mnt:
        with pytest.raises(DeviceBusy, match=f"{p1} on {mnt}"):
            resolve_target(disk)
        assert mounted_partitions(devno_of(disk)) == [(p1, str(mnt))]
        # A caller that unmounts by itself may go on; the system-disk rules still apply.
        assert resolve_target(disk, allow_mounted=True).kind is TargetKind.BLOCK


@needs_root
def test_a_disk_holding_the_source_image_is_refused(tmp_path: Path) -> None:
    with partitioned_loop(tmp_path) as (disk, p1, _p2), mounted(p1, tmp_path / "mnt") as mnt:
        image = mnt / "live.iso"
        image.write_bytes(b"\0" * 4096)
        with pytest.raises(DeviceNotAllowed, match="holds the source image"):
            resolve_target(disk, image=image)


@needs_root
@pytest.mark.parametrize("point", ["/", "/boot", "/boot/efi", "/usr", "/home", "/var"])
def test_a_disk_with_a_system_mount_is_refused(tmp_path: Path, point: str) -> None:
    with partitioned_loop(tmp_path) as (disk, _p1, p2):
        mounts = [Mount(devno_of(p2), point, p2)]
        with pytest.raises(DeviceNotAllowed, match=f"{p2} is mounted at {point}$"):
            resolve_target(disk, mounts=mounts, swaps=[])
        # not a system mount point: only busy
        with pytest.raises(DeviceBusy):
            resolve_target(disk, mounts=[Mount(devno_of(p2), "/media/stick", p2)], swaps=[])


@contextlib.contextmanager
def active_swap(node: str) -> Iterator[str]:
    """`mkswap` and `swapon` on `node`; `swapoff` afterwards, whatever happened."""
    run("mkswap", "-q", node)
    run("swapon", node)
    try:
        yield node
    finally:
        subprocess.run(["swapoff", node], capture_output=True)


@needs_root
def test_a_disk_with_active_swap_is_refused(tmp_path: Path) -> None:
    with partitioned_loop(tmp_path) as (disk, _p1, p2):
        with active_swap(p2):
            # The kernel's own swap list (/proc/swaps), as resolve_target reads it by default.
            assert Swap(p2, devno_of(p2)) in read_swaps()
            with pytest.raises(DeviceNotAllowed, match=f"active swap \\({p2} on {p2}\\)"):
                resolve_target(disk)
        # swapped off, the same disk is a target again: it was the swap that was refused
        assert resolve_target(disk).kind is TargetKind.BLOCK


# ---------------------------------------------------------------- parsers


def test_mountinfo_is_parsed_with_escapes() -> None:
    text = (
        "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
        "42 27 8:17 / /media/my\\040stick rw - vfat /dev/sdb1 rw\n"
        "22 27 0:21 / /proc rw - proc proc rw\n"
        "50 27 8:18 / /mnt/x rw shared:5 master:1 - ext4 /dev/sdb2 rw\n"
    )
    mounts = parse_mountinfo(text)
    assert mounts == [
        Mount((254, 0), "/", "/dev/vda"),
        Mount((8, 17), "/media/my stick", "/dev/sdb1"),
        Mount((0, 21), "/proc", "proc"),
        Mount((8, 18), "/mnt/x", "/dev/sdb2"),
    ]


def test_swaps_are_parsed_and_mapped_to_block_devices(tmp_path: Path) -> None:
    swapfile = tmp_path / "swapfile"
    swapfile.write_bytes(b"")
    text = (
        "Filename\tType\tSize\tUsed\tPriority\n"
        "/dev/zram0-not-there  partition 1 0 -2\n"
        f"{swapfile}  file 1 0 -3\n"
    )
    swaps = parse_swaps(text)
    # A swap file counts against the disk holding its filesystem; a vanished one is dropped.
    holder = filesystem_devno(swapfile)
    assert swaps == ([Swap(str(swapfile), holder)] if holder else [])


def test_human_size_uses_decimal_units() -> None:
    assert human_size(16_000_000_000) == "16.0 GB"
    assert human_size(512) == "512 B"
    assert human_size(64 * MiB) == "67.1 MB"
