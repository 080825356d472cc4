from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QMessageBox

from app.errors import Problem, ValidationError
from ui.errors import show_error
from ui.main_window import MainWindow


def make_window(qtbot, settings: QSettings) -> MainWindow:
    window = MainWindow(settings)
    qtbot.addWidget(window)
    window.show()
    return window


def test_start_screen_offers_three_ways_in(qtbot, settings) -> None:
    window = make_window(qtbot, settings)
    start = window.start
    labels = [b.text() for b in (start.compose_button, start.write_button, start.inspect_button)]
    assert labels == ["Compose a live ISO…", "Write an ISO to USB…", "Inspect an ISO…"]
    assert all(
        b.isVisible() and b.isEnabled()
        for b in (start.compose_button, start.write_button, start.inspect_button)
    )
    # Built-in profiles to start from, the shipped default first.
    assert start.profile_combo.count() >= 1
    assert "minimal" in [
        start.profile_combo.itemData(i) for i in range(start.profile_combo.count())
    ]
    start.profile_combo.setCurrentIndex(start.profile_combo.findData("minimal"))
    assert start.profile_about.text() == start.builtins["minimal"].description != ""


def test_write_button_opens_the_writer_and_back_returns(qtbot, settings) -> None:
    window = make_window(qtbot, settings)
    qtbot.mouseClick(window.start.write_button, Qt.MouseButton.LeftButton)
    assert window.writer is not None
    assert window.pages.currentWidget() is window.writer_frame
    assert window.writer.isVisible()
    qtbot.mouseClick(window.writer_frame.back_button, Qt.MouseButton.LeftButton)
    assert window.pages.currentWidget() is window.start
    writer = window.writer
    window.start.write_button.click()
    assert window.writer is writer  # kept: a running write would still be shown


def test_an_image_given_to_the_writer_is_remembered_as_recent(
    qtbot, settings, tmp_path: Path
) -> None:
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0" * 4096)
    window = make_window(qtbot, settings)
    window.open_writer(image)
    assert window.writer.image() == image
    window.go_start()
    items = [window.start.images_list.item(i) for i in range(window.start.images_list.count())]
    assert [item.text() for item in items] == ["disk.img"]
    assert items[0].toolTip() == str(image)


def test_recent_lists_say_when_they_are_empty(qtbot, settings) -> None:
    window = make_window(qtbot, settings)
    start = window.start
    assert start.profiles_list.item(0).text() == "No saved profiles yet"
    assert not start.profiles_list.item(0).flags() & Qt.ItemFlag.ItemIsEnabled


def test_a_broken_profile_file_is_an_error_naming_the_file(qtbot, settings, tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("name = [unclosed\n")
    window = make_window(qtbot, settings)
    window.open_profile_file(broken)
    box = window.findChild(QMessageBox, "errorBox")
    assert box is not None and box.isVisible()
    assert "broken.toml" in box.text() + box.detailedText()
    assert window.pages.currentWidget() is window.start
    assert window.start.recent_profiles.paths() == []


def test_window_geometry_is_remembered(qtbot, settings) -> None:
    window = make_window(qtbot, settings)
    window.resize(761, 555)
    window.close()
    again = make_window(qtbot, settings)
    assert (again.width(), again.height()) == (761, 555)


def test_validation_errors_are_shown_with_every_problem(qtbot) -> None:
    box = show_error(None, ValidationError([Problem("label", "bad"), Problem("hostname", "empty")]))
    qtbot.addWidget(box)
    assert isinstance(box, QMessageBox)
    assert "2 problem" in box.text()
    assert "label: bad" in box.detailedText() and "hostname: empty" in box.detailedText()
