"""Time to the first level of the preview tree for a 50,000-file ISO (run by `make bench`)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QTimer

from tests.ui.test_preview_large import COUNT, first_level_seconds, make_large_iso
from ui.preview_view import PreviewView


@pytest.mark.benchmark
@pytest.mark.usefixtures("gui_switch_interval")
def test_first_level_of_fifty_thousand_files(qtbot: Any, tmp_path: Path) -> None:
    iso = make_large_iso(tmp_path)
    view = PreviewView()
    qtbot.addWidget(view)
    view.show()
    stalls: list[float] = []
    last = time.perf_counter()

    def tick() -> None:  # the GUI thread's longest pause is the longest gap between ticks
        nonlocal last
        now = time.perf_counter()
        stalls.append(now - last)
        last = now

    timer = QTimer()
    timer.setInterval(1)
    timer.timeout.connect(tick)
    timer.start()
    times = []
    for _ in range(3):
        view.model.set_entries([])
        last = time.perf_counter()
        times.append(first_level_seconds(qtbot, view, iso))
        qtbot.waitUntil(lambda: not view.is_loading(), timeout=60_000)
    timer.stop()
    view.shutdown()
    print(
        f"\npreview {COUNT} files: first level in {statistics.median(times):.2f} s "
        f"(runs {', '.join(f'{t:.2f}' for t in times)}), longest GUI pause {max(stalls):.3f} s"
    )
