"""Page 5, Review: every problem with the build, a summary, the planned ISO tree, the
estimated size, where the ISO goes, and "Save profile…".

The checks are app's `plan_build` (the pipeline's own `validate_build`: the profile, the
package source and resolution, tools, boot loaders, free space, the output path; plus the
size estimate and the planned tree). They open the package source (apt-cache for apt), so
they run on a BackgroundTask, again whenever the profile or the
output path changes while this page is shown. Next stays disabled until no problem is left.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QTimer, Signal, Slot
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.compose.layout import PlannedFile, planned_iso_tree, planned_root_tree, tree_lines
from app.compose.plan import BuildPlan, plan_build
from app.compose.profile import Profile, compression_level, save_profile
from app.packages.model import PackageSource
from ui.dialogs import PathKind, choose_path
from ui.errors import show_error
from ui.wizard.common import StatePage, buddy_label, named
from ui.wizard.package_model import human_size
from ui.wizard.state import WizardState
from ui.worker import BackgroundTask

RECHECK_DELAY_MS = 300  # typing in a field re-checks once the user pauses


def summary_lines(profile: Profile) -> list[str]:
    packages, boot, system, image = (profile.packages, profile.boot, profile.system, profile.image)
    firmware = (
        " and ".join(name for name, on in (("BIOS", boot.bios), ("UEFI", boot.uefi)) if on)
        or "nothing"
    )
    level = compression_level(image)
    entries = (
        ["live"]
        + (["copy to RAM"] if boot.copytoram_entry else [])
        + (["safe graphics"] if boot.safe_entry else [])
    )
    lines = [
        f"Name: {profile.name}",
        f"Packages: {', '.join(packages.packages) or 'none'} from {packages.source}"
        + (" (with their dependencies)" if packages.follow_dependencies else ""),
        f"Kernel: {profile.kernel.package or 'found among the selected packages'}",
        f"Boots on: {firmware}; menu entries: {', '.join(entries)}; "
        f"timeout {boot.timeout} s"
        + (f"; kernel parameters: {boot.cmdline}" if boot.cmdline else ""),
        f"Secure Boot: {boot.secure_boot.value}",
        f"Volume label: {profile.iso.label}; host name: {system.hostname}",
        "Log in: root" + (f" or {system.user}" if system.user else ""),
        f"Root image: {image.format.value}, {image.compressor.value}"
        + (f" level {level}" if level is not None else ""),
        f"Package files on the ISO: {'yes' if packages.carry else 'no'}",
    ]
    if system.overlay:
        lines.append(f"Overlay folder: {system.overlay}")
    return lines


class ReviewPage(StatePage):
    profileSaved = Signal(object)  # the Path a profile was saved to

    def __init__(self, state: WizardState, parent: QWidget | None = None) -> None:
        super().__init__(state, parent)
        self.file_dialog: QFileDialog | None = None
        self.setTitle("Review")
        self.setSubTitle("Check the choices; every problem must be fixed before building.")
        self._task: BackgroundTask | None = None
        self._pending = False
        self._check: BuildPlan | None = None
        # The package source the last check opened: the next one asks it again (apt-cache
        # takes seconds). Used by one check task at a time, never in this thread. Forgotten
        # whenever the Packages page loads its source again (Load: the folder or apt's
        # lists may have changed); a check running then does not hand its source back.
        self._source: PackageSource | None = None
        self._source_generation = 0
        self.check_count = 0  # finished checks (tests wait on it)
        layout = QVBoxLayout(self)

        self.status_label = named(QLabel(), "reviewStatus", "Review status")
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)
        self.problem_list = named(QListWidget(), "problemList", "Problems to fix")
        self.problem_list.setMaximumHeight(110)
        layout.addWidget(self.problem_list)

        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        columns = QHBoxLayout()
        self.summary = named(QPlainTextEdit(), "reviewSummary", "Summary of the choices")
        self.tree = named(QPlainTextEdit(), "plannedTree", "Planned ISO tree")
        for view in (self.summary, self.tree):
            view.setReadOnly(True)
            view.setTabChangesFocus(True)
            view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.tree.setFont(mono)
        self.summary.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        columns.addWidget(self.summary, 1)
        columns.addWidget(self.tree, 1)
        layout.addLayout(columns, 1)
        self.size_label = named(QLabel(), "estimatedSize", "Estimated size")
        layout.addWidget(self.size_label)

        form = QFormLayout()
        output_row = QHBoxLayout()
        self.output_edit = named(QLineEdit(), "outputPath", "Output ISO file")
        self.output_button = named(
            QPushButton("Bro&wse…"), "browseOutput", "Choose the output ISO file"
        )
        output_row.addWidget(self.output_edit, 1)
        output_row.addWidget(self.output_button)
        form.addRow(buddy_label("&Output ISO:", self.output_edit), output_row)
        layout.addLayout(form)
        self.save_button = named(
            QPushButton("&Save profile…"), "saveProfile", "Save the profile to a file"
        )
        save_row = QHBoxLayout()
        save_row.addStretch(1)
        save_row.addWidget(self.save_button)
        layout.addLayout(save_row)

        self._recheck_timer = QTimer(self)
        self._recheck_timer.setSingleShot(True)
        self._recheck_timer.setInterval(RECHECK_DELAY_MS)
        self._recheck_timer.timeout.connect(self.start_check)

        self.output_edit.setText(str(state.output) if state.output else "")
        self.output_edit.textChanged.connect(self._on_output_text)
        self.output_button.clicked.connect(self._browse_output)
        self.save_button.clicked.connect(self._ask_save)
        state.profileChanged.connect(self._on_changed)
        # The Packages page (re)loaded its source: what ours remembers may be out of date.
        state.sourceLoaded.connect(self._forget_source)
        state.outputChanged.connect(self._on_changed)
        state.outputChanged.connect(self._show_output)

    # -- checking -------------------------------------------------------------------------
    def initializePage(self) -> None:
        self.start_check()

    def _on_changed(self) -> None:
        if self.isVisible():
            self._check = None
            self.completeChanged.emit()
            self._recheck_timer.start()

    def checking(self) -> bool:
        return self._task is not None or self._pending or self._recheck_timer.isActive()

    @Slot()
    def start_check(self) -> None:
        self._recheck_timer.stop()
        self._check = None
        self.completeChanged.emit()
        if self._task is not None:
            self._pending = True
            return
        profile, output, source = self.state.profile, self.state.output, self._source
        generation = self._source_generation
        self.status_label.setText("Checking the profile, the packages, tools and free space…")
        self._show_summary(profile, planned_iso_tree(profile))
        task = BackgroundTask(
            lambda reporter: (generation, plan_build(profile, output, reporter, source=source)),
            self,
            name="livesmith-review",
        )
        task.finished.connect(self._on_checked)
        task.failed.connect(self._on_failed)
        task.ended.connect(self._on_ended)
        self._task = task
        task.start()

    @Slot()
    def _forget_source(self) -> None:
        self._source = None
        self._source_generation += 1

    @Slot(object)
    def _on_checked(self, result: tuple[int, BuildPlan]) -> None:
        generation, check = result
        if generation == self._source_generation:
            self._source = check.source
        if check.profile != self.state.profile or check.output != self.state.output:
            self._pending = True  # stale: something changed while checking
            return
        self._check = check
        self.check_count += 1
        self.problem_list.clear()
        self.problem_list.addItems([str(p) for p in check.problems])
        self.problem_list.setVisible(bool(check.problems))
        count = len(check.problems)
        self.status_label.setText(
            f"{count} problem{'s' if count != 1 else ''} to fix before building:"
            if count
            else "No problems found: ready to build."
        )
        self._show_summary(check.profile, check.tree)
        if check.iso_bytes:
            self.size_label.setText(
                f"Estimated ISO size: about {human_size(check.iso_bytes)}; "
                f"the build needs about {human_size(check.scratch_bytes)} "
                "of scratch space."
            )
        else:
            self.size_label.setText("Estimated size: known once the packages are resolved.")
        self.completeChanged.emit()

    @Slot(object)
    def _on_failed(self, exc: BaseException) -> None:
        self.status_label.setText("The checks could not run.")
        show_error(self, exc)

    @Slot()
    def _on_ended(self) -> None:
        self._task = None
        if self._pending:
            self._pending = False
            self.start_check()

    def last_check(self) -> BuildPlan | None:
        """The checks' result for the current profile and output (None while checking)."""
        return self._check

    def problems(self) -> list[str]:
        return [self.problem_list.item(i).text() for i in range(self.problem_list.count())]

    def isComplete(self) -> bool:
        return self._check is not None and not self._check.problems

    def _show_summary(self, profile: Profile, tree: Sequence[PlannedFile]) -> None:
        self.summary.setPlainText("\n".join(summary_lines(profile)))
        root = tree_lines(planned_root_tree(profile))
        self.tree.setPlainText(
            "\n".join([*tree_lines(tree), "", "In the root image, from the System page:", *root])
        )

    # -- output and saving ----------------------------------------------------------------
    @Slot(str)
    def _on_output_text(self, text: str) -> None:
        self.state.set_output(Path(text.strip()).expanduser() if text.strip() else None)

    @Slot(object)
    def _show_output(self, output: Path | None) -> None:
        text = str(output) if output else ""
        current = self.output_edit.text().strip()
        if (Path(current).expanduser() if current else None) != output:
            self.output_edit.setText(text)

    @Slot()
    def _browse_output(self) -> None:
        start = self.output_edit.text() or str(Path.home() / f"{self.state.profile.name}.iso")
        self.file_dialog = choose_path(
            self,
            title="Write the ISO to",
            start=start,
            kind=PathKind.SAVE_FILE,
            filters="ISO images (*.iso)",
            name="outputDialog",
            on_chosen=lambda path: self.output_edit.setText(str(path)),
        )

    def save_profile_to(self, path: Path) -> None:
        save_profile(self.state.profile, path)
        self.profileSaved.emit(path)

    @Slot()
    def _ask_save(self) -> None:
        start = str(Path.home() / f"{self.state.profile.name or 'profile'}.toml")
        self.file_dialog = choose_path(
            self,
            title="Save profile",
            start=start,
            kind=PathKind.SAVE_FILE,
            filters="Livesmith profiles (*.toml)",
            name="saveProfileDialog",
            on_chosen=self._save_chosen,
        )

    def _save_chosen(self, path: Path) -> None:
        try:
            self.save_profile_to(path)
        except Exception as exc:  # shown, never swallowed
            show_error(self, exc)

    def shutdown(self) -> None:
        self._recheck_timer.stop()
        self._pending = False
        if self._task is not None:
            self._task.shutdown()
