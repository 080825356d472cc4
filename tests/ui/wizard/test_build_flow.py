"""The whole wizard, driven like a user: choose packages, options, review, build a RAM-mode
ISO from real fixture packages on a worker thread, then preview the ISO's real tree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QPushButton, QWizard

from app.compose.profile import PackageOptions, RootImageFormat
from app.iso.inspect import inspect_iso
from tests.ui.wizard.conftest import glaucus_profile
from tests.ui.wizard.helpers import click_box, click_package, go_to, wait_checked
from ui.build_view import StageState
from ui.wizard.compose_wizard import ComposeWizard, PageId

BUILD_MS = 240_000  # a RAM-mode fixture build takes seconds; TCG-free, but CI may be slow


@pytest.fixture
def wizard(qtbot: Any, settings: Any, glaucus_repo: Path, tmp_path: Path) -> ComposeWizard:
    profile = glaucus_profile(glaucus_repo).with_changes(
        packages=PackageOptions(glaucus_profile(glaucus_repo).packages.source, ())
    )
    made = ComposeWizard(
        profile,
        settings=settings,
        output=tmp_path / "out" / "live.iso",
        build_options={"cache_dir": tmp_path / "cache"},
    )
    (tmp_path / "out").mkdir()
    qtbot.addWidget(made)
    made.show()
    page = made.packages_page
    qtbot.waitUntil(lambda: page.load_count > 0 and not page.busy(), timeout=20_000)
    yield made
    made.shutdown()


def compose_ram_iso(qtbot: Any, wizard: ComposeWizard) -> None:
    """Packages -> kernel -> system -> image (RAM) -> review, all checks passing."""
    for name in ("busybox", "linux", "docs"):
        click_package(qtbot, wizard, name)
    go_to(qtbot, wizard, PageId.SYSTEM)
    wizard.system_page.label_edit.selectAll()
    qtbot.keyClicks(wizard.system_page.label_edit, "WIZARD_RAM")
    go_to(qtbot, wizard, PageId.IMAGE)
    click_box(qtbot, wizard.image_page.format_buttons[RootImageFormat.RAM])
    go_to(qtbot, wizard, PageId.REVIEW)
    wait_checked(qtbot, wizard)
    assert wizard.review_page.problems() == []


def press_next(qtbot: Any, wizard: ComposeWizard) -> None:
    button = wizard.button(QWizard.WizardButton.NextButton)
    assert button.isEnabled()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def test_the_wizard_builds_a_ram_iso_and_previews_its_tree(
    qtbot: Any, wizard: ComposeWizard
) -> None:
    compose_ram_iso(qtbot, wizard)
    assert wizard.button(QWizard.WizardButton.NextButton).text().replace("&", "") == "Build"
    built: list[Path] = []
    wizard.isoBuilt.connect(built.append)
    press_next(qtbot, wizard)
    assert wizard.currentId() == PageId.BUILD
    page = wizard.build_page
    assert page.is_building() and not page.isComplete()
    assert not wizard.button(QWizard.WizardButton.BackButton).isEnabled()
    qtbot.waitUntil(lambda: not page.is_building(), timeout=BUILD_MS)
    output = wizard.output_path()
    assert output is not None and output.is_file() and built == [output]
    assert set(page.view.stage_states().values()) == {StageState.DONE}
    logged = "\n".join(entry.text for entry in page.view.log_buffer.entries())
    assert "built " in logged and str(output) in logged  # the pipeline's own lines
    assert page.isComplete() and wizard.button(QWizard.WizardButton.BackButton).isEnabled()

    press_next(qtbot, wizard)
    assert wizard.currentId() == PageId.PREVIEW
    view = wizard.preview_page.view
    qtbot.waitUntil(lambda: view.report() is not None, timeout=60_000)
    report = view.report()
    assert report is not None and view.path() == output
    real = inspect_iso(output)
    assert {e.path for e in report.files} == {e.path for e in real.files}
    assert {"/live/vmlinuz", "/live/initramfs.img"} <= {e.path for e in report.files}
    assert view.model.entry_count() == len(real.files) - 1  # every entry below the root
    assert report.label == "WIZARD_RAM"

    asked: list[Path] = []
    wizard.writeRequested.connect(asked.append)
    qtbot.mouseClick(view.write_button, Qt.MouseButton.LeftButton)
    assert asked == [output]


def test_cancel_during_the_build_leaves_no_iso_and_the_wizard_usable(
    qtbot: Any, wizard: ComposeWizard
) -> None:
    compose_ram_iso(qtbot, wizard)
    output = wizard.output_path()
    assert output is not None
    press_next(qtbot, wizard)
    page = wizard.build_page
    assert page.is_building()
    # The wizard's Cancel asks first; "No" keeps building.
    qtbot.mouseClick(wizard.button(QWizard.WizardButton.CancelButton), Qt.MouseButton.LeftButton)
    box = page.view.confirm_box
    assert isinstance(box, QMessageBox) and box.isVisible()
    box.escapeButton().click()
    assert page.is_building() and wizard.isVisible()
    qtbot.mouseClick(wizard.button(QWizard.WizardButton.CancelButton), Qt.MouseButton.LeftButton)
    page.view.confirm_box.findChild(QPushButton, "confirmStopBuild").click()
    qtbot.waitUntil(lambda: not page.is_building(), timeout=BUILD_MS)
    assert not output.exists()
    assert not any(p.name.endswith(".iso") for p in output.parent.iterdir())
    assert StageState.CANCELLED in page.view.stage_states().values()
    assert wizard.isVisible() and wizard.currentId() == PageId.BUILD
    assert page.again_button.isVisible() and not page.isComplete()

    # Usable again: back to the options, then build for real.
    go_to(qtbot, wizard, PageId.REVIEW)
    wait_checked(qtbot, wizard)
    press_next(qtbot, wizard)
    qtbot.waitUntil(lambda: not page.is_building(), timeout=BUILD_MS)
    assert output.is_file() and page.isComplete()


def test_the_next_wizard_suggests_the_folder_the_last_iso_went_to(
    qtbot: Any, wizard: ComposeWizard, settings: Any, tmp_path: Path
) -> None:
    compose_ram_iso(qtbot, wizard)
    press_next(qtbot, wizard)
    qtbot.waitUntil(lambda: not wizard.build_page.is_building(), timeout=BUILD_MS)
    again = ComposeWizard(wizard.profile(), settings=settings)
    qtbot.addWidget(again)
    assert again.output_path() == tmp_path / "out" / f"{wizard.profile().name}.iso"
    again.shutdown()
