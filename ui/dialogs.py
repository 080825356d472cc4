"""Questions before something that cannot be undone: one shape for every such dialog.

The box is window-modal and opened without blocking (`open()`), so the event loop and any
running work go on, and tests can find it by object name and answer it. The safe button is
the default and the Escape button: Enter never erases, stops or quits.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QMessageBox, QWidget


def ask_destructive(parent: QWidget, *, title: str, text: str, act: str,
                    on_yes: Callable[[], object], name: str, act_name: str,
                    keep: str = "Continue", informative: str = "",
                    icon: QMessageBox.Icon = QMessageBox.Icon.Question,
                    on_closed: Callable[[], object] | None = None) -> QMessageBox:
    """Ask `text`; `on_yes()` runs only if the user chose the `act` button.

    `on_closed()` runs after any answer (before `on_yes`), e.g. to forget the box.
    """
    box = QMessageBox(icon, title, text, QMessageBox.StandardButton.NoButton, parent)
    box.setObjectName(name)
    box.setAccessibleName(title)
    if informative:
        box.setInformativeText(informative)
    yes = box.addButton(act, QMessageBox.ButtonRole.DestructiveRole)
    yes.setObjectName(act_name)
    no = box.addButton(keep, QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(no)
    box.setEscapeButton(no)

    def answered(_result: int) -> None:
        box.deleteLater()
        if on_closed is not None:
            on_closed()
        if box.clickedButton() is yes:
            on_yes()

    box.finished.connect(answered)
    box.open()
    return box
