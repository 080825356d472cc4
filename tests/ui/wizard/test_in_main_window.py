"""The wizard as a page of the main window: opened from a saved profile, embedded (not a
separate window), remembered in the recent lists, and guarded when the window closes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QMessageBox, QPushButton, QWizard

from app.compose.profile import ImageOptions, RootImageFormat, save_profile
from tests.ui.wizard.conftest import glaucus_profile
from tests.ui.wizard.helpers import go_to, wait_checked
from ui.main_window import MainWindow
from ui.wizard.compose_wizard import ComposeWizard, PageId


def window_with_profile(
    qtbot: Any, settings: QSettings, repo: Path, tmp_path: Path
) -> tuple[MainWindow, Path]:
    profile = glaucus_profile(repo, "busybox", "linux", image=ImageOptions(RootImageFormat.RAM))
    saved = tmp_path / "ram.toml"
    save_profile(profile, saved)
    window = MainWindow(settings)
    qtbot.addWidget(window)
    window.show()
    window.open_profile_file(saved)
    return window, saved


def start_build(qtbot: Any, window: MainWindow, output: Path) -> tuple[ComposeWizard, Path]:
    """From the opened profile to a running build into `output`, the way a user goes."""
    wizard = window.wizard
    assert wizard is not None
    output.parent.mkdir()
    wizard.set_output_path(output)
    wizard.build_page.build_options = {"cache_dir": output.parent / "cache"}
    page = wizard.packages_page
    qtbot.waitUntil(lambda: page.load_count > 0 and not page.busy(), timeout=20_000)
    go_to(qtbot, wizard, PageId.REVIEW)
    wait_checked(qtbot, wizard)
    qtbot.mouseClick(wizard.button(QWizard.WizardButton.NextButton), Qt.MouseButton.LeftButton)
    return wizard, output


def test_a_saved_profile_opens_the_wizard_inside_the_window(
    qtbot: Any, settings: QSettings, glaucus_repo: Path, tmp_path: Path
) -> None:
    window, saved = window_with_profile(qtbot, settings, glaucus_repo, tmp_path)
    wizard = window.wizard
    assert wizard is not None and wizard.isVisible()
    assert wizard.window() is window and not wizard.isWindow()
    assert window.pages.currentWidget() is window.compose_frame
    assert wizard.profile().image.format is RootImageFormat.RAM
    assert window.start.recent_profiles.paths() == [saved]
    # Cancel on the first page leads back to the start screen, which lists the profile.
    qtbot.mouseClick(wizard.button(QWizard.WizardButton.CancelButton), Qt.MouseButton.LeftButton)
    assert window.pages.currentWidget() is window.start
    assert window.start.profiles_list.item(0).text() == "ram.toml"


def test_closing_the_window_during_a_build_asks_then_stops_it(
    qtbot: Any, settings: QSettings, glaucus_repo: Path, tmp_path: Path
) -> None:
    window, _saved = window_with_profile(qtbot, settings, glaucus_repo, tmp_path)
    wizard, output = start_build(qtbot, window, tmp_path / "out" / "closing.iso")
    assert wizard.is_building()

    window.close()
    box = window.close_box
    assert isinstance(box, QMessageBox) and box.isVisible()
    assert "a build" in box.text()
    box.findChild(QPushButton, "confirmQuit").click()
    qtbot.waitUntil(lambda: not wizard.is_building(), timeout=120_000)
    assert not window.isVisible()
    assert not output.exists()


def test_write_to_usb_after_a_build_opens_the_writer_with_the_new_iso(
    qtbot: Any, settings: QSettings, glaucus_repo: Path, tmp_path: Path
) -> None:
    window, _saved = window_with_profile(qtbot, settings, glaucus_repo, tmp_path)
    wizard, output = start_build(qtbot, window, tmp_path / "out" / "fresh.iso")
    qtbot.waitUntil(lambda: wizard.build_page.isComplete(), timeout=240_000)
    qtbot.mouseClick(wizard.button(QWizard.WizardButton.NextButton), Qt.MouseButton.LeftButton)
    view = wizard.preview_page.view
    qtbot.waitUntil(
        lambda: view.report() is not None and view.write_button.isEnabled(), timeout=60_000
    )
    qtbot.mouseClick(view.write_button, Qt.MouseButton.LeftButton)
    assert window.pages.currentWidget() is window.writer_frame
    assert window.writer.image() == output  # prefilled with the ISO just built
    assert output in window.start.recent_images.paths()
    window.writer.shutdown()


def test_composing_again_replaces_an_idle_wizard_after_stopping_its_work(
    qtbot: Any, settings: QSettings, glaucus_repo: Path, tmp_path: Path
) -> None:
    window, saved = window_with_profile(qtbot, settings, glaucus_repo, tmp_path)
    first = window.wizard
    assert first is not None
    stopped: list[bool] = []
    real_shutdown = first.packages_page.shutdown

    def spy() -> None:
        stopped.append(True)
        real_shutdown()

    first.packages_page.shutdown = spy  # type: ignore[method-assign]
    window.open_profile_file(saved)  # while the first one may still be loading its packages
    assert stopped == [True]
    assert window.wizard is not first and window.wizard.isVisible()
    assert window.pages.currentWidget() is window.compose_frame
