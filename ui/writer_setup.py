"""The writer page's setup view: the image, the drives (several may be chosen), a named
device or file, the fake-capacity test, and the Write button. Widgets only: the page
connects them and fills them in."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.usb.persistence import Persistence
from ui.drive_model import DriveListModel
from ui.drive_view import DriveListView
from ui.settings import app_settings, remember_test_before_writing, test_before_writing
from ui.writer_widgets import label


def _line_edit(name: str, accessible: str, hint: str) -> QLineEdit:
    edit = QLineEdit()
    edit.setObjectName(name)
    edit.setAccessibleName(accessible)
    edit.setPlaceholderText(hint)
    edit.setAcceptDrops(False)  # a dropped file goes to the page
    return edit


def _button(text: str, accessible: str) -> QPushButton:
    button = QPushButton(text)
    button.setAccessibleName(accessible)
    return button


def _check(text: str, accessible: str) -> QCheckBox:
    check = QCheckBox(text)
    check.setAccessibleName(accessible)
    return check


class SetupView(QWidget):
    def __init__(self, model: DriveListModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        image_box = QGroupBox("Image")
        grid = QGridLayout(image_box)
        self.image_edit = _line_edit(
            "imagePath",
            "Image file",
            "An .iso or .img file (also .xz, .zst or .gz); or drop it on this page",
        )
        image_label = QLabel("&Image file:")
        image_label.setBuddy(self.image_edit)
        self.image_button = _button("&Choose…", "Choose the image file")
        grid.addWidget(image_label, 0, 0)
        grid.addWidget(self.image_edit, 0, 1)
        grid.addWidget(self.image_button, 0, 2)
        self.facts_label = label(name="Image facts", selectable=True)
        self.force_check = _check(
            "Write it &anyway (it will not boot from a USB stick)",
            "Write a non-bootable image anyway",
        )
        self.force_check.setVisible(False)
        self.checksum_label = label(name="Checksum result", selectable=True)
        self.checksum_progress = QProgressBar()
        self.checksum_progress.setAccessibleName("Checksum progress")
        self.checksum_progress.setRange(0, 1000)
        self.checksum_progress.setTextVisible(False)
        self.checksum_progress.setMaximumHeight(10)
        self.checksum_progress.setVisible(False)
        for row, widget in enumerate(
            (self.facts_label, self.force_check, self.checksum_label, self.checksum_progress), 1
        ):
            grid.addWidget(widget, row, 1, 1, 2)
        grid.setColumnStretch(1, 1)
        layout.addWidget(image_box)

        drive_box = QGroupBox("Drives")
        drive_layout = QVBoxLayout(drive_box)
        top = QHBoxLayout()
        drives_label = QLabel(
            "&Drives (USB sticks and SD cards, updated as you plug them in; "
            "Ctrl+click to write several at once):"
        )
        drives_label.setWordWrap(True)
        self.show_all_check = _check(
            "Show a&ll disks", "Show all disks, also those that are not offered"
        )
        top.addWidget(drives_label, 1)
        top.addWidget(self.show_all_check)
        drive_layout.addLayout(top)
        self.drive_view = DriveListView(model)
        self.show_all_check.toggled.connect(self.drive_view.drives.set_show_all)
        self.drive_view.setObjectName("driveList")
        self.drive_view.setAccessibleName("Drives")
        self.drive_view.setMinimumHeight(96)
        drives_label.setBuddy(self.drive_view)
        drive_layout.addWidget(self.drive_view, 1)
        self.drive_hint = label(name="Drive list note")
        drive_layout.addWidget(self.drive_hint)
        other = QHBoxLayout()
        other_label = QLabel("Or a device or &file:")
        self.target_edit = _line_edit(
            "targetPath",
            "Device or file to write to",
            "/dev/sdX, /dev/loopN, or a file path (an image for a virtual machine)",
        )
        other_label.setBuddy(self.target_edit)
        self.target_use_button = _button("&Use", "Use this device or file")
        self.target_file_button = _button("Image fil&e…", "Choose an image file to write to")
        for widget in (other_label, self.target_edit, self.target_use_button):
            other.addWidget(widget, 1 if widget is self.target_edit else 0)
        other.addWidget(self.target_file_button)
        drive_layout.addLayout(other)
        self.target_label = label(name="Chosen target", selectable=True)
        drive_layout.addWidget(self.target_label)
        tests = QHBoxLayout()
        self.test_button = _button("Test the stic&k…", "Test the chosen sticks for fake capacity")
        self.test_button.setObjectName("testStickButton")
        self.test_check = _check(
            "Test the stick &before writing (a quick fake-capacity check)",
            "Test the stick for fake capacity before writing",
        )
        self.test_check.setChecked(test_before_writing(app_settings()))
        self.test_check.toggled.connect(lambda on: remember_test_before_writing(app_settings(), on))
        tests.addWidget(self.test_button)
        tests.addWidget(self.test_check, 1)
        drive_layout.addLayout(tests)
        layout.addWidget(drive_box, 1)

        bottom = QHBoxLayout()
        self.verify_check = _check(
            "&Verify after writing (reads the stick back)", "Verify after writing"
        )
        self.verify_check.setChecked(True)
        self.ready_label = label(name="What is missing")
        self.write_button = _button("&Write…", "Write the image")
        self.write_button.setObjectName("writeButton")
        self.write_button.setMinimumWidth(120)
        self.write_button.setDefault(True)
        self.restore_button = _button(
            "Res&tore to a normal drive…", "Wipe a written drive and make it a normal one"
        )
        self.restore_button.setObjectName("restoreDriveButton")
        bottom.addWidget(self.restore_button)
        bottom.addLayout(self._build_persistence())
        bottom.addWidget(self.verify_check)
        bottom.addWidget(self.ready_label, 1)
        bottom.addWidget(self.write_button)
        layout.addLayout(bottom)
        chain = [
            self.image_edit,
            self.image_button,
            self.force_check,
            self.show_all_check,
            self.drive_view,
            self.target_edit,
            self.target_use_button,
            self.target_file_button,
            self.test_button,
            self.test_check,
            self.persist_check,
            self.persist_size,
            self.verify_check,
            self.write_button,
        ]
        for first, second in zip(chain, chain[1:], strict=False):
            QWidget.setTabOrder(first, second)

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
        row.addWidget(self.persist_check)
        row.addWidget(self.persist_size)
        return row

    def persistence(self) -> Persistence | None:
        """What the persistence controls ask for (InputError for a bad size)."""
        if not self.persist_check.isChecked():
            return None
        return Persistence.parse(self.persist_size.text(), where="persistence size")
