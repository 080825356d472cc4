"""The "Write to USB" page: choose an image and a drive, confirm, write, verify, see what happened.

Everything that touches a disk or reads a file runs on a worker thread (`BackgroundTask`):
reading the image's facts, checking its checksum file, checking the chosen target, and the
write itself, which runs the writer helper process (`app.usb.helper.run_helper`). The page
only reacts to their signals, so the window never freezes.

The drive list is the hotplug-fed `DriveListModel` behind a filter that hides the disks
that are not offered unless "Show all disks" is ticked (then they are listed disabled, with
the reason). Loop devices and image files are never listed: the user names them in the
"device or file" field, which goes through the same safety gate (`resolve_target`).

A chosen drive that goes away or stops being offered is never replaced by another: the
selection is cleared, and an open "Erase and write" question about it is withdrawn. The
question names one disk, and the write goes to that disk or nowhere: its identity (device
number, serial, size, the kernel's diskseq) is checked against the list before asking and
travels to the helper, which checks the device it opened (see `app.usb.identity`).

Embedding: `WriterPage(image=..., model=...)`; `set_image(path)` prefills the image (after
a build); `shutdown()` when the window closes (it cancels a running write and waits for the
helper to wipe the stick).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRect,
    QSize,
    QSortFilterProxyModel,
    Qt,
    Signal,
    Slot,
)
from PySide6.QtGui import (
    QCloseEvent,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QFont,
    QFontMetrics,
    QHideEvent,
    QIcon,
    QKeyEvent,
    QPainter,
    QPalette,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from app.errors import InputError
from app.reporter import Reporter
from app.usb.checksums import ChecksumResult, check_image
from app.usb.drives import Drive
from app.usb.engine import (
    PHASE_PERSISTENCE,
    PHASE_VERIFY,
    PHASE_WIPE,
    PHASE_WRITE,
    WriteResult,
)
from app.usb.errors import DeviceUnplugged
from app.usb.identity import differences
from app.usb.persistence import Persistence
from app.usb.preflight import (
    ImageFacts,
    Preflight,
    check_target,
    read_image_facts,
    write_task,
)
from app.usb.target import Target, TargetKind
from ui.dialogs import PathKind, ask_destructive, choose_path
from ui.drive_model import DriveListModel, warning_text
from ui.errors import show_error
from ui.restore_dialog import RestoreDialog, restore_outcome
from ui.worker import BackgroundTask
from ui.writer_texts import (
    PHASE_UNMOUNT,
    TITLES,
    Line,
    Outcome,
    OutcomeKind,
    RateMeter,
    Tone,
    checksum_lines,
    confirmation,
    drive_words,
    image_facts,
    lines_html,
    outcome_of_error,
    outcome_of_result,
    progress_texts,
    target_summary,
    unplugged_outcome,
)

ModelIndex = QModelIndex | QPersistentModelIndex

IMAGE_FILTER = "Disk images (*.iso *.img *.raw *.xz *.zst *.gz);;ISO images (*.iso);;All files (*)"
TARGET_FILTER = "Raw disk images (*.img *.raw);;All files (*)"

SETUP, PROGRESS, RESULT = range(3)


# --- the drive list --------------------------------------------------------------------------


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


# --- the page --------------------------------------------------------------------------------


def _label(text: str = "", *, name: str, selectable: bool = False) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.RichText)
    label.setAccessibleName(name)
    label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
    if selectable:
        label.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
            | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
    return label


class WriterPage(QWidget):
    """Write an image to a USB stick, an SD card, a named loop device or an image file."""

    writeStarted = Signal()
    writeFinished = Signal(str)  # OutcomeKind value: "verified", "cancelled", …
    busyChanged = Signal(bool)
    phaseChanged = Signal(str)  # the writer's phase: unmount, write, verify, locate, wipe
    imageChecked = Signal()  # the image's facts and checksum verdict are known (or failed)

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        image: Path | None = None,
        model: DriveListModel | None = None,
    ) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.model = model if model is not None else DriveListModel(self, include_excluded=True)
        self.drives = DriveFilter(self)
        # Before the filter and the view hear of a removal: see _before_rows_removed.
        self.model.rowsAboutToBeRemoved.connect(self._before_rows_removed)
        self.model.modelAboutToBeReset.connect(self._before_reset)
        # The filter also drops a row of its own (a drive no longer offered, changed in
        # place); connected before the view exists, so before it moves the current row.
        self.drives.rowsAboutToBeRemoved.connect(self._before_shown_rows_removed)
        self._chosen_going: Drive | None = None
        self._source_removing = False
        self.drives.setSourceModel(self.model)

        self._image_path: Path | None = None
        self._facts: ImageFacts | None = None
        self._image_error: BaseException | None = None
        self._checksum: ChecksumResult | None = None
        self._checksum_error: BaseException | None = None
        self._explicit: Target | None = None  # a named device or file that passed the gate
        self._image_task: BackgroundTask | None = None
        self._checksum_task: BackgroundTask | None = None
        self._target_task: BackgroundTask | None = None
        self._preflight_task: BackgroundTask | None = None
        self._write_task: BackgroundTask | None = None
        self._tasks: set[BackgroundTask] = set()
        self._writing: Preflight | None = None
        self._writing_drive: Drive | None = None
        self._phases: list[str] = []
        self._unplugged = False
        self._verify_planned = True
        self._persistence_planned = False
        self._rate = RateMeter()
        self._monitoring = False
        self.confirm_box: QMessageBox | None = None
        self._confirming: tuple[Preflight, Drive | None] | None = None  # what the box asks
        self.cancel_box: QMessageBox | None = None
        self.error_box: QMessageBox | None = None
        self.restore_dialog: RestoreDialog | None = None
        self.file_dialog: QFileDialog | None = None
        self.outcome: Outcome | None = None

        self.stack = QStackedWidget()
        self.stack.addWidget(self._build_setup())
        self.stack.addWidget(self._build_progress())
        self.stack.addWidget(self._build_result())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)

        self.model.driveRemoved.connect(self._on_drive_removed)
        self.model.monitorError.connect(self._on_monitor_error)
        for signal in (
            self.drives.rowsInserted,
            self.drives.rowsRemoved,
            self.drives.modelReset,
            self.drives.layoutChanged,
        ):
            signal.connect(self._update_drive_hint)
        self.drive_view.selectionModel().currentChanged.connect(self._on_drive_current)
        self.model.rowsRemoved.connect(self._after_source_rows_removed)
        self.drives.rowsRemoved.connect(self._after_shown_rows_removed)
        self.drives.dataChanged.connect(self._after_drive_changed)
        self.model.modelReset.connect(self._after_reset)
        self._update_drive_hint()
        self._update_ready()
        if image is not None:
            self.set_image(image)

    # -- building -------------------------------------------------------------------------
    def _build_setup(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)

        image_box = QGroupBox("Image")
        grid = QGridLayout(image_box)
        self.image_edit = QLineEdit()
        self.image_edit.setObjectName("imagePath")
        self.image_edit.setAccessibleName("Image file")
        self.image_edit.setPlaceholderText(
            "An .iso or .img file (also .xz, .zst or .gz); or drop it on this page"
        )
        self.image_edit.setAcceptDrops(False)  # a dropped file goes to the page
        self.image_edit.returnPressed.connect(self._image_entered)
        image_label = QLabel("&Image file:")
        image_label.setBuddy(self.image_edit)
        self.image_button = QPushButton("&Choose…")
        self.image_button.setAccessibleName("Choose the image file")
        self.image_button.clicked.connect(self._choose_image)
        grid.addWidget(image_label, 0, 0)
        grid.addWidget(self.image_edit, 0, 1)
        grid.addWidget(self.image_button, 0, 2)
        self.facts_label = _label(name="Image facts", selectable=True)
        self.force_check = QCheckBox("Write it &anyway (it will not boot from a USB stick)")
        self.force_check.setAccessibleName("Write a non-bootable image anyway")
        self.force_check.setVisible(False)
        self.force_check.toggled.connect(self._update_ready)
        self.checksum_label = _label(name="Checksum result", selectable=True)
        self.checksum_progress = QProgressBar()
        self.checksum_progress.setAccessibleName("Checksum progress")
        self.checksum_progress.setRange(0, 1000)
        self.checksum_progress.setTextVisible(False)
        self.checksum_progress.setMaximumHeight(10)
        self.checksum_progress.setVisible(False)
        grid.addWidget(self.facts_label, 1, 1, 1, 2)
        grid.addWidget(self.force_check, 2, 1, 1, 2)
        grid.addWidget(self.checksum_label, 3, 1, 1, 2)
        grid.addWidget(self.checksum_progress, 4, 1, 1, 2)
        grid.setColumnStretch(1, 1)
        layout.addWidget(image_box)

        drive_box = QGroupBox("Drive")
        drive_layout = QVBoxLayout(drive_box)
        top = QHBoxLayout()
        drives_label = QLabel("&Drives (USB sticks and SD cards, updated as you plug them in):")
        self.show_all_check = QCheckBox("Show a&ll disks")
        self.show_all_check.setAccessibleName("Show all disks, also those that are not offered")
        self.show_all_check.toggled.connect(self.drives.set_show_all)
        top.addWidget(drives_label, 1)
        top.addWidget(self.show_all_check)
        drive_layout.addLayout(top)
        self.drive_view = QListView()
        self.drive_view.setObjectName("driveList")
        self.drive_view.setAccessibleName("Drives")
        self.drive_view.setModel(self.drives)
        self.drive_view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.drive_view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.drive_view.setUniformItemSizes(True)
        self.drive_view.setItemDelegate(DriveDelegate(self.drive_view))
        self.drive_view.setMinimumHeight(96)
        drives_label.setBuddy(self.drive_view)
        drive_layout.addWidget(self.drive_view, 1)
        self.drive_hint = _label(name="Drive list note")
        drive_layout.addWidget(self.drive_hint)

        other = QHBoxLayout()
        other_label = QLabel("Or a device or &file:")
        self.target_edit = QLineEdit()
        self.target_edit.setObjectName("targetPath")
        self.target_edit.setAccessibleName("Device or file to write to")
        self.target_edit.setPlaceholderText(
            "/dev/sdX, /dev/loopN, or a file path (an image for a virtual machine)"
        )
        self.target_edit.setAcceptDrops(False)
        self.target_edit.returnPressed.connect(self.use_typed_target)
        other_label.setBuddy(self.target_edit)
        self.target_use_button = QPushButton("&Use")
        self.target_use_button.setAccessibleName("Use this device or file")
        self.target_use_button.clicked.connect(self.use_typed_target)
        self.target_file_button = QPushButton("Image fil&e…")
        self.target_file_button.setAccessibleName("Choose an image file to write to")
        self.target_file_button.clicked.connect(self._choose_target_file)
        other.addWidget(other_label)
        other.addWidget(self.target_edit, 1)
        other.addWidget(self.target_use_button)
        other.addWidget(self.target_file_button)
        drive_layout.addLayout(other)
        self.target_label = _label(name="Chosen target", selectable=True)
        drive_layout.addWidget(self.target_label)
        layout.addWidget(drive_box, 1)

        bottom = QHBoxLayout()
        self.verify_check = QCheckBox("&Verify after writing (reads the stick back)")
        self.verify_check.setAccessibleName("Verify after writing")
        self.verify_check.setChecked(True)
        self.ready_label = _label(name="What is missing")
        self.write_button = QPushButton("&Write…")
        self.write_button.setObjectName("writeButton")
        self.write_button.setAccessibleName("Write the image")
        self.write_button.setMinimumWidth(120)
        self.write_button.setDefault(True)
        self.write_button.clicked.connect(self.start_write)
        self.restore_button = QPushButton("Res&tore to a normal drive…")
        self.restore_button.setObjectName("restoreDriveButton")
        self.restore_button.setAccessibleName("Wipe a written drive and make it a normal one")
        self.restore_button.clicked.connect(self.open_restore)
        bottom.addWidget(self.restore_button)
        bottom.addLayout(self._build_persistence())
        bottom.addWidget(self.verify_check)
        bottom.addWidget(self.ready_label, 1)
        bottom.addWidget(self.write_button)
        layout.addLayout(bottom)

        QWidget.setTabOrder(self.image_edit, self.image_button)
        QWidget.setTabOrder(self.image_button, self.force_check)
        QWidget.setTabOrder(self.force_check, self.show_all_check)
        QWidget.setTabOrder(self.show_all_check, self.drive_view)
        QWidget.setTabOrder(self.drive_view, self.target_edit)
        QWidget.setTabOrder(self.target_edit, self.target_use_button)
        QWidget.setTabOrder(self.target_use_button, self.target_file_button)
        QWidget.setTabOrder(self.target_file_button, self.persist_check)
        QWidget.setTabOrder(self.persist_check, self.persist_size)
        QWidget.setTabOrder(self.persist_size, self.verify_check)
        QWidget.setTabOrder(self.verify_check, self.write_button)
        return page

    def _build_persistence(self) -> QHBoxLayout:
        """ "Keep changes" + a size: a LIVESMITH-RW partition after the image (see
        app/usb/persistence.py), which the live system keeps its changes on."""
        row = QHBoxLayout()
        self.persist_check = QCheckBox("Kee&p changes on the stick, size:")
        self.persist_check.setObjectName("persistenceCheck")
        self.persist_check.setAccessibleName("Add a persistence partition after the image")
        self.persist_check.setToolTip(
            "After the image, a partition with an ext4 file system labelled LIVESMITH-RW: "
            "the live system keeps what it writes there across reboots"
        )
        self.persist_size = QLineEdit("rest")
        self.persist_size.setObjectName("persistenceSize")
        self.persist_size.setAccessibleName("Persistence size")
        self.persist_size.setToolTip("512M, 4G, … or rest (all the free space)")
        self.persist_size.setMaximumWidth(80)
        self.persist_size.setEnabled(False)
        self.persist_check.toggled.connect(self.persist_size.setEnabled)
        self.persist_check.toggled.connect(self._update_ready)
        self.persist_size.textChanged.connect(self._update_ready)
        row.addWidget(self.persist_check)
        row.addWidget(self.persist_size)
        return row

    def persistence(self) -> Persistence | None:
        """What the persistence controls ask for (InputError for a bad size)."""
        if not self.persist_check.isChecked():
            return None
        return Persistence.parse(self.persist_size.text(), where="persistence size")

    def _build_progress(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.addStretch(1)
        self.progress_title = _label(name="What is being written")
        self.phase_label = _label(name="Phase")
        self.progress_bar = QProgressBar()
        self.progress_bar.setObjectName("writeProgress")
        self.progress_bar.setAccessibleName("Progress")
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setFormat("%p%")
        self.bytes_label = _label(name="Bytes done")
        self.speed_label = _label(name="Speed and time left")
        figures = QHBoxLayout()
        figures.addWidget(self.bytes_label, 1)
        figures.addWidget(self.speed_label, 1)
        self.speed_label.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.cancel_button = QPushButton("&Cancel…")
        self.cancel_button.setObjectName("cancelButton")
        self.cancel_button.setAccessibleName("Cancel writing")
        self.cancel_button.clicked.connect(self.ask_cancel)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        for widget in (self.progress_title, self.phase_label, self.progress_bar):
            layout.addWidget(widget)
        layout.addLayout(figures)
        layout.addLayout(buttons)
        layout.addStretch(2)
        return page

    def _build_result(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.addStretch(1)
        self.result_title = _label(name="Result")
        self.result_title.setObjectName("resultTitle")
        self.result_details = _label(name="What happened", selectable=True)
        self.result_details.setObjectName("resultDetails")
        self.result_details.setTextFormat(Qt.TextFormat.PlainText)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        self.again_button = QPushButton("&Write another…")
        self.again_button.setAccessibleName("Back to choosing an image and a drive")
        self.again_button.clicked.connect(self.back_to_setup)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.again_button)
        layout.addWidget(self.result_title)
        layout.addWidget(line)
        layout.addWidget(self.result_details)
        layout.addLayout(buttons)
        layout.addStretch(2)
        return page

    # -- public API -----------------------------------------------------------------------
    def image(self) -> Path | None:
        return self._image_path

    @property
    def facts(self) -> ImageFacts | None:
        return self._facts

    @property
    def checksum(self) -> ChecksumResult | None:
        return self._checksum

    def busy(self) -> bool:
        """True while a target is checked for writing or a write runs (or ends)."""
        return any(
            t is not None and t.is_running() for t in (self._preflight_task, self._write_task)
        )

    def set_image(self, path: str | os.PathLike[str] | None) -> bool:
        """Show `path` as the image to write and start reading its facts and checksum.

        Returns False (and changes nothing) while a write is running.
        """
        if self.busy():
            return False
        for task in (self._image_task, self._checksum_task):
            if task is not None:
                task.cancel()  # its late result is ignored
        self._image_task = self._checksum_task = None
        self._facts = None
        self._image_error = None
        self._checksum = None
        self._checksum_error = None
        self.force_check.setChecked(False)
        self.force_check.setVisible(False)
        self.checksum_progress.setVisible(False)
        self.checksum_label.clear()
        if not path:
            self._image_path = None
            self.image_edit.clear()
            self.facts_label.clear()
            self.model.set_image(None)
            self._update_ready()
            return True
        image = Path(os.path.abspath(os.fspath(path)))
        self._image_path = image
        self.image_edit.setText(str(image))
        self.facts_label.setText(Line(Tone.NOTE, "Reading the image…").html())
        self.model.set_image(image)  # the disk holding the image is never offered
        if self.stack.currentIndex() == RESULT and not self.busy():
            self.stack.setCurrentIndex(SETUP)
        task = self._task(lambda reporter: read_image_facts(image, reporter), "image-facts")
        task.finished.connect(lambda facts, t=task: self._on_facts(t, facts))
        task.failed.connect(lambda exc, t=task: self._on_facts_failed(t, exc))
        self._image_task = task
        task.start()
        self._update_ready()
        return True

    def selected_drive(self) -> Drive | None:
        return self.drives.drive(self.drive_view.currentIndex())

    def target_path(self) -> str | None:
        """The device or file the Write button would write to."""
        if self._explicit is not None:
            return str(self._explicit.path)
        drive = self.selected_drive()
        return drive.devnode if drive is not None and drive.offered else None

    def shutdown(self) -> None:
        """Stop watching drives; cancel running work and wait for it (a cancelled write
        wipes the stick first). Call when the window closes."""
        self._stop_monitor()
        for task in list(self._tasks):
            task.shutdown()
        if self.restore_dialog is not None:
            self.restore_dialog.shutdown()

    # -- image ----------------------------------------------------------------------------
    @Slot()
    def _image_entered(self) -> None:
        text = self.image_edit.text().strip()
        if text and (
            self._image_path is None or Path(text) != self._image_path or self._facts is None
        ):
            self.set_image(text)

    @Slot()
    def _choose_image(self) -> None:
        start = str(self._image_path.parent) if self._image_path else str(Path.home())
        self.file_dialog = choose_path(
            self,
            title="Choose the image to write",
            start=start,
            kind=PathKind.OPEN_FILE,
            filters=IMAGE_FILTER,
            name="imageDialog",
            on_chosen=self.set_image,
        )

    def _on_facts(self, task: BackgroundTask, facts: ImageFacts) -> None:
        if task is not self._image_task:
            return
        self._facts = facts
        self.facts_label.setText(lines_html(image_facts(facts.source, facts.layout_warnings)))
        self.force_check.setVisible(bool(facts.layout_warnings))
        self._start_checksum(facts.source.path)
        self._update_ready()

    def _on_facts_failed(self, task: BackgroundTask, exc: BaseException) -> None:
        if task is not self._image_task:
            return
        self._image_error = exc
        self.facts_label.setText(Line(Tone.BAD, f"Cannot use this image: {exc}").html())
        self._report(exc)
        self._update_ready()
        self.imageChecked.emit()

    def _start_checksum(self, image: Path) -> None:
        self.checksum_label.setText(
            Line(Tone.NOTE, "Looking for a checksum file beside the image…").html()
        )
        self.checksum_progress.setValue(0)
        self.checksum_progress.setVisible(True)
        task = self._task(lambda reporter: check_image(image, reporter=reporter), "checksum")
        task.stepChanged.connect(lambda step, t=task: self._on_checksum_step(t, step))
        task.progressChanged.connect(
            lambda done, total, t=task: self._on_checksum_progress(t, done, total)
        )
        task.finished.connect(lambda result, t=task: self._on_checksum(t, result))
        task.failed.connect(lambda exc, t=task: self._on_checksum_failed(t, exc))
        self._checksum_task = task
        task.start()

    def _on_checksum_step(self, task: BackgroundTask, step: str) -> None:
        if task is self._checksum_task:
            self.checksum_label.setText(Line(Tone.NOTE, step[:1].upper() + step[1:] + "…").html())

    def _on_checksum_progress(self, task: BackgroundTask, done: int, total: int) -> None:
        if task is self._checksum_task and total > 0:
            self.checksum_progress.setValue(min(1000, done * 1000 // total))

    def _on_checksum(self, task: BackgroundTask, result: ChecksumResult) -> None:
        if task is not self._checksum_task:
            return
        self._checksum = result
        self.checksum_progress.setVisible(False)
        self.checksum_label.setText(lines_html(checksum_lines(result)))
        self.checksum_label.setToolTip("\n".join(result.lines()))
        error = result.error()
        if error is not None:
            self._report(error)
        self._update_ready()
        self.imageChecked.emit()

    def _on_checksum_failed(self, task: BackgroundTask, exc: BaseException) -> None:
        if task is not self._checksum_task:
            return
        self._checksum_error = exc
        self.checksum_progress.setVisible(False)
        self.checksum_label.setText(
            Line(Tone.WARN, f"The checksum could not be checked: {exc}").html()
        )
        self._report(exc)
        self._update_ready()
        self.imageChecked.emit()

    # -- drag and drop --------------------------------------------------------------------
    @staticmethod
    def _dropped_file(event: QDragEnterEvent | QDragMoveEvent | QDropEvent) -> Path | None:
        mime = event.mimeData()
        if not mime.hasUrls():
            return None
        files = [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]
        if len(files) != 1 or not files[0].is_file():
            return None
        return files[0]

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if not self.busy() and self._dropped_file(event) is not None:
            event.acceptProposedAction()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if not self.busy() and self._dropped_file(event) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        path = self._dropped_file(event)
        if path is not None and self.set_image(path):
            event.acceptProposedAction()

    # -- drives and targets ---------------------------------------------------------------
    @Slot()
    def _update_drive_hint(self) -> None:
        if self.drives.rowCount() == 0:
            self.drive_hint.setText(
                Line(
                    Tone.NOTE,
                    "No USB stick or SD card found. Plug one "
                    "in: it appears here by itself. To write "
                    "to a loop device or an image file, name "
                    "it below.",
                ).html()
            )
        else:
            self._show_drive_warning()

    def _show_drive_warning(self) -> None:
        drive = self.selected_drive()
        warning = warning_text(drive) if drive is not None else None
        self.drive_hint.setText(Line(Tone.WARN, warning).html() if warning else "")

    @Slot(QModelIndex, QModelIndex)
    def _on_drive_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        drive = self.drives.drive(current)
        if drive is not None and drive.offered:
            self._explicit = None
            self.target_label.setText(Line(Tone.NOTE, f"Selected: {drive_words(drive)}").html())
        elif self._explicit is None:
            self.target_label.clear()
        self._show_drive_warning()
        self._update_ready()

    # Qt moves the current row to a neighbour when the current row goes away: that would
    # quietly make another disk the target. A chosen drive that leaves stays unchosen. These
    # run before the filter and the view react (connected to the model first).
    @Slot(QModelIndex, int, int)
    def _before_rows_removed(self, parent: QModelIndex, first: int, last: int) -> None:
        self._source_removing = True
        current = self.drives.mapToSource(self.drive_view.currentIndex())
        if current.isValid() and first <= current.row() <= last:
            self._chosen_going = self.selected_drive()

    @Slot(QModelIndex, int, int)
    def _before_shown_rows_removed(self, parent: QModelIndex, first: int, last: int) -> None:
        current = self.drive_view.currentIndex()
        if current.isValid() and first <= current.row() <= last:
            self._chosen_going = self.selected_drive()

    @Slot()
    def _before_reset(self) -> None:
        self._chosen_going = self.selected_drive()

    @Slot()
    def _after_shown_rows_removed(self) -> None:
        # The filter removes its rows while the model is still about to remove its own:
        # then the model's rowsRemoved tells, once the drive is really gone from the list.
        if not self._source_removing:
            self._after_rows_removed()

    @Slot()
    def _after_source_rows_removed(self) -> None:
        self._source_removing = False
        self._after_rows_removed()

    def _after_rows_removed(self) -> None:
        gone, self._chosen_going = self._chosen_going, None
        if gone is None:
            return
        still_there = self.model.row_of(gone.devnode) >= 0
        self._drop_chosen(gone, "is no longer offered" if still_there else "went away")

    @Slot()
    def _after_drive_changed(self) -> None:
        # A row changed in place and stayed shown ("Show all disks"): the chosen drive may
        # have become one that is not offered, or another disk under the same name.
        chosen = self._confirming[1] if self._confirming is not None else None
        current = self.selected_drive()
        if current is None or self._explicit is not None:
            return
        if not current.offered:
            self._drop_chosen(current, "is no longer offered")
        elif chosen is not None and _other_disk(chosen, current):
            self._drop_chosen(chosen, "went away")

    def _drop_chosen(self, gone: Drive, note: str) -> None:
        """The chosen drive went away or is no longer offered: nothing stays chosen in its
        place, and a question about writing it is withdrawn."""
        asked = self._confirming is not None and self._confirming[1] is not None
        if asked:
            self._close_confirm_box()
        self.drive_view.selectionModel().clearSelection()
        self.drive_view.setCurrentIndex(QModelIndex())
        self._explicit = None
        again = "" if note == "went away" else "; choose it again if you mean it"
        done = " before you confirmed: nothing was written" if asked else ""
        self.target_label.setText(
            Line(Tone.WARN, f"{drive_words(gone)} {note}{done}{again}.").html()
        )
        self._update_ready()

    @Slot()
    def _after_reset(self) -> None:
        gone, self._chosen_going = self._chosen_going, None
        if gone is None:
            return
        row = self.model.row_of(gone.devnode)
        again = self.model.drive_at(row) if row >= 0 else None
        if again is not None and again.offered and again.sys_path == gone.sys_path:
            index = self.drives.mapFromSource(self.model.index(row))
            if index.isValid():
                self.drive_view.setCurrentIndex(index)  # the same disk, re-sorted
                return
        self._chosen_going = gone
        self._after_rows_removed()

    @Slot()
    def use_typed_target(self) -> None:
        """Check the device or file typed in the field; it becomes the target if it may be."""
        text = self.target_edit.text().strip()
        if not text or self.busy():
            return
        if self._target_task is not None:
            self._target_task.cancel()
        source = self._facts.source if self._facts else None
        self.target_label.setText(Line(Tone.NOTE, f"Checking {text}…").html())
        task = self._task(lambda _reporter: check_target(text, source), "target")
        task.finished.connect(lambda pre, t=task: self._on_target(t, pre))
        task.failed.connect(lambda exc, t=task: self._on_target_failed(t, text, exc))
        self._target_task = task
        task.start()

    @Slot()
    def _choose_target_file(self) -> None:
        start = self.target_edit.text().strip() or str(Path.home() / "livesmith-disk.img")
        self.file_dialog = choose_path(
            self,
            title="Write to an image file",
            start=start,
            kind=PathKind.SAVE_FILE,
            filters=TARGET_FILTER,
            name="targetDialog",
            on_chosen=self._target_file_chosen,
            confirm_overwrite=False,
        )  # our own confirmation says so

    def _target_file_chosen(self, path: Path) -> None:
        self.target_edit.setText(str(path))
        self.use_typed_target()

    def _on_target(self, task: BackgroundTask, preflight: Preflight) -> None:
        if task is not self._target_task:
            return
        self._target_task = None
        self._explicit = preflight.target
        self.drive_view.selectionModel().clearSelection()
        self.drive_view.setCurrentIndex(QModelIndex())
        self.target_label.setText(Line(Tone.NOTE, target_summary(preflight.target)).html())
        self._update_ready()

    def _on_target_failed(self, task: BackgroundTask, text: str, exc: BaseException) -> None:
        if task is not self._target_task:
            return
        self._target_task = None
        self._explicit = None
        self.target_label.setText(Line(Tone.BAD, f"Cannot write to {text}: {exc}").html())
        self._report(exc)
        self._update_ready()

    @Slot(str)
    def _on_drive_removed(self, devnode: str) -> None:
        gone = os.path.realpath(devnode)
        if self._writing is not None and str(self._writing.target.path) == gone:
            self._unplugged_while_writing()
            return
        # Reported at once, before the list is updated: the name may soon be another disk's.
        drive = self.selected_drive() if self._explicit is None else None
        if drive is not None and os.path.realpath(drive.devnode) == gone:
            self._drop_chosen(drive, "went away")
            return
        asked = self._confirming is not None and str(self._confirming[0].target.path) == gone
        if asked:
            self._close_confirm_box()
        if asked or (self._explicit is not None and str(self._explicit.path) == gone):
            self._explicit = None
            done = " before you confirmed: nothing was written" if asked else ""
            self.target_label.setText(Line(Tone.WARN, f"{devnode} was unplugged{done}.").html())
            self._update_ready()

    @Slot(str)
    def _on_monitor_error(self, message: str) -> None:
        # The monitor retries at the next event; a passing hiccup needs no dialog.
        self.drive_hint.setText(
            Line(Tone.WARN, f"The drive list may be out of date: {message}").html()
        )

    # -- readiness ------------------------------------------------------------------------
    def missing(self) -> str | None:
        """What stops the Write button, in words; None when it may be pressed."""
        if self._write_task is not None and self._write_task.is_running():
            return "Writing…"
        if self._preflight_task is not None and self._preflight_task.is_running():
            return "Checking the drive…"
        if self._image_path is None:
            return "Choose an image."
        if self._image_error is not None:
            return "Choose a usable image."
        if self._facts is None:
            return "Reading the image…"
        if self._checksum is None and self._checksum_error is None:
            return "Checking the image's checksum…"
        if self._checksum is not None and self._checksum.failed:
            return "The checksum check failed: do not write this image."
        if self._facts.layout_warnings and not self.force_check.isChecked():
            return (
                "This image will not boot from a USB stick: tick \u201cWrite it anyway\u201d "
                "to write it all the same."
            )
        try:
            self.persistence()
        except InputError as exc:
            return f"{exc.message[:1].upper()}{exc.message[1:]}."
        if self._target_task is not None:
            return "Checking the device or file…"
        if self.target_path() is None:
            return "Choose a drive, or name a device or file."
        return None

    @Slot()
    def _update_ready(self) -> None:
        missing = self.missing()
        self.write_button.setEnabled(missing is None)
        self.ready_label.setText(Line(Tone.NOTE, missing).html() if missing else "")

    # -- writing --------------------------------------------------------------------------
    @Slot()
    def start_write(self) -> None:
        """Check the target once more, then ask for confirmation (non-blocking)."""
        path = self.target_path()
        if self.missing() is not None or path is None or self._facts is None:
            return
        source = self._facts.source
        drive = self.selected_drive() if self._explicit is None else None
        self.write_button.setEnabled(False)
        self.ready_label.setText(Line(Tone.NOTE, f"Checking {path}…").html())
        task = self._task(lambda _reporter: check_target(path, source), "preflight")
        task.finished.connect(lambda pre: self._confirm(pre, drive))
        task.failed.connect(self._preflight_failed)
        task.ended.connect(self._update_ready)
        self._preflight_task = task
        task.start()

    def _preflight_failed(self, exc: BaseException) -> None:
        self.target_label.setText(Line(Tone.BAD, str(exc)).html())
        self._report(exc)

    def _confirm(self, preflight: Preflight, drive: Drive | None) -> None:
        assert self._facts is not None
        if self._refuse_if_not_chosen(preflight, drive):
            return  # it went while it was being checked
        words = confirmation(
            self._facts.source,
            preflight.target,
            drive,
            preflight.mounted,
            verify=self.verify_check.isChecked(),
        )
        self._confirming = (preflight, drive)
        self.confirm_box = ask_destructive(
            self,
            title=words.title,
            text=words.text,
            informative=words.informative,
            act=words.button,
            keep="Cancel",
            icon=QMessageBox.Icon.Warning,
            name="confirmWrite",
            act_name="confirmErase",
            on_closed=self._forget_confirm_box,
            on_yes=lambda: self._start_write(preflight, drive) if self._facts else None,
        )

    def _forget_confirm_box(self) -> None:
        self.confirm_box = None
        self._confirming = None

    def _close_confirm_box(self) -> None:
        """Withdraw the question: closed as if never answered, so nothing is written."""
        box, self.confirm_box = self.confirm_box, None
        self._confirming = None
        if box is not None:
            box.finished.disconnect()
            box.reject()
            box.deleteLater()

    def _why_not_chosen(self, preflight: Preflight, drive: Drive | None) -> str | None:
        """Why `preflight` is no longer the target the user chose, or None if it still is."""
        path = str(preflight.target.path)
        if drive is None:
            if self._explicit is None or str(self._explicit.path) != path:
                return f"{path} is no longer the chosen target"
            return None
        current = self.selected_drive() if self._explicit is None else None
        if current is None or current.sys_path != drive.sys_path:
            return f"{drive_words(drive)} is no longer the chosen drive"
        if not current.offered:
            return f"{drive_words(drive)} is no longer offered"
        checked = preflight.identity
        if _other_disk(drive, current) or (
            checked is not None
            and current.identity is not None
            and differences(current.identity, checked)
        ):
            return f"{current.devnode} is now another drive than {drive_words(drive)}"
        return None

    def _refuse_if_not_chosen(self, preflight: Preflight, drive: Drive | None) -> bool:
        reason = self._why_not_chosen(preflight, drive)
        if reason is None:
            return False
        self.target_label.setText(
            Line(Tone.WARN, f"{reason}: nothing was written. Choose the drive again.").html()
        )
        self._update_ready()
        return True

    def _start_write(self, preflight: Preflight, drive: Drive | None) -> None:
        assert self._facts is not None
        if self._refuse_if_not_chosen(preflight, drive):
            return  # never a write to a drive no longer offered
        source = self._facts.source
        self._writing = preflight
        self._writing_drive = drive
        self._phases = []
        self._unplugged = False
        self._verify_planned = self.verify_check.isChecked()
        self._persistence_planned = self.persistence() is not None
        self.outcome = None
        words = (
            drive_words(drive)
            if drive is not None and preflight.target.kind is TargetKind.BLOCK
            else target_summary(preflight.target).removeprefix("Device: ")
        )
        self.progress_title.setText(f"<b>Writing {_html(source.path.name)}</b> to {_html(words)}")
        self.phase_label.setText("Starting the writer…")
        self.progress_bar.setRange(0, 0)
        self.bytes_label.clear()
        self.speed_label.clear()
        self.cancel_button.setEnabled(True)
        self.cancel_button.setText("&Cancel…")
        self.stack.setCurrentIndex(PROGRESS)
        self.cancel_button.setFocus()
        task = self._task(
            write_task(
                source,
                preflight,
                verify=self._verify_planned,
                force=bool(self._facts.layout_warnings) and self.force_check.isChecked(),
                persistence=self.persistence(),
            ),
            "write",
        )
        task.stepChanged.connect(self._on_phase)
        task.progressChanged.connect(self._on_progress)
        task.finished.connect(self._on_written)
        task.failed.connect(self._on_write_failed)
        task.ended.connect(self._on_write_ended)
        self._write_task = task
        task.start()
        self.busyChanged.emit(True)
        self.writeStarted.emit()

    @Slot(str)
    def _on_phase(self, phase: str) -> None:
        self._phases.append(phase)
        self._rate.reset()
        title = TITLES.get(phase, phase)
        steps = [PHASE_WRITE]
        if self._persistence_planned:
            steps.append(PHASE_PERSISTENCE)
        if self._verify_planned:
            steps.append(PHASE_VERIFY)
        if phase in steps and len(steps) > 1:
            title = f"Step {steps.index(phase) + 1} of {len(steps)}: {title}"
        self.phase_label.setText(f"<b>{_html(title)}</b>")
        self.bytes_label.clear()
        self.speed_label.clear()
        if phase in (PHASE_UNMOUNT, PHASE_WIPE):
            self.progress_bar.setRange(0, 0)  # no figures: a busy bar
            self.cancel_button.setEnabled(False)
        else:
            self.progress_bar.setRange(0, 1000)
            self.progress_bar.setValue(0)
        self.phaseChanged.emit(phase)

    @Slot(object, object)
    def _on_progress(self, done: int, total: int) -> None:
        phase = self._phases[-1] if self._phases else ""
        if phase in (PHASE_UNMOUNT, PHASE_WIPE):
            return
        if total > 0:
            self.progress_bar.setRange(0, 1000)
            self.progress_bar.setValue(min(1000, done * 1000 // total))
        self._rate.add(done)
        compressed = bool(self._facts and self._facts.source.size is None)
        amount, speed = progress_texts(
            phase, done, total, self._rate.rate(), compressed_bytes=compressed
        )
        self.bytes_label.setText(_html(amount))
        self.speed_label.setText(_html(speed))

    @Slot()
    def ask_cancel(self) -> None:
        """Ask whether to stop; on yes, the helper stops and wipes the stick."""
        task = self._write_task
        if task is None or not task.is_running() or task.cancel_requested():
            return
        verifying = bool(self._phases) and self._phases[-1] not in (
            PHASE_WRITE,
            PHASE_UNMOUNT,
            PHASE_PERSISTENCE,
        )
        if verifying:
            title, text = (
                "Stop verifying?",
                "The image has been written, but it will not "
                "be verified: you will not know whether the stick holds it "
                "intact.",
            )
        else:
            title, text = (
                "Stop writing?",
                "The stick is then wiped, so that it does not look "
                "half-bootable. It will hold no usable data.",
            )
        self.cancel_box = ask_destructive(
            self,
            title=title,
            text=text,
            act="Stop verifying" if verifying else "Stop writing",
            name="confirmCancel",
            act_name="confirmStop",
            on_yes=self._stop_write,
            on_closed=self._forget_cancel_box,
        )

    def _forget_cancel_box(self) -> None:
        self.cancel_box = None

    def _stop_write(self) -> None:
        task = self._write_task
        if task is not None and task.is_running():
            task.cancel()
            self.cancel_button.setEnabled(False)
            self.cancel_button.setText("Cancelling…")
            self.phase_label.setText("<b>Stopping…</b>")

    def _close_cancel_box(self) -> None:
        if self.cancel_box is not None:
            box, self.cancel_box = self.cancel_box, None
            box.finished.disconnect()
            box.reject()
            box.deleteLater()

    def _unplugged_while_writing(self) -> None:
        if self._unplugged or self._writing is None:
            return
        self._unplugged = True
        words = (
            drive_words(self._writing_drive)
            if self._writing_drive is not None
            else str(self._writing.target.path)
        )
        self._close_cancel_box()
        task = self._write_task
        if task is not None and task.is_running():
            task.cancel()  # the helper fails on its own too; make sure it stops
            self.again_button.setEnabled(False)
        self._show_outcome(unplugged_outcome(words))
        self._report(
            DeviceUnplugged(
                "was unplugged while it was being written; what is on it is incomplete", where=words
            )
        )

    @Slot(object)
    def _on_written(self, result: WriteResult) -> None:
        if self._unplugged:
            return
        self._show_outcome(outcome_of_result(result, self._checksum))

    @Slot(object)
    def _on_write_failed(self, exc: BaseException) -> None:
        if self._unplugged:
            return  # already reported at once; this is its aftermath
        outcome = outcome_of_error(exc, self._phases)
        self._show_outcome(outcome)
        if outcome.kind not in (OutcomeKind.CANCELLED, OutcomeKind.NOT_VERIFIED):
            self._report(exc)

    @Slot()
    def _on_write_ended(self) -> None:
        self._close_cancel_box()
        self._writing = None
        self.again_button.setEnabled(True)
        self.busyChanged.emit(False)
        if self.outcome is not None:
            self.writeFinished.emit(self.outcome.kind.value)
        if not self.isVisible():
            self._stop_monitor()
        self._update_ready()

    def _show_outcome(self, outcome: Outcome) -> None:
        self.outcome = outcome
        color = outcome.tone.color
        self.result_title.setText(
            f'<h2 style="color:{color}">{outcome.tone.mark} {_html(outcome.title)}</h2>'
        )
        self.result_details.setText(outcome.details)
        self.stack.setCurrentIndex(RESULT)
        self.again_button.setFocus()

    @Slot()
    def back_to_setup(self) -> None:
        if self.busy():
            return
        # The stick was just written: choose it again on purpose, not by accident.
        self._explicit = None
        self.drive_view.selectionModel().clearSelection()
        self.drive_view.setCurrentIndex(QModelIndex())
        self.target_label.clear()
        self.stack.setCurrentIndex(SETUP)
        self._update_ready()
        self.image_edit.setFocus()

    # -- restoring (ui/restore_dialog.py) --------------------------------------------------
    @Slot()
    def open_restore(self) -> None:
        """Open "Restore to a normal drive…" for the chosen drive; the page shows its result."""
        if self.busy():
            return
        self.restore_dialog = RestoreDialog(self, target=self.target_path())
        self.restore_dialog.restored.connect(lambda r: self._show_outcome(restore_outcome(r)))
        self.restore_dialog.open()

    # -- plumbing -------------------------------------------------------------------------
    def _task(self, fn: Callable[[Reporter], Any], name: str) -> BackgroundTask:
        task = BackgroundTask(fn, self, name=f"livesmith-{name}")
        self._tasks.add(task)
        task.ended.connect(lambda: self._forget(task))
        return task

    def _forget(self, task: BackgroundTask) -> None:
        # Runs first on `ended` (connected first): no reference to a deleted task remains.
        self._tasks.discard(task)
        for name in (
            "_image_task",
            "_checksum_task",
            "_target_task",
            "_preflight_task",
            "_write_task",
        ):
            if getattr(self, name) is task:
                setattr(self, name, None)
        task.deleteLater()

    def _report(self, exc: BaseException) -> None:
        """Every error goes through the single presenter."""
        self.error_box = show_error(self, exc)

    def _start_monitor(self) -> None:
        if self._monitoring:
            return
        try:
            self.model.start()
        except Exception as exc:  # no netlink socket (a sandbox): the list stays empty
            self.drive_hint.setText(Line(Tone.WARN, f"Drives cannot be listed: {exc}").html())
            self._report(exc)
            return
        self._monitoring = True

    def _stop_monitor(self) -> None:
        if self._monitoring:
            self.model.stop()
            self._monitoring = False

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._start_monitor()

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        # A write in progress keeps watching: an unplugged stick must be reported at once.
        if not event.spontaneous() and not self.busy():
            self._stop_monitor()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        # Escape while writing asks whether to stop (nothing else on that view wants it).
        if event.key() == Qt.Key.Key_Escape and self.stack.currentIndex() == PROGRESS:
            self.ask_cancel()
            event.accept()
            return
        super().keyPressEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)


def _other_disk(before: Drive, now: Drive) -> bool:
    """True if the row now describes another disk than the one chosen (same name)."""
    if before.identity is None or now.identity is None:
        return before.devno != now.devno
    return bool(differences(before.identity, now.identity))


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
