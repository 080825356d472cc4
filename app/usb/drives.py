"""The drives a user would flash: whole USB, removable or SD/MMC disks nobody depends on.

Every whole disk is classified; the ones with an `excluded_reason` are hidden unless the
caller asks for all of them (`livesmith drives --all`). The safety rules are those of
`app.usb.target`, applied to the same mount table and swap list.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyudev

from app.usb.identity import BlockIdentity
from app.usb.sysfs import Devno, disk_identity, disk_size, parse_devno, read_attr
from app.usb.target import (
    Mount,
    Swap,
    disk_family,
    disk_use,
    human_size,
    kind_refusal,
    read_mounts,
    read_swaps,
)

# Etcher warns above this size: a stick this big is often an external disk with data on it.
LARGE_DRIVE = 64 * 1000**3

# Nearest-first order does not work for USB (the SCSI layer sits between): look for these
# subsystems anywhere above the disk, in this order.
_BUS_SUBSYSTEMS = ("usb", "mmc", "nvme", "virtio", "ata", "scsi")
_EXTRA_VIRTUAL = ((re.compile(r"nbd\d+$"), "network block device (nbd)"),)


@dataclass(frozen=True)
class Drive:
    """A whole disk as the user sees it, and why it is not offered (if it is not)."""

    devnode: str
    sys_path: str
    devno: Devno | None
    vendor: str
    model: str
    serial: str
    size: int
    bus: str  # "usb", "mmc", "ata", "nvme", "virtio", "scsi", "" when unknown
    removable: bool
    read_only: bool
    mounted_partitions: tuple[tuple[str, str], ...] = ()  # (devnode, mountpoint)
    excluded_reason: str | None = None
    large: bool = field(default=False)
    diskseq: int | None = None  # the kernel's number for this very attachment (Linux 5.15+)

    @property
    def offered(self) -> bool:
        return self.excluded_reason is None

    @property
    def identity(self) -> BlockIdentity | None:
        """What tells this disk from one plugged in later under the same name."""
        if self.devno is None:
            return None
        return BlockIdentity(self.devno, self.size, self.serial, self.diskseq)

    @property
    def name(self) -> str:
        """ "Vendor Model", or the device node when udev knows neither."""
        return " ".join(p for p in (self.vendor, self.model) if p) or self.devnode

    @property
    def size_text(self) -> str:
        return human_size(self.size)

    @property
    def display_text(self) -> str:
        return f"{self.name} \u2014 {self.size_text} ({self.devnode})"

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["devno"] = f"{self.devno[0]}:{self.devno[1]}" if self.devno else None
        data["mounted_partitions"] = [
            {"devnode": node, "mountpoint": point} for node, point in self.mounted_partitions
        ]
        data["offered"] = self.offered
        return data


def drive_bus(device: pyudev.Device) -> str:
    props = device.properties
    subsystems = [a.subsystem for a in device.ancestors if a.subsystem]
    if "usb" in subsystems or props.get("ID_BUS") == "usb":
        return "usb"
    if "mmc" in subsystems or device.sys_name.startswith("mmcblk"):
        return "mmc"
    if props.get("ID_BUS"):
        return str(props["ID_BUS"])
    for name in _BUS_SUBSYSTEMS:
        if name in subsystems:
            return name
    return ""


def _exclusion(
    device: pyudev.Device,
    *,
    bus: str,
    removable: bool,
    read_only: bool,
    size: int,
    system_refusal: str | None,
) -> str | None:
    """Why a whole disk is not offered, most important reason first."""
    sys_path = device.sys_path
    kind = kind_refusal(sys_path, allow_loop=False)
    if kind:
        return kind
    for pattern, what in _EXTRA_VIRTUAL:
        if pattern.match(device.sys_name):
            return what
    if system_refusal:
        return system_refusal
    if not (bus in ("usb", "mmc") or removable):
        return "internal disk (not on USB, not removable, not an SD card)"
    if size == 0:
        return "no medium (size 0)"
    if read_only:
        return "read-only (check the write-protect switch)"
    return None


def drive_from_device(
    device: pyudev.Device,
    *,
    mounts: Sequence[Mount],
    swaps: Sequence[Swap],
    image: str | Path | None = None,
) -> Drive:
    """Describe and classify one whole disk (a pyudev block device with DEVTYPE=disk)."""
    sys_path = device.sys_path
    ident = disk_identity(device)
    size = disk_size(sys_path)
    removable = read_attr(sys_path, "removable") == "1"
    read_only = read_attr(sys_path, "ro") == "1"
    bus = drive_bus(device)
    family = disk_family(sys_path)
    use = disk_use(sys_path, mounts=mounts, swaps=swaps, image=image, family=family)
    reason = _exclusion(
        device,
        bus=bus,
        removable=removable,
        read_only=read_only,
        size=size,
        system_refusal=use.refusal(),
    )
    devno = parse_devno(read_attr(sys_path, "dev"))
    devnode = device.device_node or f"/dev/{device.sys_name}"
    return Drive(
        devnode=devnode,
        sys_path=sys_path,
        devno=devno,
        vendor=ident.vendor,
        model=ident.model,
        serial=ident.serial,
        size=size,
        bus=bus,
        removable=removable,
        read_only=read_only,
        mounted_partitions=use.critical_mounts + use.other_mounts,
        excluded_reason=reason,
        large=size > LARGE_DRIVE,
        diskseq=ident.diskseq,
    )


def list_drives(
    context: pyudev.Context | None = None,
    *,
    include_excluded: bool = False,
    mounts: Sequence[Mount] | None = None,
    swaps: Sequence[Swap] | None = None,
    image: str | Path | None = None,
) -> list[Drive]:
    """Whole disks a user would flash (and with `include_excluded`, all others with a reason).

    `mounts` and `swaps` default to the running system's; `image` is the source image, whose
    disk is never offered.
    """
    if context is None:
        context = pyudev.Context()
    if mounts is None:
        mounts = read_mounts()
    if swaps is None:
        swaps = read_swaps(mounts=mounts)
    drives = []
    for device in context.list_devices(subsystem="block", DEVTYPE="disk"):
        drive = drive_from_device(device, mounts=mounts, swaps=swaps, image=image)
        if include_excluded or drive.offered:
            drives.append(drive)
    return sorted(drives, key=lambda d: (not d.offered, _natural_key(d.devnode)))


def _natural_key(text: str) -> list[object]:
    # loop2 before loop10, mmcblk1 before mmcblk10
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]
