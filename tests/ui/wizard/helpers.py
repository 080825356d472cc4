"""Driving the wizard like a user: clicks on check boxes in the package table, page moves."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QModelIndex, QPoint, Qt
from PySide6.QtWidgets import QAbstractButton, QStyle, QStyleOptionViewItem, QTableView, QWizard

from tests.ui.wizard.conftest import WAIT_MS
from ui.wizard.compose_wizard import ComposeWizard, PageId
from ui.wizard.package_model import NAME


def table_index(table: QTableView, name: str, column: int = NAME) -> QModelIndex:
    model = table.model()
    for row in range(model.rowCount()):
        if model.index(row, NAME).data() == name:
            return model.index(row, column)
    raise AssertionError(f"{name} is not shown in the table")


def check_box_point(table: QTableView, index: QModelIndex) -> QPoint:
    """The centre of the item's check box, where a user clicks."""
    option = QStyleOptionViewItem()
    option.initFrom(table)
    option.rect = table.visualRect(index)
    option.features |= QStyleOptionViewItem.ViewItemFeature.HasCheckIndicator
    rect = table.style().subElementRect(
        QStyle.SubElement.SE_ItemViewItemCheckIndicator, option, table
    )
    return rect.center()


def click_package(qtbot: Any, wizard: ComposeWizard, name: str) -> None:
    """Tick or untick the package's check box with the mouse, then wait for the resolution."""
    page = wizard.packages_page
    table = page.table
    index = table_index(table, name)
    table.scrollTo(index)
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=check_box_point(table, index))
    wait_idle(qtbot, wizard)


def wait_idle(qtbot: Any, wizard: ComposeWizard) -> None:
    qtbot.waitUntil(lambda: not wizard.packages_page.busy(), timeout=WAIT_MS)


def check_state(wizard: ComposeWizard, name: str) -> Qt.CheckState:
    index = table_index(wizard.packages_page.table, name)
    return Qt.CheckState(index.data(Qt.ItemDataRole.CheckStateRole))


def go_to(qtbot: Any, wizard: ComposeWizard, page: PageId) -> None:
    """Press Next (or Back) until `page` shows, as a user would."""
    while wizard.currentId() != page:
        which = (
            QWizard.WizardButton.NextButton
            if wizard.currentId() < page
            else QWizard.WizardButton.BackButton
        )
        button = wizard.button(which)
        assert button.isEnabled(), f"{which} is disabled on page {wizard.currentId()}"
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def wait_checked(qtbot: Any, wizard: ComposeWizard) -> None:
    """Wait for the Review page's checks of the current profile to finish."""
    page = wizard.review_page
    qtbot.waitUntil(lambda: not page.checking() and page.last_check() is not None, timeout=WAIT_MS)


def click_box(qtbot: Any, button: QAbstractButton) -> None:
    """Click a check box or radio button on its indicator (its centre may lie past the text
    when a form stretches it)."""
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton, pos=QPoint(6, button.height() // 2))
