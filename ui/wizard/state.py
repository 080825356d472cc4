"""What the wizard's pages share: the profile being composed, the package resolution, the
output path and the settings. Pages write the profile through `dataclasses.replace`; the
profile stays a frozen `Profile` at all times.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QSettings, Signal

from app.compose.profile import Profile
from app.packages.resolve import Resolution


class WizardState(QObject):
    profileChanged = Signal(object)  # Profile
    resolutionChanged = Signal(object)  # Resolution | None
    outputChanged = Signal(object)  # Path | None
    sourceLoaded = Signal()  # the Packages page (re)opened its package source

    def __init__(
        self,
        profile: Profile,
        settings: QSettings,
        output: Path | None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._profile = profile
        self._resolution: Resolution | None = None
        self._output = output
        self.settings = settings

    @property
    def profile(self) -> Profile:
        return self._profile

    def set_profile(self, profile: Profile) -> None:
        if profile != self._profile:
            self._profile = profile
            self.profileChanged.emit(profile)

    def update(self, section: str, **changes: Any) -> None:
        """Change fields of one section (e.g. update("boot", timeout=3))."""
        current = getattr(self._profile, section)
        self.set_profile(replace(self._profile, **{section: replace(current, **changes)}))

    @property
    def resolution(self) -> Resolution | None:
        return self._resolution

    def set_resolution(self, resolution: Resolution | None) -> None:
        self._resolution = resolution
        self.resolutionChanged.emit(resolution)

    def source_loaded(self) -> None:
        """Say that the package source was (re)opened: answers kept from before (the
        Review page's) may be out of date."""
        self.sourceLoaded.emit()

    @property
    def output(self) -> Path | None:
        return self._output

    def set_output(self, output: Path | None) -> None:
        if output != self._output:
            self._output = output
            self.outputChanged.emit(output)
