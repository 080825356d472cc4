"""The Debian archive's settings on the Packages page: suite, mirror, components, and how the
packages are installed (mmdebstrap runs their maintainer scripts; unpacking does not).

Shown for the apt source, and for a folder of .deb files, which mmdebstrap installs from
as a local repository beside the suite. Each field says what an empty value means (the build
machine's own suite and apt sources, `main`), and every change goes straight into the
profile; bad values are named at once here and again on the Review page.
"""

from __future__ import annotations

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QComboBox, QFormLayout, QGroupBox, QLabel, QLineEdit, QWidget

from app.compose.install.debian import DebianRoot, host_suite, validate_names
from app.compose.profile import InstallMethod
from ui.wizard.common import named
from ui.wizard.state import WizardState

METHODS = (
    (InstallMethod.AUTO, "Automatic (mmdebstrap when dependencies are included)"),
    (InstallMethod.MMDEBSTRAP, "mmdebstrap: run maintainer scripts, in a sandbox"),
    (InstallMethod.UNPACK, "Unpack only: no maintainer scripts"),
)


class DebianOptions(QGroupBox):
    def __init__(self, state: WizardState, parent: QWidget | None = None) -> None:
        super().__init__("Debian archive", parent)
        self.state = state
        form = QFormLayout(self)
        self.suite_edit = named(QLineEdit(), "debianSuite", "Debian or Ubuntu suite")
        own = host_suite()
        self.suite_edit.setPlaceholderText(f"{own} (this machine's)" if own else "e.g. bookworm")
        form.addRow("S&uite:", self.suite_edit)
        self.mirror_edit = named(QLineEdit(), "debianMirror", "Mirror")
        self.mirror_edit.setPlaceholderText("this machine's apt sources")
        form.addRow("&Mirror:", self.mirror_edit)
        self.components_edit = named(QLineEdit(), "debianComponents", "Components")
        self.components_edit.setPlaceholderText("main")
        form.addRow("Com&ponents:", self.components_edit)
        self.method_combo = named(QComboBox(), "installMethod", "How packages are installed")
        for method, title in METHODS:
            self.method_combo.addItem(title, method)
        form.addRow("&Install:", self.method_combo)
        self.problems_label = named(QLabel(), "debianProblems", "Debian archive problems")
        self.problems_label.setWordWrap(True)
        self.problems_label.setStyleSheet("color: #b00000;")
        form.addRow(self.problems_label)

        self.fill_from_profile()
        for edit in (self.suite_edit, self.mirror_edit, self.components_edit):
            edit.textChanged.connect(self._on_edited)
        self.method_combo.currentIndexChanged.connect(self._on_edited)

    def fill_from_profile(self) -> None:
        options = self.state.profile.packages
        self.suite_edit.setText(options.suite)
        self.mirror_edit.setText(options.mirror)
        self.components_edit.setText(" ".join(options.components))
        offered = [m for m, _ in METHODS]
        # pacman (Arch-style packages) is not a way to install from the Debian archive: a
        # profile with it shows Automatic here, and keeps it until this box is edited.
        method = options.install if options.install in offered else InstallMethod.AUTO
        self.method_combo.setCurrentIndex(offered.index(method))
        self._show_problems()

    @Slot()
    def _on_edited(self) -> None:
        self.state.update(
            "packages",
            suite=self.suite_edit.text().strip(),
            mirror=self.mirror_edit.text().strip(),
            components=tuple(self.components_edit.text().replace(",", " ").split()),
            install=self.method_combo.currentData(),
        )
        self._show_problems()

    def _show_problems(self) -> None:
        options = self.state.profile.packages
        root = DebianRoot(
            options.suite or host_suite(),
            options.packages,
            mirror=options.mirror,
            components=options.components,
        )
        problems = validate_names(root)
        self.problems_label.setText("\n".join(f"{p.where}: {p.message}" for p in problems))
        self.problems_label.setVisible(bool(problems))
