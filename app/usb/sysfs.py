"""What the kernel (sysfs) and udev say about a block device: its device number, size, and
the vendor, model, serial and diskseq that tell one disk from the next.

`disk_identity` is the one reader of a disk's serial and diskseq, for the drive listing,
the write target and the check that a device is still the disk the user chose.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pyudev

from app.usb.errors import DeviceNotFound

SYSFS_BLOCK_BY_DEVNO = Path("/sys/dev/block")

Devno = tuple[int, int]


def read_attr(sys_path: str | Path, name: str) -> str | None:
    """A sysfs attribute as stripped text, or None if absent/unreadable."""
    try:
        return Path(sys_path, name).read_text(errors="replace").strip()
    except OSError:
        return None


def sys_path_of_devno(devno: Devno) -> Path | None:
    link = SYSFS_BLOCK_BY_DEVNO / f"{devno[0]}:{devno[1]}"
    try:
        return Path(os.path.realpath(link, strict=True))
    except OSError:
        return None


def parse_devno(text: str | None) -> Devno | None:
    if not text:
        return None
    major, sep, minor = text.partition(":")
    if not sep:
        return None
    try:
        return (int(major), int(minor))
    except ValueError:
        return None


def block_devno(path: str | os.PathLike[str]) -> Devno:
    """The device number of the block device `path` names now; DeviceNotFound otherwise."""
    try:
        st = os.stat(path)
    except FileNotFoundError as exc:
        raise DeviceNotFound("no such device (unplugged?)", where=str(path)) from exc
    if not stat.S_ISBLK(st.st_mode):
        raise DeviceNotFound("is not a block device", where=str(path))
    return (os.major(st.st_rdev), os.minor(st.st_rdev))


def disk_size(disk_sys_path: str | Path) -> int:
    sectors = read_attr(disk_sys_path, "size")
    return int(sectors) * 512 if sectors and sectors.isdigit() else 0


@dataclass(frozen=True)
class DiskIdentity:
    """Who made the disk and which one it is: udev's names, the serial, the kernel's diskseq."""

    vendor: str
    model: str
    serial: str
    # Numbers every disk attached since boot, never reused (Linux 5.15+; None before).
    diskseq: int | None = None


def _udev_text(props: Mapping[str, str], name: str) -> str:
    # udev's *_ENC variants keep the original spacing, escaped as \x20.
    encoded = props.get(f"{name}_ENC")
    if encoded:
        text = re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), encoded)
        return " ".join(text.split())
    return props.get(name, "").replace("_", " ").strip()


def _diskseq(sys_path: str | Path) -> int | None:
    text = read_attr(sys_path, "diskseq")
    return int(text) if text and text.isdigit() else None


def disk_identity(device: pyudev.Device) -> DiskIdentity:
    """Vendor, model and serial from udev properties, falling back to the parent's sysfs
    attributes (SCSI vendor/model, MMC name/serial) when udev has not described the disk;
    the diskseq from sysfs."""
    props: Mapping[str, str] = device.properties
    parent = device.parent

    def parent_attr(name: str) -> str:
        return (read_attr(parent.sys_path, name) if parent is not None else None) or ""

    vendor = _udev_text(props, "ID_VENDOR") or parent_attr("vendor")
    model = _udev_text(props, "ID_MODEL") or parent_attr("model") or parent_attr("name")
    serial = props.get("ID_SERIAL_SHORT") or parent_attr("serial")
    return DiskIdentity(
        _name_or_empty(vendor), _name_or_empty(model), serial.strip(), _diskseq(device.sys_path)
    )


def disk_identity_at(disk_sys_path: str | Path) -> DiskIdentity:
    """`disk_identity` of the disk at `disk_sys_path`; from sysfs alone if udev cannot say."""
    try:
        device = pyudev.Devices.from_sys_path(pyudev.Context(), str(disk_sys_path))
    except (pyudev.DeviceNotFoundError, OSError):
        serial = read_attr(disk_sys_path, "device/serial") or ""
        return DiskIdentity("", "", serial, _diskseq(disk_sys_path))
    return disk_identity(device)


def _name_or_empty(text: str) -> str:
    # virtio and some bridges report a numeric id ("0x1af4") where a name belongs.
    text = " ".join(text.split())
    return "" if re.fullmatch(r"0x[0-9a-fA-F]+", text) else text
