"""Typed device errors: each names the device and, where it applies, the byte offset."""

from __future__ import annotations

from app.errors import DeviceError


class DeviceNotFound(DeviceError):
    """The named target does not exist (or vanished before we opened it)."""


class DeviceUnplugged(DeviceError):
    """The device went away while we were using it."""


class DeviceChanged(DeviceError):
    """The path now names another disk than the one the user confirmed (re-plugged, swapped)."""


class DeviceReadOnly(DeviceError):
    """The device (or its write-protect switch) does not allow writing."""


class DeviceBusy(DeviceError):
    """Mounted, in use as swap, held by another device, or opened exclusively elsewhere."""


class DeviceNotAllowed(DeviceError):
    """Refused by a safety rule: a system disk, the disk holding the image, a virtual device."""


class DevicePermissionDenied(DeviceError):
    """We may not open the device (not root, not in group disk, polkit said no)."""


class DeviceTooSmall(DeviceError):
    """The image does not fit on the device."""

    def __init__(
        self,
        message: str,
        *,
        where: str | None = None,
        image_size: int = 0,
        device_size: int = 0,
        hint: str | None = None,
    ):
        super().__init__(message, where=where, hint=hint)
        self.image_size = image_size
        self.device_size = device_size


class DeviceIOError(DeviceError):
    """The device failed to read or write at a byte offset."""

    def __init__(
        self,
        message: str,
        *,
        where: str | None = None,
        offset: int | None = None,
        hint: str | None = None,
    ):
        super().__init__(message, where=where, hint=hint)
        self.offset = offset
