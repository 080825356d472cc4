"""Shared set-up of the compose wizard tests: real fixture package sources, a settings file
in tmp_path, and wizards that are shown like a user would see them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QSettings

from app.compose.profile import IsoOptions, KernelOptions, PackageOptions, Profile
from app.packages.model import SourceKind, SourceSpec
from tests.app.packages.fixtures import FixturePackage, text_package
from tests.support.live_fixtures import live_glaucus_repo
from ui.wizard.compose_wizard import ComposeWizard

WAIT_MS = 20_000  # loading and checking take well under a second; this is the upper bound


def extra_packages() -> list[FixturePackage]:
    return [
        text_package("docs", "2.1", depends=("libdocs",), extra={"description": "Handbook pages"}),
        text_package("libdocs", "2.0", extra={"description": "Handbook library"}),
        text_package(
            "broken", "0.1", depends=("ghost",), extra={"description": "Needs a package nobody has"}
        ),
    ]


@pytest.fixture(scope="session")
def glaucus_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """busybox and a real kernel ("linux"), plus docs -> libdocs and broken -> ghost."""
    return live_glaucus_repo(tmp_path_factory.mktemp("wizard-repo"), *extra_packages())


@pytest.fixture
def settings(tmp_path: Path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


def glaucus_profile(repo: Path, *packages: str, **changes: Any) -> Profile:
    profile = Profile(
        name="wizard-test",
        packages=PackageOptions(SourceSpec(SourceKind.GLAUCUS, str(repo)), packages),
        kernel=KernelOptions(),
        iso=IsoOptions(label="WIZARD"),
    )
    return profile.with_changes(**changes)


@pytest.fixture
def make_wizard(
    qtbot: Any, settings: QSettings, tmp_path: Path
) -> Iterator[Callable[..., ComposeWizard]]:
    made: list[ComposeWizard] = []

    def make(
        profile: Profile, *, wait_loaded: bool = True, output: Path | None = None
    ) -> ComposeWizard:
        wizard = ComposeWizard(
            profile, settings=settings, output=output or tmp_path / "out" / "live.iso"
        )
        qtbot.addWidget(wizard)
        made.append(wizard)
        wizard.show()
        if wait_loaded:
            page = wizard.packages_page
            qtbot.waitUntil(lambda: page.load_count > 0 and not page.busy(), timeout=WAIT_MS)
        return wizard

    yield make
    for wizard in made:
        wizard.shutdown()
