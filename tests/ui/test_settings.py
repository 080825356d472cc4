"""Remembered package source folders, in a temporary ini file."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

from app.packages.model import SourceKind
from ui.settings import last_source_folder, remember_source_folder


def test_folders_are_remembered_per_kind_and_survive_a_new_settings_object(tmp_path: Path) -> None:
    ini = str(tmp_path / "livesmith.ini")
    settings = QSettings(ini, QSettings.Format.IniFormat)
    assert last_source_folder(settings, SourceKind.ARCH) == ""
    remember_source_folder(settings, SourceKind.ARCH, "/srv/arch")
    remember_source_folder(settings, SourceKind.DEB, "/srv/debs")
    remember_source_folder(settings, SourceKind.APT, "/ignored")
    reopened = QSettings(ini, QSettings.Format.IniFormat)
    assert last_source_folder(reopened, SourceKind.ARCH) == "/srv/arch"
    assert last_source_folder(reopened, SourceKind.DEB) == "/srv/debs"
    assert last_source_folder(reopened, SourceKind.APT) == ""
    assert "last_folder" in Path(ini).read_text()
