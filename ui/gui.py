"""Start the graphical app (`livesmith` with no arguments)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

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

# Qt platforms that need a display server, and how to tell one is there.
_DISPLAY_VARIABLE = {
    "xcb": "DISPLAY",
    "wayland": "WAYLAND_DISPLAY",
    "wayland-egl": "WAYLAND_DISPLAY",
}


def _has_display(platform: str, env: Mapping[str, str]) -> bool:
    variable = _DISPLAY_VARIABLE.get(platform)
    if variable is None:
        return True  # offscreen, vnc, eglfs, ...: no display server needed
    if env.get(variable):
        return True
    # Wayland clients fall back to the socket "wayland-0" in the runtime folder.
    runtime = env.get("XDG_RUNTIME_DIR")
    if platform == "xcb" or not runtime:
        return False
    return (Path(runtime) / "wayland-0").exists()


def display_problem(env: Mapping[str, str] = os.environ) -> str | None:
    """Why Qt could not open a window here, or None. Without this, Qt aborts the process
    (SIGABRT) and blames a missing library."""
    requested = [
        part.split(":")[0].strip()
        for part in env.get("QT_QPA_PLATFORM", "").split(";")
        if part.strip()
    ]
    platforms = requested or ["wayland", "xcb"]
    if any(_has_display(platform, env) for platform in platforms):
        return None
    needed = sorted({_DISPLAY_VARIABLE[p] for p in platforms if p in _DISPLAY_VARIABLE})
    return (
        f"there is no display to open a window on (the Qt platform "
        f"{' or '.join(platforms)} needs {' or '.join(needed)}, which is not set)"
    )


def run(argv: Sequence[str] = ()) -> int:
    sys.setswitchinterval(GUI_SWITCH_INTERVAL)
    existing = QApplication.instance()
    problem = None if existing is not None else display_problem()
    if problem is not None:
        print(
            f"livesmith: the graphical app cannot start: {problem}; start it from a desktop "
            "session, or use a subcommand (see `livesmith --help`)",
            file=sys.stderr,
        )
        return 1
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
