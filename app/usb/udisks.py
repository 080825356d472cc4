"""Opening a drive without running as root: UDisks2 over the system D-Bus (pure Python, jeepney).

UDisks2 checks with polkit (which may ask the user for a password) and hands back a file
descriptor over D-Bus. Before writing, every mounted filesystem on the drive is unmounted
(and an unlocked LUKS partition locked again), or the exclusive open would fail.

Device numbers link the two worlds: a UDisks2 block object's `Block.DeviceNumber` is the
`st_rdev` of its /dev node.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from jeepney import DBusAddress, MessageType, new_method_call
from jeepney.io.blocking import DBusConnection, open_dbus_connection
from jeepney.low_level import HeaderFields, Message, MessageFlag

from app.errors import DeviceError
from app.usb.errors import DeviceBusy, DeviceNotAllowed, DeviceNotFound, DevicePermissionDenied
from app.usb.sysfs import Devno, block_devno, sys_path_of_devno
from app.usb.target import disk_family

SERVICE = "org.freedesktop.UDisks2"
ROOT_PATH = "/org/freedesktop/UDisks2"
BLOCK = "org.freedesktop.UDisks2.Block"
FILESYSTEM = "org.freedesktop.UDisks2.Filesystem"
PARTITION_TABLE = "org.freedesktop.UDisks2.PartitionTable"
PROPERTIES = "org.freedesktop.DBus.Properties"
ENCRYPTED = "org.freedesktop.UDisks2.Encrypted"
DRIVE = "org.freedesktop.UDisks2.Drive"
OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager"

# Quick calls answer at once; an open or unmount may wait for the user to type a password
# into the polkit dialog.
QUICK_TIMEOUT = 25.0
INTERACTIVE_TIMEOUT = 300.0

_NOT_RUNNING = (
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NameHasNoOwner",
    "org.freedesktop.DBus.Error.NoReply",
    "org.freedesktop.DBus.Error.TimedOut",
)


class UDisksUnavailable(DeviceError):
    """The system D-Bus or the UDisks2 service cannot be reached."""


@dataclass(frozen=True)
class BlockObject:
    path: str
    devno: Devno
    device: str  # /dev node as UDisks2 names it
    mount_points: tuple[str, ...]
    cleartext_device: str | None  # for an unlocked LUKS container: its cleartext object


def _devno_from_rdev(rdev: int) -> Devno:
    return (os.major(rdev), os.minor(rdev))


def _bytes_path(value: Any) -> str:
    # UDisks2 sends paths as NUL-terminated byte arrays (D-Bus 'ay').
    return bytes(value).rstrip(b"\0").decode(errors="replace")


def _error_for(reply: Message, action: str, where: str | None) -> DeviceError:
    name = str(reply.header.fields.get(HeaderFields.error_name, ""))
    text = str(reply.body[0]) if reply.body else name
    if name in _NOT_RUNNING:
        return UDisksUnavailable(
            "the UDisks2 service is not running",
            where=where,
            hint="start it with: sudo systemctl start udisks2, or run livesmith as root",
        )
    if ".NotAuthorized" in name:
        return DevicePermissionDenied(
            f"not allowed to {action}: {text}",
            where=where,
            hint="the administrator password was not given, or "
            "polkit does not allow it for this user",
        )
    if name.endswith(".DeviceBusy") or "busy" in text.lower():
        return DeviceBusy(
            f"cannot {action}: {text}",
            where=where,
            hint="close programs using the drive and try again",
        )
    if name.endswith((".NotFound", ".UnknownObject")):
        return DeviceNotFound(f"UDisks2 cannot {action}: {text}", where=where)
    return DeviceError(f"UDisks2 could not {action}: {text} [{name}]", where=where)


class UDisksClient:
    """One connection to UDisks2 on the system bus (or on `bus`, a D-Bus address)."""

    def __init__(self, bus: str = "SYSTEM") -> None:
        try:
            self._conn: DBusConnection = open_dbus_connection(bus=bus, enable_fds=True)
        except (OSError, RuntimeError, KeyError, StopIteration) as exc:
            raise UDisksUnavailable(
                f"cannot reach the system D-Bus: {exc}",
                hint="is dbus running? (or run livesmith as root)",
            ) from exc

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> UDisksClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ calls

    def _call(
        self,
        path: str,
        interface: str,
        method: str,
        signature: str | None,
        body: tuple[Any, ...],
        *,
        action: str,
        where: str | None = None,
        interactive: bool = False,
    ) -> tuple[Any, ...]:
        message = new_method_call(DBusAddress(path, SERVICE, interface), method, signature, body)
        if interactive:
            message.header.flags |= MessageFlag.allow_interactive_authorization
        try:
            reply = self._conn.send_and_get_reply(
                message, timeout=INTERACTIVE_TIMEOUT if interactive else QUICK_TIMEOUT
            )
        except TimeoutError as exc:
            raise UDisksUnavailable(
                f"UDisks2 did not answer while trying to {action}", where=where
            ) from exc
        except OSError as exc:
            raise UDisksUnavailable(
                f"lost the D-Bus connection while trying to {action}: {exc}", where=where
            ) from exc
        if reply.header.message_type == MessageType.error:
            raise _error_for(reply, action, where)
        return tuple(reply.body)

    def block_objects(self) -> list[BlockObject]:
        """Every block device UDisks2 knows, with its mount points (one D-Bus call)."""
        (objects,) = self._call(
            ROOT_PATH, OBJECT_MANAGER, "GetManagedObjects", None, (), action="list block devices"
        )
        result = []
        for path, interfaces in objects.items():
            block = interfaces.get(BLOCK)
            if block is None:
                continue
            devno = _devno_from_rdev(int(block["DeviceNumber"][1]))
            mounts: tuple[str, ...] = ()
            if FILESYSTEM in interfaces:
                mounts = tuple(_bytes_path(p) for p in interfaces[FILESYSTEM]["MountPoints"][1])
            cleartext = None
            if ENCRYPTED in interfaces:
                value = str(interfaces[ENCRYPTED].get("CleartextDevice", ("o", "/"))[1])
                cleartext = value if value != "/" else None
            result.append(
                BlockObject(str(path), devno, _bytes_path(block["Device"][1]), mounts, cleartext)
            )
        return result

    def find_block_object(self, devno: Devno) -> str:
        """Object path of the block device with this device number."""
        for obj in self.block_objects():
            if obj.devno == devno:
                return obj.path
        raise DeviceNotFound(
            f"UDisks2 does not know the block device {devno[0]}:{devno[1]}",
            hint="it may have been unplugged, or udev has not announced it yet",
        )

    def unmount_all(self, drive_devno: Devno) -> list[str]:
        """Unmount (forced) every filesystem on the drive, its partitions and what is stacked
        on them, then lock unlocked LUKS containers. Returns the mount points unmounted."""
        sys_path = sys_path_of_devno(drive_devno)
        if sys_path is None:
            raise DeviceNotFound(f"no block device {drive_devno[0]}:{drive_devno[1]}")
        family = disk_family(sys_path)
        objects = [o for o in self.block_objects() if o.devno in family]
        unmounted: list[str] = []
        # Deepest mount first: a filesystem mounted inside another one goes before it.
        deepest_first = sorted(
            objects,
            reverse=True,
            key=lambda o: max((p.count("/") for p in o.mount_points), default=-1),
        )
        for obj in deepest_first:
            if obj.mount_points:
                self._call(
                    obj.path,
                    FILESYSTEM,
                    "Unmount",
                    "a{sv}",
                    ({"force": ("b", True)},),
                    action="unmount " + ", ".join(obj.mount_points),
                    where=obj.device,
                    interactive=True,
                )
                unmounted.extend(obj.mount_points)
        for obj in objects:
            if obj.cleartext_device:
                self._call(
                    obj.path,
                    ENCRYPTED,
                    "Lock",
                    "a{sv}",
                    ({},),
                    action="lock the encrypted partition",
                    where=obj.device,
                    interactive=True,
                )
        return unmounted

    def format_disk(self, devnode: str | os.PathLike[str], table: str) -> str:
        """Block.Format the whole disk with an empty partition table ("dos" or "gpt");
        returns the disk's object path. UDisks2 first wipes every signature libblkid finds
        (the ISO 9660 descriptor, the MBR, both GPT headers)."""
        where = str(devnode)
        path = self.find_block_object(block_devno(devnode))
        self._call(
            path,
            BLOCK,
            "Format",
            "sa{sv}",
            (table, {}),
            action=f"write a new {table} partition table",
            where=where,
            interactive=True,
        )
        return path

    def create_partition_and_format(
        self,
        table_path: str,
        *,
        offset: int,
        size: int,
        partition_type: str,
        fs_type: str,
        fs_options: dict[str, tuple[str, Any]],
        where: str,
    ) -> str:
        """PartitionTable.CreatePartitionAndFormat: a partition (size 0: up to the end) with a
        file system on it; returns the partition's object path once it is formatted."""
        (created,) = self._call(
            table_path,
            PARTITION_TABLE,
            "CreatePartitionAndFormat",
            "ttssa{sv}sa{sv}",
            (offset, size, partition_type, "", {}, fs_type, fs_options),
            action=f"create a {fs_type} partition",
            where=where,
            interactive=True,
        )
        return str(created)

    def block_properties(self, path: str) -> dict[str, Any]:
        """The Block interface's properties of the object at `path` (plain values)."""
        (props,) = self._call(
            path, PROPERTIES, "GetAll", "s", (BLOCK,), action="read the block device's properties"
        )
        return {name: value for name, (_sig, value) in props.items()}

    def power_off(self, drive_devno: Devno, where: str) -> str:
        """Unmount the drive's file systems, then power it off (UDisks2 Drive.PowerOff, as
        "Safely remove" does) or, where it cannot be, eject its medium. Says what was done."""
        self.unmount_all(drive_devno)
        drive = str(self.block_properties(self.find_block_object(drive_devno)).get("Drive", "/"))
        if drive == "/":
            raise DeviceNotAllowed(
                "is not a drive that can be powered off or ejected (a loop device or a virtual "
                "disk)",
                where=where,
            )
        (props,) = self._call(
            drive, PROPERTIES, "GetAll", "s", (DRIVE,), action="read the drive's properties"
        )
        can = {name: bool(value) for name, (_sig, value) in props.items()}
        if can.get("CanPowerOff"):
            self._call(
                drive,
                DRIVE,
                "PowerOff",
                "a{sv}",
                ({},),
                action="power off the drive",
                where=where,
                interactive=True,
            )
            return "powered off: it is safe to unplug it now"
        if can.get("Ejectable"):
            self._call(
                drive,
                DRIVE,
                "Eject",
                "a{sv}",
                ({},),
                action="eject the medium",
                where=where,
                interactive=True,
            )
            return "ejected: it is safe to take the medium out now"
        raise DeviceNotAllowed(
            "can be neither powered off nor ejected; it was synced, so it is safe to unplug",
            where=where,
        )

    def _open(
        self,
        devnode: str | os.PathLike[str],
        method: str,
        signature: str,
        body: tuple[Any, ...],
        action: str,
    ) -> int:
        where = str(devnode)
        path = self.find_block_object(block_devno(devnode))
        (fd_obj,) = self._call(
            path, BLOCK, method, signature, body, action=action, where=where, interactive=True
        )
        return int(fd_obj.to_raw_fd())

    def open_for_write(self, devnode: str | os.PathLike[str]) -> int:
        """A write-only, exclusive, O_SYNC file descriptor with O_DIRECT added; the caller
        owns (closes) it."""
        try:
            fd = self._open(devnode, "OpenForRestore", "a{sv}", ({},), "open the drive for writing")
        except DeviceError as exc:
            if "UnknownMethod" not in str(exc):
                raise
            # UDisks2 older than 2.7.3 (the same release added both; kept for clarity)
            flags = os.O_EXCL | os.O_SYNC | os.O_CLOEXEC
            fd = self._open(
                devnode,
                "OpenDevice",
                "sa{sv}",
                ("w", {"flags": ("i", flags)}),
                "open the drive for writing",
            )
        return _add_direct(fd, devnode)

    def open_for_read(self, devnode: str | os.PathLike[str]) -> int:
        """A read-only O_DIRECT file descriptor (not exclusive: reading a stick that the
        desktop has just mounted again must work); the caller owns (closes) it."""
        flags = os.O_DIRECT | os.O_CLOEXEC
        return self._open(
            devnode,
            "OpenDevice",
            "sa{sv}",
            ("r", {"flags": ("i", flags)}),
            "open the drive for reading",
        )


