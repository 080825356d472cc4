"""Switching the Packages page to a source that cannot load yet (a folder kind with no folder).

The old source must be gone at once: adding by name, following dependencies and unticking
rows must not resolve against it, and a task still running for it (a load or a resolution)
must not refill the table when its result arrives after the switch.

A task's result reaches the page only through the GUI thread's event loop, so a switch made
right after the task starts, before the test waits, always happens "while it runs"; each
test checks `page.busy()` first so that this stays true.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from app.packages.model import SourceKind, SourceSpec
from tests.app.packages.fixtures import make_deb_folder, text_package
from tests.ui.wizard.conftest import WAIT_MS, glaucus_profile
from tests.ui.wizard.helpers import check_state, click_box, click_package, wait_idle
from ui.wizard.compose_wizard import ComposeWizard
from ui.wizard.packages_page import PackagesPage

Maker = Callable[..., ComposeWizard]

CHOOSE_FOLDER = "Choose the folder with the packages."


def clear_folder(qtbot: Any, page: PackagesPage) -> None:
    """Empty the folder box and press Return, as a user would: a source with no folder."""
    page.folder_edit.clear()
    qtbot.keyClick(page.folder_edit, Qt.Key.Key_Return)


def source_actions_enabled(page: PackagesPage) -> list[bool]:
    return [w.isEnabled() for w in (page.add_edit, page.add_button, page.follow_check)]


def assert_waiting_for_a_folder(
    wizard: ComposeWizard, page: PackagesPage, names: list[str]
) -> None:
    """The old source is dropped whole: only the selection shows, nothing is resolved, the
    page asks for a folder and offers nothing that needs a source."""
    assert page.model.names() == names
    assert wizard.resolution() is None
    assert page.status_label.text() == CHOOSE_FOLDER
    assert source_actions_enabled(page) == [False] * 3


def test_add_by_name_and_dependencies_wait_for_the_new_source(
    qtbot: Any, make_wizard: Maker, glaucus_repo: Path, tmp_path: Path
) -> None:
    wizard = make_wizard(glaucus_profile(glaucus_repo, "busybox"))
    page = wizard.packages_page
    assert "docs" in page.model.names() and source_actions_enabled(page) == [True] * 3
    clear_folder(qtbot, page)
    assert wizard.profile().packages.source == SourceSpec(SourceKind.GLAUCUS, "")
    assert page.status_label.text() == CHOOSE_FOLDER
    assert page.model.names() == ["busybox"]  # the selection only; the source is gone

    # What a user would do next: add a package of the old source, flip dependencies.
    qtbot.keyClicks(page.add_edit, "docs")
    qtbot.keyClick(page.add_edit, Qt.Key.Key_Return)
    qtbot.mouseClick(page.add_button, Qt.MouseButton.LeftButton)
    click_box(qtbot, page.follow_check)
    wait_idle(qtbot, wizard)
    assert page.model.names() == ["busybox"]  # not refilled with the old source
    assert wizard.resolution() is None
    assert wizard.profile().packages.packages == ("busybox",)
    assert wizard.profile().packages.follow_dependencies is True
    assert source_actions_enabled(page) == [False] * 3

    # Once another source has loaded, both act on it.
    folder = make_deb_folder(
        tmp_path, [text_package("vim", "9.0", depends=("vimrt",)), text_package("vimrt", "9.0")]
    )
    loads = page.load_count
    qtbot.keyClicks(page.folder_edit, str(folder))
    page.kind_combo.setCurrentIndex(page.kind_combo.findData(SourceKind.DEB))
    qtbot.waitUntil(lambda: page.load_count > loads and not page.busy(), timeout=WAIT_MS)
    assert source_actions_enabled(page) == [True] * 3
    assert page.model.names() == ["vim", "vimrt", "busybox"]  # busybox: selected, unknown
    qtbot.keyClicks(page.add_edit, "vim")
    qtbot.keyClick(page.add_edit, Qt.Key.Key_Return)
    wait_idle(qtbot, wizard)
    assert wizard.profile().packages.packages == ("busybox", "vim")
    assert check_state(wizard, "vimrt") == Qt.CheckState.Checked
    click_box(qtbot, page.follow_check)
    wait_idle(qtbot, wizard)
    assert wizard.profile().packages.follow_dependencies is False
    assert check_state(wizard, "vimrt") == Qt.CheckState.Unchecked


def test_unticking_a_selected_row_does_not_resolve_against_the_old_source(
    qtbot: Any, make_wizard: Maker, glaucus_repo: Path
) -> None:
    wizard = make_wizard(glaucus_profile(glaucus_repo, "busybox", "docs"))
    page = wizard.packages_page
    clear_folder(qtbot, page)
    assert page.model.names() == ["busybox", "docs"]
    click_package(qtbot, wizard, "docs")
    assert wizard.profile().packages.packages == ("busybox",)
    assert page.model.names() == ["busybox", "docs"]  # not refilled with the old source
    assert check_state(wizard, "docs") == Qt.CheckState.Unchecked
    assert wizard.resolution() is None and page.status_label.text() == CHOOSE_FOLDER


def test_a_resolution_still_running_for_the_old_source_is_ignored(
    qtbot: Any, make_wizard: Maker, glaucus_repo: Path
) -> None:
    wizard = make_wizard(glaucus_profile(glaucus_repo, "docs"))
    page = wizard.packages_page
    click_box(qtbot, page.follow_check)  # resolves again, on a worker
    assert page.busy() and "Resolving" in page.status_label.text()
    clear_folder(qtbot, page)
    wait_idle(qtbot, wizard)
    assert_waiting_for_a_folder(wizard, page, ["docs"])


def test_a_slow_load_of_the_old_source_finishing_after_the_switch_is_ignored(
    qtbot: Any, make_wizard: Maker, glaucus_repo: Path
) -> None:
    wizard = make_wizard(glaucus_profile(glaucus_repo, "busybox"), wait_loaded=False)
    page = wizard.packages_page
    assert page.busy() and "Loading" in page.status_label.text()
    # Through the kind chooser: Arch packages, and no folder for them yet.
    page.folder_edit.clear()
    page.kind_combo.setCurrentIndex(page.kind_combo.findData(SourceKind.ARCH))
    assert wizard.profile().packages.source == SourceSpec(SourceKind.ARCH, "")
    assert page.busy()  # the glaucus load has not reported yet
    wait_idle(qtbot, wizard)
    assert page.load_count == 0
    assert_waiting_for_a_folder(wizard, page, ["busybox"])


def test_a_failing_load_of_the_old_source_shows_no_error_after_the_switch(
    qtbot: Any, make_wizard: Maker, tmp_path: Path
) -> None:
    wizard = make_wizard(glaucus_profile(tmp_path / "missing", "busybox"), wait_loaded=False)
    page = wizard.packages_page
    assert page.busy()
    clear_folder(qtbot, page)
    assert page.busy()  # the failure has not reported yet
    wait_idle(qtbot, wizard)
    assert [b for b in page.findChildren(QMessageBox) if b.isVisible()] == []
    assert page.status_label.text() == CHOOSE_FOLDER
    assert page.model.names() == ["busybox"]
