"""A log view that stays cheap under thousands of lines a second.

New entries are only queued when they arrive; a short timer (FLUSH_MS) moves the queue into
the QPlainTextEdit in one edit, grouped into runs of one level, so the widget is updated
a dozen times a second at most, however fast lines come. The document is bounded
(maximumBlockCount) like the buffer behind it.

The view shows a `LogBuffer`: its own, or one attached with `attach(buffer)`, whose
existing lines are replayed. Filters (lowest level shown, text) re-render from the buffer.
Colours come from the palette, so they read well in light and dark themes; warnings and
errors also carry a "warning:"/"error:" prefix, so colour is never the only cue.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEvent, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QColor, QFont, QPalette, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.reporter import Level
from ui.dialogs import PathKind, choose_path
from ui.errors import show_error
from ui.logbuffer import LogBuffer, LogEntry

FLUSH_MS = 75
FLUSH_LINES = 1000  # per flush: about 10 ms of GUI work
BACKLOG_FLUSH_MS = 15
FILTER_DELAY_MS = 150  # typing in the text filter re-renders once the user pauses
LEVELS = (Level.DEBUG, Level.INFO, Level.WARNING, Level.ERROR)


def _is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Base).lightness() < 128


def level_color(level: Level, palette: QPalette) -> QColor:
    """The text colour of a level against this palette's base colour."""
    dark = _is_dark(palette)
    if level >= Level.ERROR:
        return QColor("#ff7b72" if dark else "#b3261e")
    if level >= Level.WARNING:
        return QColor("#e3b341" if dark else "#8a5a00")
    if level >= Level.INFO:
        return palette.color(QPalette.ColorRole.Text)
    # Debug: halfway between text and background, readable but quiet.
    text, base = palette.color(QPalette.ColorRole.Text), palette.color(QPalette.ColorRole.Base)
    return QColor(
        (text.red() + base.red()) // 2,
        (text.green() + base.green()) // 2,
        (text.blue() + base.blue()) // 2,
    )


