"""Recently used profiles and ISO images, remembered in QSettings, newest first."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings

RECENT_LIMIT = 8


class RecentFiles:
    """A most-recently-used list of file paths under one settings key."""

    def __init__(self, settings: QSettings, key: str, *, limit: int = RECENT_LIMIT) -> None:
        self.settings = settings
        self.key = key
        self.limit = limit

    def _stored(self) -> list[str]:
        value = self.settings.value(self.key, [])
        if isinstance(value, str):  # QSettings gives a bare string for a one-item list
            return [value] if value else []
        return [str(v) for v in value] if isinstance(value, list) else []

    def add(self, path: str | os.PathLike[str]) -> None:
        text = str(Path(path).absolute())
        paths = [text, *(p for p in self._stored() if p != text)][: self.limit]
        self.settings.setValue(self.key, paths)

    def paths(self) -> list[Path]:
        """The remembered files that still exist, newest first."""
        return [Path(p) for p in self._stored() if Path(p).is_file()]

    def clear(self) -> None:
        self.settings.remove(self.key)
