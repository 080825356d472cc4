"""The System page's region and services box: time zone, locale, keyboard layout, units
to enable or disable, and a first-boot script.

Each field goes straight into the profile and is checked as it is typed against the build
machine's own lists (app.compose.live.region, .services); for a Debian-archive build, the
archive is asked in the background which package ships each service. The problems show
under the box and again on the Review page.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QTimer, Slot
from PySide6.QtWidgets import (
    QCompleter,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from app.compose.live import region
from app.compose.pipeline import service_problems
from app.compose.profile import Profile, system_setting_problems
from app.errors import Problem
from ui.dialogs import PathKind, choose_path
from ui.wizard.common import buddy_label, named
from ui.wizard.state import WizardState
from ui.worker import BackgroundTask


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.replace(",", " ").split())


def _services_of(profile: Profile) -> tuple[object, ...]:
    system = profile.system
    return (system.enable_units, system.disable_units, profile.packages)


class SystemSettings(QGroupBox):
    def __init__(self, state: WizardState, parent: QWidget | None = None) -> None:
        super().__init__("Region and services", parent)
        self.state = state
        self.file_dialog: QFileDialog | None = None
        form = QFormLayout(self)
        self.timezone_edit = named(QLineEdit(), "timezone", "Time zone")
        self.timezone_edit.setPlaceholderText("UTC")
        self.timezone_edit.setCompleter(QCompleter(sorted(region.known_timezones()), self))
        form.addRow("Time &zone:", self.timezone_edit)
        self.locale_edit = named(QLineEdit(), "locale", "Locale")
        self.locale_edit.setPlaceholderText("C.UTF-8")
        self.locale_edit.setCompleter(QCompleter(sorted(region.supported_locales()), self))
        form.addRow("Lo&cale:", self.locale_edit)
        self.keyboard_edit = named(QLineEdit(), "keyboard", "Keyboard layout")
        self.keyboard_edit.setPlaceholderText("us")
        self.keyboard_edit.setCompleter(QCompleter(sorted(region.known_layouts()), self))
        form.addRow("&Keyboard:", self.keyboard_edit)
        self.enable_edit = named(QLineEdit(), "enableUnits", "Services to enable")
        self.enable_edit.setPlaceholderText("e.g. ssh.service")
        form.addRow("&Enable:", self.enable_edit)
        self.disable_edit = named(QLineEdit(), "disableUnits", "Services to disable")
        self.disable_edit.setPlaceholderText("e.g. apt-daily.timer")
        form.addRow("&Disable:", self.disable_edit)
        first_boot_row = QHBoxLayout()
        self.first_boot_edit = named(QLineEdit(), "firstBootScript", "First-boot script")
        self.first_boot_edit.setPlaceholderText("optional: a script run when the system starts")
        self.first_boot_button = named(
            QPushButton("Choose…"), "browseFirstBoot", "Choose the first-boot script"
        )
        first_boot_row.addWidget(self.first_boot_edit, 1)
        first_boot_row.addWidget(self.first_boot_button)
        form.addRow(buddy_label("First-boot scrip&t:", self.first_boot_edit), first_boot_row)
        self.problems_label = named(
            QLabel(), "systemSettingProblems", "Region and services problems"
        )
        self.problems_label.setWordWrap(True)
        self.problems_label.setStyleSheet("color: #b00000;")
        form.addRow(self.problems_label)

        self.services_label = named(QLabel(), "serviceCheck", "Services check")
        self.services_label.setWordWrap(True)
        form.addRow(self.services_label)
        # Which packages ship the services is asked of the archive off the GUI thread, a
        # moment after typing stops.
        self._service_problems: list[Problem] = []
        self._services_task: BackgroundTask | None = None
        self._services_timer = QTimer(self, singleShot=True, interval=800)
        self._services_timer.timeout.connect(self.check_services)
        self.check_count = 0

        self.fill_from_profile()
        self.timezone_edit.textChanged.connect(lambda t: self._set(timezone=t.strip()))
        self.locale_edit.textChanged.connect(lambda t: self._set(locale=t.strip()))
        self.keyboard_edit.textChanged.connect(lambda t: self._set(keyboard=t.strip()))
        self.enable_edit.textChanged.connect(lambda t: self._set(enable_units=_words(t)))
        self.disable_edit.textChanged.connect(lambda t: self._set(disable_units=_words(t)))
        self.enable_edit.textChanged.connect(self._services_timer.start)
        self.disable_edit.textChanged.connect(self._services_timer.start)
        self.first_boot_edit.textChanged.connect(lambda t: self._set(first_boot=t.strip()))
        self.first_boot_button.clicked.connect(self._browse)

    def fill_from_profile(self) -> None:
        system = self.state.profile.system
        self.timezone_edit.setText(system.timezone)
        self.locale_edit.setText(system.locale)
        self.keyboard_edit.setText(system.keyboard)
        self.enable_edit.setText(" ".join(system.enable_units))
        self.disable_edit.setText(" ".join(system.disable_units))
        self.first_boot_edit.setText(system.first_boot)
        self._show_problems()

    def _set(self, **changes: object) -> None:
        self.state.update("system", **changes)
        self._show_problems()

    def _show_problems(self) -> None:
        problems = [*system_setting_problems(self.state.profile.system), *self._service_problems]
        self.problems_label.setText("\n".join(str(p) for p in problems))
        self.problems_label.setVisible(bool(problems))

    @Slot()
    def check_services(self) -> None:
        """Ask (in the background) whether the build's packages ship the services named."""
        if self._services_task is not None:
            self._services_timer.start()  # once the running check ends
            return
        profile: Profile = self.state.profile
        system = profile.system
        if (
            not (system.enable_units or system.disable_units)
            or not profile.packages.uses_mmdebstrap
        ):
            self._on_services_checked((profile, []))
            return
        self.services_label.setText("Checking which packages ship these services…")
        task = BackgroundTask(
            lambda reporter: (profile, service_problems(profile, reporter)),
            self,
            name="livesmith-services",
        )
        task.finished.connect(self._on_services_checked)
        task.failed.connect(
            lambda _exc: self.services_label.setText("Could not check the services.")
        )
        task.ended.connect(self._on_services_ended)
        self._services_task = task
        task.start()

    @Slot(object)
    def _on_services_checked(self, result: tuple[Profile, list[Problem]]) -> None:
        profile, problems = result
        if _services_of(profile) != _services_of(self.state.profile):
            return  # stale: the timer checks again
        self._service_problems = problems
        self.services_label.setText("")
        self.check_count += 1
        self._show_problems()

    @Slot()
    def _on_services_ended(self) -> None:
        self._services_task = None

    @Slot()
    def _browse(self) -> None:
        self.file_dialog = choose_path(
            self,
            title="First-boot script",
            start=self.first_boot_edit.text() or str(Path.home()),
            kind=PathKind.OPEN_FILE,
            name="firstBootDialog",
            on_chosen=lambda path: self.first_boot_edit.setText(str(path)),
        )
