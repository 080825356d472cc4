"""Starting the GUI: a missing display is said plainly instead of Qt aborting."""

from __future__ import annotations

from pathlib import Path

from ui.gui import display_problem


def test_a_display_of_either_kind_or_a_platform_without_one_is_enough(tmp_path: Path) -> None:
    assert display_problem({"DISPLAY": ":0"}) is None
    assert display_problem({"WAYLAND_DISPLAY": "wayland-1"}) is None
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}) is None
    assert display_problem({"QT_QPA_PLATFORM": "wayland;xcb", "DISPLAY": ":1"}) is None
    (tmp_path / "wayland-0").touch()
    assert display_problem({"XDG_RUNTIME_DIR": str(tmp_path)}) is None


def test_no_display_for_the_platforms_asked_for_is_a_problem(tmp_path: Path) -> None:
    assert "no display" in (display_problem({}) or "")
    assert display_problem({"QT_QPA_PLATFORM": "xcb", "WAYLAND_DISPLAY": "wayland-0"})
    assert display_problem({"QT_QPA_PLATFORM": "wayland:fullscreen", "DISPLAY": ":0"})
    # An X11-only request does not count the Wayland socket fallback.
    (tmp_path / "wayland-0").touch()
    assert display_problem({"QT_QPA_PLATFORM": "xcb", "XDG_RUNTIME_DIR": str(tmp_path)})
