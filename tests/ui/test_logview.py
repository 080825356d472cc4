"""LogView on real widgets: batched appends, filters, palette-aware colours, copy, save,
replay of a buffer filled before the view existed, bounded size, auto-scroll."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from app.reporter import Level
from ui.logbuffer import LogBuffer
from ui.logview import FLUSH_LINES, LogView, level_color


def make_view(qtbot: Any, buffer: LogBuffer | None = None, **kwargs: Any) -> LogView:
    view = LogView(buffer, **kwargs)
    qtbot.addWidget(view)
    view.resize(600, 300)
    view.show()
    return view


def shown_lines(view: LogView) -> list[str]:
    text = view.text.toPlainText()
    return text.split("\n") if text else []


def fill(buffer: LogBuffer) -> None:
    buffer.append(Level.DEBUG, "resolving busybox")
    buffer.append(Level.INFO, "installed busybox")
    buffer.append(Level.WARNING, "busybox has no man pages")
    buffer.append(Level.ERROR, "linux is missing")


def test_lines_arrive_in_one_batch_not_one_update_per_line(qtbot: Any) -> None:
    view = make_view(qtbot, min_level=Level.DEBUG)
    for n in range(500):
        view.append(Level.INFO, f"line {n}")
    assert view.line_count() == 0  # queued, not yet drawn
    qtbot.waitUntil(lambda: view.line_count() == 500, timeout=2000)
    assert shown_lines(view)[-1].endswith("line 499")


def test_attach_replays_what_the_buffer_already_holds(qtbot: Any) -> None:
    buffer = LogBuffer()
    fill(buffer)
    view = make_view(qtbot, buffer, min_level=Level.DEBUG)
    assert len(shown_lines(view)) == 4  # replayed at once, no wait
    buffer.append(Level.INFO, "later")
    qtbot.waitUntil(lambda: view.line_count() == 5, timeout=2000)
    other = LogBuffer()
    view.attach(other)
    assert view.line_count() == 0
    buffer.append(Level.INFO, "not followed any more")
    other.append(Level.INFO, "followed")
    qtbot.waitUntil(lambda: view.line_count() == 1, timeout=2000)
    assert shown_lines(view)[0].endswith("followed")


def test_level_and_text_filters(qtbot: Any) -> None:
    buffer = LogBuffer()
    fill(buffer)
    view = make_view(qtbot, buffer)
    assert [line.split("  ", 1)[1] for line in shown_lines(view)] == [
        "installed busybox",
        "warning: busybox has no man pages",
        "error: linux is missing",
    ]
    view.set_min_level(Level.WARNING)
    assert len(shown_lines(view)) == 2
    view.set_min_level(Level.DEBUG)
    view.set_filter_text("BUSYBOX")  # case-insensitive
    assert len(shown_lines(view)) == 3 and all("busybox" in s for s in shown_lines(view))
    buffer.append(Level.INFO, "unrelated")
    buffer.append(Level.INFO, "busybox again")
    qtbot.waitUntil(lambda: view.line_count() == 4, timeout=2000)  # new lines are filtered too
    view.filter_edit.clear()  # typing re-renders after a pause
    qtbot.waitUntil(lambda: view.line_count() == 6, timeout=2000)


def test_each_level_has_its_own_colour_in_light_and_dark_palettes(qtbot: Any) -> None:
    light = QPalette(QColor("black"), QColor("white"))
    light.setColor(QPalette.ColorRole.Base, QColor("white"))
    light.setColor(QPalette.ColorRole.Text, QColor("black"))
    dark = QPalette(light)
    dark.setColor(QPalette.ColorRole.Base, QColor("#1e1e1e"))
    dark.setColor(QPalette.ColorRole.Text, QColor("#e0e0e0"))
    for palette in (light, dark):
        base = palette.color(QPalette.ColorRole.Base)
        colours = [level_color(level, palette) for level in Level]
        assert len({c.name() for c in colours}) == 4
        for colour in colours:  # every level stands out from the background
            assert abs(colour.lightness() - base.lightness()) > 60, (colour.name(), base.name())
    view = make_view(qtbot, min_level=Level.DEBUG)
    view.text.setPalette(dark)
    view.setPalette(dark)
    fill(view.buffer)
    view.flush_all()
    doc = view.text.document()
    for block_number, level in enumerate(Level):
        block = doc.findBlockByNumber(block_number)
        fmt = block.begin().fragment().charFormat()
        assert fmt.foreground().color().name() == view.level_color(level).name()
    assert view.level_color(Level.ERROR).name() == level_color(Level.ERROR, dark).name()


def test_copy_puts_the_visible_lines_on_the_clipboard(qtbot: Any) -> None:
    buffer = LogBuffer()
    fill(buffer)
    view = make_view(qtbot, buffer, min_level=Level.WARNING)
    qtbot.mouseClick(view.copy_button, Qt.MouseButton.LeftButton)
    copied = QApplication.clipboard().text().split("\n")
    assert len(copied) == 2
    assert copied[0].endswith("warning: busybox has no man pages")
    assert copied[1].endswith("error: linux is missing")


def test_save_writes_every_line_or_only_the_visible_ones(qtbot: Any, tmp_path: Path) -> None:
    buffer = LogBuffer(max_lines=3)
    fill(buffer)
    view = make_view(qtbot, buffer, min_level=Level.ERROR)
    with qtbot.waitSignal(view.saved):
        view.save_to(tmp_path / "all.log")
    lines = (tmp_path / "all.log").read_text().splitlines()
    assert lines[0] == "(1 older lines were dropped)"
    assert [line.split("  ", 1)[1] for line in lines[1:]] == [
        "installed busybox",
        "warning: busybox has no man pages",
        "error: linux is missing",
    ]
    view.save_to(tmp_path / "visible.log", visible_only=True)
    assert (tmp_path / "visible.log").read_text().count("\n") == 1


def test_the_widget_stays_bounded_like_its_buffer(qtbot: Any) -> None:
    buffer = LogBuffer(max_lines=100)
    view = make_view(qtbot, buffer, min_level=Level.DEBUG)
    for n in range(1000):
        buffer.append(Level.INFO, f"line {n}")
    view.flush_all()
    assert view.line_count() == 100 and len(buffer) == 100
    assert shown_lines(view)[0].endswith("line 900") and shown_lines(view)[-1].endswith("line 999")
    for n in range(1000, 1150):
        buffer.append(Level.INFO, f"line {n}")
    view.flush_all()
    assert view.line_count() == 100 and shown_lines(view)[0].endswith("line 1050")


def test_follows_new_lines_unless_the_user_scrolled_up(qtbot: Any) -> None:
    view = make_view(qtbot, min_level=Level.DEBUG)
    bar = view.text.verticalScrollBar()
    for n in range(300):
        view.append(Level.INFO, f"line {n}")
    view.flush_all()
    assert bar.maximum() > 0 and bar.value() == bar.maximum()
    bar.setValue(10)  # the user scrolls up to read
    view.append(Level.INFO, "more")
    view.flush_all()
    assert bar.value() == 10
    bar.setValue(bar.maximum())  # back at the bottom: follow again
    view.append(Level.INFO, "and more")
    view.flush_all()
    assert bar.value() == bar.maximum()


def test_a_flood_of_lines_costs_little_gui_time(qtbot: Any) -> None:
    view = make_view(qtbot, min_level=Level.DEBUG)
    started = time.perf_counter()
    for n in range(20_000):
        view.append(Level.INFO if n % 10 else Level.WARNING, f"line {n}")
    view.flush_all()
    elapsed = time.perf_counter() - started
    assert view.line_count() == 20_000
    assert elapsed < 5.0  # generous: typically well under a second


def test_a_backlog_is_drawn_in_slices_that_keep_the_event_loop_free(qtbot: Any) -> None:
    view = make_view(qtbot, LogBuffer(max_lines=5000), min_level=Level.DEBUG)
    for n in range(12_000):
        view.append(Level.INFO, f"line {n}")
    view.flush()
    assert view.line_count() == FLUSH_LINES  # older lines beyond capacity were skipped
    assert shown_lines(view)[0].endswith("line 7000")
    qtbot.waitUntil(lambda: view.line_count() == 5000, timeout=5000)
    assert shown_lines(view)[-1].endswith("line 11999")


def test_save_button_asks_where_without_blocking_and_saves_there(
    qtbot: Any, tmp_path: Path
) -> None:
    buffer = LogBuffer()
    fill(buffer)
    view = make_view(qtbot, buffer)
    qtbot.mouseClick(view.save_button, Qt.MouseButton.LeftButton)
    dialog = view.save_dialog
    assert dialog is not None and dialog.isVisible() and dialog.objectName() == "saveLogDialog"
    dialog.selectFile(str(tmp_path / "chosen.log"))
    with qtbot.waitSignal(view.saved):
        dialog.accept()
    assert (tmp_path / "chosen.log").read_text().count("\n") == 4  # every line, debug too
