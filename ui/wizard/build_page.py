"""Wizard page 6, Build: the pipeline runs on a worker thread while the page shows it.

Entering the page starts the build of the wizard's profile into its output path. While it
runs, Back is disabled and the wizard's Cancel asks before stopping it; Next (to the
preview) is enabled once an ISO was built. After a failure or a cancel, "Build again"
starts over and Back leads to the options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from app.compose.pipeline import BuildResult
from ui.build_view import BuildView
from ui.settings import remember_output_folder
from ui.wizard.common import StatePage, named
from ui.wizard.state import WizardState


class BuildPage(StatePage):
    built = Signal(object)  # BuildResult

    def __init__(
        self,
        state: WizardState,
        parent: QWidget | None = None,
        *,
        build_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(state, parent)
        self.setTitle("Build")
        self.setSubTitle(
            "The live ISO is being built. You can follow every stage and its "
            "log; cancelling removes the unfinished ISO."
        )
        self.build_options = dict(build_options or {})  # extra run_build arguments (tests)
        self.view = BuildView()
        self.again_button = named(QPushButton("Build &again"), "buildAgain", "Build the ISO again")
        self.again_button.setVisible(False)
        self.again_button.clicked.connect(self.start_build)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.again_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.view, 1)
        layout.addLayout(row)
        self.view.succeeded.connect(self._on_succeeded)
        self.view.failed.connect(lambda _exc: self._on_ended())
        self.view.cancelled.connect(self._on_ended)
        self.view.runningChanged.connect(self._on_running)

    @property
    def result(self) -> BuildResult | None:
        return self.view.result

    def initializePage(self) -> None:
        if not self.view.is_running():
            self.start_build()

    @Slot()
    def start_build(self) -> None:
        output = self.state.output
        if output is None or self.view.is_running():
            return
        self.again_button.setVisible(False)
        remember_output_folder(self.state.settings, Path(output).parent)
        self.view.start(self.state.profile, Path(output), **self.build_options)
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return not self.view.is_running() and self.view.result is not None

    def is_building(self) -> bool:
        return self.view.is_running()

    @Slot(bool)
    def _on_running(self, running: bool) -> None:
        # QWizard re-enables Back whenever it updates its buttons, unless the page before is
        # a commit page: so the page before is one while the build runs.
        wizard = self.wizard()
        if wizard is not None:
            mine = next(i for i in wizard.pageIds() if wizard.page(i) is self)
            earlier = [i for i in wizard.pageIds() if i < mine]
            if earlier:
                wizard.page(max(earlier)).setCommitPage(running)
        self.completeChanged.emit()

    @Slot(object)
    def _on_succeeded(self, result: BuildResult) -> None:
        self._on_ended()
        self.built.emit(result)

    def _on_ended(self) -> None:
        self.again_button.setVisible(self.view.result is None)
        self._on_running(False)

    def shutdown(self) -> None:
        self.view.shutdown()
