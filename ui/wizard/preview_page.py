"""Wizard page 7, Preview: the built ISO's tree, boot entries and partitions, read back
from the file (the inspection core), with "Write to USB…" handing it to the writer."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QVBoxLayout, QWidget

from ui.preview_view import PreviewView
from ui.wizard.common import StatePage
from ui.wizard.state import WizardState


class PreviewPage(StatePage):
    def __init__(self, state: WizardState, parent: QWidget | None = None) -> None:
        super().__init__(state, parent)
        self.setTitle("Preview")
        self.setSubTitle(
            "What is on the new ISO, read back from the file. Write it to a USB "
            "stick, or extract a file to look at it."
        )
        self.iso: Path | None = None
        self._stale = False  # a new build replaced the file: read it again
        self.view = PreviewView()
        layout = QVBoxLayout(self)
        layout.addWidget(self.view, 1)

    def show_iso(self, iso: Path) -> None:
        self.iso = Path(iso)
        self._stale = True

    def initializePage(self) -> None:
        if self.iso is not None and self._stale:
            self._stale = False
            self.view.load(self.iso)

    def shutdown(self) -> None:
        self.view.shutdown()