def _add_direct(fd: int, devnode: str | os.PathLike[str]) -> int:
    # OpenForRestore takes no flags; O_DIRECT may be added afterwards (it bypasses the
    # page cache for the write, as the engine needs).
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_DIRECT)
    except OSError as exc:
        os.close(fd)
        raise DeviceError(
            f"cannot switch the device to direct I/O: {exc}", where=str(devnode)
        ) from exc
    return fd


@contextlib.contextmanager
def _client(bus: str) -> Iterator[UDisksClient]:
    client = UDisksClient(bus)
    try:
        yield client
    finally:
        client.close()


def find_block_object(devno: Devno, *, bus: str = "SYSTEM") -> str:
    with _client(bus) as client:
        return client.find_block_object(devno)


def unmount_all(drive_devno: Devno, *, bus: str = "SYSTEM") -> list[str]:
    with _client(bus) as client:
        return client.unmount_all(drive_devno)


def open_for_write(devnode: str | os.PathLike[str], *, bus: str = "SYSTEM") -> int:
    with _client(bus) as client:
        return client.open_for_write(devnode)


def power_off(drive_devno: Devno, where: str, *, bus: str = "SYSTEM") -> str:
    with _client(bus) as client:
        return client.power_off(drive_devno, where)


def open_for_read(devnode: str | os.PathLike[str], *, bus: str = "SYSTEM") -> int:
    with _client(bus) as client:
        return client.open_for_read(devnode)
