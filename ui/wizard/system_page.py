"""Page 3, System: volume label, host name, accounts and the live user, the /etc/issue
text and an overlay."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from PySide6.QtCore import Slot
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QWidget,
)

from app.compose.configure import BuildFacts, render_issue, validate_issue
from app.compose.profile import Profile, validate_profile
from app.errors import Problem
from app.iso.labels import MAX_LABEL_LENGTH, suggest_label, validate_label
from ui.dialogs import PathKind, choose_path
from ui.wizard.common import StatePage, buddy_label, named
from ui.wizard.state import WizardState
from ui.wizard.system_settings import SystemSettings

PREVIEW_BUILD_ID = "0123456789abcdef"  # the real ID is known only when the build starts


def issue_preview(profile: Profile, today: date | None = None) -> str:
    """/etc/issue as the build will write it, or what is wrong with the template."""
    problems = validate_issue(profile.system.issue)
    if problems:
        return "\n".join(str(p) for p in problems)
    facts = BuildFacts(
        name=profile.name,
        label=profile.iso.label,
        build_id=PREVIEW_BUILD_ID,
        date=(today or date.today()).isoformat(),
    )
    return render_issue(profile.system, facts)


USER_FIELDS = ("user", "user groups", "autologin", "sudo")


def user_problems(profile: Profile) -> list[Problem]:
    """The profile's problems with the live user, to show beside its fields as they are typed."""
    return [p for p in validate_profile(profile) if p.where in USER_FIELDS]


