"""The Build step: run `app.compose.pipeline.run_build` off the GUI thread and show how it goes.

The build runs in a child process (`app.compose.isolated`), relayed by a worker thread: its
per-file Python work would otherwise hold this process's interpreter lock and stall the
event loop (pauses of 50-70 ms on a root of 20,000 files).

One row per stage (the "Validate" step, then `STAGES` in order) with a state icon, the
state in words and the stage's time; an overall and a per-stage progress bar; the elapsed
time (redrawn every second); the log (`LogView` over the view's `log_buffer`); Cancel.

The pipeline announces each stage with `reporter.step(stage.title)` (steps inside a stage
reach us as debug log lines, see `StageReporter`), so rows are found by title. Progress
within a stage arrives as `progress(done, total)`, already throttled by ThreadReporter.

Embedding: `start(profile, output, **run_build_kwargs)`; listen to `succeeded(BuildResult)`,
`failed(exception)` (also shown through show_error) and `cancelled()`. `request_cancel()`
asks first; `cancel_now()` does not; `shutdown()` when the window closes.
"""

from __future__ import annotations

import enum
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStyle,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.compose.isolated import run_build_isolated
from app.compose.pipeline import STAGES, BuildResult
from app.compose.profile import Profile
from app.errors import Cancelled
from app.reporter import Level, Reporter
from ui.dialogs import ask_destructive
from ui.errors import show_error
from ui.logbuffer import LogBuffer
from ui.logview import LogView
from ui.worker import BackgroundTask

VALIDATE_TITLE = "Validate"  # run_build's first step, before any stage
STEP_SCALE = 1000  # progress bars count in thousandths


class StageState(enum.Enum):
    PENDING = "waiting"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


def format_seconds(seconds: float) -> str:
    whole = int(seconds)
    return (
        f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
        if whole >= 3600
        else f"{whole // 60}:{whole % 60:02d}"
    )


