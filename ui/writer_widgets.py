"""The writer page's progress and result views: one progress row per stick, the result.

Widgets only; what they say comes from `ui.writer_texts`, and what they show from the
writer's state machine (`app.usb.writer_state`).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.usb.engine import PHASE_WIPE
from app.usb.preflight import PHASE_UNMOUNT
from app.usb.writer_state import TEST_PHASES, StickRun
from ui.writer_texts import Outcome, RateMeter, html_text, phase_title, progress_texts

BUSY_PHASES = frozenset({PHASE_UNMOUNT, PHASE_WIPE})


def label(text: str = "", *, name: str, selectable: bool = False) -> QLabel:
    widget = QLabel(text)
    widget.setWordWrap(True)
    widget.setTextFormat(Qt.TextFormat.RichText)
    widget.setAccessibleName(name)
    widget.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
    if selectable:
        widget.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
            | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
    return widget


class StickProgress(QWidget):
    """One stick's progress: its name (when several), phase, bar, bytes and speed."""

    def __init__(self, words: str, *, named: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 4)
        self.name_label = label(f"<b>{html_text(words)}</b>", name="Stick")
        self.name_label.setVisible(named)
        self.phase_label = label("Starting the writer…", name="Phase")
        self.bar = QProgressBar()
        self.bar.setObjectName("writeProgress")
        self.bar.setAccessibleName(f"Progress of {words}" if named else "Progress")
        self.bar.setFormat("%p%")
        self.bar.setRange(0, 0)
        self.bytes_label = label(name="Bytes done")
        self.speed_label = label(name="Speed and time left")
        self.speed_label.setAlignment(Qt.AlignmentFlag.AlignRight)
        figures = QHBoxLayout()
        figures.addWidget(self.bytes_label, 1)
        figures.addWidget(self.speed_label, 1)
        for widget in (self.name_label, self.phase_label, self.bar):
            layout.addWidget(widget)
        layout.addLayout(figures)
        self.rate = RateMeter()

    def show_phase(self, stick: StickRun, steps: list[str]) -> None:
        self.rate.reset()
        self.phase_label.setText(f"<b>{html_text(phase_title(stick.phase, steps))}</b>")
        self.bytes_label.clear()
        self.speed_label.clear()
        if stick.phase in BUSY_PHASES:
            self.bar.setRange(0, 0)  # no figures: a busy bar
        else:
            self.bar.setRange(0, 1000)
            self.bar.setValue(0)

    def show_progress(self, stick: StickRun, *, compressed: bool) -> None:
        if stick.phase in BUSY_PHASES:
            return
        if stick.total > 0:
            self.bar.setRange(0, 1000)
            self.bar.setValue(min(1000, stick.done * 1000 // stick.total))
        self.rate.add(stick.done)
        amount, speed = progress_texts(
            stick.phase,
            stick.done,
            stick.total,
            self.rate.rate(),
            compressed_bytes=compressed and stick.phase not in TEST_PHASES,
        )
        self.bytes_label.setText(html_text(amount))
        self.speed_label.setText(html_text(speed))

    def show_stopping(self) -> None:
        self.phase_label.setText("<b>Stopping…</b>")

    def show_end(self, outcome: Outcome) -> None:
        color = outcome.tone.color
        self.phase_label.setText(
            f'<b style="color:{color}">{outcome.tone.mark} {html_text(outcome.title)}</b>'
        )
        if self.bar.maximum() == 0:  # a busy bar stops
            self.bar.setRange(0, 1000)
        self.speed_label.clear()


class ProgressView(QWidget):
    """What is written, one `StickProgress` per stick, and the Cancel button."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        self.title = label(name="What is being written")
        self.rows_box = QVBoxLayout()
        self.rows: list[StickProgress] = []
        self.cancel_button = QPushButton("&Cancel…")
        self.cancel_button.setObjectName("cancelButton")
        self.cancel_button.setAccessibleName("Cancel writing")
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        layout.addWidget(self.title)
        layout.addLayout(self.rows_box)
        layout.addLayout(buttons)
        layout.addStretch(2)

    def start(self, title: str, sticks: list[StickRun]) -> None:
        for row in self.rows:
            self.rows_box.removeWidget(row)
            row.deleteLater()
        self.rows = [StickProgress(s.words, named=len(sticks) > 1) for s in sticks]
        for row in self.rows:
            self.rows_box.addWidget(row)
        self.title.setText(title)
        self.cancel_button.setEnabled(True)
        self.cancel_button.setText("&Cancel…")


class ResultView(QWidget):
    """The result: a title in the outcome's colour, what happened, "Eject" (the written
    sticks) and "Write another…"."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        self.title = label(name="Result")
        self.title.setObjectName("resultTitle")
        self.details = label(name="What happened", selectable=True)
        self.details.setObjectName("resultDetails")
        self.details.setTextFormat(Qt.TextFormat.PlainText)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        self.again_button = QPushButton("&Write another…")
        self.again_button.setAccessibleName("Back to choosing an image and a drive")
        self.eject_button = QPushButton("&Eject")
        self.eject_button.setObjectName("ejectButton")
        self.eject_button.setAccessibleName("Power off the written sticks so they can be unplugged")
        self.eject_button.setVisible(False)
        self.ejected = label(name="Eject result", selectable=True)
        self.ejected.setObjectName("ejectResult")
        self.ejected.setTextFormat(Qt.TextFormat.PlainText)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.eject_button)
        buttons.addWidget(self.again_button)
        layout.addWidget(self.title)
        layout.addWidget(line)
        layout.addWidget(self.details)
        layout.addWidget(self.ejected)
        layout.addLayout(buttons)
        layout.addStretch(2)

    def present(self, outcome: Outcome) -> None:
        color = outcome.tone.color
        self.title.setText(
            f'<h2 style="color:{color}">{outcome.tone.mark} {html_text(outcome.title)}</h2>'
        )
        self.details.setText(outcome.details)
        self.ejected.clear()
