"""The drive list's view: a filter that hides what is not offered, two-line rows, and a
list view that shows (and edits) the selection the drive model holds.

The model is the one place the selection lives (`DriveListModel.selected`): the view only
mirrors it. A change the user makes in the view is passed to the model; a change of the
list (a drive gone, re-sorted, no longer offered) is applied by the model and then shown,
so Qt moving the current row to a neighbour never chooses another disk.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import (
    QItemSelection,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRect,
    QSize,
    QSortFilterProxyModel,
    Qt,
    Slot,
)
from PySide6.QtGui import QFocusEvent, QFont, QFontMetrics, QIcon, QPainter, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QListView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from app.usb.drives import Drive
from ui.drive_model import DriveListModel

ModelIndex = QModelIndex | QPersistentModelIndex


class DriveFilter(QSortFilterProxyModel):
    """Hides drives that are not offered unless `show_all`; their tooltip says why not."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._show_all = False

    def set_show_all(self, show: bool) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt 6.9 and later
            self.beginFilterChange()
            self._show_all = show
            self.endFilterChange()
        else:
            self._show_all = show
            self.invalidateFilter()

    def drive(self, index: ModelIndex) -> Drive | None:
        value = self.data(index, DriveListModel.DriveRole) if index.isValid() else None
        return value if isinstance(value, Drive) else None

    def filterAcceptsRow(self, row: int, parent: ModelIndex) -> bool:
        if self._show_all:
            return True
        value = self.sourceModel().index(row, 0, parent).data(DriveListModel.DriveRole)
        return not isinstance(value, Drive) or value.offered

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        value = super().data(index, role)
        if role in (Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.AccessibleDescriptionRole):
            drive = super().data(index, DriveListModel.DriveRole)
            if isinstance(drive, Drive) and not drive.offered:
                reason = f"Not offered: {drive.excluded_reason}"
                return f"{reason}\n{value}" if value else reason
        return value


def drive_lines(drive: Drive) -> tuple[str, str]:
    """The two lines a drive is shown with: what it is, then where and how it is attached."""
    first = f"{drive.name} \u2014 {drive.size_text}"
    details = [drive.devnode]
    if drive.bus:
        details.append({"usb": "USB", "mmc": "SD/MMC card"}.get(drive.bus, drive.bus.upper()))
    if drive.serial:
        details.append(f"serial {drive.serial}")
    if drive.mounted_partitions:
        details.append("mounted: " + ", ".join(p for _, p in drive.mounted_partitions))
    if not drive.offered:
        details.append(f"not offered: {drive.excluded_reason}")
    return first, " \u00b7 ".join(details)


class DriveDelegate(QStyledItemDelegate):
    """Paints a drive on two lines, with a drive icon; disabled rows greyed by the style."""

    def _lines(self, index: ModelIndex) -> tuple[str, str] | None:
        drive = index.data(DriveListModel.DriveRole)
        return drive_lines(drive) if isinstance(drive, Drive) else None

    def sizeHint(self, option: QStyleOptionViewItem, index: ModelIndex) -> QSize:
        base = super().sizeHint(option, index)
        height = option.fontMetrics.height()
        return QSize(base.width(), max(base.height(), 2 * height + 14))

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: ModelIndex) -> None:
        lines = self._lines(index)
        if lines is None:
            super().paint(painter, option, index)
            return
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        widget = opt.widget
        style = widget.style() if widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, widget)
        rect: QRect = opt.rect
        icon = style.standardIcon(QStyle.StandardPixmap.SP_DriveHDIcon)
        size = rect.height() - 12
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        enabled = bool(opt.state & QStyle.StateFlag.State_Enabled)
        icon.paint(
            painter,
            QRect(rect.left() + 6, rect.top() + 6, size, size),
            Qt.AlignmentFlag.AlignCenter,
            QIcon.Mode.Normal if enabled else QIcon.Mode.Disabled,
        )
        palette = opt.palette
        group = QPalette.ColorGroup.Normal if enabled else QPalette.ColorGroup.Disabled
        role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        text_rect = rect.adjusted(size + 18, 5, -6, -5)
        line_height = text_rect.height() // 2
        painter.save()
        painter.setPen(palette.color(group, role))
        bold = QFont(opt.font)
        bold.setBold(True)
        painter.setFont(bold)
        metrics = QFontMetrics(bold)
        painter.drawText(
            QRect(text_rect.left(), text_rect.top(), text_rect.width(), line_height),
            Qt.AlignmentFlag.AlignVCenter,
            metrics.elidedText(lines[0], Qt.TextElideMode.ElideRight, text_rect.width()),
        )
        painter.setFont(opt.font)
        metrics = QFontMetrics(opt.font)
        painter.drawText(
            QRect(text_rect.left(), text_rect.top() + line_height, text_rect.width(), line_height),
            Qt.AlignmentFlag.AlignVCenter,
            metrics.elidedText(lines[1], Qt.TextElideMode.ElideRight, text_rect.width()),
        )
        painter.restore()


class DriveListView(QListView):
    """The drives, several selectable (Ctrl/Shift), mirroring the model's selection."""

    def __init__(self, model: DriveListModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.drives = DriveFilter(self)
        self.drives.setSourceModel(model)
        self.source = model
        self._applying = False
        self.setModel(self.drives)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setUniformItemSizes(True)
        self.setItemDelegate(DriveDelegate(self))
        self.selectionModel().selectionChanged.connect(self._view_changed)
        model.selectionChanged.connect(self.show_selection)
        model.drivesChanged.connect(self.show_selection)
        for signal in (self.drives.layoutChanged, self.drives.modelReset, self.drives.rowsInserted):
            signal.connect(self.show_selection)

    def focusInEvent(self, event: QFocusEvent) -> None:
        # Qt makes the first row current on focus, without choosing it: then the first
        # arrow key would skip it. Nothing is current until something is chosen.
        had = self.currentIndex().isValid()
        super().focusInEvent(event)
        if not had and not self.selectionModel().hasSelection():
            flags = QItemSelectionModel.SelectionFlag.NoUpdate
            self.selectionModel().setCurrentIndex(QModelIndex(), flags)

    @Slot()
    def _view_changed(self) -> None:
        if self._applying or self.source.updating:
            return  # the list is changing: the model decides, then it is shown
        rows = self.selectionModel().selectedRows()
        chosen = [d for d in (self.drives.drive(i) for i in rows) if d is not None]
        self.source.select(chosen)

    @Slot()
    def show_selection(self) -> None:
        if self.source.updating:
            return
        wanted = QItemSelection()
        for row in range(self.drives.rowCount()):
            index = self.drives.index(row, 0)
            if self.source.is_selected(self.drives.mapToSource(index).row()):
                wanted.select(index, index)
        flags = QItemSelectionModel.SelectionFlag
        self._applying = True
        try:
            model = self.selectionModel()
            if model.selection().indexes() != wanted.indexes():
                model.select(wanted, flags.ClearAndSelect | flags.Rows)
            current = self.currentIndex()
            if not wanted.indexes():
                model.setCurrentIndex(QModelIndex(), flags.NoUpdate)
            elif not current.isValid() or not model.isSelected(current):
                model.setCurrentIndex(wanted.indexes()[0], flags.NoUpdate)
        finally:
            self._applying = False
