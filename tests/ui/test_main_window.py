from __future__ import annotations

from PySide6.QtWidgets import QMessageBox

from app.errors import Problem, ValidationError
from ui.errors import show_error
from ui.main_window import MainWindow


def test_start_screen_offers_three_ways_in(qtbot) -> None:
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    start = window.start
    labels = [b.text() for b in (start.compose_button, start.write_button, start.inspect_button)]
    assert labels == ["Compose a live ISO…", "Write an ISO to USB…", "Inspect an ISO…"]
    assert all(b.isVisible() and b.isEnabled() for b in
               (start.compose_button, start.write_button, start.inspect_button))


def test_validation_errors_are_shown_with_every_problem(qtbot) -> None:
    box = show_error(None, ValidationError([Problem("label", "bad"), Problem("hostname", "empty")]))
    qtbot.addWidget(box)
    assert isinstance(box, QMessageBox)
    assert "2 problem" in box.text()
    assert "label: bad" in box.detailedText() and "hostname: empty" in box.detailedText()
