"""The Packages page with real package sources: loading, ticking, dependencies, problems."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QBrush
from PySide6.QtWidgets import QMessageBox

from app.compose.profile import PackageOptions, Profile
from app.packages.model import SourceKind, SourceSpec
from tests.app.packages.fixtures import (
    make_arch_folder,
    make_deb_folder,
    make_tarball_folder,
    text_package,
)
from tests.ui.wizard.conftest import WAIT_MS, glaucus_profile
from tests.ui.wizard.helpers import check_state, click_package, table_index, wait_idle
from ui.settings import last_source_folder
from ui.wizard.compose_wizard import ComposeWizard
from ui.wizard.package_model import DESCRIPTION, PROBLEM_BACKGROUND, SIZE, STATUS, VERSION

Maker = Callable[..., ComposeWizard]


def empty_glaucus_profile() -> Profile:
    return Profile("typed", packages=PackageOptions(SourceSpec(SourceKind.GLAUCUS, "")))


def test_typing_the_source_folder_loads_the_packages_and_remembers_it(
    qtbot: Any, make_wizard: Maker, glaucus_repo: Path, settings: QSettings
) -> None:
    wizard = make_wizard(empty_glaucus_profile(), wait_loaded=False)
    page = wizard.packages_page
    assert page.model.rowCount() == 0 and page.load_count == 0
    qtbot.keyClicks(page.folder_edit, str(glaucus_repo))
    qtbot.keyClick(page.folder_edit, Qt.Key.Key_Return)
    assert page.busy() and "Loading" in page.status_label.text()  # on a worker, not here
    qtbot.waitUntil(lambda: page.load_count == 1 and not page.busy(), timeout=WAIT_MS)
    assert page.model.names() == ["broken", "busybox", "docs", "libdocs", "linux"]
    docs = table_index(page.table, "docs")
    assert docs.siblingAtColumn(VERSION).data() == "2.1"
    assert docs.siblingAtColumn(DESCRIPTION).data() == "Handbook pages"
    assert docs.siblingAtColumn(SIZE).data().endswith(("bytes", "KiB"))
    assert wizard.profile().packages.source == SourceSpec(SourceKind.GLAUCUS, str(glaucus_repo))
    assert last_source_folder(settings, SourceKind.GLAUCUS) == str(glaucus_repo)
    # A later wizard whose profile names no folder starts from the remembered one.
    again = make_wizard(empty_glaucus_profile())
    assert again.packages_page.folder_edit.text() == str(glaucus_repo)
    assert again.profile().packages.source.location == str(glaucus_repo)
    assert "busybox" in again.packages_page.model.names()


def test_a_ticked_package_pulls_in_its_dependency_shown_greyed_and_required_by(
    qtbot: Any, make_wizard: Maker, glaucus_repo: Path
) -> None:
    wizard = make_wizard(glaucus_profile(glaucus_repo, "busybox"))
    page = wizard.packages_page
    assert check_state(wizard, "libdocs") == Qt.CheckState.Unchecked
    click_package(qtbot, wizard, "docs")
    assert wizard.profile().packages.packages == ("busybox", "docs")  # only the user's choice
    assert check_state(wizard, "docs") == Qt.CheckState.Checked
    assert check_state(wizard, "libdocs") == Qt.CheckState.Checked
    libdocs = table_index(page.table, "libdocs")
    assert libdocs.siblingAtColumn(STATUS).data() == "required by docs"
    assert not libdocs.flags() & Qt.ItemFlag.ItemIsUserCheckable  # cannot be unticked
    assert libdocs.data(Qt.ItemDataRole.ForegroundRole) is not None  # greyed
    assert table_index(page.table, "docs").siblingAtColumn(STATUS).data() == "selected"
    assert "3 packages (1 as dependencies)" in page.total_label.text()
    # Clicking the dependency's box does nothing; unticking docs drops libdocs too.
    click_package(qtbot, wizard, "libdocs")
    assert wizard.profile().packages.packages == ("busybox", "docs")
    click_package(qtbot, wizard, "docs")
    assert wizard.profile().packages.packages == ("busybox",)
    assert check_state(wizard, "libdocs") == Qt.CheckState.Unchecked
    resolution = wizard.resolution()
    assert resolution is not None and resolution.names == ["busybox"]


def test_a_missing_dependency_is_highlighted_and_named(
    qtbot: Any, make_wizard: Maker, glaucus_repo: Path
) -> None:
    wizard = make_wizard(glaucus_profile(glaucus_repo, "busybox"))
    page = wizard.packages_page
    assert not page.problems_label.isVisible()
    click_package(qtbot, wizard, "broken")
    broken = table_index(page.table, "broken")
    assert "missing dependency: ghost" in broken.siblingAtColumn(STATUS).data()
    background = broken.data(Qt.ItemDataRole.BackgroundRole)
    assert isinstance(background, QBrush) and background.color() == PROBLEM_BACKGROUND
    assert table_index(page.table, "busybox").data(Qt.ItemDataRole.BackgroundRole) is None
    assert page.problems_label.isVisible()
    assert "broken needs ghost" in page.problems_label.text()
    click_package(qtbot, wizard, "broken")
    assert not page.problems_label.isVisible()


def test_space_toggles_the_current_package_from_the_keyboard(
    qtbot: Any, make_wizard: Maker, glaucus_repo: Path
) -> None:
    wizard = make_wizard(glaucus_profile(glaucus_repo))
    table = wizard.packages_page.table
    table.setFocus()
    table.setCurrentIndex(table_index(table, "linux"))
    qtbot.keyClick(table, Qt.Key.Key_Space)
    wait_idle(qtbot, wizard)
    assert wizard.profile().packages.packages == ("linux",)


def test_search_filters_by_name_and_description(
    qtbot: Any, make_wizard: Maker, glaucus_repo: Path
) -> None:
    wizard = make_wizard(glaucus_profile(glaucus_repo))
    page = wizard.packages_page
    qtbot.keyClicks(page.search_edit, "handbook")
    shown = {page.proxy.index(r, 0).data() for r in range(page.proxy.rowCount())}
    assert shown == {"docs", "libdocs"}
    page.search_edit.clear()
    qtbot.keyClicks(page.search_edit, "BUSY")
    assert page.proxy.rowCount() == 1


def test_unknown_selected_names_get_a_row_that_can_be_unticked(
    qtbot: Any, make_wizard: Maker, glaucus_repo: Path
) -> None:
    wizard = make_wizard(glaucus_profile(glaucus_repo, "busybox", "nosuch"))
    page = wizard.packages_page
    row = table_index(page.table, "nosuch")
    assert "not in this package source" in row.siblingAtColumn(STATUS).data()
    assert "nosuch is not in this package source" in page.problems_label.text()
    click_package(qtbot, wizard, "nosuch")
    assert wizard.profile().packages.packages == ("busybox",)


def test_adding_a_package_by_name(qtbot: Any, make_wizard: Maker, glaucus_repo: Path) -> None:
    wizard = make_wizard(glaucus_profile(glaucus_repo))
    page = wizard.packages_page
    qtbot.keyClicks(page.add_edit, "docs")
    qtbot.keyClick(page.add_edit, Qt.Key.Key_Return)
    wait_idle(qtbot, wizard)
    assert wizard.profile().packages.packages == ("docs",)
    assert check_state(wizard, "libdocs") == Qt.CheckState.Checked


def conflicting() -> list[Any]:
    return [
        text_package("vim", "9.0", conflicts=("nano",), description="An editor"),
        text_package("nano", "7.2", description="Another editor"),
    ]


@pytest.mark.parametrize(
    ("kind", "builder"),
    [
        (SourceKind.ARCH, make_arch_folder),
        (SourceKind.DEB, make_deb_folder),
        (SourceKind.TARBALLS, make_tarball_folder),
    ],
)
def test_other_folder_kinds_load_through_the_kind_chooser(
    qtbot: Any,
    make_wizard: Maker,
    glaucus_repo: Path,
    tmp_path: Path,
    kind: SourceKind,
    builder: Any,
) -> None:
    folder = builder(tmp_path, conflicting())
    wizard = make_wizard(glaucus_profile(glaucus_repo))
    page = wizard.packages_page
    loads = page.load_count
    page.folder_edit.setText(str(folder))
    page.kind_combo.setFocus()
    page.kind_combo.setCurrentIndex(page.kind_combo.findData(kind))
    qtbot.waitUntil(lambda: page.load_count > loads and not page.busy(), timeout=WAIT_MS)
    assert page.model.names() == ["nano", "vim"]
    assert wizard.profile().packages.source == SourceSpec(kind, str(folder))
    if kind is not SourceKind.TARBALLS:  # tarballs carry no metadata, so no conflicts
        click_package(qtbot, wizard, "vim")
        click_package(qtbot, wizard, "nano")
        assert "conflicts with nano" in table_index(page.table, "vim", STATUS).data()
        assert "conflicts with vim" in table_index(page.table, "nano", STATUS).data()
        assert "vim conflicts with nano" in page.problems_label.text()


def test_a_folder_that_is_not_a_source_shows_the_error(
    qtbot: Any, make_wizard: Maker, glaucus_repo: Path, tmp_path: Path
) -> None:
    wizard = make_wizard(glaucus_profile(glaucus_repo))
    page = wizard.packages_page
    page.set_source(SourceKind.GLAUCUS, str(tmp_path / "missing"))
    qtbot.waitUntil(lambda: not page.busy(), timeout=WAIT_MS)
    boxes = [b for b in page.findChildren(QMessageBox) if b.isVisible()]
    assert len(boxes) == 1 and "does not exist" in boxes[0].text()
    assert page.status_label.text() == "Could not load the package source."
    assert page.model.names() == [] and wizard.resolution() is None
    boxes[0].close()
