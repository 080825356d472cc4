"""Every input has an accessible name, and Tab walks each page in reading order."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLineEdit,
    QPlainTextEdit,
    QWidget,
)

from tests.ui.wizard.conftest import glaucus_profile
from tests.ui.wizard.helpers import go_to
from ui.wizard.compose_wizard import PAGE_ORDER, ComposeWizard, PageId

Maker = Callable[..., ComposeWizard]
INPUTS = (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSpinBox,
    QComboBox,
    QLineEdit,
    QPlainTextEdit,
)


def inside_input(widget: QWidget, page: QWidget) -> bool:
    """Part of another input (a spin box's edit, a combo box's list, a table's header)."""
    parent = widget.parentWidget()
    while parent is not None and parent is not page:
        if isinstance(parent, INPUTS):
            return True
        parent = parent.parentWidget()
    return False


def test_every_input_on_every_page_has_an_accessible_name(
    make_wizard: Maker, glaucus_repo: Path
) -> None:
    wizard = make_wizard(glaucus_profile(glaucus_repo, "busybox"))
    assert list(PAGE_ORDER) == list(range(7)) and wizard.pageIds() == list(PAGE_ORDER)
    checked = 0
    for page_id in PAGE_ORDER:
        page = wizard.page(page_id)
        for widget in page.findChildren(QWidget):
            if isinstance(widget, INPUTS) and not inside_input(widget, page):
                assert widget.accessibleName(), f"{page.title()}: {widget!r} has no name"
                assert widget.objectName(), f"{page.title()}: {widget!r} has no object name"
                checked += 1
    assert checked > 30


def tab_walk(qtbot: Any, start: QWidget, count: int) -> list[str]:
    start.setFocus()
    names = [start.objectName()]
    for _ in range(count):
        widget = QApplication.focusWidget()
        assert widget is not None
        qtbot.keyClick(widget, Qt.Key.Key_Tab)
        focused = QApplication.focusWidget()
        assert focused is not None
        names.append(focused.objectName())
    return names


@pytest.mark.parametrize(
    ("page_id", "first", "expected"),
    [
        (
            PageId.PACKAGES,
            "sourceKind",
            [
                "sourceKind",
                "sourceFolder",
                "browseSource",
                "loadSource",
                "addPackage",
                "addPackageButton",
                "followDependencies",
                "packageSearch",
                "packageTable",
            ],
        ),
        (
            PageId.KERNEL_BOOT,
            "kernelPackage",
            [
                "kernelPackage",
                "bootBios",
                "bootUefi",
                "bootTimeout",
                "bootCmdline",
                "bootCopyToRam",
                "bootSafe",
            ],
        ),
        (
            PageId.SYSTEM,
            "profileName",
            [
                "profileName",
                "volumeLabel",
                "hostname",
                "rootPassword",
                "userName",
                "userPassword",
                "autologin",
                "sudo",
                "userGroups",
                "issueText",
                "issuePreview",
                "overlayFolder",
                "browseOverlay",
                "timezone",
                "locale",
                "keyboard",
                "enableUnits",
                "disableUnits",
                "firstBootScript",
                "browseFirstBoot",
            ],
        ),
        (
            PageId.IMAGE,
            "format-squashfs",
            ["format-squashfs", "compressor", "defaultLevel", "compressionLevel", "carryPackages"],
        ),
        (
            PageId.REVIEW,
            "problemList",
            [
                "problemList",
                "reviewSummary",
                "plannedTree",
                "outputPath",
                "browseOutput",
                "saveProfile",
            ],
        ),
    ],
)
def test_tab_walks_the_page_in_reading_order(
    qtbot: Any,
    make_wizard: Maker,
    glaucus_repo: Path,
    page_id: PageId,
    first: str,
    expected: list[str],
) -> None:
    wizard = make_wizard(glaucus_profile(glaucus_repo, "busybox"))
    go_to(qtbot, wizard, page_id)
    wizard.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is wizard)
    page = wizard.currentPage()
    if page_id is PageId.REVIEW:
        qtbot.waitUntil(
            lambda: (
                wizard.review_page.problem_list.isVisible()
                or wizard.review_page.last_check() is not None
            )
        )
        wizard.review_page.problem_list.setVisible(True)
    if page_id is PageId.IMAGE:  # the level box takes the focus only when it can be used
        wizard.image_page.default_level_check.setChecked(False)
    start = page.findChild(QWidget, first)
    assert start is not None
    assert tab_walk(qtbot, start, len(expected) - 1) == expected