class BuildView(QWidget):
    succeeded = Signal(object)  # BuildResult
    failed = Signal(object)  # the exception (not Cancelled)
    cancelled = Signal()
    runningChanged = Signal(bool)

    COLUMN_STAGE, COLUMN_STATE, COLUMN_TIME = range(3)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("buildView")
        self.log_buffer = LogBuffer()
        self.error_box: QMessageBox | None = None  # the last error shown (tests look at it)
        self.confirm_box: QMessageBox | None = None  # the open "cancel the build?" question
        self.result: BuildResult | None = None
        self._task: BackgroundTask | None = None
        self._titles = [VALIDATE_TITLE, *(stage.title for stage in STAGES)]
        self._current = -1  # row of the running stage
        self._started = 0.0
        self._stage_started = 0.0
        self._icons = self._make_icons()
        self._clock = QTimer(self)
        self._clock.setInterval(1000)
        self._clock.timeout.connect(self._tick)
        self._build_ui()
        self.reset()

    # -- layout -----------------------------------------------------------------------------
    def _make_icons(self) -> dict[StageState, QIcon]:
        style = self.style()
        blank = QPixmap(16, 16)
        blank.fill(Qt.GlobalColor.transparent)
        return {
            StageState.PENDING: QIcon(blank),
            StageState.RUNNING: style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay),
            StageState.DONE: style.standardIcon(QStyle.StandardPixmap.SP_DialogApplyButton),
            StageState.FAILED: style.standardIcon(QStyle.StandardPixmap.SP_MessageBoxCritical),
            StageState.CANCELLED: style.standardIcon(QStyle.StandardPixmap.SP_DialogCancelButton),
        }

    def _build_ui(self) -> None:
        self.stage_list = QTreeWidget()
        self.stage_list.setObjectName("stageList")
        self.stage_list.setAccessibleName("Build stages")
        self.stage_list.setHeaderLabels(["Stage", "State", "Time"])
        self.stage_list.setRootIsDecorated(False)
        self.stage_list.setIconSize(QSize(16, 16))
        self.stage_list.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        header = self.stage_list.header()
        header.setSectionResizeMode(self.COLUMN_STAGE, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(self.COLUMN_STATE, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(self.COLUMN_TIME, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(False)
        for title in self._titles:
            QTreeWidgetItem(self.stage_list, [title, "", ""])
        # Every stage in view at once: the list is short, a scroll bar would hide the end.
        frame = 2 * self.stage_list.frameWidth()
        row = max(self.stage_list.sizeHintForRow(0), self.fontMetrics().height() + 4, 18)
        self.stage_list.setMinimumHeight(
            row * len(self._titles) + header.sizeHint().height() + frame
        )

        self.status_label = QLabel()
        self.status_label.setObjectName("buildStatus")
        self.status_label.setAccessibleName("Build status")
        self.status_label.setWordWrap(True)
        self.elapsed_label = QLabel()
        self.elapsed_label.setObjectName("buildElapsed")
        self.elapsed_label.setAccessibleName("Elapsed time")

        self.overall_bar = QProgressBar()
        self.overall_bar.setObjectName("buildProgress")
        self.overall_bar.setAccessibleName("Overall build progress")
        self.overall_bar.setRange(0, len(self._titles) * STEP_SCALE)
        self.stage_bar = QProgressBar()
        self.stage_bar.setObjectName("stageProgress")
        self.stage_bar.setAccessibleName("Progress of the current stage")
        self.stage_bar.setRange(0, STEP_SCALE)
        overall_label = QLabel("Overall:")
        overall_label.setBuddy(self.overall_bar)
        self.stage_label = QLabel("Stage:")
        self.stage_label.setBuddy(self.stage_bar)

        self.cancel_button = QPushButton("&Cancel build")
        self.cancel_button.setObjectName("cancelBuild")
        self.cancel_button.setAccessibleName("Cancel the build")
        self.cancel_button.clicked.connect(self.request_cancel)

        self.log_view = LogView(self.log_buffer)
        self.log_view.setAccessibleName("Build log")

        bars = QGridLayout()
        bars.addWidget(overall_label, 0, 0)
        bars.addWidget(self.overall_bar, 0, 1)
        bars.addWidget(self.stage_label, 1, 0)
        bars.addWidget(self.stage_bar, 1, 1)
        status = QHBoxLayout()
        status.addWidget(self.status_label, 1)
        status.addWidget(self.elapsed_label)
        status.addWidget(self.cancel_button)
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.stage_list, 1)
        top_layout.addLayout(bars)
        top_layout.addLayout(status)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.setObjectName("buildSplitter")
        splitter.addWidget(top)
        splitter.addWidget(self.log_view)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)
        self.setTabOrder(self.stage_list, self.cancel_button)
        self.setTabOrder(self.cancel_button, self.log_view.level_combo)

    # -- state ------------------------------------------------------------------------------
    def stage_titles(self) -> list[str]:
        return list(self._titles)

    def _item(self, row: int) -> QTreeWidgetItem:
        item = self.stage_list.topLevelItem(row)
        assert item is not None
        return item

    def stage_state(self, title: str) -> StageState:
        item = self._item(self._titles.index(title))
        return StageState(item.data(self.COLUMN_STAGE, Qt.ItemDataRole.UserRole))

    def stage_states(self) -> dict[str, StageState]:
        return {title: self.stage_state(title) for title in self._titles}

    def _set_state(self, row: int, state: StageState, seconds: float | None = None) -> None:
        item = self._item(row)
        item.setData(self.COLUMN_STAGE, Qt.ItemDataRole.UserRole, state.value)
        item.setIcon(self.COLUMN_STAGE, self._icons[state])
        item.setText(self.COLUMN_STATE, state.value.capitalize())
        item.setText(self.COLUMN_TIME, "" if seconds is None else f"{seconds:.1f} s")
        tip = f"{self._titles[row]}: {state.value}"
        item.setToolTip(self.COLUMN_STAGE, tip)
        item.setData(self.COLUMN_STAGE, Qt.ItemDataRole.AccessibleTextRole, tip)
        if state is StageState.RUNNING:
            self.stage_list.scrollToItem(item)

    def reset(self) -> None:
        """Back to "nothing built yet" (not while a build runs)."""
        if self.is_running():
            raise RuntimeError("cannot reset while a build runs")
        for row in range(len(self._titles)):
            self._set_state(row, StageState.PENDING)
        self._current = -1
        self.overall_bar.setValue(0)
        self.stage_bar.setRange(0, STEP_SCALE)
        self.stage_bar.setValue(0)
        self.stage_label.setText("Stage:")
        self.status_label.setText("Not started.")
        self.elapsed_label.setText("")
        self.cancel_button.setEnabled(False)
        self.result = None

    def is_running(self) -> bool:
        return self._task is not None

    @property
    def task(self) -> BackgroundTask | None:
        """The running build's task (None when idle)."""
        return self._task

    # -- running ----------------------------------------------------------------------------
    def start(self, profile: Profile, output: Path, **run_build_kwargs: Any) -> None:
        """Build `profile` into `output` on a worker thread; the outcome arrives as a signal."""
        if self.is_running():
            raise RuntimeError("a build is already running")
        self.reset()
        self.log_buffer.clear()
        self.log_buffer.append(Level.INFO, f"building {profile.name!r} into {output}")

        def build(reporter: Reporter) -> BuildResult:
            return run_build_isolated(profile, output, reporter, **run_build_kwargs)

        task = BackgroundTask(build, self, name="livesmith-build")
        task.stepChanged.connect(self._on_step)
        task.progressChanged.connect(self._on_progress)
        task.logLines.connect(self.log_buffer.extend)
        task.finished.connect(self._on_finished)
        task.failed.connect(self._on_failed)
        self._task = task
        self._started = self._stage_started = time.monotonic()
        self.status_label.setText(f"Building {output.name}…")
        self.cancel_button.setEnabled(True)
        self._tick()
        self._clock.start()
        task.start()
        self.runningChanged.emit(True)

    @Slot()
    def request_cancel(self) -> QMessageBox | None:
        """Ask whether to cancel (non-blocking); Yes cancels. Returns the question box."""
        if not self.is_running():
            return None
        if self.confirm_box is not None:
            return self.confirm_box
        self.confirm_box = ask_destructive(
            self,
            title="Cancel the build?",
            text="Stop building? The unfinished ISO will be removed.",
            act="Stop building",
            name="cancelBuildBox",
            act_name="confirmStopBuild",
            on_yes=self.cancel_now,
            on_closed=self._forget_confirm,
        )
        return self.confirm_box

    def _forget_confirm(self) -> None:
        self.confirm_box = None

    def _close_confirm(self) -> None:
        box, self.confirm_box = self.confirm_box, None
        if box is not None:
            box.close()
            box.deleteLater()

    @Slot()
    def cancel_now(self) -> None:
        """Cancel without asking; the pipeline stops at its next safe point."""
        if self._task is None:
            return
        self._task.cancel()
        self.cancel_button.setEnabled(False)
        self.status_label.setText("Cancelling…")

    def shutdown(self) -> None:
        """Cancel and wait for the worker: the window is closing."""
        self._close_confirm()
        if self._task is not None:
            self._task.shutdown()

    # -- worker signals (GUI thread) --------------------------------------------------------
    def _finish_current(self, state: StageState) -> None:
        if self._current >= 0:
            self._set_state(self._current, state, time.monotonic() - self._stage_started)

    @Slot(str)
    def _on_step(self, name: str) -> None:
        if name not in self._titles:
            self.log_buffer.append(Level.DEBUG, f"step: {name}")
            return
        self._finish_current(StageState.DONE)
        row = self._titles.index(name)
        self._current = row
        self._stage_started = time.monotonic()
        self._set_state(row, StageState.RUNNING)
        self.stage_label.setText(f"{name}:")
        self.stage_bar.setRange(0, 0)  # busy until the stage reports progress
        self.overall_bar.setValue(row * STEP_SCALE)

    @Slot(object, object)
    def _on_progress(self, done: int, total: int) -> None:
        if total <= 0 or self._current < 0:
            return
        fraction = min(STEP_SCALE, done * STEP_SCALE // total)
        if self.stage_bar.maximum() == 0:
            self.stage_bar.setRange(0, STEP_SCALE)
        self.stage_bar.setValue(fraction)
        self.overall_bar.setValue(self._current * STEP_SCALE + fraction)

    @Slot(object)
    def _on_finished(self, result: object) -> None:
        assert isinstance(result, BuildResult)
        self._finish_current(StageState.DONE)
        self._end()
        self.result = result
        self.overall_bar.setValue(self.overall_bar.maximum())
        self.stage_bar.setValue(STEP_SCALE)
        self.status_label.setText(
            f"Built {result.iso} ({result.size >> 20} MiB) in {format_seconds(result.seconds)}."
        )
        self.succeeded.emit(result)

    @Slot(object)
    def _on_failed(self, exc: object) -> None:
        assert isinstance(exc, BaseException)
        if isinstance(exc, Cancelled):
            self._finish_current(StageState.CANCELLED)
            self._end()
            self.status_label.setText("Cancelled; the unfinished ISO was removed.")
            self.log_buffer.append(Level.WARNING, "build cancelled")
            self.cancelled.emit()
            return
        self._finish_current(StageState.FAILED)
        self._end()
        self.status_label.setText(f"Failed: {exc}")
        self.log_buffer.append(Level.ERROR, str(exc))
        self.error_box = show_error(self, exc)
        self.failed.emit(exc)

    def _end(self) -> None:
        self._clock.stop()
        self._tick()
        self._close_confirm()
        task, self._task = self._task, None
        if task is not None:
            task.deleteLater()
        self.cancel_button.setEnabled(False)
        if self.stage_bar.maximum() == 0:
            self.stage_bar.setRange(0, STEP_SCALE)
        self.runningChanged.emit(False)

    @Slot()
    def _tick(self) -> None:
        self.elapsed_label.setText(f"Elapsed {format_seconds(time.monotonic() - self._started)}")
