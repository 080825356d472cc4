"""Drive listing and hotplug on umockdev testbeds.

Run only under umockdev-wrapper, by tests/app/usb/test_drives_umockdev.py (see
umock_support.py for why). Mount tables and swap lists are fed as parameters with the fake
devices' numbers, so the host's own mounts play no part.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.app.usb.umock_support import (
    GB,
    add_holder,
    add_mmc_card,
    add_sata_disk,
    add_usb_stick,
    add_virtual_disk,
    dev_node,
    preload_active,
)

if not preload_active():  # pyudev would crash on the testbed
    pytest.exit("umock_cases.py must run under umockdev-wrapper", returncode=3)

import gi

gi.require_version("UMockdev", "1.0")
import pyudev  # noqa: E402
from gi.repository import UMockdev  # noqa: E402

from app.usb.drives import Drive, list_drives  # noqa: E402
from app.usb.errors import DeviceNotAllowed  # noqa: E402
from app.usb.hotplug import DriveMonitor  # noqa: E402
from app.usb.identity import BlockIdentity  # noqa: E402
from app.usb.target import Mount, Swap, TargetKind, disk_use, resolve_target  # noqa: E402


@pytest.fixture(scope="session")
def session_testbed() -> Any:
    # One testbed per process: a second one, made while the first still exists, leaves
    # the preload library showing the host's real /sys.
    return UMockdev.Testbed.new()


@pytest.fixture
def tb(session_testbed: Any) -> Iterator[Any]:
    # Every case starts from an empty testbed (and proves it is not looking at the host).
    assert list(pyudev.Context().list_devices(subsystem="block")) == []
    yield session_testbed
    session_testbed.clear()


def listing(**kwargs: Any) -> list[Drive]:
    kwargs.setdefault("mounts", [])
    kwargs.setdefault("swaps", [])
    return list_drives(pyudev.Context(), **kwargs)


def by_node(drives: list[Drive]) -> dict[str, Drive]:
    return {d.devnode: d for d in drives}


# ---------------------------------------------------------------- listing


def test_usb_stick_is_listed_with_its_fields(tb: Any) -> None:
    stick = add_usb_stick(tb, size=16 * GB, partitions=1)
    drives = listing()
    assert [d.devnode for d in drives] == ["/dev/sdb"]
    drive = drives[0]
    assert drive.vendor == "SanDisk" and drive.model == "Ultra"
    assert drive.serial == "4C530001"
    assert drive.size == 16 * GB and drive.bus == "usb"
    assert drive.removable and not drive.read_only and not drive.large
    assert drive.devno == (8, 16) and drive.sys_path == stick.sys_path
    assert drive.mounted_partitions == () and drive.excluded_reason is None
    assert drive.display_text == "SanDisk Ultra \u2014 16.0 GB (/dev/sdb)"


def test_usb_stick_found_through_its_usb_ancestor_without_udev_properties(tb: Any) -> None:
    # A stick udev has not described yet (no ID_BUS): the usb parent in sysfs decides.
    usb = tb.add_device("usb", "usb2/2-3", None, ["idVendor", "0951"], [])
    scsi = tb.add_device(
        "scsi",
        "host9/target9:0:0/9:0:0:0",
        usb,
        ["vendor", "Kingston", "model", "DataTraveler 3.0"],
        [],
    )
    tb.add_device(
        "block",
        "sdk",
        scsi,
        ["size", str(8 * GB // 512), "removable", "0", "ro", "0", "dev", "8:160"],
        ["DEVNAME", "/dev/sdk", "DEVTYPE", "disk", "MAJOR", "8", "MINOR", "160"],
    )
    (drive,) = listing()
    assert drive.bus == "usb" and not drive.removable
    assert (drive.vendor, drive.model) == ("Kingston", "DataTraveler 3.0")  # from sysfs


def test_sata_system_disk_is_not_offered_and_all_gives_the_reason(tb: Any) -> None:
    sata = add_sata_disk(tb, partitions=2)
    add_usb_stick(tb)
    root = sata.partitions[1]
    mounts = [
        Mount(root.devno, "/", root.devnode),
        Mount(sata.partitions[0].devno, "/boot/efi", sata.partitions[0].devnode),
    ]
    assert [d.devnode for d in listing(mounts=mounts)] == ["/dev/sdb"]
    every = by_node(listing(mounts=mounts, include_excluded=True))
    sda = every["/dev/sda"]
    assert sda.excluded_reason == "holds the running system: /dev/sda2 is mounted at /"
    assert set(sda.mounted_partitions) == {("/dev/sda2", "/"), ("/dev/sda1", "/boot/efi")}
    assert sda.bus == "ata" and sda.model == "Samsung SSD 870 EVO 500GB"
    assert every["/dev/sdb"].offered
    # offered first, excluded after
    assert list(every) == ["/dev/sdb", "/dev/sda"]


def test_an_internal_disk_without_system_mounts_is_still_not_offered(tb: Any) -> None:
    add_sata_disk(tb, partitions=1)
    assert listing() == []
    (sda,) = listing(include_excluded=True)
    assert sda.excluded_reason is not None and sda.excluded_reason.startswith("internal disk")


@pytest.mark.parametrize("point", ["/", "/boot", "/boot/efi", "/usr", "/home", "/var"])
def test_a_usb_disk_holding_a_system_mount_is_not_offered(tb: Any, point: str) -> None:
    # e.g. a Linux installed on an external USB disk and booted from it
    stick = add_usb_stick(tb, partitions=2)
    part = stick.partitions[1]
    assert listing(mounts=[Mount(part.devno, point, part.devnode)]) == []
    (drive,) = listing(mounts=[Mount(part.devno, point, part.devnode)], include_excluded=True)
    assert (
        drive.excluded_reason == f"holds the running system: {part.devnode} is mounted at {point}"
    )


def test_a_usb_disk_with_active_swap_is_not_offered(tb: Any) -> None:
    stick = add_usb_stick(tb, partitions=2)
    part = stick.partitions[1]
    (drive,) = listing(swaps=[Swap(part.devnode, part.devno)], include_excluded=True)
    assert drive.excluded_reason == f"holds active swap ({part.devnode} on {part.devnode})"


def test_a_stick_with_an_ordinary_mount_is_offered_and_shows_it(tb: Any) -> None:
    stick = add_usb_stick(tb, partitions=1)
    part = stick.partitions[0]
    (drive,) = listing(mounts=[Mount(part.devno, "/media/user/STICK", part.devnode)])
    assert drive.offered
    assert drive.mounted_partitions == ((part.devnode, "/media/user/STICK"),)


def test_root_on_luks_on_a_usb_disk_is_found_through_holders(tb: Any) -> None:
    stick = add_usb_stick(tb, partitions=2)
    crypt = add_virtual_disk(tb, "dm-0", (253, 0), dm__name="luks-root")
    add_holder(tb, stick.partitions[1].sys_path, crypt)
    mounts = [Mount((253, 0), "/", "/dev/mapper/luks-root")]
    every = by_node(listing(mounts=mounts, include_excluded=True))
    assert (
        every["/dev/sdb"].excluded_reason == "holds the running system: /dev/dm-0 is mounted at /"
    )
    assert every["/dev/dm-0"].excluded_reason == "device-mapper device (LVM, LUKS)"
    # Not mounted at all, the open container still marks the stick as in use.
    use = disk_use(stick.sys_path, mounts=[], swaps=[])
    assert use.holders == ("/dev/dm-0",) and use.refusal() is None
    assert disk_use(crypt.sys_path, mounts=[], swaps=[]).holders == ()


def test_a_partition_is_not_listed_as_a_drive(tb: Any) -> None:
    add_usb_stick(tb, partitions=3)
    nodes = [d.devnode for d in listing(include_excluded=True)]
    assert nodes == ["/dev/sdb"]


def test_a_read_only_stick_is_not_offered(tb: Any) -> None:
    add_usb_stick(tb, read_only=True)
    assert listing() == []
    (drive,) = listing(include_excluded=True)
    assert drive.read_only
    assert drive.excluded_reason == "read-only (check the write-protect switch)"


def test_an_sd_card_is_offered(tb: Any) -> None:
    card = add_mmc_card(tb, size=32 * GB)
    (drive,) = listing()
    assert drive.devnode == "/dev/mmcblk0" and drive.bus == "mmc"
    assert drive.model == "SD32G" and drive.serial == "0x1234abcd"
    assert drive.devno == card.devno and drive.size == 32 * GB
    # its partition is mmcblk0p1, not a drive
    assert card.partitions[0].devnode == "/dev/mmcblk0p1"


def test_an_empty_card_reader_is_not_offered(tb: Any) -> None:
    add_usb_stick(tb, name="sdc", devno=(8, 32), size=0, partitions=0, model="SD Reader")
    (drive,) = listing(include_excluded=True)
    assert drive.excluded_reason == "no medium (size 0)"


def test_a_removable_disk_that_is_not_usb_is_offered(tb: Any) -> None:
    pci = tb.add_device("pci", "pci0000:00/0000:00:1f.2", None, [], [])
    scsi = tb.add_device(
        "scsi", "ata2/host1/target1:0:0/1:0:0:0", pci, ["vendor", "IOMEGA", "model", "ZIP 250"], []
    )
    tb.add_device(
        "block",
        "sdd",
        scsi,
        ["size", str(GB // 512), "removable", "1", "ro", "0", "dev", "8:48"],
        ["DEVNAME", "/dev/sdd", "DEVTYPE", "disk", "ID_BUS", "ata"],
    )
    (drive,) = listing()
    assert drive.removable and drive.bus == "ata"


def test_virtual_and_optical_devices_are_never_offered(tb: Any) -> None:
    add_virtual_disk(tb, "loop3", (7, 3), loop__backing_file="/srv/vm.img")
    add_virtual_disk(tb, "zram0", (252, 0))
    add_virtual_disk(tb, "md127", (9, 127), md__level="raid1")
    add_virtual_disk(tb, "nbd0", (43, 0))
    add_virtual_disk(tb, "ram0", (1, 0))
    usb = tb.add_device("usb", "usb1/1-4", None, [], [])
    tb.add_device(
        "block",
        "sr0",
        usb,
        ["size", str(700 * 10**6 // 512), "removable", "1", "ro", "0", "dev", "11:0"],
        ["DEVNAME", "/dev/sr0", "DEVTYPE", "disk", "ID_BUS", "usb"],
    )
    assert listing() == []
    reasons = {d.devnode: d.excluded_reason for d in listing(include_excluded=True)}
    assert reasons == {
        "/dev/loop3": "loop device (name it explicitly to use it)",
        "/dev/zram0": "zram device (compressed RAM)",
        "/dev/md127": "md RAID device",
        "/dev/nbd0": "network block device (nbd)",
        "/dev/ram0": "RAM disk",
        "/dev/sr0": "optical drive",
    }


def test_a_zram_device_named_as_the_target_is_refused(tb: Any) -> None:
    # The same rule on the kernel's own zram device: test_target.py::test_zram_is_refused.
    zram = add_virtual_disk(tb, "zram0", (252, 0))
    with dev_node(tb, zram) as node:
        assert os.stat(node).st_rdev == os.makedev(252, 0)  # the fake, not the host's
        with pytest.raises(DeviceNotAllowed, match=r"cannot be a write target: zram device"):
            resolve_target(node, mounts=[], swaps=[])


def test_the_disk_holding_the_running_system_is_refused_as_the_target(tb: Any) -> None:
    # Where / is on no block device (a container), test_target.py cannot try the host's disk.
    disk = add_virtual_disk(tb, "vdz", (252, 16))
    with dev_node(tb, disk) as node:
        with pytest.raises(
            DeviceNotAllowed, match=r"holds the running system: /dev/vdz is mounted at /$"
        ):
            resolve_target(node, mounts=[Mount(disk.devno, "/", node)], swaps=[])
        # not mounted, the same disk is a target: it was the mount that was refused
        target = resolve_target(node, mounts=[], swaps=[])
        assert target.kind is TargetKind.BLOCK and target.devno == disk.devno


def test_the_listing_and_the_gate_read_the_same_identity_of_a_stick(tb: Any) -> None:
    stick = add_usb_stick(tb, serial="4C530001")
    tb.set_attribute(stick.sys_path, "diskseq", "17")
    (drive,) = listing()
    # umockdev links only virtual devices into /sys/dev/block; the kernel links every one.
    link = Path(tb.get_root_dir(), "sys/dev/block/8:16")
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(stick.sys_path, "/sys/dev/block"))
    try:
        with dev_node(tb, stick) as node:
            target = resolve_target(node, mounts=[], swaps=[])
    finally:
        link.unlink()
    # The serial from udev, the diskseq from sysfs: one reader for both.
    assert drive.identity == target.identity == BlockIdentity((8, 16), 16 * GB, "4C530001", 17)
    assert target.description == "SanDisk Ultra 4C530001 16.0 GB"


def test_a_large_drive_is_offered_with_the_warning_flag(tb: Any) -> None:
    add_usb_stick(tb, size=128 * GB, model="Portable SSD", vendor="Samsung")
    (drive,) = listing()
    assert drive.large and drive.offered


def test_the_disk_holding_the_source_image_is_not_offered(tb: Any, tmp_path: Any) -> None:
    image = tmp_path / "live.iso"
    image.write_bytes(b"\0" * 2048)
    st_dev = os.stat(image).st_dev
    if os.major(st_dev) == 0:
        pytest.skip("the test directory is on a filesystem without a block device (tmpfs)")
    # A fake USB disk carrying the device number of the disk the image really lives on.
    add_usb_stick(tb, name="sdx", devno=(os.major(st_dev), os.minor(st_dev)), partitions=0)
    (drive,) = listing(image=image, include_excluded=True)
    assert drive.excluded_reason == "holds the source image"
    assert listing(image=None)[0].offered


# ---------------------------------------------------------------- hotplug


class Recorder:
    def __init__(self) -> None:
        self.changes: list[tuple[float, list[Drive]]] = []
        self.removals: list[tuple[float, str]] = []
        self.errors: list[BaseException] = []
        self.threads: set[int] = set()
        self.cond = threading.Condition()

    def on_change(self, drives: list[Drive]) -> None:
        with self.cond:
            self.threads.add(threading.get_ident())
            self.changes.append((time.monotonic(), drives))
            self.cond.notify_all()

    def on_removed(self, devnode: str) -> None:
        with self.cond:
            self.removals.append((time.monotonic(), devnode))
            self.cond.notify_all()

    def on_error(self, exc: BaseException) -> None:
        self.errors.append(exc)

    def wait(self, predicate: Any, timeout: float = 5.0) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, timeout), (
                f"timed out; changes={self.changes} removals={self.removals} {self.errors}"
            )


def make_monitor(rec: Recorder, debounce: float = 0.3) -> DriveMonitor:
    return DriveMonitor(
        rec.on_change, rec.on_removed, mounts=[], swaps=[], debounce=debounce, on_error=rec.on_error
    )


def test_hotplug_add_and_remove_reach_the_monitor(tb: Any) -> None:
    rec = Recorder()
    with make_monitor(rec) as monitor:
        rec.wait(lambda: len(rec.changes) == 1)
        assert rec.changes[0][1] == []  # the initial listing
        stick = add_usb_stick(tb, partitions=2)
        added_at = time.monotonic()
        tb.uevent(stick.sys_path, "add")
        for part in stick.partitions:
            tb.uevent(part.sys_path, "add")
        rec.wait(lambda: len(rec.changes) >= 2)
        time.sleep(0.5)  # a burst of three events gives exactly one re-listing
        assert len(rec.changes) == 2
        when, drives = rec.changes[1]
        assert [d.devnode for d in drives] == ["/dev/sdb"]
        assert when - added_at >= 0.25  # debounced
        assert monitor.drives == drives
        assert threading.get_ident() not in rec.threads  # callbacks come from its thread

        # Unplugged: the partitions go first, then the disk; only the disk is reported.
        for part in stick.partitions:
            tb.uevent(part.sys_path, "remove")
        tb.uevent(stick.sys_path, "remove")
        for part in stick.partitions:
            tb.remove_device(part.sys_path)
        tb.remove_device(stick.sys_path)
        rec.wait(lambda: len(rec.changes) >= 3)
    assert [node for _, node in rec.removals] == ["/dev/sdb"]
    reported_at = rec.removals[0][0]
    # At once, not with the re-listing, which waits a whole quiet period after the event
    # (no upper limit: a loaded machine may deliver the event late, never out of order).
    assert rec.changes[2][0] - reported_at >= 0.3
    assert rec.changes[2][1] == [] and rec.errors == []


def test_a_steady_stream_of_events_does_not_hold_the_list_back(tb: Any) -> None:
    # A "change" every 0.1 s restarts the 0.3 s quiet period each time; the list must still
    # be refreshed while the stream goes on (after at most MAX_WAIT_FACTOR quiet periods).
    rec = Recorder()
    stick = add_usb_stick(tb)
    with make_monitor(rec, debounce=0.3):
        rec.wait(lambda: len(rec.changes) == 1)
        started = time.monotonic()
        while time.monotonic() - started < 3.0:
            tb.uevent(stick.sys_path, "change")
            time.sleep(0.1)
        stopped = time.monotonic()
        rec.wait(lambda: rec.changes[-1][0] > stopped)  # and once more after it ends
    during = [when for when, _ in rec.changes[1:] if when < stopped]
    assert during, f"no re-listing during 3 s of events: {rec.changes}"
    assert all([d.devnode for d in drives] == ["/dev/sdb"] for _, drives in rec.changes)
    assert rec.removals == [] and rec.errors == []


def test_a_card_pulled_from_its_reader_is_reported_removed(tb: Any) -> None:
    rec = Recorder()
    card = add_mmc_card(tb)
    with make_monitor(rec, debounce=0.1):
        rec.wait(lambda: len(rec.changes) == 1)
        assert [d.devnode for d in rec.changes[0][1]] == ["/dev/mmcblk0"]
        tb.uevent(card.sys_path, "change")  # media still there: nothing removed
        rec.wait(lambda: len(rec.changes) == 2)
        assert rec.removals == []
        tb.set_attribute(card.sys_path, "size", "0")
        tb.uevent(card.sys_path, "change")
        tb.uevent(card.sys_path, "change")  # reported once, not per event
        rec.wait(lambda: len(rec.changes) == 3)
    assert [node for _, node in rec.removals] == ["/dev/mmcblk0"]
    assert rec.changes[2][1] == []


def test_stopping_the_monitor_stops_the_reports(tb: Any) -> None:
    rec = Recorder()
    monitor = make_monitor(rec, debounce=0.05)
    monitor.start()
    rec.wait(lambda: len(rec.changes) == 1)
    monitor.stop()
    stick = add_usb_stick(tb)
    tb.uevent(stick.sys_path, "add")
    time.sleep(0.3)
    assert len(rec.changes) == 1
    assert not any(t.name == "livesmith-drive-monitor" for t in threading.enumerate())
