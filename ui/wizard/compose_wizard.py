"""The compose wizard: from a profile (built-in or loaded from TOML) to a checked build plan.

Pages, in order (`PageId`): Packages, Kernel and boot, System, Image, Review. Each page
writes its part of the profile into the shared `WizardState` through `dataclasses.replace`,
so `profile()` is always the frozen Profile the pages describe, and `output_path()` the ISO
to write.

Then Build (the pipeline on a worker thread, with its log) and Preview (the built ISO read
back). Review's Next is enabled only when every check passes; Build's only once an ISO was
built. While a build runs, the wizard's Cancel asks before stopping it.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Signal, Slot
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QWidget, QWizard

from app.compose.pipeline import BuildResult
from app.compose.profile import Profile
from app.packages.resolve import Resolution
from ui.settings import app_settings, last_output_folder
from ui.wizard.build_page import BuildPage
from ui.wizard.common import StatePage
from ui.wizard.image_page import ImagePage
from ui.wizard.kernel_page import KernelBootPage
from ui.wizard.packages_page import PackagesPage
from ui.wizard.preview_page import PreviewPage
from ui.wizard.review_page import ReviewPage
from ui.wizard.state import WizardState
from ui.wizard.system_page import SystemPage


class PageId(enum.IntEnum):
    PACKAGES = 0
    KERNEL_BOOT = 1
    SYSTEM = 2
    IMAGE = 3
    REVIEW = 4
    BUILD = 5
    PREVIEW = 6


PAGE_ORDER = tuple(PageId)


def default_output(profile: Profile, settings: QSettings) -> Path:
    """<profile name>.iso in the folder the last ISO went to (else the home folder)."""
    return last_output_folder(settings) / f"{profile.name or 'livesmith'}.iso"


class ComposeWizard(QWizard):
    profileChanged = Signal(object)  # Profile, after every edit on any page
    resolutionChanged = Signal(object)  # Resolution | None, after the packages resolve
    profileSaved = Signal(object)  # Path
    isoBuilt = Signal(object)  # Path of the new ISO
    writeRequested = Signal(object)  # Path of the ISO to write to a USB stick

    def __init__(
        self,
        profile: Profile,
        *,
        settings: QSettings | None = None,
        output: Path | None = None,
        parent: QWidget | None = None,
        build_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("composeWizard")
        self.setAccessibleName("Compose a live ISO")
        self.setWindowTitle("Compose a live ISO")
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage, True)
        self.resize(900, 680)
        settings = settings if settings is not None else app_settings()
        self.state = WizardState(
            profile,
            settings,
            output if output is not None else default_output(profile, settings),
            self,
        )
        self.state.profileChanged.connect(self.profileChanged)
        self.state.resolutionChanged.connect(self.resolutionChanged)
        self.packages_page = PackagesPage(self.state)
        self.kernel_page = KernelBootPage(self.state)
        self.system_page = SystemPage(self.state)
        self.image_page = ImagePage(self.state)
        self.review_page = ReviewPage(self.state)
        self.build_page = BuildPage(self.state, build_options=build_options)
        self.preview_page = PreviewPage(self.state)
        pages: dict[PageId, StatePage] = {
            PageId.PACKAGES: self.packages_page,
            PageId.KERNEL_BOOT: self.kernel_page,
            PageId.SYSTEM: self.system_page,
            PageId.IMAGE: self.image_page,
            PageId.REVIEW: self.review_page,
            PageId.BUILD: self.build_page,
            PageId.PREVIEW: self.preview_page,
        }
        for page_id, page in pages.items():
            page.setObjectName(f"page-{page_id.name.lower()}")
            self.setPage(page_id, page)
        self._pages = pages
        for which, text in (
            (QWizard.WizardButton.NextButton, "Next"),
            (QWizard.WizardButton.BackButton, "Back"),
            (QWizard.WizardButton.CancelButton, "Cancel"),
            (QWizard.WizardButton.FinishButton, "Finish"),
        ):
            self.button(which).setAccessibleName(text)
        self.review_page.setButtonText(QWizard.WizardButton.NextButton, "&Build")
        self.setButtonText(QWizard.WizardButton.FinishButton, "&Done")
        self.review_page.profileSaved.connect(self.profileSaved)
        self.build_page.built.connect(self._on_built)
        self.preview_page.view.writeRequested.connect(self.writeRequested)
        self.finished.connect(lambda _result: self.shutdown())

    @Slot(object)
    def _on_built(self, result: BuildResult) -> None:
        self.preview_page.show_iso(result.iso)
        self.isoBuilt.emit(result.iso)

    def is_building(self) -> bool:
        return self.build_page.is_building()

    def reject(self) -> None:
        # Cancel while building asks first (the build view's question); it never just drops
        # a running build.
        if self.build_page.is_building():
            self.build_page.view.request_cancel()
            return
        super().reject()

    def profile(self) -> Profile:
        """The profile the pages describe right now (frozen)."""
        return self.state.profile

    def output_path(self) -> Path | None:
        return self.state.output

    def set_output_path(self, path: Path | None) -> None:
        self.state.set_output(path)

    def resolution(self) -> Resolution | None:
        """The packages the selection resolves to, once the source is loaded."""
        return self.state.resolution

    def save_profile_to(self, path: Path) -> None:
        """Save the current profile as TOML (`load_profile` reads it back equal)."""
        self.review_page.save_profile_to(path)

    def shutdown(self) -> None:
        """Stop every page's background work and wait for it (the wizard goes away)."""
        for page in self._pages.values():
            page.shutdown()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)
