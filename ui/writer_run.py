"""The writer page's run: one writer task per stick, each followed on its own row.

Every stick is written by its own worker (`tested_write_task`: the optional fake-capacity
test, unmounting, the writer helper). What each reports goes to the writer's state machine
(`WriterMachine.phase/progress/finish/fail/unplugged/settle`) and to the stick's progress
row; a stick that fails ends on its row and the others go on.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from app.usb.engine import WriteResult
from app.usb.errors import DeviceUnplugged
from app.usb.source import ImageSource
from app.usb.writer_state import WriterMachine, tested_write_task
from ui.tasks import Job, Tasks
from ui.worker import BackgroundTask
from ui.writer_texts import OutcomeKind, stick_outcome
from ui.writer_widgets import BUSY_PHASES, ProgressView

ChecksumOf = Callable[[], object]


class WriteRun(QObject):
    phaseChanged = Signal(str)  # a stick's new phase
    settled = Signal()  # every stick's worker has stopped

    def __init__(
        self,
        machine: WriterMachine,
        tasks: Tasks,
        view: ProgressView,
        report: Callable[[BaseException], object],
    ) -> None:
        super().__init__(view)
        self.machine, self.tasks, self.view, self.report = machine, tasks, view, report
        self.checksum: object = None  # the image's checksum verdict, named in the result
        self.compressed = False

    def start(self, source: ImageSource, *, force: bool, checksum: object) -> None:
        """Start one worker per stick of the machine (which has just begun)."""
        self.checksum, self.compressed = checksum, source.size is None
        for i, stick in enumerate(self.machine.sticks):
            fn = tested_write_task(
                source,
                stick.preflight,
                verify=self.machine.verify,
                force=force,
                test=self.machine.test_first,
            )
            task = self.tasks.new((Job.WRITE, i), fn)
            task.stepChanged.connect(lambda phase, i=i: self._on_phase(i, phase))
            task.progressChanged.connect(lambda d, t, i=i: self._on_progress(i, d, t))
            task.finished.connect(lambda result, i=i: self._on_written(i, result))
            task.failed.connect(lambda exc, i=i: self._on_failed(i, exc))
            task.ended.connect(lambda i=i: self._on_ended(i))
            task.start()

    def task(self, index: int = 0) -> BackgroundTask | None:
        return self.tasks.get((Job.WRITE, index))

    def stop(self) -> None:
        """Cancel every stick still running (each helper wipes its stick)."""
        for index in self.machine.stop():
            task = self.task(index)
            if task is not None and task.is_running():
                task.cancel()
            self.view.rows[index].show_stopping()
        self.view.cancel_button.setEnabled(False)
        self.view.cancel_button.setText("Cancelling…")

    def unplugged(self, index: int) -> None:
        """Stick `index` went away while written: it ends at once, said so."""
        task = self.task(index)
        if task is not None and task.is_running():
            task.cancel()  # the helper fails on its own too; make sure it stops
        stick = self.machine.sticks[index]
        if self._end(index, lambda: self.machine.unplugged(index)):
            self.report(
                DeviceUnplugged(
                    "was unplugged while it was being written; what is on it is incomplete",
                    where=stick.words,
                )
            )

    def _on_phase(self, index: int, phase: str) -> None:
        stick = self.machine.sticks[index]
        if stick.end is not None:
            return
        self.machine.phase(index, phase)
        self.view.rows[index].show_phase(stick, self.machine.steps())
        live = [s for s in self.machine.sticks if s.end is None and not s.stopping]
        self.view.cancel_button.setEnabled(any(s.phase not in BUSY_PHASES for s in live))
        self.phaseChanged.emit(phase)

    def _on_progress(self, index: int, done: int, total: int) -> None:
        stick = self.machine.sticks[index]
        if stick.end is None:
            self.machine.progress(index, done, total)
            self.view.rows[index].show_progress(stick, compressed=self.compressed)

    def _on_written(self, index: int, result: WriteResult) -> None:
        self._end(index, lambda: self.machine.finish(index, result))

    def _on_failed(self, index: int, exc: BaseException) -> None:
        # After an unplug, this is its aftermath: already reported at once.
        if self._end(index, lambda: self.machine.fail(index, exc)):
            kind = stick_outcome(self.machine.sticks[index]).kind
            if kind not in (OutcomeKind.CANCELLED, OutcomeKind.NOT_VERIFIED):
                self.report(exc)

    def _end(self, index: int, move: Callable[[], object]) -> bool:
        """End one stick (`move()` tells the machine); its row shows how. False if it
        had ended already."""
        stick = self.machine.sticks[index]
        if stick.end is not None:
            return False
        row = self.view.rows[index]
        move()  # the machine may end the whole run here (the page then shows the result)
        row.show_end(stick_outcome(stick, self.checksum))  # type: ignore[arg-type]
        return True

    def _on_ended(self, index: int) -> None:
        self.machine.settle(index)
        if not self.machine.busy:
            self.settled.emit()