class SystemPage(StatePage):
    def __init__(self, state: WizardState, parent: QWidget | None = None) -> None:
        super().__init__(state, parent)
        self.file_dialog: QFileDialog | None = None
        self.setTitle("System")
        self.setSubTitle("How the live system and its medium are named, and who can log in.")
        form = QFormLayout(self)
        self.name_edit = named(QLineEdit(), "profileName", "Profile name")
        form.addRow("Na&me:", self.name_edit)

        self.label_edit = named(QLineEdit(), "volumeLabel", "Volume label")
        self.label_edit.setMaxLength(MAX_LABEL_LENGTH * 4)  # longer text gets a clear problem
        form.addRow("Volume &label:", self.label_edit)
        label_row = QHBoxLayout()
        self.label_problem = named(QLabel(), "labelProblem", "Volume label problem")
        self.label_problem.setWordWrap(True)
        self.label_problem.setStyleSheet("color: #b00000;")
        self.suggest_button = named(
            QPushButton(), "labelSuggestion", "Use the suggested volume label"
        )
        label_row.addWidget(self.label_problem, 1)
        label_row.addWidget(self.suggest_button)
        form.addRow("", label_row)

        self.hostname_edit = named(QLineEdit(), "hostname", "Host name")
        form.addRow("&Host name:", self.hostname_edit)
        self.root_password_edit = named(QLineEdit(), "rootPassword", "Root password")
        form.addRow("&Root password:", self.root_password_edit)
        self.user_edit = named(QLineEdit(), "userName", "User name (optional)")
        self.user_edit.setPlaceholderText("optional")
        form.addRow("&User:", self.user_edit)
        self.user_password_edit = named(QLineEdit(), "userPassword", "User password")
        self.user_password_edit.setPlaceholderText("none: the user logs in without one")
        form.addRow("User &password:", self.user_password_edit)
        self.autologin_check = named(
            QCheckBox("Log the user in &automatically (consoles and desktop)"),
            "autologin",
            "Log the live user in automatically",
        )
        self.sudo_check = named(
            QCheckBox("Let the user run commands as root with &sudo"), "sudo", "Allow sudo"
        )
        form.addRow("", self.autologin_check)
        form.addRow("", self.sudo_check)
        self.groups_edit = named(QLineEdit(), "userGroups", "Extra groups of the user")
        self.groups_edit.setPlaceholderText("beyond audio, video, cdrom, plugdev, netdev, …")
        form.addRow(buddy_label("Extra &groups:", self.groups_edit), self.groups_edit)
        self.user_problems = named(QLabel(), "userProblems", "Live user problems")
        self.user_problems.setWordWrap(True)
        self.user_problems.setStyleSheet("color: #b00000;")
        form.addRow("", self.user_problems)

        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.issue_edit = named(QPlainTextEdit(), "issueText", "/etc/issue text")
        self.issue_edit.setTabChangesFocus(True)
        self.issue_edit.setFont(mono)
        self.issue_edit.setToolTip(
            "Placeholders: {name} {label} {date} {hostname} {user} "
            "{user_password} {root_password} {user_line} {build_id}"
        )
        form.addRow("/etc/&issue:", self.issue_edit)
        self.issue_preview = named(QPlainTextEdit(), "issuePreview", "/etc/issue preview")
        self.issue_preview.setReadOnly(True)
        self.issue_preview.setTabChangesFocus(True)
        self.issue_preview.setFont(mono)
        form.addRow("Preview:", self.issue_preview)

        overlay_row = QHBoxLayout()
        self.overlay_edit = named(QLineEdit(), "overlayFolder", "Overlay folder")
        self.overlay_edit.setPlaceholderText("optional: a folder copied on top of the root")
        self.overlay_button = named(
            QPushButton("Bro&wse…"), "browseOverlay", "Browse for the overlay folder"
        )
        overlay_row.addWidget(self.overlay_edit, 1)
        overlay_row.addWidget(self.overlay_button)
        form.addRow(buddy_label("&Overlay folder:", self.overlay_edit), overlay_row)
        self.settings = SystemSettings(state)
        form.addRow(self.settings)

        self._fill_from_profile()
        self.name_edit.textChanged.connect(self._on_name)
        self.label_edit.textChanged.connect(self._on_label)
        self.suggest_button.clicked.connect(self.apply_suggestion)
        self.hostname_edit.textChanged.connect(lambda t: self._set_system(hostname=t.strip()))
        self.root_password_edit.textChanged.connect(lambda t: self._set_system(root_password=t))
        self.user_edit.textChanged.connect(lambda t: self._set_system(user=t.strip()))
        self.user_password_edit.textChanged.connect(lambda t: self._set_system(user_password=t))
        self.autologin_check.toggled.connect(lambda on: self._set_system(autologin=on))
        self.sudo_check.toggled.connect(lambda on: self._set_system(sudo=on))
        self.groups_edit.textChanged.connect(
            lambda t: self._set_system(user_groups=tuple(t.replace(",", " ").split()))
        )
        self.issue_edit.textChanged.connect(
            lambda: self._set_system(issue=self.issue_edit.toPlainText())
        )
        self.overlay_edit.textChanged.connect(lambda t: self._set_system(overlay=t.strip()))
        self.overlay_button.clicked.connect(self._browse_overlay)
        state.profileChanged.connect(self._update_preview)
        state.profileChanged.connect(self._show_user_problems)

    def _fill_from_profile(self) -> None:
        profile = self.state.profile
        system = profile.system
        self.name_edit.setText(profile.name)
        self.label_edit.setText(profile.iso.label)
        self.hostname_edit.setText(system.hostname)
        self.root_password_edit.setText(system.root_password)
        self.user_edit.setText(system.user)
        self.user_password_edit.setText(system.user_password)
        self.autologin_check.setChecked(system.autologin)
        self.sudo_check.setChecked(system.sudo)
        self.groups_edit.setText(" ".join(system.user_groups))
        self.issue_edit.setPlainText(system.issue)
        self.overlay_edit.setText(system.overlay)
        self._show_label_problems(profile.iso.label)
        self._update_preview()
        self._show_user_problems()
        if hasattr(self, "settings"):  # filled again when a profile is loaded
            self.settings.fill_from_profile()

    @Slot(str)
    def _on_name(self, text: str) -> None:
        self.state.set_profile(self.state.profile.with_changes(name=text.strip()))

    @Slot(str)
    def _on_label(self, text: str) -> None:
        self.state.update("iso", label=text)
        self._show_label_problems(text)

    def _show_label_problems(self, label: str) -> None:
        problems = validate_label(label, where="volume label")
        self.label_problem.setText("; ".join(p.message for p in problems))
        self.label_problem.setVisible(bool(problems))
        suggestion = suggest_label(label)
        self.suggest_button.setText(f"Use {suggestion}")
        self.suggest_button.setVisible(bool(problems))
        self.suggest_button.setAccessibleDescription(f"Set the volume label to {suggestion}")

    @Slot()
    def apply_suggestion(self) -> None:
        self.label_edit.setText(suggest_label(self.label_edit.text()))
        self.label_edit.setFocus()

    @Slot()
    def _show_user_problems(self) -> None:
        problems = user_problems(self.state.profile)
        self.user_problems.setText("\n".join(str(p) for p in problems))
        self.user_problems.setVisible(bool(problems))

    def _set_system(self, **changes: object) -> None:
        self.state.update("system", **changes)

    @Slot()
    def _update_preview(self) -> None:
        self.issue_preview.setPlainText(issue_preview(self.state.profile))

    @Slot()
    def _browse_overlay(self) -> None:
        start = self.overlay_edit.text() or str(Path.home())
        self.file_dialog = choose_path(
            self,
            title="Overlay folder",
            start=start,
            kind=PathKind.FOLDER,
            name="overlayDialog",
            on_chosen=lambda folder: self.overlay_edit.setText(str(folder)),
        )
