"""What the screenshot scripts share: re-running themselves under Xvfb with the real xcb
platform, and letting the event loop run until the GUI shows what is to be photographed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SCREEN = (1280, 800)


def rerun_under_xvfb(script: str, *args: str, wrapper: Sequence[str] = ()) -> None:
    """Run `script` again on a fresh Xvfb screen (`xvfb-run`, package xvfb)."""
    command = ["xvfb-run", "-a", "-s", f"-screen 0 {SCREEN[0]}x{SCREEN[1]}x24", *wrapper,
               sys.executable, str(Path(script).resolve()), *args]
    env = dict(os.environ, QT_QPA_PLATFORM="xcb", PYTHONPATH=str(ROOT))
    subprocess.run(command, check=True, env=env, cwd=ROOT)


def settle(app: object, seconds: float = 0.3) -> None:
    """Process events for a while: layouts, repaints and queued signals land."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()  # type: ignore[attr-defined]
        time.sleep(0.01)


def wait(app: object, condition: Callable[[], object], timeout: float = 120.0) -> None:
    """Process events until `condition()` holds; TimeoutError after `timeout` seconds."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the GUI did not reach the state to photograph")
        settle(app, 0.02)
