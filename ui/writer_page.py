"""The "Write to USB" page: choose an image and one or more drives, confirm, write, verify.

The page follows one state machine (`app.usb.writer_state.WriterMachine`): choosing,
checking, confirming, testing, writing, verifying, done, failed, cancelled. The page keeps
no state of its own beyond its widgets: the image's facts, the sticks being written (each
with its own phase, progress and end) and what is asked are the machine's; the chosen
drives are the drive model's (`DriveListModel.selected`, several at once).

Everything that touches a disk or reads a file runs on a worker thread (`ui.tasks.Tasks`,
one named slot per job): the image's facts, its checksum file, a named target, the checks
before asking, the fake-capacity test, and one write per stick (the writer helper process).

A chosen drive that goes away or stops being offered is never replaced by another: the
model drops it from the selection, and an open "Erase and write" question about it is
withdrawn (`ui.question.Question`). The question names the disks, and the write goes to
those disks or nowhere: each one's identity is checked before asking and travels to the
helper, which checks the device it opened (see `app.usb.identity`).

Embedding: `WriterPage(image=..., model=...)`; `set_image(path)` prefills the image (after
a build); `shutdown()` when the window closes (it cancels a running write and waits for the
helper to wipe the stick).
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QModelIndex, Qt, Signal, Slot
from PySide6.QtGui import (
    QCloseEvent,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QHideEvent,
    QKeyEvent,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMessageBox,
    QProgressBar,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.errors import InputError
from app.usb.checksums import ChecksumResult
from app.usb.drives import Drive
from app.usb.eject import eject
from app.usb.preflight import ImageFacts, Preflight, check_target
from app.usb.target import Target, TargetKind
from app.usb.writer_state import StickEnd, WriterMachine, WriterState
from ui.drive_model import GONE, DriveListModel, warning_text
from ui.drive_view import DriveDelegate, DriveFilter, drive_lines
from ui.errors import show_error
from ui.question import Question
from ui.restore_dialog import RestoreDialog, restore_outcome
from ui.tasks import Job, Tasks
from ui.worker import BackgroundTask
from ui.writer_image import ImageChecks
from ui.writer_run import WriteRun
from ui.writer_setup import SetupView
from ui.writer_targets import TargetChecks, why_not_chosen
from ui.writer_texts import (
    Line,
    Outcome,
    Tone,
    confirmation_of,
    drive_words,
    html_text,
    stick_words,
    sticks_outcome,
    stop_question,
)
from ui.writer_widgets import ProgressView, ResultView, StickProgress

__all__ = ["DriveDelegate", "DriveFilter", "Preflight", "WriterPage", "drive_lines"]

NO_DRIVES = (
    "No USB stick or SD card found. Plug one in: it appears here by itself. To write to a "
    "loop device or an image file, name it below."
)

KEEP_ON_ONE = (
    "Changes can be kept on one stick at a time: choose one, or untick \u201cKeep changes\u201d."
)

SETUP, PROGRESS, RESULT = range(3)
S = WriterState


def _sentence(text: str) -> str:
    return f"{text[:1].upper()}{text[1:]}."


class WriterPage(QWidget):
    """Write an image to USB sticks, SD cards, a named loop device or an image file."""

    writeStarted = Signal()
    writeFinished = Signal(str)  # OutcomeKind value: "verified", "cancelled", …
    busyChanged = Signal(bool)
    phaseChanged = Signal(str)  # a stick's phase: test, unmount, write, verify, locate, wipe
    imageChecked = Signal()  # the image's facts and checksum verdict are known (or failed)
    stateChanged = Signal(object)  # the machine's new WriterState

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        image: Path | None = None,
        model: DriveListModel | None = None,
    ) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.machine = WriterMachine()
        self.machine.listen(self._follow)
        self.tasks = Tasks(self)
        self.model = model if model is not None else DriveListModel(self, include_excluded=True)
        self.confirm: Question | None = None  # "Erase and write?"
        self.stop: Question | None = None  # "Stop writing?"
        self.outcome: Outcome | None = None
        self.error_box: QMessageBox | None = None
        self.restore_dialog: RestoreDialog | None = None
        self.file_dialog: QFileDialog | None = None
        self._monitoring = False

        self.stack = QStackedWidget()
        self.setup = setup = SetupView(self.model)
        self.stack.addWidget(setup)
        self.image_edit, self.image_button = setup.image_edit, setup.image_button
        self.facts_label, self.force_check = setup.facts_label, setup.force_check
        self.checksum_label, self.checksum_progress = setup.checksum_label, setup.checksum_progress
        self.drive_view, self.drives = setup.drive_view, setup.drive_view.drives
        self.show_all_check, self.drive_hint = setup.show_all_check, setup.drive_hint
        self.target_edit, self.target_label = setup.target_edit, setup.target_label
        self.target_use_button = setup.target_use_button
        self.target_file_button = setup.target_file_button
        self.test_button, self.test_check = setup.test_button, setup.test_check
        self.verify_check, self.ready_label = setup.verify_check, setup.ready_label
        self.write_button, self.restore_button = setup.write_button, setup.restore_button
        self.persist_check, self.persist_size = setup.persist_check, setup.persist_size
        self.persistence = setup.persistence
        self.image_checks = ImageChecks(self.machine, self.tasks, setup, self._report)
        self.image_checks.chosen.connect(self.set_image)
        self.image_checks.changed.connect(self._update_ready)
        self.image_checks.checked.connect(self.imageChecked)
        self.targets = TargetChecks(
            self.machine, self.tasks, setup, self.model, self._report, self.target_paths
        )
        self.targets.changed.connect(self._update_ready)
        self.use_typed_target, self.test_sticks = self.targets.use_typed, self.targets.test
        for signal, slot in (
            (self.image_edit.returnPressed, self.image_checks.entered),
            (self.image_button.clicked, self.image_checks.choose),
            (self.target_edit.returnPressed, self.targets.use_typed),
            (self.target_use_button.clicked, self.targets.use_typed),
            (self.target_file_button.clicked, self.targets.choose_file),
            (self.test_button.clicked, self.targets.test),
            (self.write_button.clicked, self.start_write),
            (self.restore_button.clicked, self.open_restore),
            (self.force_check.toggled, self._update_ready),
            (self.verify_check.toggled, self._update_ready),
            (self.persist_check.toggled, self._update_ready),
            (self.persist_size.textChanged, self._update_ready),
        ):
            signal.connect(slot)
        self.progress_view = ProgressView()
        self.progress_view.cancel_button.clicked.connect(self.ask_cancel)
        self.cancel_button = self.progress_view.cancel_button
        self.progress_title = self.progress_view.title
        self.result_view = ResultView()
        self.result_view.again_button.clicked.connect(self.back_to_setup)
        self.result_title = self.result_view.title
        self.result_details = self.result_view.details
        self.again_button = self.result_view.again_button
        self.eject_button = self.result_view.eject_button
        self.eject_button.clicked.connect(self.eject_written)
        self.run = WriteRun(self.machine, self.tasks, self.progress_view, self._report)
        self.run.phaseChanged.connect(self.phaseChanged)
        self.run.settled.connect(self._on_settled)
        self.stack.addWidget(self.progress_view)
        self.stack.addWidget(self.result_view)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)

        self.model.driveRemoved.connect(self._on_drive_removed)
        self.model.monitorError.connect(self._on_monitor_error)
        self.model.selectionDropped.connect(self._drop_chosen)
        self.model.selectionChanged.connect(self._on_selection)
        for signal in (
            self.drives.rowsInserted,
            self.drives.rowsRemoved,
            self.drives.modelReset,
            self.drives.layoutChanged,
        ):
            signal.connect(self._update_drive_hint)
        self._update_drive_hint()
        self._update_ready()
        if image is not None:
            self.set_image(image)

    # -- building -------------------------------------------------------------------------
    # -- the single-stick view of the progress (the first stick's row) ----------------------
    def _row(self, index: int = 0) -> StickProgress:
        return self.progress_view.rows[index]

    @property
    def phase_label(self) -> QLabel:
        return self._row().phase_label

    @property
    def progress_bar(self) -> QProgressBar:
        return self._row().bar

    @property
    def bytes_label(self) -> QLabel:
        return self._row().bytes_label

    @property
    def speed_label(self) -> QLabel:
        return self._row().speed_label

    # -- public API -----------------------------------------------------------------------
    def image(self) -> Path | None:
        return self.machine.image.path

    @property
    def facts(self) -> ImageFacts | None:
        return self.machine.image.facts

    @property
    def checksum(self) -> ChecksumResult | None:
        return self.machine.image.checksum

    @property
    def state(self) -> WriterState:
        return self.machine.state

    @property
    def confirm_box(self) -> QMessageBox | None:
        return self.confirm.box if self.confirm is not None else None

    @property
    def cancel_box(self) -> QMessageBox | None:
        return self.stop.box if self.stop is not None else None

    def busy(self) -> bool:
        """True while targets are checked for writing or a write runs (or ends)."""
        return self.machine.busy

    def set_image(self, path: str | os.PathLike[str] | None) -> bool:
        """Show `path` as the image to write and start reading its facts and checksum.

        Returns False (and changes nothing) while a write is running.
        """
        if self.busy():
            return False
        image = Path(os.path.abspath(os.fspath(path))) if path else None
        self.image_checks.start(image)
        self.model.set_image(image)  # the disk holding the image is never offered
        if image is not None and self.stack.currentIndex() == RESULT:
            if self.machine.state.ended:
                self.machine.reset()
            self.stack.setCurrentIndex(SETUP)
        self._update_ready()
        return True

    def selected_drives(self) -> list[Drive]:
        return self.model.selected() if self.machine.named is None else []

    def selected_drive(self) -> Drive | None:
        drives = self.selected_drives()
        return drives[0] if drives else None

    def target_paths(self) -> list[str]:
        """The devices or file the Write button would write to."""
        if self.machine.named is not None:
            return [str(self.machine.named.path)]
        return [d.devnode for d in self.selected_drives()]

    def target_path(self) -> str | None:
        paths = self.target_paths()
        return paths[0] if paths else None

    def shutdown(self) -> None:
        """Stop watching drives; cancel running work and wait for it (a cancelled write
        wipes the stick first). Call when the window closes."""
        self._stop_monitor()
        self.tasks.shutdown()
        if self.restore_dialog is not None:
            self.restore_dialog.shutdown()

    # -- drag and drop --------------------------------------------------------------------
    @staticmethod
    def _dropped_file(event: QDragEnterEvent | QDragMoveEvent | QDropEvent) -> Path | None:
        mime = event.mimeData()
        files = [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]
        if not mime.hasUrls() or len(files) != 1 or not files[0].is_file():
            return None
        return files[0]

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if not self.busy() and self._dropped_file(event) is not None:
            event.acceptProposedAction()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        self.dragEnterEvent(event)  # type: ignore[arg-type]

    def dropEvent(self, event: QDropEvent) -> None:
        path = self._dropped_file(event)
        if path is not None and self.set_image(path):
            event.acceptProposedAction()

    # -- drives and targets ---------------------------------------------------------------
    @Slot()
    def _update_drive_hint(self) -> None:
        if self.drives.rowCount() == 0:
            self.drive_hint.setText(Line(Tone.NOTE, NO_DRIVES).html())
            return
        warnings = [w for w in map(warning_text, self.selected_drives()) if w]
        self.drive_hint.setText("<br>".join(Line(Tone.WARN, w).html() for w in warnings))

    @Slot()
    def _on_selection(self) -> None:
        drives = self.model.selected()
        if drives:
            self.machine.named = None
            if len(drives) == 1:
                text = f"Selected: {drive_words(drives[0])}"
            else:
                text = f"Selected {len(drives)} drives: " + "; ".join(map(drive_words, drives))
            self.target_label.setText(Line(Tone.NOTE, text).html())
        elif self.machine.named is None and not self.machine.busy:
            self.target_label.clear()
        self._update_drive_hint()
        self._update_ready()

    @Slot(object, str)
    def _drop_chosen(self, gone: Drive, note: str) -> None:
        """A chosen drive went away or is no longer offered (the model unchose it): a
        question about writing it is withdrawn."""
        asked = self._withdraw_if_asked(
            lambda pre, drive: drive is not None and drive.sys_path == gone.sys_path
        )
        again = "" if note == GONE else "; choose it again if you mean it"
        done = " before you confirmed: nothing was written" if asked else ""
        self.target_label.setText(
            Line(Tone.WARN, f"{drive_words(gone)} {note}{done}{again}.").html()
        )
        self._update_ready()

    def _withdraw_if_asked(self, about: object) -> bool:
        """Withdraw "Erase and write?" if it asks about a target `about(pre, drive)` names."""
        if self.machine.state is not S.CONFIRMING:
            return False
        if not any(about(pre, drive) for pre, drive in self.machine.asking):  # type: ignore[operator]
            return False
        if self.confirm is not None:
            self.confirm.withdraw()
            self.confirm = None
        self.machine.withdraw()
        return True

    @Slot(str)
    def _on_drive_removed(self, devnode: str) -> None:
        gone = os.path.realpath(devnode)
        index = self.machine.stick_of(gone) if self.machine.state.running else None
        if index is not None:
            self.run.unplugged(index)
            return
        # Reported at once, before the list is updated: the name may soon be another disk's.
        for drive in self.model.selected():
            if os.path.realpath(drive.devnode) == gone:
                self.model.drop_selected(drive.devnode, GONE)
                return
        asked = self._withdraw_if_asked(lambda pre, _drive: str(pre.target.path) == gone)
        if asked or (self.machine.named is not None and str(self.machine.named.path) == gone):
            self.machine.named = None
            done = " before you confirmed: nothing was written" if asked else ""
            self.target_label.setText(Line(Tone.WARN, f"{devnode} was unplugged{done}.").html())
            self._update_ready()

    @Slot(str)
    def _on_monitor_error(self, message: str) -> None:
        # The monitor retries at the next event; a passing hiccup needs no dialog.
        text = f"The drive list may be out of date: {message}"
        self.drive_hint.setText(Line(Tone.WARN, text).html())

    # -- readiness ------------------------------------------------------------------------
    def missing(self) -> str | None:
        """What stops the Write button, in words; None when it may be pressed."""
        targets = len(self.target_paths())
        try:
            keep = self.persistence()
        except InputError as exc:
            return self.machine.missing(
                force=self.force_check.isChecked(), waiting=_sentence(exc.message), targets=targets
            )
        waiting = (
            KEEP_ON_ONE
            if keep is not None and targets > 1
            else "Testing the stick…"
            if self.tasks.running(Job.CAPACITY)
            else "Checking the device or file…"
            if self.tasks.get(Job.TARGET) is not None
            else None
        )
        return self.machine.missing(
            force=self.force_check.isChecked(), waiting=waiting, targets=targets
        )

    @Slot()
    def _update_ready(self) -> None:
        missing = self.missing()
        self.write_button.setEnabled(missing is None)
        self.ready_label.setText(Line(Tone.NOTE, missing).html() if missing else "")
        idle = not self.busy() and not self.tasks.running(Job.CAPACITY)
        self.test_button.setEnabled(idle and bool(self.targets.testable()))

    # -- asking ---------------------------------------------------------------------------
    @Slot()
    def start_write(self) -> None:
        """Check the targets once more, then ask for confirmation (non-blocking)."""
        paths = self.target_paths()
        if self.machine.state is not S.CHOOSING or self.missing() is not None:
            return
        if not paths or self.facts is None:
            return
        source = self.facts.source
        drives: list[Drive | None] = list(self.selected_drives()) or [None]
        self.machine.check()
        self.ready_label.setText(Line(Tone.NOTE, f"Checking {', '.join(paths)}…").html())
        task = self.tasks.new(Job.PREFLIGHT, lambda _r: [check_target(p, source) for p in paths])
        task.finished.connect(lambda pres: self._confirm(list(zip(pres, drives, strict=True))))
        task.failed.connect(self._preflight_failed)
        task.start()

    def _preflight_failed(self, exc: BaseException) -> None:
        self.machine.withdraw()
        self.target_label.setText(Line(Tone.BAD, str(exc)).html())
        self._report(exc)

    def _confirm(self, about: list[tuple[Preflight, Drive | None]]) -> None:
        assert self.facts is not None
        if self._refuse_if_not_chosen(about):
            return  # it went while it was being checked
        self.machine.ask(about)
        words = confirmation_of(self.facts.source, about, verify=self.verify_check.isChecked())
        self.confirm = Question(
            self,
            about=about,
            on_yes=lambda: self._begin(about),
            on_no=self._not_confirmed,
            title=words.title,
            text=words.text,
            informative=words.informative,
            act=words.button,
            keep="Cancel",
            icon=QMessageBox.Icon.Warning,
            name="confirmWrite",
            act_name="confirmErase",
        )

    def _not_confirmed(self) -> None:
        self.confirm = None
        self.machine.withdraw()

    def _refuse_if_not_chosen(self, about: list[tuple[Preflight, Drive | None]]) -> bool:
        named, chosen = self.machine.named, self.selected_drives()
        reasons = [r for r in (why_not_chosen(p, d, named, chosen) for p, d in about) if r]
        if not reasons:
            return False
        self.machine.withdraw()
        text = f"{'; '.join(reasons)}: nothing was written. Choose the drive again."
        self.target_label.setText(Line(Tone.WARN, text).html())
        self._update_ready()
        return True

    # -- writing --------------------------------------------------------------------------
    def _begin(self, about: list[tuple[Preflight, Drive | None]]) -> None:
        self.confirm = None
        if self._refuse_if_not_chosen(about):
            return  # never a write to a drive no longer offered
        assert self.facts is not None
        source, force = self.facts.source, bool(self.facts.layout_warnings)
        test = self.test_check.isChecked()
        sticks = [(pre, stick_words(pre.target, drive)) for pre, drive in about]
        self.outcome = None
        verify, keep = self.verify_check.isChecked(), self.persistence()
        self.machine.begin(sticks, verify=verify, test=test, persistence=keep)
        names = sticks[0][1] if len(sticks) == 1 else f"{len(sticks)} drives"
        self.progress_view.start(
            f"<b>Writing {html_text(source.path.name)}</b> to {html_text(names)}",
            self.machine.sticks,
        )
        self.stack.setCurrentIndex(PROGRESS)
        self.cancel_button.setFocus()
        self.run.start(source, force=force and self.force_check.isChecked(), checksum=self.checksum)
        self.busyChanged.emit(True)
        self.writeStarted.emit()

    def _on_settled(self) -> None:
        if self.stop is not None:
            self.stop.withdraw()
            self.stop = None
        self.again_button.setEnabled(True)
        self.busyChanged.emit(False)
        if self.outcome is not None:
            self.writeFinished.emit(self.outcome.kind.value)
        if not self.isVisible():
            self._stop_monitor()
        self._update_ready()

    # -- following the state --------------------------------------------------------------
    def _follow(self, _old: WriterState, new: WriterState) -> None:
        if new.ended:
            if self.stop is not None:  # nothing left to stop
                self.stop.withdraw()
                self.stop = None
            self._show_outcome(sticks_outcome(self.machine.sticks, self.checksum))
            self.again_button.setEnabled(not self.machine.busy)
        self.stateChanged.emit(new)
        self._update_ready()

    def _show_outcome(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.result_view.present(outcome)
        self.eject_button.setVisible(bool(self._written_sticks()))
        self.eject_button.setEnabled(True)
        self.stack.setCurrentIndex(RESULT)
        self.again_button.setFocus()

    # -- cancelling -----------------------------------------------------------------------
    @Slot()
    def ask_cancel(self) -> None:
        """Ask whether to stop; on yes, the helpers stop and wipe the sticks."""
        live = [s for s in self.machine.sticks if s.end is None]
        if not self.machine.state.running or self.stop is not None or not live:
            return
        if all(s.stopping for s in live):
            return
        title, text, act = stop_question(self.machine.verifying)
        self.stop = Question(
            self,
            about=live,
            title=title,
            text=text,
            act=act,
            name="confirmCancel",
            act_name="confirmStop",
            on_yes=self._stop_write,
            on_no=self._forget_stop,
        )

    def _forget_stop(self) -> None:
        self.stop = None

    def _stop_write(self) -> None:
        self.stop = None
        self.run.stop()

    # -- after writing --------------------------------------------------------------------
    def _written_sticks(self) -> list[Target]:
        """The block devices this run wrote (and, if asked, verified): those to eject."""
        return [
            s.preflight.target
            for s in self.machine.sticks
            if s.end is StickEnd.WRITTEN and s.preflight.target.kind is TargetKind.BLOCK
        ]

    @Slot()
    def eject_written(self) -> BackgroundTask | None:
        """Power off the written sticks (UDisks2, as "Safely remove"), off the GUI thread."""
        sticks = self._written_sticks()
        if not sticks or self.tasks.running(Job.EJECT):
            return None
        self.eject_button.setEnabled(False)
        self.result_view.ejected.setText("Ejecting…")
        task = self.tasks.new(Job.EJECT, lambda _r: [eject(t) for t in sticks])
        task.finished.connect(lambda lines: self.result_view.ejected.setText("\n".join(lines)))
        task.failed.connect(self._report)
        task.start()
        return task

    @Slot()
    def back_to_setup(self) -> None:
        if self.busy():
            return
        # The stick was just written: choose it again on purpose, not by accident.
        if self.machine.state.ended:
            self.machine.reset()
        self.machine.named = None
        self.model.clear_selection()
        self.drive_view.setCurrentIndex(QModelIndex())
        self.target_label.clear()
        self.stack.setCurrentIndex(SETUP)
        self._update_ready()
        self.image_edit.setFocus()

    @Slot()
    def open_restore(self) -> None:
        """Open "Restore to a normal drive…" for the chosen drive; the page shows its result."""
        if self.busy():
            return
        self.restore_dialog = RestoreDialog(self, target=self.target_path())
        self.restore_dialog.restored.connect(lambda r: self._show_outcome(restore_outcome(r)))
        self.restore_dialog.open()

    # -- plumbing -------------------------------------------------------------------------
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
