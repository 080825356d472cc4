"""The ISO preview with 20,000 entries: how long the GUI thread is blocked (run by `make bench`).

Loading runs on a worker thread; what is left on the GUI thread is building the tree model
and the first rows, and each search (filter, count, opening the folders of the matches).
"""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QTimer

from ui.preview_view import PreviewView

COUNT = 20_000
SEARCHES = ("f", "file-01", "file-0199", "sub3", "d005/sub", "")


def make_iso(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    for i in range(COUNT):
        path = tree / f"d{i // 500:03d}" / f"sub{(i // 50) % 10}" / f"file-{i:06d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(i))
    iso = tmp_path / "many.iso"
    subprocess.run(
        ["xorriso", "-as", "mkisofs", "-R", "-J", "-o", str(iso), str(tree)],
        capture_output=True,
        check=True,
    )
    return iso


@pytest.mark.benchmark
@pytest.mark.usefixtures("gui_switch_interval")
def test_preview_of_twenty_thousand_entries(qtbot: Any, tmp_path: Path) -> None:
    iso = make_iso(tmp_path)
    view = PreviewView()
    qtbot.addWidget(view)
    view.resize(1000, 720)
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
    started = time.perf_counter()
    with qtbot.waitSignal(view.loaded, timeout=120_000):
        view.load(iso)
    loaded = time.perf_counter() - started
    timer.stop()
    search_times = {}
    for text in SEARCHES:
        runs = []
        for _ in range(3):
            view.set_search("")
            began = time.perf_counter()
            view.set_search(text)
            runs.append(time.perf_counter() - began)
        search_times[text] = statistics.median(runs)
    view.shutdown()
    assert view.model.entry_count() == COUNT + COUNT // 500 * 11
    print(
        f"\npreview {COUNT} files: loaded in {loaded:.2f} s, longest GUI pause "
        f"{max(stalls):.3f} s; search "
        + ", ".join(f"{t!r} {s * 1000:.0f} ms" for t, s in search_times.items())
    )
