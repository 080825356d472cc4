"""The Qt drive model fed by hotplug on a umockdev testbed (pytest-qt, offscreen).

Run only under umockdev-wrapper, by tests/ui/test_drive_model.py (see umock_support.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.app.usb.umock_support import GB, add_mmc_card, add_usb_stick, preload_active

if not preload_active():  # pyudev would crash on the testbed
    pytest.exit("umock_qt_cases.py must run under umockdev-wrapper", returncode=3)

import gi

gi.require_version("UMockdev", "1.0")
import pyudev  # noqa: E402
from gi.repository import UMockdev  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from app.usb.drives import Drive  # noqa: E402
from ui.drive_model import DriveListModel  # noqa: E402


@pytest.fixture(scope="session")
def session_testbed() -> Any:
    return UMockdev.Testbed.new()  # one per process, see umock_cases.py


@pytest.fixture
def tb(session_testbed: Any) -> Iterator[Any]:
    assert list(pyudev.Context().list_devices(subsystem="block")) == []
    yield session_testbed
    session_testbed.clear()


@pytest.fixture
def model(qtbot: Any) -> Iterator[DriveListModel]:
    m = DriveListModel(mounts=[], swaps=[], debounce=0.2)
    yield m
    m.stop()


def test_hotplug_reaches_the_model_in_the_gui_thread(
    tb: Any, qtbot: Any, model: DriveListModel
) -> None:
    gui_thread = threading.get_ident()
    seen_in: set[int] = set()
    model.rowsInserted.connect(lambda *a: seen_in.add(threading.get_ident()))
    model.rowsRemoved.connect(lambda *a: seen_in.add(threading.get_ident()))
    with qtbot.waitSignal(model.drivesChanged, timeout=5000):
        model.start()
    assert model.rowCount() == 0

    stick = add_usb_stick(tb, size=16 * GB, partitions=1)
    with qtbot.waitSignal(model.rowsInserted, timeout=5000):
        tb.uevent(stick.sys_path, "add")
        tb.uevent(stick.partitions[0].sys_path, "add")
    assert model.rowCount() == 1
    index = model.index(0)
    assert model.data(index) == "SanDisk Ultra \u2014 16.0 GB (/dev/sdb)"
    drive = model.data(index, DriveListModel.DriveRole)
    assert isinstance(drive, Drive) and drive.serial == "4C530001" and drive.bus == "usb"
    assert model.data(index, DriveListModel.WarningRole) is None
    assert model.data(index, DriveListModel.DevnodeRole) == "/dev/sdb"
    assert model.flags(index) & Qt.ItemFlag.ItemIsSelectable

    # A big external disk arrives: a second row, with the warning role set.
    big = add_usb_stick(
        tb,
        name="sdc",
        devno=(8, 32),
        port="1-2",
        size=256 * GB,
        vendor="WD",
        model="My Passport",
        serial="WX1",
    )
    with qtbot.waitSignal(model.rowsInserted, timeout=5000):
        tb.uevent(big.sys_path, "add")
    assert [model.data(model.index(r), DriveListModel.DevnodeRole) for r in range(2)] == [
        "/dev/sdb",
        "/dev/sdc",
    ]
    assert "Larger than 64.0 GB" in model.data(model.index(1), DriveListModel.WarningRole)

    # Unplugged: driveRemoved at once, then the row goes.
    with qtbot.waitSignal(model.driveRemoved, timeout=2000) as removed:
        tb.uevent(stick.partitions[0].sys_path, "remove")
        tb.uevent(stick.sys_path, "remove")
        tb.remove_device(stick.partitions[0].sys_path)
        tb.remove_device(stick.sys_path)
    assert removed.args == ["/dev/sdb"]
    qtbot.waitUntil(lambda: model.rowCount() == 1, timeout=5000)
    assert model.data(model.index(0), DriveListModel.DevnodeRole) == "/dev/sdc"
    assert seen_in == {gui_thread}  # never touched from the monitor thread


def test_a_card_pulled_out_is_reported_to_the_model(
    tb: Any, qtbot: Any, model: DriveListModel
) -> None:
    card = add_mmc_card(tb)
    with qtbot.waitSignal(model.drivesChanged, timeout=5000):
        model.start()
    assert model.rowCount() == 1
    with qtbot.waitSignal(model.driveRemoved, timeout=2000) as removed:
        tb.set_attribute(card.sys_path, "size", "0")
        tb.uevent(card.sys_path, "change")
    assert removed.args == ["/dev/mmcblk0"]
    qtbot.waitUntil(lambda: model.rowCount() == 0, timeout=5000)
