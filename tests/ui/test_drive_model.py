"""The Qt drive list model: row bookkeeping on its own, and hotplug through umockdev."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QAbstractItemModelTester

from app.usb.drives import Drive
from tests.app.usb.umock_support import CaseRun, case_names, run_umock_cases
from ui.drive_model import DriveListModel, warning_text

QT_CASES = Path(__file__).resolve().parent.parent / "app" / "usb" / "umock_qt_cases.py"
GB = 1000**3


def drive(name: str, size: int = 16 * GB, **changes: Any) -> Drive:
    base = Drive(
        f"/dev/{name}",
        f"/sys/block/{name}",
        (8, 0),
        "Vendor",
        name.upper(),
        "S1",
        size,
        "usb",
        True,
        False,
        large=size > 64 * GB,
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture
def model(qtbot: Any) -> DriveListModel:
    m = DriveListModel(mounts=[], swaps=[])
    QAbstractItemModelTester(m, QAbstractItemModelTester.FailureReportingMode.Fatal, m)
    return m


def nodes(model: DriveListModel) -> list[str]:
    return [model.data(model.index(r), DriveListModel.DevnodeRole) for r in range(model.rowCount())]


def test_rows_are_inserted_updated_and_removed_in_place(model: DriveListModel, qtbot: Any) -> None:
    model.set_drives([drive("sdb"), drive("sdd")])
    assert nodes(model) == ["/dev/sdb", "/dev/sdd"]
    inserted: list[tuple[int, int]] = []
    removed: list[tuple[int, int]] = []
    changed: list[str] = []
    resets: list[bool] = []
    model.rowsInserted.connect(lambda _p, first, last: inserted.append((first, last)))
    model.rowsRemoved.connect(lambda _p, first, last: removed.append((first, last)))
    model.dataChanged.connect(
        lambda top, _bottom, _roles: changed.append(model.data(top, DriveListModel.DevnodeRole))
    )
    model.modelReset.connect(lambda: resets.append(True))

    mounted = drive("sdd", mounted_partitions=(("/dev/sdd1", "/media/x"),))
    model.set_drives([drive("sdb"), drive("sdc"), mounted])
    assert nodes(model) == ["/dev/sdb", "/dev/sdc", "/dev/sdd"]
    assert inserted == [(1, 1)] and removed == [] and changed == ["/dev/sdd"] and resets == []
    assert "In use: /dev/sdd1 on /media/x" in model.data(model.index(2), DriveListModel.WarningRole)

    model.set_drives([drive("sdc")])
    assert nodes(model) == ["/dev/sdc"]
    assert removed == [(2, 2), (0, 0)] and resets == []


def test_a_reordered_list_resets_the_model(model: DriveListModel) -> None:
    model.set_drives([drive("sdb"), drive("sdc")])
    model.set_drives([drive("sdc"), drive("sdb", excluded_reason="read-only")])
    assert nodes(model) == ["/dev/sdc", "/dev/sdb"]


def test_excluded_drives_are_shown_disabled_with_the_reason(model: DriveListModel) -> None:
    model.set_drives([drive("sdb", excluded_reason="read-only (check the write-protect switch)")])
    index = model.index(0)
    assert model.flags(index) == Qt.ItemFlag.NoItemFlags
    assert model.data(index).endswith("not offered: read-only (check the write-protect switch)")


def test_roles_and_warning_text(model: DriveListModel) -> None:
    big = drive("sdb", size=128 * GB, serial="XYZ")
    model.set_drives([big])
    index = model.index(0)
    assert model.data(index) == "Vendor SDB \u2014 128.0 GB (/dev/sdb)"
    assert model.data(index, DriveListModel.DriveRole) is big
    assert warning_text(big) == model.data(index, DriveListModel.WarningRole)
    assert "Larger than 64.0 GB" in warning_text(big)  # type: ignore[operator]
    tip = model.data(index, Qt.ItemDataRole.ToolTipRole)
    assert "Serial: XYZ" in tip and "128,000,000,000 bytes" in tip
    assert warning_text(drive("sdc")) is None
    names = model.roleNames()
    assert bytes(names[DriveListModel.DriveRole].data()) == b"drive"
    assert model.row_of("/dev/sdb") == 0 and model.row_of("/dev/nope") == -1


@pytest.fixture(scope="module")
def qt_umock_run(tmp_path_factory: pytest.TempPathFactory) -> CaseRun:
    return run_umock_cases(QT_CASES, tmp_path_factory.mktemp("umock-qt"))


@pytest.mark.parametrize("case", case_names(QT_CASES))
def test_hotplug_under_umockdev(qt_umock_run: CaseRun, case: str) -> None:
    qt_umock_run.check(case)


def test_the_model_holds_the_selection_and_never_moves_it_to_another_disk(
    model: DriveListModel,
) -> None:
    from ui.drive_model import GONE, NOT_OFFERED

    dropped: list[tuple[str, str]] = []
    changes: list[int] = []
    model.selectionDropped.connect(lambda d, note: dropped.append((d.devnode, note)))
    model.selectionChanged.connect(lambda: changes.append(len(model.selected())))
    sdb, sdc, sdd = drive("sdb", devno=(8, 16)), drive("sdc", devno=(8, 32)), drive("sdd")
    model.set_drives([sdb, drive("sdc", devno=(8, 32), excluded_reason="read-only"), sdd])
    model.select([sdd, sdb, drive("sdx"), sdc])
    # Only listed drives that are offered (as the list has them), in list order.
    assert [d.devnode for d in model.selected()] == ["/dev/sdb", "/dev/sdd"]
    assert model.is_selected(0) and not model.is_selected(1) and changes == [2]
    model.select([sdb, sdd])
    assert changes == [2], "the same selection again is no change"

    model.set_drives([sdd, sdb, sdc])  # re-sorted: the same disks stay chosen
    assert [d.devnode for d in model.selected()] == ["/dev/sdd", "/dev/sdb"] and not dropped

    model.set_drives([sdd, sdc])  # sdb unplugged
    assert dropped == [("/dev/sdb", GONE)] and [d.devnode for d in model.selected()] == ["/dev/sdd"]
    model.set_drives([drive("sdd", excluded_reason="read-only"), sdc])
    assert dropped[-1] == ("/dev/sdd", NOT_OFFERED) and model.selected() == []

    model.set_drives([sdd, sdc])
    model.select([sdc])
    model.set_drives([sdd, dataclasses.replace(sdc, devno=(8, 48))])  # another disk, same name
    assert dropped[-1] == ("/dev/sdc", GONE) and model.selected() == []

    model.select([sdd])
    assert model.drop_selected("/dev/sdd") == sdd and dropped[-1] == ("/dev/sdd", GONE)
    assert model.drop_selected("/dev/sdd") is None and model.selected() == []
