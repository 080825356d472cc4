""" "Restore to a normal drive…": the writer page's way to make a written stick usable again.

The dialog asks for the drive (prefilled with the one chosen on the page), the file system
(exFAT unless changed) and a label, checked as it is typed. Restore checks the drive on a
worker thread (`plan_restore`: the writer's gate, the tools, the label), asks before erasing,
naming the disk, then runs `restore_task` on a worker thread too (`BackgroundTask`): the
window never waits for a disk. The restore goes to the disk that was named in the question or
nowhere (its identity travels with the plan). Every error is shown by `ui.errors.show_error`;
on success `restored` carries the `RestoreResult` and the dialog closes, and the page shows
`restore_outcome(result)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QCloseEvent, QKeyEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.reporter import Reporter
from app.usb.restore import (
    DEFAULT_FS,
    LABEL_RULES,
    PHASE_TITLES,
    FileSystem,
    InvalidLabel,
    RestorePlan,
    RestoreResult,
    check_label,
    label_problem,
    plan_restore,
    restore_task,
)
from ui.dialogs import ask_destructive
from ui.errors import show_error
from ui.worker import BackgroundTask
from ui.writer_texts import Line, Outcome, OutcomeKind, Tone, format_duration, lines_html


def restore_outcome(result: RestoreResult) -> Outcome:
    """What the writer page shows after a restore."""
    fs = result.file_system.title
    details = [
        result.summary()[0].upper() + result.summary()[1:] + ".",
        f"It took {format_duration(result.seconds)}"
        + (" (through UDisks2)." if result.via == "udisks" else "."),
        "The drive can be used like a new one; to write an image to it again, choose it above.",
    ]
    details += [note[0].upper() + note[1:] + "." for note in result.notes]
    return Outcome(OutcomeKind.RESTORED, f"Restored: one {fs} partition", "\n".join(details))


class RestoreDialog(QDialog):
    """Choose a drive, a file system and a label; confirm; restore (see the module)."""

    restored = Signal(object)  # RestoreResult

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        target: str | None = None,
        via: str | None = None,
        bus: str = "SYSTEM",
    ) -> None:
        super().__init__(parent)
        self.setObjectName("restoreDialog")
        self.setWindowTitle("Restore to a normal drive")
        self._via = via
        self._bus = bus
        self._task: BackgroundTask | None = None
        self._tasks: set[BackgroundTask] = set()
        self.confirm_box: QMessageBox | None = None
        self.error_box: QMessageBox | None = None
        self.restore_result: RestoreResult | None = None

        intro = QLabel(
            "Wipes the image from a USB stick or SD card (ISO 9660, MBR, both GPT copies) "
            "and gives it one partition over the whole drive, as sticks are sold. "
            "Everything on the drive is erased."
        )
        intro.setWordWrap(True)
        self.target_edit = QLineEdit(target or "")
        self.target_edit.setObjectName("restoreTarget")
        self.target_edit.setAccessibleName("Drive to restore")
        self.target_edit.setPlaceholderText("/dev/sdX: choose the drive on the page, or name it")
        self.fs_combo = QComboBox()
        self.fs_combo.setObjectName("restoreFs")
        self.fs_combo.setAccessibleName("File system")
        for fs in FileSystem:
            self.fs_combo.addItem(f"{fs.title}: {fs.use}", fs.value)
        self.fs_combo.setCurrentIndex(list(FileSystem).index(DEFAULT_FS))
        self.label_edit = QLineEdit()
        self.label_edit.setObjectName("restoreLabel")
        self.label_edit.setAccessibleName("Volume label")
        self.label_note = QLabel()
        self.label_note.setObjectName("restoreLabelNote")
        self.label_note.setWordWrap(True)
        form = QFormLayout()
        form.addRow("&Drive:", self.target_edit)
        form.addRow("&File system:", self.fs_combo)
        form.addRow("&Label:", self.label_edit)
        form.addRow("", self.label_note)

        self.phase_label = QLabel()
        self.phase_label.setObjectName("restorePhase")
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # a busy bar: the steps take a second or two each
        self.progress.setVisible(False)
        self.restore_button = QPushButton("&Restore…")
        self.restore_button.setObjectName("restoreButton")
        self.restore_button.setAccessibleName("Erase the drive and restore it")
        self.restore_button.setDefault(True)
        self.restore_button.clicked.connect(self.start)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addWidget(self.phase_label, 1)
        buttons.addWidget(self.close_button)
        buttons.addWidget(self.restore_button)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addLayout(buttons)

        self.fs_combo.currentIndexChanged.connect(self._update_label_note)
        self.label_edit.textChanged.connect(self._update_label_note)
        self._update_label_note()
        self.resize(560, self.sizeHint().height())

    # -- state ----------------------------------------------------------------------------
    def fs(self) -> FileSystem:
        return FileSystem(self.fs_combo.currentData())

    def busy(self) -> bool:
        return self._task is not None and self._task.is_running()

    @Slot()
    def _update_label_note(self) -> None:
        fs = self.fs()
        problem = label_problem(fs, self.label_edit.text())
        rules = Line(Tone.NOTE, f"{fs.title} labels: {LABEL_RULES[fs]}")
        lines = [Line(Tone.BAD, problem), rules] if problem else [rules]
        self.label_note.setText(lines_html(lines))

    def _set_working(self, text: str | None) -> None:
        working = text is not None
        for widget in (self.target_edit, self.fs_combo, self.label_edit, self.restore_button):
            widget.setEnabled(not working)
        self.close_button.setEnabled(not working)
        self.progress.setVisible(working)
        self.phase_label.setText(f"<b>{text}</b>" if text else "")

    # -- the steps ------------------------------------------------------------------------
    @Slot()
    def start(self) -> None:
        """Check the label, then the drive (worker thread), then ask."""
        if self.busy() or self.confirm_box is not None:
            return
        path = self.target_edit.text().strip()
        fs, label = self.fs(), self.label_edit.text()
        try:
            check_label(fs, label)  # before anything else: a bad label is refused at once
        except InvalidLabel as exc:
            self._report(exc)
            return
        if not path:
            self.target_edit.setFocus()
            self.phase_label.setText(Line(Tone.WARN, "Name the drive to restore.").html())
            return
        via = self._via
        self._set_working(f"Checking {path}…")
        self._run(
            lambda _reporter: plan_restore(path, fs, label, via=via),
            "restore-check",
            on_done=self._confirm,
        )

    def _confirm(self, plan: RestorePlan) -> None:
        self._set_working(None)
        label = f", labelled {plan.label!r}" if plan.label else ""
        self.confirm_box = ask_destructive(
            self,
            title="Erase the drive?",
            text=f"Erase {plan.target.path} ({plan.target.description}) and restore it?",
            informative=f"Everything on it is destroyed. It gets one {plan.fs.title} partition "
            f"over the whole drive{label}.",
            act="Erase and restore",
            keep="Cancel",
            icon=QMessageBox.Icon.Warning,
            name="confirmRestoreBox",
            act_name="confirmRestore",
            on_closed=self._forget_confirm_box,
            on_yes=lambda: self._restore(plan),
        )

    def _forget_confirm_box(self) -> None:
        self.confirm_box = None

    def _restore(self, plan: RestorePlan) -> None:
        self._set_working("Starting…")
        task = self._run(
            restore_task(plan, via=self._via, bus=self._bus), "restore", on_done=self._restored
        )
        task.stepChanged.connect(self._on_phase)

    @Slot(str)
    def _on_phase(self, phase: str) -> None:
        self.phase_label.setText(f"<b>{PHASE_TITLES.get(phase, phase)}…</b>")

    def _restored(self, result: RestoreResult) -> None:
        self._set_working(None)
        self.restore_result = result
        self.restored.emit(result)
        self.accept()

    # -- plumbing -------------------------------------------------------------------------
    def _run(
        self, fn: Callable[[Reporter], Any], name: str, *, on_done: Callable[[Any], None]
    ) -> BackgroundTask:
        task = BackgroundTask(fn, self, name=f"livesmith-{name}")
        self._task = task
        self._tasks.add(task)
        task.finished.connect(on_done)
        task.failed.connect(self._failed)
        task.ended.connect(lambda: self._forget(task))
        task.start()
        return task

    def _forget(self, task: BackgroundTask) -> None:
        self._tasks.discard(task)
        if self._task is task:
            self._task = None
        task.deleteLater()

    def _failed(self, exc: BaseException) -> None:
        self._set_working(None)
        self._report(exc)

    def _report(self, exc: BaseException) -> None:
        """Every error goes through the GUI's single presenter."""
        self.error_box = show_error(self, exc)

    def shutdown(self) -> None:
        """Wait for running work (the window is closing): a restore is not cut in half."""
        for task in list(self._tasks):
            task.shutdown()

    # While the drive is being restored the dialog stays: closing it would hide the outcome.
    def reject(self) -> None:
        if not self.busy():
            super().reject()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape and self.busy():
            event.ignore()
            return
        super().keyPressEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.busy():
            event.ignore()
            return
        super().closeEvent(event)
