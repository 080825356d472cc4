"""The writer page's image checks: read the image's facts, then check its checksum file,
on worker threads; what is found goes to the writer's state machine (`ImageCheck`) and is
shown in the setup view's image box."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog

from app.usb.checksums import ChecksumResult, check_image
from app.usb.preflight import ImageFacts, read_image_facts
from app.usb.writer_state import WriterMachine
from ui.dialogs import PathKind, choose_path
from ui.tasks import Job, Tasks
from ui.writer_setup import SetupView
from ui.writer_texts import Line, Tone, checksum_lines, image_facts, lines_html

IMAGE_FILTER = "Disk images (*.iso *.img *.raw *.xz *.zst *.gz);;ISO images (*.iso);;All files (*)"


class ImageChecks(QObject):
    changed = Signal()  # something the Write button depends on changed
    checked = Signal()  # the facts and the checksum verdict are known (or failed)
    chosen = Signal(str)  # the user chose an image (typed, or in the file dialog)

    def __init__(
        self,
        machine: WriterMachine,
        tasks: Tasks,
        view: SetupView,
        report: Callable[[BaseException], object],
    ) -> None:
        super().__init__(view)
        self.machine, self.tasks, self.view, self.report = machine, tasks, view, report
        self.file_dialog: QFileDialog | None = None

    def entered(self) -> None:
        """Enter in the image field: that image, unless it is the one already read."""
        text = self.view.image_edit.text().strip()
        image = self.machine.image
        if text and (image.path is None or Path(text) != image.path or image.facts is None):
            self.chosen.emit(text)

    def choose(self) -> None:
        start = self.machine.image.path
        self.file_dialog = choose_path(
            self.view,
            title="Choose the image to write",
            start=str(start.parent) if start else str(Path.home()),
            kind=PathKind.OPEN_FILE,
            filters=IMAGE_FILTER,
            name="imageDialog",
            on_chosen=lambda path: self.chosen.emit(str(path)),
        )

    def start(self, image: Path | None) -> None:
        """Forget the image checked so far; read `image`'s facts, then its checksum."""
        view = self.view
        self.tasks.cancel(Job.IMAGE)
        self.tasks.cancel(Job.CHECKSUM)
        self.machine.set_image(image)
        view.force_check.setChecked(False)
        view.force_check.setVisible(False)
        view.checksum_progress.setVisible(False)
        view.checksum_label.clear()
        if image is None:
            view.image_edit.clear()
            view.facts_label.clear()
            return
        view.image_edit.setText(str(image))
        view.facts_label.setText(Line(Tone.NOTE, "Reading the image…").html())
        task = self.tasks.new(Job.IMAGE, lambda reporter: read_image_facts(image, reporter))
        task.finished.connect(lambda facts: self._on_facts(task, facts, None))
        task.failed.connect(lambda exc: self._on_facts(task, None, exc))
        task.start()

    def _on_facts(self, task: object, facts: ImageFacts | None, exc: BaseException | None) -> None:
        if not self.tasks.is_current(Job.IMAGE, task):  # type: ignore[arg-type]
            return  # a late answer about an image no longer chosen
        view = self.view
        if facts is None:
            self.machine.image.error = exc
            view.facts_label.setText(Line(Tone.BAD, f"Cannot use this image: {exc}").html())
            assert exc is not None
            self.report(exc)
            self.changed.emit()
            self.checked.emit()
            return
        self.machine.image.facts = facts
        view.facts_label.setText(lines_html(image_facts(facts.source, facts.layout_warnings)))
        view.force_check.setVisible(bool(facts.layout_warnings))
        view.checksum_label.setText(
            Line(Tone.NOTE, "Looking for a checksum file beside the image…").html()
        )
        view.checksum_progress.setValue(0)
        view.checksum_progress.setVisible(True)
        path = facts.source.path
        check = self.tasks.new(Job.CHECKSUM, lambda r: check_image(path, reporter=r))
        check.stepChanged.connect(lambda step: self._on_step(check, step))
        check.progressChanged.connect(lambda done, total: self._on_progress(check, done, total))
        check.finished.connect(lambda result: self._on_checksum(check, result, None))
        check.failed.connect(lambda exc: self._on_checksum(check, None, exc))
        check.start()
        self.changed.emit()

    def _on_step(self, task: object, step: str) -> None:
        if self.tasks.is_current(Job.CHECKSUM, task):  # type: ignore[arg-type]
            text = step[:1].upper() + step[1:] + "…"
            self.view.checksum_label.setText(Line(Tone.NOTE, text).html())

    def _on_progress(self, task: object, done: int, total: int) -> None:
        if self.tasks.is_current(Job.CHECKSUM, task) and total > 0:  # type: ignore[arg-type]
            self.view.checksum_progress.setValue(min(1000, done * 1000 // total))

    def _on_checksum(
        self, task: object, result: ChecksumResult | None, exc: BaseException | None
    ) -> None:
        if not self.tasks.is_current(Job.CHECKSUM, task):  # type: ignore[arg-type]
            return
        view = self.view
        self.machine.image.checksum, self.machine.image.checksum_error = result, exc
        view.checksum_progress.setVisible(False)
        if result is not None:
            view.checksum_label.setText(lines_html(checksum_lines(result)))
            view.checksum_label.setToolTip("\n".join(result.lines()))
            exc = result.error()
        else:
            text = f"The checksum could not be checked: {exc}"
            view.checksum_label.setText(Line(Tone.WARN, text).html())
        if exc is not None:
            self.report(exc)
        self.changed.emit()
        self.checked.emit()
