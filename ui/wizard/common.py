"""Small helpers the wizard pages share."""

from __future__ import annotations

from typing import TypeVar

from PySide6.QtWidgets import QLabel, QWidget, QWizardPage

from ui.wizard.state import WizardState

W = TypeVar("W", bound=QWidget)


def named(widget: W, object_name: str, accessible: str) -> W:
    """Give a widget its object name (tests, style) and accessible name (screen readers)."""
    widget.setObjectName(object_name)
    widget.setAccessibleName(accessible)
    return widget


def buddy_label(text: str, buddy: QWidget) -> QLabel:
    """A form label whose &-mnemonic moves the focus to `buddy` (for rows holding layouts)."""
    label = QLabel(text)
    label.setBuddy(buddy)
    return label


class StatePage(QWizardPage):
    """A wizard page that reads and writes the shared WizardState."""

    def __init__(self, state: WizardState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self._loading = False  # True while widgets are filled from the profile

    def shutdown(self) -> None:
        """Stop background work (the wizard is closing)."""
