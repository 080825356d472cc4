"""PySide6 6.12.0 on Python 3.11 drops a reference to True/False on every bool signal and
aborts the interpreter (bool_dealloc) after some thousands of toggles; pyproject excludes it.
This runs the pattern every check box and wizard page uses, in a child process so an abort
fails this test instead of killing the suite."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication, QCheckBox
app = QApplication([])
class Sender(QObject):
    changed = Signal(bool)
sender = Sender()
seen = []
sender.changed.connect(seen.append)
box = QCheckBox()
box.toggled.connect(lambda on: None)
for i in range(300_000):
    sender.changed.emit(i % 2 == 0)
    if i % 10 == 0:
        box.setChecked(not box.isChecked())
print(len(seen))
"""


def test_many_bool_signals_do_not_crash_the_interpreter() -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "300000"
