"""A question that can be withdrawn: a non-blocking "do this destructive thing?" box.

`Question` wraps `ui.dialogs.ask_destructive` and remembers what it asks about. The user's
answer runs `on_yes` or `on_no`. When what it asks about goes away before the user
answered (a drive unplugged while "Erase and write?" is open, a write that ended while
"Stop writing?" is open), `withdraw()` closes it as if never answered: neither runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtWidgets import QMessageBox, QWidget

from ui.dialogs import ask_destructive


class Question:
    def __init__(
        self,
        parent: QWidget,
        *,
        about: Any,
        on_yes: Callable[[], object],
        on_no: Callable[[], object] | None = None,
        **words: Any,
    ) -> None:
        self.about = about
        self._yes = False
        self.box: QMessageBox | None = ask_destructive(parent, on_yes=self._said_yes, **words)
        # After ask_destructive's own handler, which tells whether the answer was yes.
        self.box.finished.connect(lambda _result: self._answered(on_yes, on_no))

    @property
    def open(self) -> bool:
        return self.box is not None

    def _said_yes(self) -> None:
        self._yes = True

    def _answered(self, on_yes: Callable[[], object], on_no: Callable[[], object] | None) -> None:
        if self.box is None:
            return  # withdrawn
        self.box = None
        if self._yes:
            on_yes()
        elif on_no is not None:
            on_no()

    def withdraw(self) -> None:
        """Close the box as if never answered: nothing it asks about is done."""
        box, self.box = self.box, None
        if box is None:
            return
        box.finished.disconnect()
        box.reject()
        box.deleteLater()
