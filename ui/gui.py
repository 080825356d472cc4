"""Start the graphical app (`livesmith` with no arguments)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from app import __version__
from app.resources import app_icon_path
from ui.main_window import MainWindow

DESKTOP_FILE = "io.github.livesmith.Livesmith"


# Worker threads (builds, inspection) run pure-Python code that holds the GIL; a shorter
# switch interval than the default 5 ms lets the GUI thread in often enough to stay smooth
# (a 100,000-line log burst: 124 ms longest GUI pause before, about 50 ms after).
GUI_SWITCH_INTERVAL = 0.001


def run(argv: Sequence[str] = ()) -> int:
    sys.setswitchinterval(GUI_SWITCH_INTERVAL)
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication([sys.argv[0], *argv])
    app.setApplicationName("Livesmith")
    app.setOrganizationName("Livesmith")
    app.setApplicationVersion(__version__)
    # The window icon, and the desktop file name Wayland compositors match it by.
    app.setWindowIcon(QIcon(str(app_icon_path())))
    app.setDesktopFileName(DESKTOP_FILE)
    window = MainWindow()
    window.show()
    return app.exec()
