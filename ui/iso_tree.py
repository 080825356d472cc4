"""The files of an inspected ISO as a Qt tree model, and the search that filters it.

`IsoTreeModel` turns the flat, depth-first `IsoReport.files` list into a tree once
(parallel lists indexed by node number, so an index carries a plain integer id and no
Python object); `data()` only formats. The image's root directory is the invisible
root: its children are the top-level rows.

`IsoTreeFilter` sorts (by the raw value behind each column: bytes for Size) and
searches names; it filters recursively, so the folders leading to a match stay
visible, and the contents of a matching folder stay browsable.
"""

from __future__ import annotations

import stat
from collections.abc import Sequence
from enum import IntEnum
from typing import Any

from PySide6.QtCore import (
    QAbstractItemModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QIcon
from PySide6.QtGui import Qt as GuiQt
from PySide6.QtWidgets import QApplication, QStyle

from app.display import printable
from app.iso.inspect import IsoEntry
from app.units import binary_size

ModelIndex = QModelIndex | QPersistentModelIndex


class Column(IntEnum):
    NAME = 0
    SIZE = 1
    TYPE = 2
    MODE = 3
    OWNER = 4
    TARGET = 5


COLUMNS = len(Column)
HEADERS = {
    Column.NAME: "Name",
    Column.SIZE: "Size",
    Column.TYPE: "Type",
    Column.MODE: "Mode",
    Column.OWNER: "Owner",
    Column.TARGET: "Link target",
}
TYPE_NAMES = {
    "dir": "Folder",
    "file": "File",
    "symlink": "Symbolic link",
    "other": "Device, FIFO or socket",
}
TYPE_BITS = {"file": stat.S_IFREG, "dir": stat.S_IFDIR, "symlink": stat.S_IFLNK}
UNKNOWN = "—"  # images without Rock Ridge carry no modes or owners
SLASH_SHOWN = "∕"  # U+2215: a "/" inside a name, which a path cannot show
AMBIGUOUS_NOTE = "its name contains “/”, so its path is ambiguous: it cannot be extracted"

SORT_ROLE = Qt.ItemDataRole.UserRole + 1  # the raw value a column sorts by
PATH_ROLE = Qt.ItemDataRole.UserRole + 2  # the entry's path inside the ISO ("/boot/grub")
ENTRY_ROLE = Qt.ItemDataRole.UserRole + 3  # the IsoEntry itself
NAME_ROLE = Qt.ItemDataRole.UserRole + 4  # the entry's name, as searched

FOLDER_FLAGS = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
LEAF_FLAGS = FOLDER_FLAGS | Qt.ItemFlag.ItemNeverHasChildren

ROOT = 0  # node number of the image's root directory
TOP = QModelIndex()  # the parent of top-level rows (an immutable value, safe as a default)


def human_size(size: int) -> str:
    """Binary units, like `ls -lh` and the CLI's `inspect`: 1536 -> "1.5 KiB"."""
    return binary_size(size)


def shown_text(name: str) -> str:
    """A name from the image as it is shown: control characters (a line feed, ESC) and bytes
    that are not valid UTF-8 (kept as surrogate escapes) as visible \\x escapes."""
    return printable(name)


def tooltip_text(text: str) -> str:
    """`text` as a tooltip that shows it literally. Qt guesses whether a tooltip is rich
    text, so a name like "<img src=/etc/x>" would be rendered: escape it and hand Qt
    rich text that says so."""
    return GuiQt.convertFromPlainText(shown_text(text))


def mode_text(entry: IsoEntry) -> str:
    """Like `ls -l`: "drwxr-xr-x", "-rwsr-xr-x", "lrwxrwxrwx"; "?" where the image has no mode."""
    kind = "?" if entry.type == "other" else stat.filemode(TYPE_BITS[entry.type])[0]
    if entry.mode is None:
        return kind + "?" * 9
    return kind + stat.filemode(entry.mode)[1:]


def owner_text(entry: IsoEntry) -> str:
    if entry.uid is None and entry.gid is None:
        return UNKNOWN
    uid = "?" if entry.uid is None else str(entry.uid)
    gid = "?" if entry.gid is None else str(entry.gid)
    return f"{uid}:{gid}"


class TreeData:
    """The tree `IsoTreeModel` shows, as plain lists: built without Qt, on any thread."""

    def __init__(self) -> None:
        root = IsoEntry(path="/", type="dir", size=0, mode=None, uid=None, gid=None, target=None)
        self.entries: list[IsoEntry] = [root]
        self.names: list[str] = [""]
        self.parents: list[int] = [-1]
        self.rows: list[int] = [0]
        self.children: list[list[int]] = [[]]
        self.by_path: dict[str, int] = {"/": ROOT}  # unambiguous paths only
        self.ambiguous: set[int] = set()

    @classmethod
    def build(cls, entries: Sequence[IsoEntry]) -> TreeData:
        """The tree of `entries`, as `inspect_iso` lists them: a pre-order walk,
        each folder before its contents; an entry's parent is the nearest folder listed
        above it whose path leads to it.

        A path is names joined by "/", but a hostile image can hold a name with "/" in it:
        its path then reads as deeper than it is. Such an entry (what remains of its path
        below its parent still holds a "/"), and a second entry with a path already shown,
        is shown under that parent with the "/" as "∕" and is marked ambiguous
        (`is_ambiguous`), as is everything inside it: its path does not say which entry it
        is, so it cannot be extracted. No folder is invented for it."""
        tree = cls()
        folders = [ROOT]  # the folders that hold the entry being added, outermost first
        for entry in entries:
            if entry.path == "/":
                tree.entries[ROOT] = entry
                continue
            node = tree.add(entry, folders)
            if entry.type == "dir":
                folders.append(node)
        return tree

    def prefix(self, node: int) -> str:
        return "/" if node == ROOT else self.entries[node].path + "/"

    def add(self, entry: IsoEntry, folders: list[int]) -> int:
        while len(folders) > 1 and not entry.path.startswith(self.prefix(folders[-1])):
            folders.pop()
        parent = folders[-1]
        name = entry.path[len(self.prefix(parent)) :]
        node = len(self.entries)
        if not name or "/" in name or entry.path in self.by_path or parent in self.ambiguous:
            self.ambiguous.add(node)
        else:
            self.by_path[entry.path] = node
        self.entries.append(entry)
        self.names.append(name)
        self.parents.append(parent)
        self.rows.append(len(self.children[parent]))
        self.children[parent].append(node)
        self.children.append([])
        return node


class IsoTreeModel(QAbstractItemModel):
    """Read-only tree over a list of `IsoEntry` (as `inspect_iso` returns it)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._icons: dict[str, QIcon] = {}
        self._clear()

    def _clear(self) -> None:
        self._adopt(TreeData())
        self._folded_names: list[str] | None = None  # made by the first search
        self._folded_paths: list[str] | None = None

    def _adopt(self, tree: TreeData) -> None:
        self._entries = tree.entries
        self._names = tree.names
        self._parents = tree.parents
        self._rows = tree.rows
        self._children = tree.children
        self._by_path = tree.by_path
        self._ambiguous = tree.ambiguous

    # -- building ---------------------------------------------------------------------------
    def set_entries(self, entries: Sequence[IsoEntry]) -> None:
        """Replace the tree (see `TreeData.build`)."""
        self.set_tree(TreeData.build(entries))

    def set_tree(self, tree: TreeData) -> None:
        """Replace the tree with one built by `TreeData.build`, on any thread: only this swap
        runs on the GUI thread."""
        self.beginResetModel()
        self._clear()
        self._adopt(tree)
        self.endResetModel()

    def _folder_prefix(self, node: int) -> str:
        return "/" if node == ROOT else self._entries[node].path + "/"

    def is_ambiguous(self, index: ModelIndex) -> bool:
        """Is this entry's path ambiguous (a name with "/" in it, or a path shown twice)?"""
        return index.isValid() and index.model() is self and index.internalId() in self._ambiguous

    def shown_path(self, node: int) -> str:
        """The entry's path as shown: a "/" inside a name as "∕", control characters escaped."""
        if node not in self._ambiguous:
            return shown_text(self._entries[node].path)
        parent = self._parents[node]
        return ("" if parent == ROOT else self.shown_path(parent)) + "/" + self._shown_name(node)

    def _shown_name(self, node: int) -> str:
        return shown_text(self._names[node]).replace("/", SLASH_SHOWN)

    # -- lookups ----------------------------------------------------------------------------
    def entry_count(self) -> int:
        """Entries below the root (the rows of the whole tree)."""
        return len(self._entries) - 1

    def entry(self, index: ModelIndex) -> IsoEntry | None:
        if not index.isValid() or index.model() is not self:
            return None
        return self._entries[index.internalId()]

    def index_of(self, path: str, column: int = 0) -> QModelIndex:
        """The index of the entry at `path` ("/boot/grub"), or an invalid one."""
        node = self._by_path.get(path)
        return QModelIndex() if node is None else self.node_index(node, column)

    def node_index(self, node: int, column: int = 0) -> QModelIndex:
        if node == ROOT:
            return QModelIndex()
        return self.createIndex(self._rows[node], column, node)

    def child_node(self, row: int, parent: ModelIndex) -> int:
        """The node number of row `row` under `parent` (for filters: no index is made)."""
        return self._children[parent.internalId() if parent.isValid() else ROOT][row]

    # -- search -------------------------------------------------------------------------------
    def find(self, text: str) -> set[int]:
        """Nodes whose name (with a "/" in `text`: whose path) contains `text`, ignoring case."""
        needle = text.casefold()
        if "/" in needle:
            if self._folded_paths is None:
                self._folded_paths = [e.path.casefold() for e in self._entries]
            haystack = self._folded_paths
        else:
            if self._folded_names is None:
                self._folded_names = [n.casefold() for n in self._names]
            haystack = self._folded_names
        found = {node for node, value in enumerate(haystack) if needle in value}
        found.discard(ROOT)
        return found

    def folders_to_open(self, matches: set[int]) -> set[int]:
        """Folders to expand so every match is on screen: the folders above each match,
        except where a folder on the way matches itself (it is shown; its contents follow)."""
        result: set[int] = set()
        for node in matches:
            chain = []
            parent = self._parents[node]
            while parent > ROOT and parent not in matches:
                chain.append(parent)
                parent = self._parents[parent]
            if parent <= ROOT:  # no matching folder above: open the whole way down
                result.update(chain)
        return result

    # -- QAbstractItemModel -----------------------------------------------------------------
    # index() and parent() run hundreds of thousands of times while a proxy maps a big
    # tree: keep them to a few list lookups.
    def index(self, row: int, column: int, parent: ModelIndex = TOP) -> QModelIndex:
        if parent.isValid():
            if parent.column() != 0:
                return QModelIndex()
            children = self._children[parent.internalId()]
        else:
            children = self._children[ROOT]
        if 0 <= row < len(children) and 0 <= column < COLUMNS:
            return self.createIndex(row, column, children[row])
        return QModelIndex()

    def parent(self, index: ModelIndex = TOP) -> QModelIndex:  # type: ignore[override]
        if not index.isValid():
            return QModelIndex()
        parent = self._parents[index.internalId()]
        if parent <= ROOT:
            return QModelIndex()
        return self.createIndex(self._rows[parent], 0, parent)

    def rowCount(self, parent: ModelIndex = TOP) -> int:
        if parent.isValid():
            return len(self._children[parent.internalId()]) if parent.column() == 0 else 0
        return len(self._children[ROOT])

    def columnCount(self, parent: ModelIndex = TOP) -> int:
        return COLUMNS

    def hasChildren(self, parent: ModelIndex = TOP) -> bool:
        return self.rowCount(parent) > 0

    def flags(self, index: ModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return FOLDER_FLAGS if self._children[index.internalId()] else LEAF_FLAGS

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[Column(section)]
        return None

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        node = index.internalId()
        entry = self._entries[node]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(node, entry, column)
        if role == SORT_ROLE:
            return self._sort_key(node, entry, column)
        if role == NAME_ROLE:
            return self._names[node]
        if role == PATH_ROLE:
            return entry.path
        if role == ENTRY_ROLE:
            return entry
        if role == Qt.ItemDataRole.DecorationRole and column == Column.NAME:
            return self._icon(entry.type)
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == Column.SIZE and entry.type == "file":
                return f"{entry.size:,} bytes"
            if column in (Column.NAME, Column.TARGET):
                text = self.shown_path(node)
                if entry.target is not None:
                    text += f" → {shown_text(entry.target)}"
                if node in self._ambiguous:
                    text += f" ({AMBIGUOUS_NOTE})"
                return tooltip_text(text)
        if role == Qt.ItemDataRole.AccessibleTextRole and column == Column.NAME:
            return f"{TYPE_NAMES[entry.type]} {self._shown_name(node)}"
        if role == Qt.ItemDataRole.TextAlignmentRole and column == Column.SIZE:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _display(self, node: int, entry: IsoEntry, column: int) -> str:
        if column == Column.NAME:
            return self._shown_name(node)
        if column == Column.SIZE:
            return human_size(entry.size) if entry.type == "file" else ""
        if column == Column.TYPE:
            return TYPE_NAMES[entry.type]
        if column == Column.MODE:
            return mode_text(entry)
        if column == Column.OWNER:
            return owner_text(entry)
        return shown_text(entry.target) if entry.target is not None else ""

    def _sort_key(self, node: int, entry: IsoEntry, column: int) -> Any:
        # Folders before files by name, as file managers do; the other columns sort by value.
        if column == Column.NAME:
            return ("0" if entry.type == "dir" else "1") + self._names[node].casefold()
        if column == Column.SIZE:
            return entry.size if entry.type == "file" else -1
        if column == Column.MODE:
            return -1 if entry.mode is None else entry.mode
        if column == Column.OWNER:
            return (
                f"{entry.uid if entry.uid is not None else -1:011d}:"
                f"{entry.gid if entry.gid is not None else -1:011d}"
            )
        return self._display(node, entry, column).casefold()

    def _icon(self, kind: str) -> QIcon | None:
        icon = self._icons.get(kind)
        if icon is None:
            if not isinstance(QApplication.instance(), QApplication):
                return None  # no widgets application (a model used on its own): no style

            pixmap = {
                "dir": QStyle.StandardPixmap.SP_DirIcon,
                "symlink": QStyle.StandardPixmap.SP_FileLinkIcon,
            }.get(kind, QStyle.StandardPixmap.SP_FileIcon)
            icon = QApplication.style().standardIcon(pixmap)
            self._icons[kind] = icon
        return icon


class IsoTreeFilter(QSortFilterProxyModel):
    """Sorts by raw values and keeps the matches of a name search with the folders above them.

    The search is a case-insensitive substring of the name; with a "/" in it, of the path.
    The matches are found once per search in the source model's name list; Qt's recursive
    filtering then keeps the folders above them, and `autoAcceptChildRows` the contents of
    a matching folder.
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.setRecursiveFilteringEnabled(True)
        self.setAutoAcceptChildRows(True)
        self._search = ""
        self._matches: set[int] | None = None  # None: no search, everything is shown

    def setSourceModel(self, model: QAbstractItemModel) -> None:
        if not isinstance(model, IsoTreeModel):
            raise TypeError("IsoTreeFilter filters an IsoTreeModel")
        super().setSourceModel(model)
        # New entries have new node numbers: the proxy's own reset runs first (everything
        # shown), then the search is run again on the new tree.
        model.modelAboutToBeReset.connect(self._forget_matches)
        model.modelReset.connect(self.refresh)

    def _forget_matches(self) -> None:
        self._matches = None

    def tree(self) -> IsoTreeModel:
        model = self.sourceModel()
        assert isinstance(model, IsoTreeModel)
        return model

    def search(self) -> str:
        return self._search

    def set_search(self, text: str) -> None:
        matches = self.tree().find(text) if text else None
        if hasattr(self, "beginFilterChange"):  # Qt 6.9+; invalidateRowsFilter is deprecated
            self.beginFilterChange()
            self._search, self._matches = text, matches
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self._search, self._matches = text, matches
            self.invalidateRowsFilter()

    def refresh(self) -> None:
        """Search again (the source model got new entries)."""
        if self._search:
            self.set_search(self._search)

    def filterAcceptsRow(self, source_row: int, source_parent: ModelIndex) -> bool:
        if self._matches is None:
            return True
        return self.tree().child_node(source_row, source_parent) in self._matches

    def match_count(self) -> int:
        """Entries whose name matches (those only shown inside a matching folder not counted)."""
        return self.tree().entry_count() if self._matches is None else len(self._matches)

    def matches(self, index: ModelIndex) -> bool:
        """Does this (proxy) row match the search itself, not only through a child or parent?"""
        if self._matches is None:
            return True
        source = self.mapToSource(index)
        return source.isValid() and source.internalId() in self._matches

    def entry(self, index: ModelIndex) -> IsoEntry | None:
        value = index.data(ENTRY_ROLE) if index.isValid() else None
        return value if isinstance(value, IsoEntry) else None

    def expansions(self, limit: int | None = None) -> list[QModelIndex]:
        """The folders to open so every match can be seen: those shown only because of a
        match further down (a matching folder itself stays closed; its contents are listed).
        In tree order; at most `limit` of them."""
        if not self._matches:
            return []
        tree = self.tree()
        folders = sorted(tree.folders_to_open(self._matches))  # node order is tree order
        return [self.mapFromSource(tree.node_index(node)) for node in folders[:limit]]
