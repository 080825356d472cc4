"""The preview of a 50,000-file ISO: its first level shows, and folders fill when opened."""

from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from ui.preview_view import PreviewView

COUNT = 50_000


def make_large_iso(root: Path, count: int = COUNT) -> Path:
    """`count` files of 0-700 bytes in nested folders (a000/b0/c0/file-000000.txt)."""
    rnd = random.Random(1)
    tree = root / "tree"
    for i in range(count):
        folder = tree / f"a{i // 2500:03d}" / f"b{(i // 250) % 10}" / f"c{(i // 25) % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"file-{i:06d}.txt").write_bytes(b"x" * rnd.randint(0, 700))
    iso = root / "large.iso"
    subprocess.run(
        ["xorriso", "-as", "mkisofs", "-R", "-J", "-o", str(iso), str(tree)],
        capture_output=True,
        check=True,
    )
    return iso


@pytest.fixture(scope="module")
def large_iso(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_large_iso(tmp_path_factory.mktemp("large"))


def first_level_seconds(qtbot: Any, view: PreviewView, iso: Path) -> float:
    started = time.perf_counter()
    view.load(iso)
    qtbot.waitUntil(lambda: view.proxy.rowCount() > 0, timeout=60_000)
    return time.perf_counter() - started


def test_first_level_shows_and_a_folder_fills_when_opened(qtbot: Any, large_iso: Path) -> None:
    view = PreviewView()
    qtbot.addWidget(view)
    view.show()
    first_level_seconds(qtbot, view, large_iso)
    assert view.proxy.rowCount() == COUNT // 2500  # a000 … a019
    top = view.proxy.index(0, 0)
    view.tree.expand(top)  # opened during the first look: still open once all is read
    assert view.proxy.rowCount(top) == 10  # b0 … b9
    qtbot.waitUntil(lambda: not view.is_loading(), timeout=60_000)
    top = view.proxy.mapFromSource(view.model.index_of("/a000"))
    assert view.tree.isExpanded(top)
    inner = view.proxy.mapFromSource(view.model.index_of("/a000/b0/c0"))
    view.tree.expand(inner)
    assert view.proxy.rowCount(inner) == 25
    assert view.model.entry_count() == COUNT + 20 + 200 + 2000
    view.shutdown()
