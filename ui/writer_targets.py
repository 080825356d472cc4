"""The writer page's named target and its fake-capacity test.

A device or file typed in the "device or file" field goes through the same safety gate as a
listed drive (`check_target`) on a worker thread; once it passes it is the target
(`WriterMachine.named`) instead of the drives chosen in the list. "Test the stick…" runs
the quick fake-capacity check (`app.usb.capacity`) of each chosen stick on a worker thread
and shows the verdicts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog

from app.usb.capacity import CapacityResult, check_stick, resolve_stick
from app.usb.drives import Drive
from app.usb.identity import differences
from app.usb.preflight import Preflight, check_target
from app.usb.target import Target, TargetKind
from app.usb.writer_state import WriterMachine
from ui.dialogs import PathKind, choose_path
from ui.drive_model import DriveListModel, other_disk
from ui.tasks import Job, Tasks
from ui.writer_setup import SetupView
from ui.writer_texts import Line, Tone, capacity_line, drive_words, lines_html, target_summary

TARGET_FILTER = "Raw disk images (*.img *.raw);;All files (*)"


class TargetChecks(QObject):
    changed = Signal()  # something the Write button depends on changed

    def __init__(
        self,
        machine: WriterMachine,
        tasks: Tasks,
        view: SetupView,
        model: DriveListModel,
        report: Callable[[BaseException], object],
        paths: Callable[[], list[str]],
    ) -> None:
        super().__init__(view)
        self.machine, self.tasks, self.view, self.model = machine, tasks, view, model
        self.report, self.paths = report, paths
        self.capacity: list[CapacityResult] = []  # the last "Test the stick…" verdicts
        self.file_dialog: QFileDialog | None = None

    # -- a named device or file ---------------------------------------------------------
    def use_typed(self) -> None:
        """Check the device or file typed in the field; it becomes the target if it may be."""
        text = self.view.target_edit.text().strip()
        if not text or self.machine.busy:
            return
        facts = self.machine.image.facts
        source = facts.source if facts else None
        self.view.target_label.setText(Line(Tone.NOTE, f"Checking {text}…").html())
        task = self.tasks.new(Job.TARGET, lambda _reporter: check_target(text, source))
        task.finished.connect(lambda pre: self._on_target(task, text, pre, None))
        task.failed.connect(lambda exc: self._on_target(task, text, None, exc))
        task.start()
        self.changed.emit()

    def choose_file(self) -> None:
        start = self.view.target_edit.text().strip() or str(Path.home() / "livesmith-disk.img")
        self.file_dialog = choose_path(
            self.view,
            title="Write to an image file",
            start=start,
            kind=PathKind.SAVE_FILE,
            filters=TARGET_FILTER,
            name="targetDialog",
            on_chosen=self._file_chosen,
            confirm_overwrite=False,
        )  # our own confirmation says so

    def _file_chosen(self, path: Path) -> None:
        self.view.target_edit.setText(str(path))
        self.use_typed()

    def _on_target(
        self, task: object, text: str, pre: Preflight | None, exc: BaseException | None
    ) -> None:
        if not self.tasks.is_current(Job.TARGET, task):  # type: ignore[arg-type]
            return
        self.tasks.cancel(Job.TARGET)  # done: let go of it
        self.machine.named = pre.target if pre is not None else None
        label = self.view.target_label
        if pre is not None:
            self.model.clear_selection()
            label.setText(Line(Tone.NOTE, target_summary(pre.target)).html())
        else:
            label.setText(Line(Tone.BAD, f"Cannot write to {text}: {exc}").html())
            assert exc is not None
            self.report(exc)
        self.changed.emit()

    # -- the fake-capacity test -----------------------------------------------------------
    def testable(self) -> list[str]:
        """The chosen targets "Test the stick…" can test (block devices only)."""
        named = self.machine.named
        if named is not None and named.kind is not TargetKind.BLOCK:
            return []
        return self.paths()

    def test(self) -> None:
        """ "Test the stick…": the quick fake-capacity check of each chosen stick."""
        paths = self.testable()
        if not paths or self.machine.busy or self.tasks.running(Job.CAPACITY):
            return
        self.capacity = []
        self.view.target_label.setText(Line(Tone.NOTE, "Testing for fake capacity…").html())
        task = self.tasks.new(
            Job.CAPACITY, lambda r: [check_stick(resolve_stick(p), reporter=r) for p in paths]
        )
        task.finished.connect(self._on_tested)
        task.failed.connect(self._on_test_failed)
        task.ended.connect(self.changed)
        task.start()
        self.changed.emit()

    def _on_tested(self, results: list[CapacityResult]) -> None:
        self.capacity = results
        self.view.target_label.setText(lines_html([capacity_line(r) for r in results]))

    def _on_test_failed(self, exc: BaseException) -> None:
        text = f"The stick could not be tested: {exc}"
        self.view.target_label.setText(Line(Tone.BAD, text).html())
        self.report(exc)


def why_not_chosen(
    pre: Preflight, drive: Drive | None, named: Target | None, chosen: list[Drive]
) -> str | None:
    """Why `pre` (checked for `drive`, or for the named target) is no longer a target the
    user chose (`named`, or the `chosen` drives as they are now), or None if it still is."""
    path = str(pre.target.path)
    if drive is None:
        if named is None or str(named.path) != path:
            return f"{path} is no longer the chosen target"
        return None
    current = next((d for d in chosen if d.sys_path == drive.sys_path), None)
    if current is None:
        return f"{drive_words(drive)} is no longer a chosen drive"
    checked = pre.identity
    if other_disk(drive, current) or (
        checked is not None
        and current.identity is not None
        and differences(current.identity, checked)
    ):
        return f"{current.devnode} is now another drive than {drive_words(drive)}"
    return None
