"""What the GUI remembers between runs, through QSettings.

Every function takes the QSettings to use, so tests pass one backed by a temporary ini
file (`QSettings(path, QSettings.Format.IniFormat)`) and never touch the user's settings.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

from app.packages.model import SourceKind

ORGANIZATION = "Livesmith"
APPLICATION = "Livesmith"


def app_settings() -> QSettings:
    """The user's settings (~/.config/Livesmith/Livesmith.conf)."""
    return QSettings(ORGANIZATION, APPLICATION)


def _source_key(kind: SourceKind) -> str:
    return f"packages/last_folder/{kind.value}"


def last_source_folder(settings: QSettings, kind: SourceKind) -> str:
    """The folder last loaded for this kind of package source, or ""."""
    value = settings.value(_source_key(kind), "")
    return value if isinstance(value, str) else ""


def remember_source_folder(settings: QSettings, kind: SourceKind, folder: str) -> None:
    if kind is SourceKind.APT or not folder:
        return  # apt has no folder
    settings.setValue(_source_key(kind), folder)
    settings.sync()


OUTPUT_FOLDER_KEY = "build/last_output_folder"


def last_output_folder(settings: QSettings) -> Path:
    """The folder the last ISO was built into (if it still exists), else the home folder."""
    value = settings.value(OUTPUT_FOLDER_KEY, "")
    folder = Path(value) if isinstance(value, str) and value else None
    return folder if folder is not None and folder.is_dir() else Path.home()


def remember_output_folder(settings: QSettings, folder: Path) -> None:
    settings.setValue(OUTPUT_FOLDER_KEY, str(folder))
    settings.sync()


TEST_BEFORE_WRITING = "writer/test_before_writing"


def test_before_writing(settings: QSettings) -> bool:
    """Whether the writer runs the quick fake-capacity check before writing a stick."""
    return str(settings.value(TEST_BEFORE_WRITING, "false")).lower() in ("true", "1")


def remember_test_before_writing(settings: QSettings, on: bool) -> None:
    settings.setValue(TEST_BEFORE_WRITING, "true" if on else "false")
