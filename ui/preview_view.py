"""The ISO preview: what an image holds and whether it boots, before writing it anywhere.

`PreviewView.load(path)` inspects the image with `app.iso.inspect.inspect_iso` on a worker
thread (`BackgroundTask`), which also builds the tree's lists (`TreeData`), and shows a busy
page meanwhile. The reader (`app.iso.isofs`) is pure Python in short steps, so the
interpreter lock passes to the GUI thread at every switch interval; then the facts (volume ids,
El Torito entries, MBR/GPT partitions, the USB verdict in words) and the file tree with a
name search. "Extract…" copies the selected file or folder out with `app.iso.extract`
(also on a worker thread); "Remaster…" opens `ui.remaster_dialog.RemasterDialog` for
other files with the same boot setup; "Write to USB…" only asks: it emits `writeRequested(path)`
for whoever embeds the view. An .iso file dropped on the view is loaded.

A failed load is shown through `ui.errors.show_error` and leaves the view as it was
(the previous image stays on screen). Call `shutdown()` before the view goes away: it
cancels and waits for running work.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QItemSelection, QModelIndex, Qt, QTimer, QUrl, Signal, Slot
from PySide6.QtGui import (
    QDesktopServices,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QKeySequence,
    QShortcut,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from app.errors import Cancelled, InputError
from app.iso.extract import extract
from app.iso.inspect import ElToritoEntry, IsoEntry, IsoReport, inspect_iso
from app.iso.partitions import Partition
from app.reporter import Reporter
from ui.dialogs import PathKind, choose_path
from ui.errors import show_error
from ui.iso_tree import (
    AMBIGUOUS_NOTE,
    Column,
    IsoTreeFilter,
    IsoTreeModel,
    TreeData,
    human_size,
    shown_text,
    tooltip_text,
)
from ui.remaster_dialog import RemasterDialog
from ui.worker import BackgroundTask

EMPTY, BUSY, CONTENT = range(3)
FIRST_LOOK_DEPTH = 2  # levels read before the whole tree: folders of the top show arrows
ISO_FILTER = "ISO images (*.iso);;All files (*)"
NAME_SOURCES = {
    "rock_ridge": "Rock Ridge (with permissions and owners)",
    "joliet": "Joliet (no permissions or owners recorded)",
    "iso9660": "plain ISO 9660 only (short names, no permissions or owners)",
}
ELTORITO_HEADERS = ("#", "Platform", "Emulation", "Load size", "Boot file", "Bootable")
PARTITION_HEADERS = ("Table", "#", "Type", "Start (bytes)", "Size", "Flags / name")
# Opening a folder sorts its rows; opening hundreds (a search for "e") only makes a long
# list slow to build, so a search opens the first ones and the rest stay a click away.
MAX_OPENED_BY_SEARCH = 100
SEARCH_DELAY_MS = 150  # search once typing pauses, not on every key
COLUMN_WIDTHS = {
    Column.NAME: 260,
    Column.SIZE: 90,
    Column.TYPE: 110,
    Column.MODE: 100,
    Column.OWNER: 90,
}


# --- texts (no widgets: easy to read and to test) ---------------------------------------------


def _inspect_and_build(
    path: Path, reporter: Reporter, max_depth: int | None = None
) -> tuple[IsoReport, TreeData]:
    """The report and the tree the preview shows of it, both made off the GUI thread."""
    report = inspect_iso(path, reporter, max_depth)
    return report, TreeData.build(report.files)


def size_text(size: int) -> str:
    return f"{human_size(size)} ({size:,} bytes)" if size >= 1024 else f"{size:,} bytes"


def created_text(created: datetime | None) -> str:
    if created is None:
        return "unknown"
    return created.strftime("%Y-%m-%d %H:%M:%S UTC%z").replace("UTC+0000", "UTC")


def usb_verdict(report: IsoReport) -> str:
    """The answer a user looks for, in one sentence with its reason."""
    return f"Bootable from a USB stick: {'yes' if report.hybrid else 'no'} — {report.hybrid_reason}"


def cd_verdict(report: IsoReport) -> str:
    bootable = [e for e in report.eltorito if e.bootable]
    if not bootable:
        return "Bootable as a CD/DVD: no — no bootable El Torito entry"
    platforms = ", ".join(dict.fromkeys(e.platform_name for e in bootable))
    return f"Bootable as a CD/DVD: yes — El Torito entries for {platforms}"


def eltorito_row(entry: ElToritoEntry) -> tuple[str, ...]:
    # The catalog counts 512-byte sectors; 0 means "the rest of the image" to some firmware.
    load = (
        f"{entry.load_size} sectors ({human_size(entry.load_size * 512)})"
        if entry.load_size
        else "0 sectors"
    )
    return (
        str(entry.index),
        entry.platform_name,
        entry.emulation,
        load,
        entry.boot_file or f"(block {entry.load_rba}, not a file in the tree)",
        "yes" if entry.bootable else "no",
    )


def partition_row(part: Partition) -> tuple[str, ...]:
    flags = ", ".join(
        x for x in ("bootable" if part.bootable else "", f"“{part.name}”" if part.name else "") if x
    )
    kind = f"{part.type_name} ({part.type_id})" if part.type_name else part.type_id
    return (
        part.scheme.upper(),
        str(part.number),
        kind,
        f"{part.start:,}",
        human_size(part.size),
        flags,
    )


def _label(name: str, object_name: str, *, selectable: bool = True) -> QLabel:
    label = QLabel()
    # Plain text always: these labels show names and ids from the image, and a QLabel
    # would otherwise render "<h1>…" or load "<img src=…>" found there.
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setObjectName(object_name)
    label.setAccessibleName(name)
    label.setWordWrap(True)
    if selectable:  # by mouse only: keyboard selection would make every label a tab stop
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def _table(headers: tuple[str, ...], name: str, object_name: str, stretch: int) -> QTableWidget:
    """A read-only table as tall as its rows; column `stretch` takes the room that is left
    (and elides its text, shown whole in the tooltip) so there is never a scroll bar."""
    table = QTableWidget(0, len(headers))
    table.setObjectName(object_name)
    table.setAccessibleName(name)
    table.setHorizontalHeaderLabels(list(headers))
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.verticalHeader().setVisible(False)
    table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
    table.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    return table


def _fill(table: QTableWidget, rows: list[tuple[str, ...]]) -> None:
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            item = QTableWidgetItem(shown_text(text))
            item.setToolTip(tooltip_text(text))
            table.setItem(r, c, item)
    # As tall as its rows, so the facts pane scrolls as one piece rather than per table.
    height = table.horizontalHeader().height() + 2 * table.frameWidth()
    height += sum(table.rowHeight(r) for r in range(table.rowCount()))
    table.setFixedHeight(height + 2)


class PreviewView(QWidget):
    """Inspect an ISO: facts, boot verdict, files; extract, open its folder, ask to write it."""

    loaded = Signal(object)  # IsoReport
    failed = Signal(object)  # the exception of a failed (or cancelled) load
    writeRequested = Signal(object)  # Path of the shown ISO
    extracted = Signal(object)  # list[Path] that an extraction created
    extractFailed = Signal(object)  # the exception of a failed (or cancelled) extraction
    busyChanged = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("previewView")
        self.setAccessibleName("ISO preview")
        self.setAcceptDrops(True)
        self._report: IsoReport | None = None
        self._first_look = False  # the tree shows a first look while the rest is read
        self._loading: BackgroundTask | None = None
        self._extracting: BackgroundTask | None = None
        self._tasks: set[BackgroundTask] = set()
        self.error_box: QMessageBox | None = None
        self.file_dialog: QFileDialog | None = None
        self._last_destination = str(Path.home())
        # Overridable so tests (and embedders) can see what would be opened.
        self.open_url: Callable[[QUrl], bool] = QDesktopServices.openUrl

        self.model = IsoTreeModel(self)
        self.proxy = IsoTreeFilter(self)
        self.proxy.setSourceModel(self.model)

        self.title = _label("Image", "previewTitle")
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.3)
        font.setBold(True)
        self.title.setFont(font)
        self.open_button = self._button(
            "&Open ISO…", "Open an ISO image", "openIso", self.choose_file
        )
        self.folder_button = self._button(
            "Open containing &folder",
            "Open the folder that holds the image",
            "openFolder",
            self.open_containing_folder,
        )
        self.write_button = self._button(
            "&Write to USB…", "Write this image to a USB stick", "writeToUsb", self.request_write
        )
        self.remaster_button = self._button(
            "&Remaster…",
            "Change the files of this image, keeping its boot setup",
            "remasterIso",
            self.open_remaster,
        )
        self.remaster_dialog: RemasterDialog | None = None
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        for button in (
            self.open_button,
            self.folder_button,
            self.remaster_button,
            self.write_button,
        ):
            top.addWidget(button)

        self.stack = QStackedWidget()
        self.stack.addWidget(self._build_empty())
        self.stack.addWidget(self._build_busy())
        self.stack.addWidget(self._build_content())
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.stack, 1)

        self.find_shortcut = QShortcut(QKeySequence(QKeySequence.StandardKey.Find), self)
        self.find_shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.find_shortcut.activated.connect(self.focus_search)
        self.tree.selectionModel().selectionChanged.connect(self._on_selection)
        self._update_actions()

    # -- building -----------------------------------------------------------------------------
    def _button(
        self, text: str, name: str, object_name: str, slot: Callable[[], object]
    ) -> QPushButton:
        button = QPushButton(text)
        button.setObjectName(object_name)
        button.setAccessibleName(name)
        button.clicked.connect(lambda _checked=False: slot())
        return button

    def _build_empty(self) -> QWidget:
        self.empty_label = _label("No image", "previewEmpty", selectable=False)
        self.empty_label.setText("Drop an ISO image here, or choose one with “Open ISO…”.")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        return self.empty_label

    def _build_busy(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.addStretch(1)
        self.busy_label = _label("Reading the image", "previewBusy", selectable=False)
        self.busy_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.busy_bar = QProgressBar()
        self.busy_bar.setObjectName("previewBusyBar")
        self.busy_bar.setAccessibleName("Reading the image")
        self.busy_bar.setRange(0, 0)  # the number of entries is unknown up front
        self.busy_cancel = self._button(
            "&Cancel", "Cancel reading the image", "cancelLoad", self.cancel_load
        )
        layout.addWidget(self.busy_label)
        layout.addWidget(self.busy_bar)
        layout.addWidget(self.busy_cancel, 0, Qt.AlignmentFlag.AlignCenter)
        layout.addStretch(1)
        return page

    def _build_content(self) -> QWidget:
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.setObjectName("previewSplitter")
        splitter.setChildrenCollapsible(False)
        splitter.addWidget(self._build_facts())
        splitter.addWidget(self._build_files())
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)
        return splitter

    def _build_facts(self) -> QWidget:
        inner = QWidget()
        row = QHBoxLayout(inner)
        form = QFormLayout()
        self.facts: dict[str, QLabel] = {}
        for key, title in (
            ("file", "File"),
            ("size", "Size"),
            ("label", "Volume label"),
            ("application", "Application"),
            ("publisher", "Publisher"),
            ("preparer", "Preparer"),
            ("created", "Created"),
            ("names", "File names"),
        ):
            label = _label(title, f"fact-{key}")
            self.facts[key] = label
            form.addRow(f"{title}:", label)
        row.addLayout(form, 2)

        boot = QVBoxLayout()
        self.usb_label = _label("Bootable from a USB stick", "usbVerdict")
        font = self.usb_label.font()
        font.setBold(True)
        self.usb_label.setFont(font)
        self.cd_label = _label("Bootable as a CD", "cdVerdict")
        self.eltorito_table = _table(
            ELTORITO_HEADERS, "El Torito boot entries", "eltorito", stretch=4
        )
        self.partition_table = _table(PARTITION_HEADERS, "Partitions", "partitions", stretch=2)
        self.problems_label = _label("Partition table problems", "partitionProblems")
        boot.addWidget(self.usb_label)
        boot.addWidget(self.cd_label)
        for title, widget in (
            ("El Torito boot entries", self.eltorito_table),
            ("Partitions (MBR / GPT)", self.partition_table),
        ):
            group = QGroupBox(title)
            inside = QVBoxLayout(group)
            inside.addWidget(widget)
            if widget is self.partition_table:
                inside.addWidget(self.problems_label)
            boot.addWidget(group)
        boot.addStretch(1)
        row.addLayout(boot, 3)

        scroll = QScrollArea()
        scroll.setObjectName("factsPane")
        scroll.setAccessibleName("Facts about the image")
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidgetResizable(True)
        scroll.setWidget(inner)
        scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        return scroll

    def _build_files(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        self.search = QLineEdit()
        self.search.setObjectName("fileSearch")
        self.search.setAccessibleName("Search files by name")
        self.search.setPlaceholderText("Search names (Ctrl+F); with a “/”, whole paths")
        self.search.setClearButtonEnabled(True)
        self.search.setAcceptDrops(False)  # a dropped file goes to the view
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(self._apply_search)
        self.search.textChanged.connect(lambda _text: self._search_timer.start())
        self.search.returnPressed.connect(self._search_entered)
        search_label = QLabel("&Search:")
        search_label.setBuddy(self.search)
        search_row = QHBoxLayout()
        search_row.addWidget(search_label)
        search_row.addWidget(self.search, 1)

        self.tree = QTreeView()
        self.tree.setObjectName("isoTree")
        self.tree.setAccessibleName("Files in the image")
        self.tree.setModel(self.proxy)
        self.tree.setUniformRowHeights(True)  # constant-time layout for thousands of rows
        self.tree.setSortingEnabled(True)
        self.tree.sortByColumn(Column.NAME, Qt.SortOrder.AscendingOrder)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.tree.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.tree.setAllColumnsShowFocus(True)
        header = self.tree.header()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        for column, width in COLUMN_WIDTHS.items():
            self.tree.setColumnWidth(column, width)

        self.count_label = _label("Number of entries", "entryCount", selectable=False)
        self.extract_button = self._button(
            "&Extract…", "Extract the selected file or folder", "extract", self.choose_destination
        )
        self.extract_bar = QProgressBar()
        self.extract_bar.setObjectName("extractProgress")
        self.extract_bar.setAccessibleName("Extraction progress")
        self.extract_bar.hide()
        self.extract_cancel = self._button(
            "Cancel e&xtraction", "Cancel the extraction", "cancelExtract", self.cancel_extract
        )
        self.extract_cancel.hide()
        self.extract_label = _label("Extraction", "extractStatus")
        bottom = QHBoxLayout()
        bottom.addWidget(self.count_label, 1)
        bottom.addWidget(self.extract_bar, 1)
        bottom.addWidget(self.extract_cancel)
        bottom.addWidget(self.extract_button)

        layout.addLayout(search_row)
        layout.addWidget(self.tree, 1)
        layout.addLayout(bottom)
        layout.addWidget(self.extract_label)
        return page

    # -- state ----------------------------------------------------------------------------------
    def report(self) -> IsoReport | None:
        """The report on screen (a failed or running load leaves the previous one)."""
        return self._report

    def path(self) -> Path | None:
        return self._report.path if self._report is not None else None

    def is_loading(self) -> bool:
        return self._loading is not None

    def is_extracting(self) -> bool:
        return self._extracting is not None

    def busy(self) -> bool:
        return self.is_loading() or self.is_extracting()

    def selected_entry(self) -> IsoEntry | None:
        return self.proxy.entry(self._selected_row())  # None when nothing is selected

    def select_path(self, path: str) -> bool:
        """Select (and show) the entry at `path` inside the ISO; False if it is not shown."""
        index = self.proxy.mapFromSource(self.model.index_of(path))
        if not index.isValid():
            return False
        self.tree.scrollTo(index)
        self.tree.setCurrentIndex(index)
        return True

    def _update_actions(self) -> None:
        loaded = self._report is not None
        self.folder_button.setEnabled(loaded)
        self.write_button.setEnabled(loaded and not self.is_loading())
        self.remaster_button.setEnabled(loaded and not self.is_loading())
        self.extract_button.setEnabled(
            self.selected_entry() is not None and not self.is_extracting()
        )

    def _set_page(self, page: int) -> None:
        self.stack.setCurrentIndex(page)
        self._update_actions()

    # -- loading --------------------------------------------------------------------------------
    def choose_file(self) -> QFileDialog:
        """Ask for an ISO to load, without blocking (tests find it as `file_dialog`)."""
        shown = self.path()
        start = str(shown.parent) if shown is not None else str(Path.home())
        return self._keep_dialog(
            choose_path(
                self,
                title="Open an ISO image",
                start=start,
                kind=PathKind.OPEN_FILE,
                filters=ISO_FILTER,
                name="openIsoDialog",
                on_chosen=self.load,
            )
        )

    def _keep_dialog(self, dialog: QFileDialog) -> QFileDialog:
        def closed(_result: int) -> None:
            if self.file_dialog is dialog:
                self.file_dialog = None

        dialog.finished.connect(closed)
        self.file_dialog = dialog
        return dialog

    def load(self, path: Path) -> BackgroundTask:
        """Inspect `path` on a worker thread; `loaded` or `failed` follows. A load that is
        still running is cancelled and its outcome ignored."""
        path = Path(path)
        if self._loading is not None:
            self._loading.cancel()
        task = BackgroundTask(
            lambda reporter: _inspect_and_build(path, reporter), self, name="livesmith-inspect"
        )
        self._loading = task
        self._tasks.add(task)
        task.progressChanged.connect(
            lambda done, _total: self.busy_label.setText(
                f"Reading {path.name}… {done:,} entries so far"
            )
        )
        task.finished.connect(lambda done: self._on_loaded(task, *done))
        task.failed.connect(lambda exc: self._on_load_failed(task, exc))
        task.ended.connect(lambda: self._forget(task))
        # A quick first look (two levels) shows the top of a big tree while the rest is read.
        glance = BackgroundTask(
            lambda reporter: _inspect_and_build(path, reporter, FIRST_LOOK_DEPTH),
            self,
            name="livesmith-inspect-first-look",
        )
        self._tasks.add(glance)
        glance.finished.connect(lambda done: self._on_first_look(task, *done))
        glance.ended.connect(lambda: self._forget(glance))
        self.busy_label.setText(f"Reading {path.name}…")
        self._set_page(BUSY)
        self.busyChanged.emit(True)
        glance.start()
        task.start()
        return task

    def _on_first_look(self, task: BackgroundTask, report: IsoReport, tree: TreeData) -> None:
        if task is not self._loading:
            return  # the whole tree is shown already, or the load was superseded or failed
        self._first_look = True
        self._show_report(report, tree)
        self._set_page(CONTENT)

    def _expanded_paths(self) -> list[str]:
        """Paths of the folders open in the tree, outermost first."""
        paths: list[str] = []
        pending = [QModelIndex()]
        while pending:
            parent = pending.pop()
            for row in range(self.proxy.rowCount(parent)):
                index = self.proxy.index(row, 0, parent)
                if self.tree.isExpanded(index):
                    entry = self.proxy.entry(index)
                    if entry is not None:
                        paths.append(entry.path)
                    pending.append(index)
        return paths

    def cancel_load(self) -> None:
        if self._loading is not None:
            self._loading.cancel()

    def _forget(self, task: BackgroundTask) -> None:
        self._tasks.discard(task)
        task.deleteLater()

    def _on_loaded(
        self, task: BackgroundTask, report: IsoReport, tree: TreeData | None = None
    ) -> None:
        if task is not self._loading:
            return  # superseded by a newer load
        self._loading = None
        self._report = report
        expanded = self._expanded_paths() if self._first_look else []
        self._first_look = False
        self._show_report(report, tree)
        for shown in expanded:
            self.tree.expand(self.proxy.mapFromSource(self.model.index_of(shown)))
        self._set_page(CONTENT)
        self.busyChanged.emit(self.busy())
        self.loaded.emit(report)

    def _on_load_failed(self, task: BackgroundTask, exc: BaseException) -> None:
        if task is not self._loading:
            return
        cancelled_by_user = isinstance(exc, Cancelled) and task.cancel_requested()
        self._loading = None
        if self._first_look:  # back to what was shown before the first look
            self._first_look = False
            if self._report is not None:
                self._show_report(self._report)
        self._set_page(CONTENT if self._report is not None else EMPTY)
        self.busyChanged.emit(self.busy())
        if not cancelled_by_user:
            self.error_box = show_error(self, exc)
        self.failed.emit(exc)

    def _show_report(self, report: IsoReport, tree: TreeData | None = None) -> None:
        self.title.setText(shown_text(report.path.name))
        self.title.setToolTip(tooltip_text(str(report.path)))
        facts = {
            "file": shown_text(str(report.path)),
            "size": size_text(report.size),
            "label": shown_text(report.label) or "(none)",
            "application": shown_text(report.application) or "(none)",
            "publisher": shown_text(report.publisher) or "(none)",
            "preparer": shown_text(report.preparer) or "(none)",
            "created": created_text(report.created),
            "names": NAME_SOURCES.get(report.name_source, report.name_source),
        }
        for key, text in facts.items():
            self.facts[key].setText(text)
        self.usb_label.setText(shown_text(usb_verdict(report)))
        self.usb_label.setStyleSheet("color: #1b7f2a;" if report.hybrid else "color: #b3261e;")
        self.cd_label.setText(cd_verdict(report))
        _fill(self.eltorito_table, [eltorito_row(e) for e in report.eltorito])
        _fill(self.partition_table, [partition_row(p) for p in report.partitions])
        problems = report.partition_problems
        self.problems_label.setText("\n".join(f"⚠ {shown_text(p)}" for p in problems))
        self.problems_label.setVisible(bool(problems))

        # the filter searches the new tree by itself
        self.model.set_tree(tree if tree is not None else TreeData.build(report.files))
        self.extract_label.clear()
        self._show_matches()

    # -- search ---------------------------------------------------------------------------------
    def focus_search(self) -> None:
        self.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search.selectAll()

    def set_search(self, text: str) -> None:
        """Show only entries whose name contains `text` (and the folders leading to them),
        at once; typing in the search field does the same when the typing pauses."""
        if self.search.text() != text:
            self.search.setText(text)
        self._apply_search()

    def _apply_search(self) -> None:
        self._search_timer.stop()
        self.proxy.set_search(self.search.text())
        self._show_matches()

    def _show_matches(self) -> None:
        text = self.proxy.search()
        self.tree.setUpdatesEnabled(False)
        try:
            if text:
                for index in self.proxy.expansions(MAX_OPENED_BY_SEARCH):
                    self.tree.expand(index)
            else:
                self.tree.collapseAll()
        finally:
            self.tree.setUpdatesEnabled(True)
        self._update_count()
        self._update_actions()

    def _search_entered(self) -> None:
        """Enter in the search field goes to the first match."""
        if self._search_timer.isActive():
            self._apply_search()
        index = self._first_match()
        if index.isValid():
            self.tree.setCurrentIndex(index)
            self.tree.scrollTo(index)
        self.tree.setFocus(Qt.FocusReason.OtherFocusReason)

    def _first_match(self) -> QModelIndex:
        stack = [QModelIndex()]
        while stack:
            parent = stack.pop()
            rows = [self.proxy.index(r, 0, parent) for r in range(self.proxy.rowCount(parent))]
            for index in rows:
                if self.proxy.matches(index):
                    return index
            stack.extend(reversed(rows))
        return QModelIndex()

    def _update_count(self) -> None:
        total = self.model.entry_count()
        text = self.proxy.search()
        if not text:
            self.count_label.setText(f"{total:,} entries")
        else:
            self.count_label.setText(
                f"{self.proxy.match_count():,} of {total:,} entries match “{shown_text(text)}”"
            )

    # -- extraction -----------------------------------------------------------------------------
    @Slot(QItemSelection, QItemSelection)
    def _on_selection(self, _selected: QItemSelection, _deselected: QItemSelection) -> None:
        self._update_actions()

    def choose_destination(self) -> QFileDialog | None:
        """Ask for the folder to extract the selected entry into, without blocking (an entry
        whose path is ambiguous is refused with a message instead)."""
        entry = self.selected_entry()
        if entry is None or self._report is None or self._refuse_ambiguous():
            return None
        name = self.proxy.mapToSource(self._selected_row()).data()
        return self._keep_dialog(
            choose_path(
                self,
                title=f"Extract “{name}” into the folder",
                start=self._last_destination,
                kind=PathKind.FOLDER,
                name="extractDialog",
                on_chosen=self._destination_chosen,
            )
        )

    def _destination_chosen(self, folder: Path) -> None:
        self._last_destination = str(folder)
        self.extract_selected_to(folder)

    def extract_selected_to(self, dest: Path) -> BackgroundTask | None:
        """Extract the selected entry like `cp -r`: into `dest` under its own name if `dest` is
        a folder, else as `dest`. Returns the running task (None if nothing is selected)."""
        entry = self.selected_entry()
        if entry is None or self._refuse_ambiguous():
            return None
        return self.extract_entry_to(entry.path, dest)

    def _selected_row(self) -> QModelIndex:
        rows = self.tree.selectionModel().selectedRows(Column.NAME)
        return rows[0] if rows else QModelIndex()

    def _refuse_ambiguous(self) -> bool:
        """Say so, and return True, if the selected entry's path is ambiguous (a name in it
        holds "/"): extracting by that path would find another entry or none."""
        source = self.proxy.mapToSource(self._selected_row())
        if not self.model.is_ambiguous(source):
            return False
        shown = self.model.shown_path(source.internalId())
        self.extract_label.setText(f"Cannot extract {shown}: {AMBIGUOUS_NOTE}.")
        self.error_box = show_error(
            self,
            InputError(
                f"cannot extract this entry: {AMBIGUOUS_NOTE}",
                where=shown,
                hint="the image holds a name with “/” in it, which no folder can hold",
            ),
        )
        return True

    def extract_entry_to(self, path_in_iso: str, dest: Path) -> BackgroundTask | None:
        if self._report is None or self._extracting is not None:
            return None
        iso, dest = self._report.path, Path(dest)

        def work(reporter: Reporter) -> list[Path]:
            return extract(iso, path_in_iso, dest, reporter)

        task = BackgroundTask(work, self, name="livesmith-extract")
        self._extracting = task
        self._tasks.add(task)
        task.progressChanged.connect(self._on_extract_progress)
        task.finished.connect(lambda created: self._on_extracted(path_in_iso, dest, created))
        task.failed.connect(lambda exc: self._on_extract_failed(task, exc))
        task.ended.connect(lambda: self._forget(task))
        self.extract_bar.setRange(0, 0)
        self.extract_bar.show()
        self.extract_cancel.show()
        self.extract_label.setText(
            f"Extracting {shown_text(path_in_iso)} to {shown_text(str(dest))}…"
        )
        self._update_actions()
        self.busyChanged.emit(True)
        task.start()
        return task

    def cancel_extract(self) -> None:
        if self._extracting is not None:
            self._extracting.cancel()

    def _on_extract_progress(self, done: int, total: int) -> None:
        if total > 0:  # QProgressBar holds ints: show per mille of byte counts beyond 2 GiB
            self.extract_bar.setRange(0, 1000)
            self.extract_bar.setValue(int(done * 1000 / total))

    def _extraction_ended(self) -> None:
        self._extracting = None
        self.extract_bar.hide()
        self.extract_cancel.hide()
        self._update_actions()
        self.busyChanged.emit(self.busy())

    def _on_extracted(self, path_in_iso: str, dest: Path, created: list[Path]) -> None:
        self._extraction_ended()
        where = created[0] if created else dest
        self.extract_label.setText(
            f"Extracted {shown_text(path_in_iso)} to "
            f"{shown_text(str(where))} ({len(created):,} entries)."
        )
        self.extracted.emit(created)

    def _on_extract_failed(self, task: BackgroundTask, exc: BaseException) -> None:
        self._extraction_ended()
        if isinstance(exc, Cancelled) and task.cancel_requested():
            self.extract_label.setText("Extraction cancelled; nothing was kept.")
        else:
            self.extract_label.setText("Extraction failed.")
            self.error_box = show_error(self, exc)
        self.extractFailed.emit(exc)

    # -- the image's folder, writing ------------------------------------------------------------
    def containing_folder_url(self) -> QUrl | None:
        if self._report is None:
            return None
        return QUrl.fromLocalFile(str(self._report.path.absolute().parent))

    def open_containing_folder(self) -> bool:
        url = self.containing_folder_url()
        if url is None:
            return False
        if not self.open_url(url):
            self.error_box = show_error(
                self,
                InputError(
                    "no program to show folders is set up to open it",
                    where=url.toLocalFile(),
                    hint="open the folder with your file manager",
                ),
            )
            return False
        return True

    def open_remaster(self) -> RemasterDialog | None:
        """The remaster dialog for the shown image, prefilled with the selected entry;
        a new image it writes can be handed on like this one (`writeRequested`)."""
        if self._report is None or self.is_loading():
            return None
        dialog = RemasterDialog(self._report, self)
        entry = self.selected_entry()
        if entry is not None:
            dialog.set_target_path(entry.path)
        dialog.writeRequested.connect(self.writeRequested.emit)
        self.remaster_dialog = dialog
        dialog.open()
        return dialog

    def request_write(self) -> None:
        if self._report is not None:
            self.writeRequested.emit(self._report.path)

    # -- drag and drop ----------------------------------------------------------------------------
    @staticmethod
    def dropped_iso(event: QDragEnterEvent | QDragMoveEvent | QDropEvent) -> Path | None:
        """The one local .iso file being dropped, or None (several files, other kinds)."""
        mime = event.mimeData()
        if not mime.hasUrls():
            return None
        urls = mime.urls()
        if len(urls) != 1 or not urls[0].isLocalFile():
            return None
        path = Path(urls[0].toLocalFile())
        if path.suffix.lower() != ".iso" or not path.is_file():
            return None
        return path

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self.dropped_iso(event) is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if self.dropped_iso(event) is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        path = self.dropped_iso(event)
        if path is None:
            event.ignore()
            return
        event.acceptProposedAction()
        self.load(path)

    # -- going away -------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Cancel running work and wait for it (the window is closing)."""
        for task in list(self._tasks):
            task.shutdown()
        if self.remaster_dialog is not None:
            self.remaster_dialog.shutdown()
