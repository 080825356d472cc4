"""The Debian archive settings on the Packages page: shown for apt and .deb folders, typed into the profile,
checked as they are typed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt

from app.compose.install.debian import host_suite
from app.compose.profile import InstallMethod, PackageOptions, Profile
from app.packages.model import SourceKind, SourceSpec
from tests.app.packages.fixtures import make_arch_folder
from tests.ui.wizard.conftest import glaucus_profile
from tests.ui.wizard.test_packages_page import conflicting
from ui.wizard.compose_wizard import ComposeWizard

Maker = Callable[..., ComposeWizard]


def test_the_apt_source_and_deb_folders_show_the_debian_settings(
    qtbot: Any, make_wizard: Maker, glaucus_repo: Path
) -> None:
    page = make_wizard(glaucus_profile(glaucus_repo)).packages_page
    assert not page.debian_options.isVisibleTo(page)
    page.kind_combo.setCurrentIndex(page.kind_combo.findData(SourceKind.APT))
    assert page.debian_options.isVisibleTo(page)
    page.kind_combo.setCurrentIndex(page.kind_combo.findData(SourceKind.DEB))
    assert page.debian_options.isVisibleTo(page)  # a local repository beside the suite
    page.kind_combo.setCurrentIndex(page.kind_combo.findData(SourceKind.ARCH))
    assert not page.debian_options.isVisibleTo(page)


def test_suite_mirror_components_and_method_go_into_the_profile(
    qtbot: Any, make_wizard: Maker
) -> None:
    profile = Profile("debian", packages=PackageOptions(SourceSpec(SourceKind.APT), ("bash",)))
    wizard = make_wizard(profile, wait_loaded=False)
    options = wizard.packages_page.debian_options
    assert host_suite() in options.suite_edit.placeholderText()  # empty means this machine's

    qtbot.keyClicks(options.suite_edit, "trixie")
    qtbot.keyClicks(options.mirror_edit, "http://deb.debian.org/debian")
    qtbot.keyClicks(options.components_edit, "main, non-free-firmware")
    options.method_combo.setCurrentIndex(options.method_combo.findData(InstallMethod.UNPACK))
    packages = wizard.profile().packages
    assert packages.suite == "trixie" and packages.mirror == "http://deb.debian.org/debian"
    assert packages.components == ("main", "non-free-firmware")
    assert packages.install is InstallMethod.UNPACK and not packages.uses_mmdebstrap
    assert not options.problems_label.isVisibleTo(options)

    options.suite_edit.clear()
    qtbot.keyClicks(options.suite_edit, "Trixie!")
    qtbot.keyClick(options.mirror_edit, Qt.Key.Key_Home)
    qtbot.keyClicks(options.mirror_edit, "ftp")
    shown = options.problems_label.text()
    assert "'Trixie!' is not a suite name" in shown
    assert "is not an http(s):// or file:// URL" in shown
    assert options.problems_label.isVisibleTo(options)


def test_a_loaded_profile_fills_the_fields(qtbot: Any, make_wizard: Maker) -> None:
    packages = PackageOptions(
        SourceSpec(SourceKind.APT),
        ("bash",),
        install=InstallMethod.MMDEBSTRAP,
        suite="noble",
        mirror="http://archive.ubuntu.com/ubuntu",
        components=("main", "universe"),
    )
    options = make_wizard(Profile("u", packages=packages), wait_loaded=False).packages_page
    fields = options.debian_options
    assert fields.suite_edit.text() == "noble"
    assert fields.mirror_edit.text() == "http://archive.ubuntu.com/ubuntu"
    assert fields.components_edit.text() == "main universe"
    assert fields.method_combo.currentData() is InstallMethod.MMDEBSTRAP


def test_a_profile_installing_arch_packages_with_pacman_opens_and_keeps_its_method(
    qtbot: Any, make_wizard: Maker
) -> None:
    packages = PackageOptions(
        SourceSpec(SourceKind.ARCH, "/srv/arch"), ("busybox",), install=InstallMethod.PACMAN
    )
    wizard = make_wizard(Profile("a", packages=packages), wait_loaded=False)
    fields = wizard.packages_page.debian_options
    assert not fields.isVisibleTo(wizard.packages_page)  # Debian settings: apt only
    assert fields.method_combo.currentData() is InstallMethod.AUTO
    assert wizard.profile().packages.install is InstallMethod.PACMAN


def test_arch_sources_offer_pacman_and_keep_the_choice(
    qtbot: Any, make_wizard: Maker, glaucus_repo: Path, tmp_path: Path
) -> None:
    folder = make_arch_folder(tmp_path, conflicting())
    profile = Profile(
        "arch",
        packages=PackageOptions(SourceSpec(SourceKind.ARCH, str(folder)), ("vim",)),
    )
    wizard = make_wizard(profile)
    page = wizard.packages_page
    combo = page.arch_method_combo
    assert combo.isVisibleTo(page) and not page.debian_options.isVisibleTo(page)
    assert combo.currentData() is InstallMethod.AUTO
    combo.setCurrentIndex(combo.findData(InstallMethod.PACMAN))
    assert wizard.profile().packages.install is InstallMethod.PACMAN
    assert wizard.profile().packages.uses_pacman
    reopened = make_wizard(wizard.profile()).packages_page
    assert reopened.arch_method_combo.currentData() is InstallMethod.PACMAN
    page.kind_combo.setCurrentIndex(page.kind_combo.findData(SourceKind.APT))
    assert not combo.isVisibleTo(page)
