from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

from ui.recents import RecentFiles


def test_newest_first_without_duplicates_and_bounded(settings: QSettings, tmp_path: Path) -> None:
    files = [tmp_path / f"image{i}.iso" for i in range(5)]
    for f in files:
        f.write_bytes(b"x")
    recent = RecentFiles(settings, "recent/isos", limit=3)
    for f in (files[0], files[1], files[0], files[2], files[3]):
        recent.add(f)
    assert recent.paths() == [files[3], files[2], files[0]]


def test_survives_a_new_settings_object_and_forgets_deleted_files(
    settings: QSettings, tmp_path: Path
) -> None:
    kept, gone = tmp_path / "kept.toml", tmp_path / "gone.toml"
    kept.write_text("name = 'x'\n")
    gone.write_text("name = 'y'\n")
    RecentFiles(settings, "recent/profiles").add(kept)
    RecentFiles(settings, "recent/profiles").add(gone)
    settings.sync()
    gone.unlink()
    again = QSettings(settings.fileName(), QSettings.Format.IniFormat)
    assert RecentFiles(again, "recent/profiles").paths() == [kept]


def test_a_single_remembered_file_reads_back_as_a_list(settings: QSettings, tmp_path: Path) -> None:
    only = tmp_path / "only.iso"
    only.write_bytes(b"x")
    RecentFiles(settings, "recent/isos").add(only)
    settings.sync()
    again = QSettings(settings.fileName(), QSettings.Format.IniFormat)
    assert RecentFiles(again, "recent/isos").paths() == [only]
