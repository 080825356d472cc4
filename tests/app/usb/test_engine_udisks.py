"""The engine on descriptors from UDisks2 (OpenForRestore / OpenDevice), as a non-root user gets.

Uses the UDisks2 daemons of tests/app/usb/test_udisks.py (a private system bus, udevd and
udisksd, started as root; a daemon that does not start fails the tests).
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from app.errors import Cancelled
from app.usb import udisks
from app.usb.engine import write_image
from app.usb.persistence import Persistence
from app.usb.source import open_image
from app.usb.target import Target, resolve_target
from tests.app.usb.test_udisks import loop_device as udisks_loop_device
from tests.app.usb.test_udisks import make_backing, udisks_bus  # noqa: F401 (fixture)
from tests.app.usb.writer_support import CancelAt, MiB, cmp_prefix, device_bytes, make_image, run
from tests.conftest import is_root

pytestmark = pytest.mark.skipif(not is_root(), reason="starting udevd and udisksd needs root")


def udisks_opener(bus: str):  # type: ignore[no-untyped-def]
    def opener(target: Target, write: bool) -> int:
        if write:
            return udisks.open_for_write(target.path, bus=bus)
        return udisks.open_for_read(target.path, bus=bus)

    return opener


def test_write_and_verify_through_udisks(udisks_bus: str, tmp_path: Path) -> None:  # noqa: F811
    image = tmp_path / "live.iso"
    make_image(image, 12 * MiB + 512)
    backing = make_backing(tmp_path / "stick.img", 16 * MiB)
    with udisks_loop_device(backing, udisks_bus) as node:
        result = write_image(
            open_image(image), resolve_target(node), opener=udisks_opener(udisks_bus)
        )
        assert result.verified
        cmp_prefix(image, node, result.image_size)


def test_cancel_through_udisks_wipes(udisks_bus: str, tmp_path: Path) -> None:  # noqa: F811
    image = tmp_path / "live.iso"
    make_image(image, 24 * MiB)
    backing = make_backing(tmp_path / "stick.img", 32 * MiB)
    with udisks_loop_device(backing, udisks_bus) as node:
        with pytest.raises(Cancelled, match="wiped"):
            write_image(
                open_image(image),
                resolve_target(node),
                reporter=CancelAt(4 * MiB),
                opener=udisks_opener(udisks_bus),
            )
        assert device_bytes(node, MiB) == bytes(MiB)


def test_persistence_through_udisks(udisks_bus: str, tmp_path: Path) -> None:  # noqa: F811
    """UDisks2 hands out a write-only descriptor: the partition tables and the file system
    go through it without reading anything back."""
    image = tmp_path / "live.iso"
    make_image(image, 12 * MiB + 512)
    backing = make_backing(tmp_path / "stick.img", 96 * MiB)
    with udisks_loop_device(backing, udisks_bus) as node:
        result = write_image(
            open_image(image),
            resolve_target(node),
            opener=udisks_opener(udisks_bus),
            persistence=Persistence(None),
        )
        assert result.verified and "ext4 labelled LIVESMITH-RW" in result.persistence
        assert result.skipped == ("bytes 462-477 (MBR partition entry 2)",)
        head = device_bytes(node, MiB)
        assert head[466] == 0x83 and struct.unpack_from("<II", head, 470) == (
            13 * MiB // 512,
            83 * MiB // 512,
        )
        probe = run("blkid", "-p", "-O", str(13 * MiB), "-o", "export", node)
        assert "LABEL=LIVESMITH-RW" in probe and "TYPE=ext4" in probe
