"""The package table of the Packages page: every package of the source, with check boxes.

A row is checked when the user selected the package, or when the resolution pulled it in
as a dependency; then it is greyed, cannot be unticked and says "required by …". Rows with
a missing dependency or a conflict are highlighted and say which. Names the profile selects
but the source lacks get a row of their own, so they can be unticked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor

from app.packages.model import PackageInfo
from app.packages.resolve import Resolution
from app.units import binary_size

Index = QModelIndex | QPersistentModelIndex

COLUMNS = ("Name", "Version", "Size", "Description", "Status")
NAME, VERSION, SIZE, DESCRIPTION, STATUS = range(len(COLUMNS))

PROBLEM_BACKGROUND = QColor(255, 220, 220)
DEPENDENCY_FOREGROUND = QColor(128, 128, 128)


def human_size(size: int) -> str:
    return binary_size(size, byte_word="bytes") if size > 0 else "—"


@dataclass(frozen=True)
class Row:
    name: str
    info: PackageInfo | None  # None: selected but not in the source


class PackageTableModel(QAbstractTableModel):
    selectionToggled = Signal(str, bool)  # name, checked: the user ticked or unticked a row

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[Row] = []
        self._selected: tuple[str, ...] = ()
        self._resolution: Resolution | None = None
        self._problems: dict[str, list[str]] = {}

    # -- feeding ------------------------------------------------------------------------
    def set_packages(
        self,
        packages: Sequence[PackageInfo],
        selected: Sequence[str],
        resolution: Resolution | None,
    ) -> None:
        self.beginResetModel()
        known = {p.name for p in packages}
        self._rows = [Row(p.name, p) for p in sorted(packages, key=lambda p: p.name)]
        self._rows += [Row(n, None) for n in selected if n not in known]
        self._selected = tuple(selected)
        self._set_resolution(resolution)
        self.endResetModel()

    def set_selection(self, selected: Sequence[str], resolution: Resolution | None) -> None:
        """New selection and resolution for the same packages (rows keep their order)."""
        known = {r.name for r in self._rows}
        if any(n not in known for n in selected):
            self.set_packages(
                [r.info for r in self._rows if r.info is not None], selected, resolution
            )
            return
        self._selected = tuple(selected)
        self._set_resolution(resolution)
        if self._rows:
            self.dataChanged.emit(
                self.index(0, 0), self.index(len(self._rows) - 1, len(COLUMNS) - 1)
            )

    def _set_resolution(self, resolution: Resolution | None) -> None:
        self._resolution = resolution
        problems: dict[str, list[str]] = {}
        if resolution is not None:
            for dep, by in resolution.missing:
                problems.setdefault(by, []).append(f"missing dependency: {dep}")
            for a, b in resolution.conflicts:
                problems.setdefault(a, []).append(f"conflicts with {b}")
                problems.setdefault(b, []).append(f"conflicts with {a}")
            for name in resolution.unknown:
                problems.setdefault(name, []).append("not in this package source")
        self._problems = problems

    # -- reading ------------------------------------------------------------------------
    def row_of(self, name: str) -> int:
        return next((i for i, r in enumerate(self._rows) if r.name == name), -1)

    def names(self) -> list[str]:
        return [r.name for r in self._rows]

    def is_checked(self, name: str) -> bool:
        return name in self._selected or self.is_dependency(name)

    def is_dependency(self, name: str) -> bool:
        res = self._resolution
        return res is not None and name not in self._selected and res.get(name) is not None

    def status(self, name: str) -> str:
        parts = list(self._problems.get(name, []))
        res = self._resolution
        if name in self._selected:
            parts.insert(0, "selected")
        elif res is not None and name in res.reasons:
            parts.insert(0, res.reasons[name])
        return "; ".join(parts)

    def has_problem(self, name: str) -> bool:
        return name in self._problems

    # -- Qt -----------------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation is Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        name = self._rows[index.row()].name
        if index.column() == NAME and not self.is_dependency(name):
            flags |= Qt.ItemFlag.ItemIsUserCheckable
        return flags

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        column = index.column()
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            return self._text(row, column)
        if role == Qt.ItemDataRole.CheckStateRole and column == NAME:
            return Qt.CheckState.Checked if self.is_checked(row.name) else Qt.CheckState.Unchecked
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.status(row.name) or None
        if role == Qt.ItemDataRole.BackgroundRole and self.has_problem(row.name):
            return QBrush(PROBLEM_BACKGROUND)
        if role == Qt.ItemDataRole.ForegroundRole and self.is_dependency(row.name):
            return QBrush(DEPENDENCY_FOREGROUND)
        if role == Qt.ItemDataRole.UserRole:
            return row.name
        return None

    def _text(self, row: Row, column: int) -> str:
        info = row.info
        if column == NAME:
            return row.name
        if column == STATUS:
            return self.status(row.name)
        if info is None:
            return "—" if column != DESCRIPTION else "not in this package source"
        if column == VERSION:
            return info.version
        if column == SIZE:
            return human_size(info.size)
        return info.description

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if role != Qt.ItemDataRole.CheckStateRole or index.column() != NAME:
            return False
        name = self._rows[index.row()].name
        if self.is_dependency(name):
            return False
        checked = Qt.CheckState(value) == Qt.CheckState.Checked
        self.selectionToggled.emit(name, checked)
        return True


class PackageFilter(QSortFilterProxyModel):
    """Shows rows whose name or description contains the search text (any case)."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._text = ""

    def set_text(self, text: str) -> None:
        self._text = text.strip().lower()
        self.setFilterFixedString(self._text)  # re-filters through filterAcceptsRow below

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        if not self._text:
            return True
        model = self.sourceModel()
        for column in (NAME, DESCRIPTION):
            value = model.data(model.index(source_row, column, source_parent))
            if self._text in str(value).lower():
                return True
        return False
