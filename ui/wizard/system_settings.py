"""The System page's region and services box: time zone, locale, keyboard layout, units
to enable or disable, and a first-boot script.

Each field goes straight into the profile and is checked as it is typed against the build
machine's own lists (app.compose.live.region, .services); the problems show under the box
and again on the Review page.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Slot
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
from app.compose.profile import system_setting_problems
from ui.dialogs import PathKind, choose_path
from ui.wizard.common import buddy_label, named
from ui.wizard.state import WizardState


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.replace(",", " ").split())


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

        self.fill_from_profile()
        self.timezone_edit.textChanged.connect(lambda t: self._set(timezone=t.strip()))
        self.locale_edit.textChanged.connect(lambda t: self._set(locale=t.strip()))
        self.keyboard_edit.textChanged.connect(lambda t: self._set(keyboard=t.strip()))
        self.enable_edit.textChanged.connect(lambda t: self._set(enable_units=_words(t)))
        self.disable_edit.textChanged.connect(lambda t: self._set(disable_units=_words(t)))
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
        problems = system_setting_problems(self.state.profile.system)
        self.problems_label.setText("\n".join(str(p) for p in problems))
        self.problems_label.setVisible(bool(problems))

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