class LogView(QWidget):
    """Shows a LogBuffer's lines, filtered and coloured by level."""

    saved = Signal(str)  # the path save_to wrote

    def __init__(
        self,
        buffer: LogBuffer | None = None,
        parent: QWidget | None = None,
        *,
        min_level: Level = Level.INFO,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("logView")
        self._buffer: LogBuffer | None = None
        self.save_dialog: QFileDialog | None = None  # the open "Save the log" chooser
        self._pending: list[LogEntry] = []
        self._formats: dict[Level, QTextCharFormat] = {}
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(FLUSH_MS)
        self._flush_timer.timeout.connect(self.flush)
        self._filter_timer = QTimer(self)
        self._filter_timer.setSingleShot(True)
        self._filter_timer.setInterval(FILTER_DELAY_MS)
        self._filter_timer.timeout.connect(self.rerender)
        self._build_ui(min_level)
        self._update_formats()
        self.attach(buffer if buffer is not None else LogBuffer())

    def _build_ui(self, min_level: Level) -> None:
        self.level_combo = QComboBox()
        self.level_combo.setObjectName("logLevel")
        self.level_combo.setAccessibleName("Lowest log level shown")
        for level in LEVELS:
            self.level_combo.addItem(level.name.capitalize(), int(level))
        self.level_combo.setCurrentIndex(LEVELS.index(min_level))
        self.level_combo.currentIndexChanged.connect(self.rerender)
        level_label = QLabel("&Show:")
        level_label.setBuddy(self.level_combo)

        self.filter_edit = QLineEdit()
        self.filter_edit.setObjectName("logFilter")
        self.filter_edit.setAccessibleName("Show only lines containing")
        self.filter_edit.setPlaceholderText("Filter lines…")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(lambda _text: self._filter_timer.start())
        filter_label = QLabel("&Filter:")
        filter_label.setBuddy(self.filter_edit)

        self.copy_button = QPushButton("&Copy")
        self.copy_button.setObjectName("logCopy")
        self.copy_button.setAccessibleName("Copy the shown log lines")
        self.copy_button.clicked.connect(self.copy_visible)
        self.save_button = QPushButton("Sa&ve…")
        self.save_button.setObjectName("logSave")
        self.save_button.setAccessibleName("Save the log to a file")
        self.save_button.clicked.connect(self.choose_and_save)

        self.text = QPlainTextEdit()
        self.text.setObjectName("logText")
        self.text.setAccessibleName("Log")
        self.text.setReadOnly(True)
        self.text.setUndoRedoEnabled(False)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.text.setFont(QFont("monospace"))
        self.text.document().setMaximumBlockCount(20_000)
        # Read-only text still takes focus with Tab, so keyboard users can scroll and select.
        self.text.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByKeyboard
            | Qt.TextInteractionFlag.TextSelectableByMouse
        )

        bar = QHBoxLayout()
        bar.addWidget(level_label)
        bar.addWidget(self.level_combo)
        bar.addWidget(filter_label)
        bar.addWidget(self.filter_edit, 1)
        bar.addWidget(self.copy_button)
        bar.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.text, 1)

    # -- the buffer -----------------------------------------------------------------------
    @property
    def buffer(self) -> LogBuffer:
        assert self._buffer is not None
        return self._buffer

    def attach(self, buffer: LogBuffer) -> None:
        """Show `buffer`: replay what it holds, then follow it."""
        if self._buffer is not None:
            self._buffer.remove_listener(self._on_entry)
        self._buffer = buffer
        self.text.document().setMaximumBlockCount(buffer.max_lines)
        buffer.add_listener(self._on_entry)
        self.rerender()

    def append(self, level: Level | int, text: str) -> None:
        """Add a line to the buffer shown (which tells this view and any other)."""
        self.buffer.append(level, text)

    def _on_entry(self, entry: LogEntry | None) -> None:
        if entry is None:  # the buffer was cleared
            self._pending.clear()
            self.text.clear()
            return
        self._pending.append(entry)
        # The timer runs exactly while lines are pending; no Qt call per line (each one
        # would let a busy worker thread take the GIL for a whole switch interval).
        if len(self._pending) == 1:
            self._flush_timer.start()

    # -- filtering ------------------------------------------------------------------------
    def min_level(self) -> Level:
        return Level(self.level_combo.currentData())

    def set_min_level(self, level: Level) -> None:
        self.level_combo.setCurrentIndex(LEVELS.index(level))

    def set_filter_text(self, text: str) -> None:
        """Set the text filter and re-render at once (typing waits for a pause instead)."""
        self.filter_edit.setText(text)
        self._filter_timer.stop()
        self.rerender()

    def shows(self, entry: LogEntry) -> bool:
        return self._matcher()(entry)

    def _matcher(self) -> Callable[[LogEntry], bool]:
        """The filters as one cheap test (read the widgets once, not once per line)."""
        needle = self.filter_edit.text().strip().casefold()
        lowest = self.min_level()
        if not needle:
            return lambda e: e.level >= lowest
        return lambda e: e.level >= lowest and needle in e.text.casefold()

    def visible_entries(self) -> list[LogEntry]:
        return list(filter(self._matcher(), self.buffer.entries()))

    def visible_text(self) -> str:
        return "\n".join(e.format() for e in self.visible_entries())

    # -- rendering ------------------------------------------------------------------------
    def level_color(self, level: Level) -> QColor:
        return level_color(level, self.text.palette())

    def _update_formats(self) -> None:
        for level in LEVELS:
            fmt = QTextCharFormat()
            fmt.setForeground(self.level_color(level))
            if level >= Level.ERROR:
                fmt.setFontWeight(QFont.Weight.Bold)
            self._formats[level] = fmt

    def _at_bottom(self) -> bool:
        bar = self.text.verticalScrollBar()
        return bar.value() >= bar.maximum()

    @Slot()
    def rerender(self) -> None:
        """Re-draw every buffered line through the filters (after a filter or palette change)."""
        self._pending.clear()
        self._flush_timer.stop()
        self.text.clear()
        self._insert(self.buffer.entries(), follow=True)

    @Slot()
    def flush(self) -> None:
        """Move queued lines into the widget, at most FLUSH_LINES per call so that a flood
        never blocks the event loop for long; a backlog is flushed again soon."""
        self._flush_timer.stop()
        # Lines beyond the document's capacity would be trimmed at once: skip them.
        del self._pending[: -self.buffer.max_lines]
        batch, self._pending = self._pending[:FLUSH_LINES], self._pending[FLUSH_LINES:]
        self._insert(batch, follow=self._at_bottom())
        if self._pending:
            self._flush_timer.start(BACKLOG_FLUSH_MS)

    def flush_all(self) -> None:
        """Draw everything queued now, however long it takes (tests)."""
        while self._pending:
            self.flush()
        self._flush_timer.stop()

    def _insert(self, entries: list[LogEntry], *, follow: bool) -> None:
        shows = self._matcher()
        shown = [e for e in entries if shows(e)][-self.buffer.max_lines :]
        if not shown:
            return
        doc = self.text.document()
        if len(shown) >= self.buffer.max_lines:
            self.text.clear()  # every line is replaced: cheaper than appending and trimming
        cursor = QTextCursor(doc)
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.beginEditBlock()
        first = doc.isEmpty()
        run: list[str] = []
        run_level = shown[0].level
        for entry in shown:
            if entry.level != run_level:
                self._insert_run(cursor, run, run_level, first)
                first, run, run_level = False, [], entry.level
            run.append(entry.format())
        self._insert_run(cursor, run, run_level, first)
        cursor.endEditBlock()
        if follow:
            bar = self.text.verticalScrollBar()
            bar.setValue(bar.maximum())

    def _insert_run(self, cursor: QTextCursor, lines: list[str], level: Level, first: bool) -> None:
        text = "\n".join(lines)
        cursor.insertText(text if first else "\n" + text, self._formats[level])

    def line_count(self) -> int:
        """Lines in the widget now (queued lines not yet flushed are not counted)."""
        doc = self.text.document()
        return 0 if doc.isEmpty() else doc.blockCount()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if (
            event.type() in (QEvent.Type.PaletteChange, QEvent.Type.StyleChange)
            and self._formats
            and self._buffer is not None
        ):
            self._update_formats()
            self.rerender()

    # -- copy and save --------------------------------------------------------------------
    @Slot()
    def copy_visible(self) -> None:
        QApplication.clipboard().setText(self.visible_text())

    def save_to(self, path: Path | str, *, visible_only: bool = False) -> None:
        """Write the log (every buffered line, or only those shown) as UTF-8 text."""
        entries = self.visible_entries() if visible_only else self.buffer.entries()
        lines = [f"{e.format()}\n" for e in entries]
        if self.buffer.dropped and not visible_only:
            lines.insert(0, f"({self.buffer.dropped} older lines were dropped)\n")
        Path(path).write_text("".join(lines), encoding="utf-8")
        self.saved.emit(str(path))

    @Slot()
    def choose_and_save(self) -> QFileDialog:
        """Ask where to save (without blocking); the chosen file gets every buffered line."""
        self.save_dialog = choose_path(
            self,
            title="Save the log",
            start=Path.home() / "livesmith-build.log",
            kind=PathKind.SAVE_FILE,
            on_chosen=self._save_chosen,
            name="saveLogDialog",
            filters="Log files (*.log *.txt);;All files (*)",
        )
        return self.save_dialog

    def _save_chosen(self, path: Path) -> None:
        try:
            self.save_to(path)
        except OSError as exc:
            show_error(self, exc)
