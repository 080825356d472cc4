"""The drive list as a Qt model, fed by the hotplug monitor; it also holds the selection.

The selection is the drives the user chose to write (several at once is allowed). It is
kept by the disk (its sysfs path) as it was when chosen, and it never moves to another
disk: a chosen drive that goes away, stops being offered, or turns out to be another disk
under the same name is dropped from the selection (`selectionDropped` says which and why),
never replaced by its neighbour.

`DriveMonitor` calls back from its own thread. Its callbacks only emit signals of a small
bridge object that lives in the GUI thread, so Qt queues them and the model is changed in
the GUI thread alone. (Connecting a lambda instead would run it in the monitor thread.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QByteArray,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
    Slot,
)

from app.usb.drives import LARGE_DRIVE, Drive
from app.usb.hotplug import DriveMonitor
from app.usb.identity import differences
from app.usb.target import Mount, Swap, human_size

ModelIndex = QModelIndex | QPersistentModelIndex


class _MonitorBridge(QObject):
    """Carries monitor callbacks into the thread this object lives in (the GUI thread)."""

    changed = Signal(object)  # list[Drive]
    removed = Signal(str)
    failed = Signal(str)


def warning_text(drive: Drive) -> str | None:
    """What the user should know before choosing this drive, or None."""
    notes = []
    if drive.large:
        notes.append(
            f"Larger than {human_size(LARGE_DRIVE)}: make sure this is the stick you "
            "mean, not a backup disk."
        )
    if drive.mounted_partitions and drive.offered:
        mounted = ", ".join(f"{node} on {point}" for node, point in drive.mounted_partitions)
        notes.append(f"In use: {mounted}. These are unmounted before writing.")
    return "\n".join(notes) or None


def other_disk(before: Drive, now: Drive) -> bool:
    """True if the row now describes another disk than the one chosen (same name)."""
    if before.identity is None or now.identity is None:
        return before.devno != now.devno
    return bool(differences(before.identity, now.identity))


GONE = "went away"
NOT_OFFERED = "is no longer offered"


class DriveListModel(QAbstractListModel):
    """One row per drive; rows are updated in place so a selection survives a re-listing."""

    DriveRole = Qt.ItemDataRole.UserRole + 1
    WarningRole = Qt.ItemDataRole.UserRole + 2
    DevnodeRole = Qt.ItemDataRole.UserRole + 3

    drivesChanged = Signal()  # after every update of the list
    driveRemoved = Signal(str)  # a disk went away (devnode), reported at once
    monitorError = Signal(str)
    selectionChanged = Signal()  # the chosen drives changed (also when one was dropped)
    selectionDropped = Signal(object, str)  # after that: a chosen Drive dropped, and why

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        include_excluded: bool = False,
        mounts: Sequence[Mount] | None = None,
        swaps: Sequence[Swap] | None = None,
        image: str | Path | None = None,
        debounce: float | None = None,
    ) -> None:
        super().__init__(parent)
        self._drives: list[Drive] = []
        self._selected: dict[str, Drive] = {}  # sys_path -> the drive as it was chosen
        self.updating = False  # inside set_drives: rows move, the selection does not
        self._bridge = _MonitorBridge(self)
        self._bridge.changed.connect(self.set_drives)
        self._bridge.removed.connect(self._on_removed)
        self._bridge.failed.connect(self.monitorError)
        options: dict[str, Any] = {
            "include_excluded": include_excluded,
            "mounts": mounts,
            "swaps": swaps,
            "image": image,
        }
        if debounce is not None:
            options["debounce"] = debounce
        self._monitor = DriveMonitor(
            self._bridge.changed.emit,
            self._bridge.removed.emit,
            on_error=self._report_error,
            **options,
        )
        self._running = False

    # ------------------------------------------------------------ monitor

    def start(self) -> None:
        """Start watching; the first list arrives shortly after (drivesChanged)."""
        if not self._running:
            self._monitor.start()
            self._running = True

    def stop(self) -> None:
        if self._running:
            self._monitor.stop()
            self._running = False

    def set_image(self, image: str | Path | None) -> None:
        """The disk holding this image is never offered; re-list with it."""
        self._monitor.set_image(image)

    def refresh(self) -> None:
        self._monitor.refresh()

    def _report_error(self, exc: BaseException) -> None:  # monitor thread
        self._bridge.failed.emit(str(exc))

    @Slot(str)
    def _on_removed(self, devnode: str) -> None:
        self.driveRemoved.emit(devnode)

    # ------------------------------------------------------------ selection

    def selected(self) -> list[Drive]:
        """The chosen drives as they were when chosen, in list order."""
        order = {d.sys_path: row for row, d in enumerate(self._drives)}
        return sorted(self._selected.values(), key=lambda d: order.get(d.sys_path, -1))

    def is_selected(self, row: int) -> bool:
        drive = self.drive_at(row)
        return drive is not None and drive.sys_path in self._selected

    def select(self, drives: Iterable[Drive]) -> None:
        """Choose exactly these drives (those not offered or not listed are left out)."""
        listed = {d.sys_path: d for d in self._drives}
        chosen = {}
        for drive in drives:
            now = listed.get(drive.sys_path)
            if now is not None and now.offered:
                chosen[now.sys_path] = now
        if chosen.keys() != self._selected.keys():
            self._selected = chosen
            self.selectionChanged.emit()

    def clear_selection(self) -> None:
        self.select(())

    def drop_selected(self, devnode: str, note: str = GONE) -> Drive | None:
        """The disk named `devnode` went away (reported at once): unchoose it."""
        for key, drive in list(self._selected.items()):
            if drive.devnode == devnode:
                del self._selected[key]
                self.selectionChanged.emit()
                self.selectionDropped.emit(drive, note)
                return drive
        return None

    def _drops(self, drives: list[Drive]) -> list[tuple[Drive, str]]:
        by_key = {d.sys_path: d for d in drives}
        drops = []
        for key, chosen in list(self._selected.items()):
            now = by_key.get(key)
            if now is None or other_disk(chosen, now):
                drops.append((chosen, GONE))
            elif not now.offered:
                drops.append((chosen, NOT_OFFERED))
        for chosen, _note in drops:
            del self._selected[chosen.sys_path]
        return drops

    # ------------------------------------------------------------ contents

    def drives(self) -> list[Drive]:
        return list(self._drives)

    def drive_at(self, row: int) -> Drive | None:
        return self._drives[row] if 0 <= row < len(self._drives) else None

    def row_of(self, devnode: str) -> int:
        for row, drive in enumerate(self._drives):
            if drive.devnode == devnode:
                return row
        return -1

    @Slot(object)
    def set_drives(self, drives: list[Drive]) -> None:
        """Replace the list: remove gone rows, update changed ones, insert new ones."""
        drops = self._drops(drives)
        self.updating = True
        try:
            self._update(drives)
        finally:
            self.updating = False
        self.drivesChanged.emit()
        if drops:
            self.selectionChanged.emit()
        for chosen, note in drops:
            self.selectionDropped.emit(chosen, note)

    def _update(self, drives: list[Drive]) -> None:
        new_keys = [d.sys_path for d in drives]
        wanted = set(new_keys)
        for row in reversed(range(len(self._drives))):
            if self._drives[row].sys_path not in wanted:
                self.beginRemoveRows(QModelIndex(), row, row)
                del self._drives[row]
                self.endRemoveRows()
        kept = [d.sys_path for d in self._drives]
        if kept != [k for k in new_keys if k in set(kept)]:
            # The order changed (a drive became excluded and sorts last): start over.
            self.beginResetModel()
            self._drives = list(drives)
            self.endResetModel()
            return
        by_key = {d.sys_path: d for d in drives}
        for row, old in enumerate(self._drives):
            new = by_key[old.sys_path]
            if new != old:
                self._drives[row] = new
                index = self.index(row)
                self.dataChanged.emit(index, index)
        for row, drive in enumerate(drives):
            if row >= len(self._drives) or self._drives[row].sys_path != drive.sys_path:
                self.beginInsertRows(QModelIndex(), row, row)
                self._drives.insert(row, drive)
                self.endInsertRows()

    # ------------------------------------------------------------ QAbstractListModel

    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._drives)

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        drive = self.drive_at(index.row()) if index.isValid() else None
        if drive is None:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            text = drive.display_text
            return text if drive.offered else f"{text} \u2014 not offered: {drive.excluded_reason}"
        if role == self.DriveRole:
            return drive
        if role == self.WarningRole:
            return warning_text(drive)
        if role == self.DevnodeRole:
            return drive.devnode
        if role == Qt.ItemDataRole.ToolTipRole:
            details = [
                f"Device: {drive.devnode}",
                f"Size: {drive.size:,} bytes",
                f"Bus: {drive.bus or 'unknown'}",
            ]
            if drive.serial:
                details.append(f"Serial: {drive.serial}")
            warning = warning_text(drive)
            return "\n".join(details + ([warning] if warning else []))
        return None

    def flags(self, index: ModelIndex) -> Qt.ItemFlag:
        drive = self.drive_at(index.row()) if index.isValid() else None
        if drive is None or not drive.offered:
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def roleNames(self) -> dict[int, QByteArray]:
        names = dict(super().roleNames())
        names[self.DriveRole] = QByteArray(b"drive")
        names[self.WarningRole] = QByteArray(b"warning")
        names[self.DevnodeRole] = QByteArray(b"devnode")
        return names
