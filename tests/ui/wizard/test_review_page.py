"""The Review page: the pipeline's problems block Next until fixed; summary, planned tree,
size, output path, and a profile saved from the wizard that loads back equal."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWizard

from app.compose.profile import RootImageFormat, builtin_profile, load_profile
from tests.ui.wizard.conftest import glaucus_profile
from tests.ui.wizard.helpers import click_box, click_package, go_to, table_index, wait_checked
from ui.wizard.compose_wizard import ComposeWizard, PageId
from ui.wizard.package_model import STATUS

Maker = Callable[..., ComposeWizard]


def finish_or_next_enabled(wizard: ComposeWizard) -> bool:
    # Review is the last page until the Build page is added: then its button is Finish.
    return (
        wizard.button(QWizard.WizardButton.NextButton).isEnabled()
        if wizard.button(QWizard.WizardButton.NextButton).isVisible()
        else wizard.button(QWizard.WizardButton.FinishButton).isEnabled()
    )


def test_problems_block_the_review_until_fixed(
    qtbot: Any, make_wizard: Maker, glaucus_repo: Path
) -> None:
    wizard = make_wizard(glaucus_profile(glaucus_repo, "busybox"))
    go_to(qtbot, wizard, PageId.SYSTEM)
    wizard.system_page.label_edit.clear()
    qtbot.keyClicks(wizard.system_page.label_edit, "bad label!")
    go_to(qtbot, wizard, PageId.REVIEW)
    page = wizard.review_page
    wait_checked(qtbot, wizard)
    problems = page.problems()
    assert any(p.startswith("label: the volume label 'bad label!'") for p in problems)
    assert any(p.startswith("kernel: no kernel among the selected packages") for p in problems)
    assert page.problem_list.isVisible()
    assert "2 problems to fix" in page.status_label.text()
    assert not page.isComplete() and not finish_or_next_enabled(wizard)

    # Fix both the way a user would: back to the pages, then to Review again.
    go_to(qtbot, wizard, PageId.PACKAGES)
    click_package(qtbot, wizard, "linux")
    go_to(qtbot, wizard, PageId.SYSTEM)
    qtbot.mouseClick(wizard.system_page.suggest_button, Qt.MouseButton.LeftButton)
    go_to(qtbot, wizard, PageId.REVIEW)
    wait_checked(qtbot, wizard)
    assert page.problems() == []
    assert page.status_label.text() == "No problems found: ready to build."
    assert page.isComplete() and finish_or_next_enabled(wizard)


def test_an_edit_on_the_review_page_rechecks(
    qtbot: Any, make_wizard: Maker, glaucus_repo: Path, tmp_path: Path
) -> None:
    wizard = make_wizard(glaucus_profile(glaucus_repo, "busybox", "linux"))
    go_to(qtbot, wizard, PageId.REVIEW)
    page = wizard.review_page
    wait_checked(qtbot, wizard)
    assert page.isComplete()
    opened = page._source  # the next checks ask this source again instead of reopening it
    assert opened is not None and opened.spec == wizard.state.profile.packages.source
    page.output_edit.clear()  # no output: a problem, and Next is blocked again
    assert not page.isComplete()
    wait_checked(qtbot, wizard)
    assert "output: choose where to write the ISO" in page.problems()
    folder = tmp_path / "a-folder"
    folder.mkdir()
    qtbot.keyClicks(page.output_edit, str(folder))  # a folder is not an ISO file
    wait_checked(qtbot, wizard)
    assert wizard.output_path() == folder
    assert any("is a folder" in p for p in page.problems())
    qtbot.keyClicks(page.output_edit, "/live.iso")
    wait_checked(qtbot, wizard)
    assert wizard.output_path() == folder / "live.iso"
    assert page.problems() == [] and page.isComplete()
    assert page._source is opened


def test_loading_the_source_again_makes_the_review_open_it_afresh(
    qtbot: Any, make_wizard: Maker, glaucus_repo: Path
) -> None:
    # Load on the Packages page is how a user says "the folder (or apt's lists) changed":
    # the Review page's remembered source is then out of date.
    wizard = make_wizard(glaucus_profile(glaucus_repo, "busybox", "linux"))
    go_to(qtbot, wizard, PageId.REVIEW)
    page = wizard.review_page
    wait_checked(qtbot, wizard)
    first = page._source
    assert first is not None
    go_to(qtbot, wizard, PageId.PACKAGES)
    packages = wizard.packages_page
    loads = packages.load_count
    qtbot.mouseClick(packages.load_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: packages.load_count == loads + 1 and not packages.busy(), timeout=20_000
    )
    go_to(qtbot, wizard, PageId.REVIEW)
    wait_checked(qtbot, wizard)
    assert page._source is not None and page._source is not first
    assert page.problems() == []


def test_summary_planned_tree_and_size_follow_the_choices(
    qtbot: Any, make_wizard: Maker, glaucus_repo: Path
) -> None:
    wizard = make_wizard(glaucus_profile(glaucus_repo, "busybox", "linux", "docs"))
    go_to(qtbot, wizard, PageId.IMAGE)
    click_box(qtbot, wizard.image_page.format_buttons[RootImageFormat.EROFS])
    click_box(qtbot, wizard.image_page.carry_check)
    go_to(qtbot, wizard, PageId.REVIEW)
    page = wizard.review_page
    wait_checked(qtbot, wizard)
    summary = page.summary.toPlainText()
    assert "Packages: busybox, linux, docs from glaucus:" in summary
    assert "Root image: erofs, lz4hc level 9" in summary
    assert "Package files on the ISO: yes" in summary
    tree = page.tree.toPlainText().splitlines()
    assert "live/" in tree and "  rootfs.erofs  — root image (erofs)" in tree
    assert "  vmlinuz  — the kernel" in tree
    assert "packages/" in tree and "    libdocs-2.0.tar.zst  — carried package" in tree
    assert not any("rootfs.sfs" in line for line in tree)
    # what the System page's options put into the root
    at = tree.index("In the root image, from the System page:")
    assert "  hostname  — host name livesmith" in tree[at:]
    assert not any("sudoers" in line for line in tree)
    go_to(qtbot, wizard, PageId.SYSTEM)
    qtbot.keyClicks(wizard.system_page.user_edit, "live")
    click_box(qtbot, wizard.system_page.sudo_check)
    qtbot.keyClicks(wizard.system_page.settings.timezone_edit, "Europe/Berlin")
    go_to(qtbot, wizard, PageId.REVIEW)
    wait_checked(qtbot, wizard)
    tree = page.tree.toPlainText().splitlines()
    at = tree.index("In the root image, from the System page:")
    assert "    livesmith-live-user  — sudo for live (when sudo is installed)" in tree[at:]
    assert "  timezone  — time zone Europe/Berlin" in tree[at:]
    assert "  live  — home folder of live" in tree[at:]
    assert page.size_label.text().startswith("Estimated ISO size: about ")
    assert "MiB" in page.size_label.text()


def test_a_saved_profile_loads_back_into_an_equal_wizard(
    qtbot: Any, make_wizard: Maker, glaucus_repo: Path, tmp_path: Path
) -> None:
    wizard = make_wizard(glaucus_profile(glaucus_repo, "busybox"))
    click_package(qtbot, wizard, "docs")
    go_to(qtbot, wizard, PageId.KERNEL_BOOT)
    qtbot.keyClicks(wizard.kernel_page.cmdline_edit, "quiet")
    click_box(qtbot, wizard.kernel_page.safe_check)
    go_to(qtbot, wizard, PageId.SYSTEM)
    qtbot.keyClicks(wizard.system_page.user_edit, "ann")
    qtbot.keyClicks(wizard.system_page.user_password_edit, "pw")
    go_to(qtbot, wizard, PageId.IMAGE)
    click_box(qtbot, wizard.image_page.default_level_check)
    go_to(qtbot, wizard, PageId.REVIEW)
    saved = wizard.profile()
    assert saved.packages.packages == ("busybox", "docs")
    assert (saved.boot.cmdline, saved.boot.safe_entry) == ("quiet", False)
    assert saved.image.level == 15 and saved.system.user == "ann"

    path = tmp_path / "saved.toml"
    wizard.save_profile_to(path)
    loaded = load_profile(path)
    assert loaded == saved
    again = make_wizard(loaded)
    assert again.profile() == saved
    # Walking through every page without touching anything changes nothing either.
    go_to(qtbot, again, PageId.REVIEW)
    wait_checked(qtbot, again)
    assert again.profile() == saved


def test_the_builtin_apt_profile_loads_and_comes_back_unchanged(
    qtbot: Any, make_wizard: Maker
) -> None:
    minimal = builtin_profile("minimal")
    wizard = make_wizard(minimal)  # apt: looked up in the background through apt-cache
    page = wizard.packages_page
    names = page.model.names()
    assert {"busybox-static", "linux-image-amd64"} <= set(names)
    kernel = next(n for n in names if n.startswith("linux-image-") and n[12].isdigit())
    assert "linux-image-amd64 → " in table_index(page.table, kernel, STATUS).data()
    assert not page.folder_edit.isEnabled()  # apt has no folder
    go_to(qtbot, wizard, PageId.REVIEW)
    wait_checked(qtbot, wizard)
    assert wizard.profile() == minimal
