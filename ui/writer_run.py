"""The writer page's run: the sticks being written, each followed on its own row.

One stick is written by one worker (`tested_write_task`: the optional fake-capacity test,
unmounting, the writer helper). Several are written by one worker too
(`many_write_task`): each stick unmounted and tested on its own, then one helper writes
them all from one read of the image, and its per-stick events arrive here through
`_StickSignals`. Either way what each stick reports goes to the writer's state machine
(`WriterMachine.phase/progress/finish/fail/unplugged/settle`) and to the stick's progress
row; a stick that fails ends on its row and the others go on.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from app.usb.engine import WriteResult
from app.usb.errors import DeviceUnplugged
from app.usb.multiwrite import StickOutcome
from app.usb.source import ImageSource
from app.usb.writer_state import WriterMachine, many_write_task, tested_write_task
from ui.tasks import Job, Tasks
from ui.worker import BackgroundTask
from ui.writer_texts import OutcomeKind, stick_outcome
from ui.writer_widgets import BUSY_PHASES, ProgressView

ChecksumOf = Callable[[], object]


class _StickSignals(QObject):
    """`StickEvents` from the worker thread, as signals queued into the GUI thread."""

    step = Signal(int, str)
    progress = Signal(int, object, object)
    done = Signal(int, object)  # StickOutcome

    def stick_step(self, index: int, name: str) -> None:
        self.step.emit(index, name)

    def stick_progress(self, index: int, done: int, total: int) -> None:
        self.progress.emit(index, done, total)

    def stick_done(self, index: int, outcome: StickOutcome) -> None:
        self.done.emit(index, outcome)


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
        self.many = False  # several sticks, written by one worker

    def start(self, source: ImageSource, *, force: bool, checksum: object) -> None:
        """Start one worker per stick of the machine (which has just begun)."""
        self.checksum, self.compressed = checksum, source.size is None
        self.many = len(self.machine.sticks) > 1
        if self.many:
            self._start_many(source, force=force)
            return
        for i, stick in enumerate(self.machine.sticks):
            fn = tested_write_task(
                source,
                stick.preflight,
                verify=self.machine.verify,
                force=force,
                test=self.machine.test_first,
                persistence=self.machine.persistence,
            )
            task = self.tasks.new((Job.WRITE, i), fn)
            task.stepChanged.connect(lambda phase, i=i: self._on_phase(i, phase))
            task.progressChanged.connect(lambda d, t, i=i: self._on_progress(i, d, t))
            task.finished.connect(lambda result, i=i: self._on_written(i, result))
            task.failed.connect(lambda exc, i=i: self._on_failed(i, exc))
            task.ended.connect(lambda i=i: self._on_ended(i))
            task.start()

    def _start_many(self, source: ImageSource, *, force: bool) -> None:
        signals = _StickSignals(self)
        signals.step.connect(self._on_phase)
        signals.progress.connect(self._on_progress)
        signals.done.connect(self._on_stick_done)
        fn = many_write_task(
            source,
            [s.preflight for s in self.machine.sticks],
            verify=self.machine.verify,
            force=force,
            test=self.machine.test_first,
            events=signals,
        )
        task = self.tasks.new((Job.WRITE, 0), fn)
        task.finished.connect(self._on_all_done)
        task.failed.connect(self._on_all_failed)
        task.ended.connect(self._on_many_ended)
        task.start()

    def _on_stick_done(self, index: int, outcome: StickOutcome) -> None:
        if outcome.result is not None:
            self._on_written(index, outcome.result)
        else:
            assert outcome.error is not None
            self._on_failed(index, outcome.error)

    def _on_all_done(self, outcomes: list[StickOutcome]) -> None:
        for index, outcome in enumerate(outcomes):  # any stick not told of yet
            self._on_stick_done(index, outcome)

    def _on_all_failed(self, exc: BaseException) -> None:
        # The helper itself failed (or was cancelled): every stick still running ends so.
        for index in range(len(self.machine.sticks)):
            self._on_failed(index, exc)

    def _on_many_ended(self) -> None:
        for index in range(len(self.machine.sticks)):
            self._on_ended(index)

    def task(self, index: int = 0) -> BackgroundTask | None:
        """The worker writing stick `index` (when several, one worker writes them all)."""
        return self.tasks.get((Job.WRITE, 0 if self.many else index))

    def stop(self) -> None:
        """Cancel every stick still running (each stick is wiped)."""
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
        if task is not None and task.is_running() and not self.many:
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
