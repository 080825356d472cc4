"""Start the graphical app (`livesmith` with no arguments)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from PySide6.QtWidgets import QApplication

from app import __version__
from ui.main_window import MainWindow


def run(argv: Sequence[str] = ()) -> int:
    app = QApplication.instance() or QApplication([sys.argv[0], *argv])
    app.setApplicationName("Livesmith")
    app.setOrganizationName("Livesmith")
    app.setApplicationVersion(__version__)
    window = MainWindow()
    window.show()
    return app.exec()
