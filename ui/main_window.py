"""The main window: a start screen with the three ways in, and a page for each of them.

Pages are made when first opened and kept: a write or a build goes on while the user looks
at another page, and coming back shows it. Closing the window while one runs asks first.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, Signal, Slot
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app import __version__
from app.compose.profile import Profile, builtin_profiles, load_profile
from ui.dialogs import PathKind, ask_destructive, choose_path
from ui.errors import show_error
from ui.recents import RecentFiles
from ui.settings import app_settings

PROFILE_FILTER = "Livesmith profiles (*.toml);;All files (*)"
RECENT_PROFILES = "recent/profiles"
RECENT_IMAGES = "recent/images"


class StartScreen(QWidget):
    """Compose (from a built-in or a saved profile), write, inspect; recent files beside."""

    composeRequested = Signal(object)  # a Profile
    profileFileChosen = Signal(object)  # Path of a saved profile
    writeRequested = Signal(object)  # Path or None
    inspectRequested = Signal(object)  # Path or None

    def __init__(self, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.recent_profiles = RecentFiles(settings, RECENT_PROFILES)
        self.recent_images = RecentFiles(settings, RECENT_IMAGES)
        self.builtins = builtin_profiles()

        title = QLabel(
            f"<h1>Livesmith</h1><p>Compose live ISO images, look inside any ISO, "
            f"and write images safely to USB sticks.</p>"
            f"<p><small>Version {__version__}</small></p>"
        )
        title.setWordWrap(True)
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)

        self.compose_button = QPushButton("Compose a live ISO…")
        self.write_button = QPushButton("Write an ISO to USB…")
        self.inspect_button = QPushButton("Inspect an ISO…")
        self.profile_combo = QComboBox()
        self.profile_combo.setObjectName("start-profile")
        self.profile_combo.setAccessibleName("Built-in profile to start from")
        # Long descriptions must not widen the window past small screens.
        self.profile_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.profile_combo.setMinimumContentsLength(12)
        for name, profile in self.builtins.items():
            self.profile_combo.addItem(name, name)
            self.profile_combo.setItemData(
                self.profile_combo.count() - 1, profile.description, Qt.ItemDataRole.ToolTipRole
            )
        self.profile_about = QLabel()
        self.profile_about.setObjectName("start-profile-description")
        self.profile_about.setWordWrap(True)
        self.profile_combo.currentIndexChanged.connect(self._show_profile_description)
        self.open_profile_button = QPushButton("Open a saved &profile…")
        self.open_profile_button.setObjectName("start-open-profile")
        self.open_profile_button.setAccessibleName("Open a saved profile")

        ways = QGroupBox("Start")
        grid = QGridLayout(ways)
        hints = {
            "compose": "Pick packages, kernel and options; build a hybrid ISO that boots "
            "from CD and USB, BIOS and UEFI.",
            "write": "Copy any image to a USB stick and check every byte by reading it back.",
            "inspect": "See the files, boot entries and partitions of any ISO before burning it.",
        }
        row = 0
        for button, name in (
            (self.compose_button, "compose"),
            (self.write_button, "write"),
            (self.inspect_button, "inspect"),
        ):
            button.setObjectName(f"start-{name}")
            button.setAccessibleName(button.text().rstrip("…"))
            button.setMinimumHeight(44)
            hint = QLabel(hints[name])
            hint.setWordWrap(True)
            grid.addWidget(button, row, 0)
            grid.addWidget(hint, row, 1)
            row += 1
            if name == "compose":
                from_row = QHBoxLayout()
                start_from = QLabel("&Start from:")
                start_from.setBuddy(self.profile_combo)
                from_row.addWidget(start_from)
                from_row.addWidget(self.profile_combo, 1)
                from_row.addWidget(self.open_profile_button)
                grid.addLayout(from_row, row, 0, 1, 2)
                grid.addWidget(self.profile_about, row + 1, 0, 1, 2)
                row += 2
            grid.setRowMinimumHeight(row, 12)  # a little air between the ways in
            row += 1
        grid.setColumnStretch(1, 1)
        grid.setRowStretch(row, 1)  # spare height below the buttons, not between them

        self.profiles_list = self._recent_list("Recent profiles")
        self.images_list = self._recent_list("Recent images")
        recent = QGroupBox("Recent")
        recent_layout = QVBoxLayout(recent)
        for label_text, widget in (
            ("Pro&files", self.profiles_list),
            ("&Images", self.images_list),
        ):
            label = QLabel(label_text)
            label.setBuddy(widget)
            recent_layout.addWidget(label)
            recent_layout.addWidget(widget)

        body = QHBoxLayout()
        body.addWidget(ways, 3)
        body.addWidget(recent, 2)
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addLayout(body)
        layout.addStretch(1)

        self.compose_button.clicked.connect(self._compose_builtin)
        self.open_profile_button.clicked.connect(self._choose_profile)
        self.write_button.clicked.connect(lambda: self.writeRequested.emit(None))
        self.inspect_button.clicked.connect(lambda: self.inspectRequested.emit(None))
        self.profiles_list.itemActivated.connect(
            lambda item: self.profileFileChosen.emit(Path(item.data(Qt.ItemDataRole.UserRole)))
        )
        self.images_list.itemActivated.connect(
            lambda item: self.inspectRequested.emit(Path(item.data(Qt.ItemDataRole.UserRole)))
        )
        self.file_dialog: QFileDialog | None = None
        self._show_profile_description()
        self.refresh_recent()

    @staticmethod
    def _recent_list(name: str) -> QListWidget:
        widget = QListWidget()
        widget.setAccessibleName(name)
        widget.setObjectName(name.lower().replace(" ", "-"))
        widget.setMinimumHeight(90)
        return widget

    def refresh_recent(self) -> None:
        for widget, recent, empty in (
            (self.profiles_list, self.recent_profiles, "No saved profiles yet"),
            (self.images_list, self.recent_images, "No images opened yet"),
        ):
            widget.clear()
            paths = recent.paths()
            for path in paths:
                item = QListWidgetItem(path.name)
                item.setToolTip(str(path))
                item.setData(Qt.ItemDataRole.UserRole, str(path))
                widget.addItem(item)
            if not paths:
                placeholder = QListWidgetItem(empty)
                placeholder.setFlags(Qt.ItemFlag.NoItemFlags)
                widget.addItem(placeholder)

    @Slot()
    def _show_profile_description(self) -> None:
        profile = self.builtins.get(self.profile_combo.currentData())
        self.profile_about.setText(profile.description if profile is not None else "")

    @Slot()
    def _compose_builtin(self) -> None:
        name = self.profile_combo.currentData()
        if name in self.builtins:
            self.composeRequested.emit(self.builtins[name])

    @Slot()
    def _choose_profile(self) -> None:
        self.file_dialog = choose_path(
            self,
            title="Open a saved profile",
            start=Path.home(),
            kind=PathKind.OPEN_FILE,
            filters=PROFILE_FILTER,
            name="profileDialog",
            on_chosen=self.profileFileChosen.emit,
        )


class PageFrame(QWidget):
    """A page with a header: a way back to the start screen and the page's title."""

    def __init__(self, title: str, content: QWidget, back: Callable[[], Any]) -> None:
        super().__init__()
        self.content = content
        self.back_button = QPushButton("← Start")
        self.back_button.setAccessibleName("Back to the start screen")
        self.back_button.setToolTip("Back to the start screen (Alt+Home)")
        self.back_button.clicked.connect(back)
        self.title = QLabel(f"<b>{title}</b>")
        header = QHBoxLayout()
        header.addWidget(self.back_button)
        header.addWidget(self.title, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(header)
        layout.addWidget(content, 1)


class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings | None = None) -> None:
        super().__init__()
        self.settings = settings if settings is not None else app_settings()
        self.setWindowTitle("Livesmith")
        self.resize(1000, 700)
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        self.pages = QStackedWidget()
        self.start = StartScreen(self.settings)
        self.pages.addWidget(self.start)
        self.setCentralWidget(self.pages)
        self.compose_frame: PageFrame | None = None
        self.writer_frame: PageFrame | None = None
        self.inspect_frame: PageFrame | None = None
        self.close_box: QMessageBox | None = None
        self._closing_confirmed = False

        self.start.composeRequested.connect(self.open_compose)
        self.start.profileFileChosen.connect(self.open_profile_file)
        self.start.writeRequested.connect(self.open_writer)
        self.start.inspectRequested.connect(self.open_inspect)
        QShortcut(QKeySequence("Alt+Home"), self, self.go_start)

    # -- pages --------------------------------------------------------------------------------
    def _show(self, frame: PageFrame, title: str) -> None:
        self.pages.setCurrentWidget(frame)
        self.setWindowTitle(f"{title} — Livesmith")

    @Slot()
    def go_start(self) -> None:
        self.start.refresh_recent()
        self.pages.setCurrentWidget(self.start)
        self.setWindowTitle("Livesmith")

    @property
    def writer(self) -> Any:
        return self.writer_frame.content if self.writer_frame is not None else None

    @property
    def inspector(self) -> Any:
        return self.inspect_frame.content if self.inspect_frame is not None else None

    @property
    def wizard(self) -> Any:
        return self.compose_frame.content if self.compose_frame is not None else None

    @Slot(object)
    def open_writer(self, image: Path | None = None) -> None:
        from ui.writer_page import WriterPage

        if self.writer_frame is None:
            self.writer_frame = PageFrame(
                "Write an image to a USB stick", WriterPage(), self.go_start
            )
            self.pages.addWidget(self.writer_frame)
        if image is not None:
            self.remember_image(image)
            self.writer.set_image(image)  # refused (False) while a write runs
        self._show(self.writer_frame, "Write to USB")

    @Slot(object)
    def open_inspect(self, image: Path | None = None) -> None:
        from ui.preview_view import PreviewView

        if self.inspect_frame is None:
            view = PreviewView()
            view.writeRequested.connect(self.open_writer)
            view.loaded.connect(lambda _report: self._remember_inspected())
            self.inspect_frame = PageFrame("Inspect an ISO", view, self.go_start)
            self.pages.addWidget(self.inspect_frame)
        self._show(self.inspect_frame, "Inspect")
        if image is not None:
            self.inspector.load(Path(image))
        else:
            self.inspector.choose_file()

    def _remember_inspected(self) -> None:
        path = self.inspector.path()
        if path is not None:
            self.remember_image(path)

    def remember_image(self, path: Path) -> None:
        self.start.recent_images.add(path)

    @Slot(object)
    def open_profile_file(self, path: Path) -> None:
        try:
            profile = load_profile(Path(path))
        except Exception as exc:  # a broken or missing file: say what and where
            show_error(self, exc)
            return
        self.start.recent_profiles.add(path)
        self.open_compose(profile)

    @Slot(object)
    def open_compose(self, profile: Profile) -> None:
        from ui.wizard.compose_wizard import ComposeWizard

        if self.compose_frame is not None:
            if self.wizard.is_building():
                self._show(self.compose_frame, "Compose")
                return
            self.wizard.shutdown()  # its checks and loads run on threads: stop them first
            self.pages.removeWidget(self.compose_frame)
            self.compose_frame.deleteLater()
        wizard = ComposeWizard(profile, settings=self.settings)
        wizard.setWindowFlags(Qt.WindowType.Widget)  # a page of this window, not a dialog
        wizard.writeRequested.connect(self.open_writer)
        wizard.profileSaved.connect(lambda saved: self.start.recent_profiles.add(saved))
        wizard.isoBuilt.connect(self.remember_image)
        wizard.rejected.connect(self.go_start)
        wizard.accepted.connect(self.go_start)
        self.compose_frame = PageFrame(
            f"Compose a live ISO — {profile.name}", wizard, self.go_start
        )
        self.pages.addWidget(self.compose_frame)
        self._show(self.compose_frame, "Compose")

    # -- closing ------------------------------------------------------------------------------
    def busy_work(self) -> list[str]:
        """What would be interrupted by closing now, in words."""
        work = []
        if self.writer is not None and self.writer.busy():
            work.append("a write to a USB stick (the stick would be wiped)")
        if self.wizard is not None and self.wizard.is_building():
            work.append("a build (its partial ISO would be removed)")
        if self.inspector is not None and self.inspector.is_extracting():
            work.append("an extraction from an ISO")
        return work

    def closeEvent(self, event: QCloseEvent) -> None:
        work = self.busy_work()
        if work and not self._closing_confirmed:
            event.ignore()
            self.close_box = ask_destructive(
                self,
                title="Stop and quit?",
                text="Quitting now stops " + " and ".join(work) + ".",
                act="Stop and quit",
                name="closeBox",
                act_name="confirmQuit",
                on_yes=self._quit_confirmed,
                on_closed=self._forget_close_box,
            )
            return
        self.settings.setValue("window/geometry", self.saveGeometry())
        for page in (self.writer, self.wizard, self.inspector):
            if page is not None and hasattr(page, "shutdown"):
                page.shutdown()
        super().closeEvent(event)

    def _forget_close_box(self) -> None:
        self.close_box = None

    def _quit_confirmed(self) -> None:
        self._closing_confirmed = True
        self.close()
