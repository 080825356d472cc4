"""Kernel and boot, System and Image pages, driven by mouse and keyboard."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from app.compose.profile import (
    Compressor,
    ImageOptions,
    RootImageFormat,
    SecureBoot,
    builtin_profile,
    load_profile,
    save_profile,
    validate_profile,
)
from tests.ui.wizard.conftest import glaucus_profile
from tests.ui.wizard.helpers import click_box, click_package, go_to
from ui.wizard.compose_wizard import ComposeWizard, PageId
from ui.wizard.kernel_page import AUTO_KERNEL
from ui.wizard.review_page import summary_lines
from ui.wizard.system_page import PREVIEW_BUILD_ID

Maker = Callable[..., ComposeWizard]


def combo_texts(combo: Any) -> list[str]:
    return [combo.itemText(i) for i in range(combo.count())]


def test_kernel_choices_come_from_the_selected_packages(
    qtbot: Any, make_wizard: Maker, glaucus_repo: Path
) -> None:
    wizard = make_wizard(glaucus_profile(glaucus_repo, "busybox"))
    page = wizard.kernel_page
    assert combo_texts(page.kernel_combo) == [AUTO_KERNEL]
    assert "No selected package ships a kernel" in page.kernel_hint.text()
    click_package(qtbot, wizard, "linux")
    assert combo_texts(page.kernel_combo) == [AUTO_KERNEL, "linux"]
    go_to(qtbot, wizard, PageId.KERNEL_BOOT)
    page.kernel_combo.setFocus()
    qtbot.keyClick(page.kernel_combo, Qt.Key.Key_Down)
    assert wizard.profile().kernel.package == "linux"
    # Unselecting the kernel keeps the choice visible, marked as not selected.
    go_to(qtbot, wizard, PageId.PACKAGES)
    click_package(qtbot, wizard, "linux")
    assert page.kernel_combo.currentText() == "linux (not selected)"
    assert wizard.profile().kernel.package == "linux"


def test_boot_options_are_written_into_the_profile(
    qtbot: Any, make_wizard: Maker, glaucus_repo: Path
) -> None:
    wizard = make_wizard(glaucus_profile(glaucus_repo, "busybox"))
    go_to(qtbot, wizard, PageId.KERNEL_BOOT)
    page = wizard.kernel_page
    click_box(qtbot, page.bios_check)
    assert not wizard.profile().boot.bios and wizard.profile().boot.uefi
    page.timeout_spin.selectAll()
    qtbot.keyClicks(page.timeout_spin, "2")
    qtbot.keyClicks(page.cmdline_edit, "quiet loglevel=3")
    click_box(qtbot, page.copytoram_check)
    boot = wizard.profile().boot
    assert (boot.timeout, boot.cmdline, boot.copytoram_entry) == (2, "quiet loglevel=3", False)
    page.timeout_spin.selectAll()
    qtbot.keyClicks(page.timeout_spin, "9")  # beyond the 5 s limit: the box refuses it
    assert wizard.profile().boot.timeout == 2


def test_secure_boot_is_chosen_on_the_boot_page_and_explained(
    qtbot: Any, make_wizard: Maker, glaucus_repo: Path
) -> None:
    wizard = make_wizard(glaucus_profile(glaucus_repo, "busybox"))
    go_to(qtbot, wizard, PageId.KERNEL_BOOT)
    page = wizard.kernel_page
    combo = page.secure_boot_combo
    assert wizard.profile().boot.secure_boot is SecureBoot.AUTO
    assert combo.currentData() is SecureBoot.AUTO
    # glaucus packages have no signed chain: auto says it will be off, on that it cannot be.
    assert page.secure_boot_hint.text().startswith("Will be off: the signed boot chain comes")
    combo.setFocus()
    qtbot.keyClick(combo, Qt.Key.Key_Down)
    assert wizard.profile().boot.secure_boot is SecureBoot.ON
    assert page.secure_boot_hint.text().startswith("Cannot be met: the signed boot chain")
    click_box(qtbot, page.uefi_check)  # and now UEFI is off too: both reasons
    assert "UEFI boot is off" in page.secure_boot_hint.text()
    qtbot.keyClick(combo, Qt.Key.Key_Down)
    assert wizard.profile().boot.secure_boot is SecureBoot.OFF
    assert "Secure Boot firmware refuses" in page.secure_boot_hint.text()
    assert "Secure Boot: off" in summary_lines(wizard.profile())


def test_a_debian_profile_gets_the_signed_chain_in_the_hint(qtbot: Any, make_wizard: Maker) -> None:
    # The hint needs the profile only, not the (slow to load) package lists.
    wizard = make_wizard(builtin_profile("rescue"), wait_loaded=False)
    assert wizard.kernel_page.secure_boot_hint.text().startswith(
        "UEFI boots through the distribution's signed shim, GRUB and kernel"
    )


def test_the_label_is_checked_as_you_type_and_the_suggestion_applies(
    qtbot: Any, make_wizard: Maker, glaucus_repo: Path
) -> None:
    wizard = make_wizard(glaucus_profile(glaucus_repo, "busybox"))
    go_to(qtbot, wizard, PageId.SYSTEM)
    page = wizard.system_page
    assert not page.label_problem.isVisible() and not page.suggest_button.isVisible()
    page.label_edit.clear()
    qtbot.keyClicks(page.label_edit, "bad label!")
    assert page.label_problem.isVisible()
    assert "may only contain upper-case" in page.label_problem.text()
    assert page.suggest_button.isVisible() and page.suggest_button.text() == "Use BAD_LABEL"
    assert wizard.profile().iso.label == "bad label!"
    qtbot.mouseClick(page.suggest_button, Qt.MouseButton.LeftButton)
    assert page.label_edit.text() == "BAD_LABEL" == wizard.profile().iso.label
    assert not page.label_problem.isVisible() and not page.suggest_button.isVisible()


def test_issue_preview_follows_the_text_and_the_other_fields(
    qtbot: Any, make_wizard: Maker, glaucus_repo: Path
) -> None:
    wizard = make_wizard(glaucus_profile(glaucus_repo, "busybox"))
    go_to(qtbot, wizard, PageId.SYSTEM)
    page = wizard.system_page
    preview = page.issue_preview
    assert (
        f"wizard-test live system (WIZARD), built {date.today().isoformat()}"
        in preview.toPlainText()
    )
    page.issue_edit.clear()
    qtbot.keyClicks(page.issue_edit, "Welcome to {hostname}, {user}! ({build_id})")
    page.hostname_edit.clear()
    qtbot.keyClicks(page.hostname_edit, "box")
    qtbot.keyClicks(page.user_edit, "ann")
    qtbot.keyClicks(page.user_password_edit, "pw")
    assert preview.toPlainText() == f"Welcome to box, ann! ({PREVIEW_BUILD_ID})\n\n"
    system = wizard.profile().system
    assert (system.hostname, system.user, system.user_password) == ("box", "ann", "pw")
    assert system.issue == "Welcome to {hostname}, {user}! ({build_id})"
    qtbot.keyClicks(page.issue_edit, " {nope}")
    assert "bad placeholder 'nope'" in preview.toPlainText()


def test_overlay_and_root_password(
    qtbot: Any, make_wizard: Maker, glaucus_repo: Path, tmp_path: Path
) -> None:
    wizard = make_wizard(glaucus_profile(glaucus_repo, "busybox"))
    go_to(qtbot, wizard, PageId.SYSTEM)
    page = wizard.system_page
    page.root_password_edit.clear()
    qtbot.keyClicks(page.root_password_edit, "s3cret")
    qtbot.keyClicks(page.overlay_edit, str(tmp_path))
    assert wizard.profile().system.root_password == "s3cret"
    assert wizard.profile().system.overlay == str(tmp_path)


def test_image_format_limits_compressors_and_levels(
    qtbot: Any, make_wizard: Maker, glaucus_repo: Path
) -> None:
    wizard = make_wizard(glaucus_profile(glaucus_repo, "busybox"))
    go_to(qtbot, wizard, PageId.IMAGE)
    page = wizard.image_page
    assert combo_texts(page.compressor_combo) == ["zstd", "xz", "gzip", "lz4"]
    assert page.default_level_check.isChecked() and not page.level_spin.isEnabled()
    assert (page.level_spin.minimum(), page.level_spin.maximum()) == (1, 22)

    click_box(qtbot, page.format_buttons[RootImageFormat.EROFS])
    assert combo_texts(page.compressor_combo) == ["lz4hc", "lz4", "none"]
    assert wizard.profile().image == ImageOptions(RootImageFormat.EROFS, Compressor.LZ4HC)
    assert (page.level_spin.minimum(), page.level_spin.maximum()) == (1, 12)
    click_box(qtbot, page.default_level_check)
    assert page.level_spin.isEnabled()
    page.level_spin.selectAll()
    qtbot.keyClicks(page.level_spin, "11")
    assert wizard.profile().image.level == 11

    page.compressor_combo.setCurrentIndex(page.compressor_combo.findText("none"))
    assert wizard.profile().image == ImageOptions(RootImageFormat.EROFS, Compressor.NONE)
    assert not page.default_level_check.isEnabled() and not page.level_spin.isEnabled()

    click_box(qtbot, page.format_buttons[RootImageFormat.RAM])
    assert wizard.profile().image.format is RootImageFormat.RAM
    assert wizard.profile().image.compressor is Compressor.NONE  # RAM can store uncompressed
    click_box(qtbot, page.carry_check)
    assert wizard.profile().packages.carry


def test_the_level_box_follows_the_format_as_well_as_the_compressor(
    qtbot: Any, make_wizard: Maker, glaucus_repo: Path
) -> None:
    wizard = make_wizard(glaucus_profile(glaucus_repo, "busybox"))
    go_to(qtbot, wizard, PageId.IMAGE)
    page = wizard.image_page
    click_box(qtbot, page.default_level_check)
    page.level_spin.selectAll()
    qtbot.keyClicks(page.level_spin, "22")  # mksquashfs takes zstd --ultra levels
    assert wizard.profile().image == ImageOptions(RootImageFormat.SQUASHFS, Compressor.ZSTD, 22)

    # RAM mode compresses with the initramfs writer, which stops at 19: the box and the
    # profile move to 19 together, and typing more is refused.
    click_box(qtbot, page.format_buttons[RootImageFormat.RAM])
    assert (page.level_spin.minimum(), page.level_spin.maximum()) == (1, 19)
    assert page.level_spin.value() == 19
    assert wizard.profile().image == ImageOptions(RootImageFormat.RAM, Compressor.ZSTD, 19)
    assert validate_profile(wizard.profile()) == []
    page.level_spin.selectAll()
    qtbot.keyClicks(page.level_spin, "22")
    assert wizard.profile().image.level != 22

    click_box(qtbot, page.format_buttons[RootImageFormat.SQUASHFS])
    assert (page.level_spin.minimum(), page.level_spin.maximum()) == (1, 22)
    assert wizard.profile().image.level == page.level_spin.value()


def test_squashfs_xz_offers_no_level_and_the_summary_claims_none(
    qtbot: Any, make_wizard: Maker, glaucus_repo: Path
) -> None:
    wizard = make_wizard(glaucus_profile(glaucus_repo, "busybox"))
    go_to(qtbot, wizard, PageId.IMAGE)
    page = wizard.image_page
    click_box(qtbot, page.default_level_check)
    assert page.level_spin.isEnabled()
    page.compressor_combo.setCurrentIndex(page.compressor_combo.findText("xz"))
    assert wizard.profile().image == ImageOptions(RootImageFormat.SQUASHFS, Compressor.XZ)
    assert not page.default_level_check.isEnabled() and not page.level_spin.isEnabled()
    assert "Root image: squashfs, xz" in summary_lines(wizard.profile())
    # RAM mode compresses xz itself, with levels.
    click_box(qtbot, page.format_buttons[RootImageFormat.RAM])
    assert page.default_level_check.isEnabled()
    assert (page.level_spin.minimum(), page.level_spin.maximum()) == (0, 9)
    assert "Root image: ram, xz level 6" in summary_lines(wizard.profile())


def test_the_live_user_options_are_checked_as_typed_and_saved(
    qtbot: Any, make_wizard: Maker, glaucus_repo: Path, tmp_path: Path
) -> None:
    wizard = make_wizard(glaucus_profile(glaucus_repo, "busybox"))
    go_to(qtbot, wizard, PageId.SYSTEM)
    page = wizard.system_page
    assert not page.user_problems.isVisible()
    click_box(qtbot, page.autologin_check)
    click_box(qtbot, page.sudo_check)
    assert page.user_problems.isVisible()
    assert "autologin: needs a live user" in page.user_problems.text()
    assert "sudo: needs a live user" in page.user_problems.text()
    qtbot.keyClicks(page.user_edit, "live")
    qtbot.keyClicks(page.groups_edit, "wheel, Bad!")
    assert page.user_problems.text() == "user groups: 'Bad!' is not a valid group name"
    page.groups_edit.clear()
    qtbot.keyClicks(page.groups_edit, "wheel kvm")
    assert not page.user_problems.isVisible()
    system = wizard.profile().system
    assert (system.user, system.user_password, system.autologin, system.sudo) == (
        "live",
        "",
        True,
        True,
    )
    assert system.user_groups == ("wheel", "kvm")
    path = tmp_path / "p.toml"
    save_profile(wizard.profile(), path)
    assert load_profile(path) == wizard.profile()
    reopened = make_wizard(load_profile(path)).system_page
    assert reopened.autologin_check.isChecked() and reopened.sudo_check.isChecked()
    assert reopened.groups_edit.text() == "wheel kvm"


def test_region_and_services_are_checked_as_typed_and_saved(
    qtbot: Any, make_wizard: Maker, glaucus_repo: Path, tmp_path: Path
) -> None:
    wizard = make_wizard(glaucus_profile(glaucus_repo, "busybox"))
    go_to(qtbot, wizard, PageId.SYSTEM)
    box = wizard.system_page.settings
    assert not box.problems_label.isVisible()
    qtbot.keyClicks(box.timezone_edit, "Europe/Atlantis")
    qtbot.keyClicks(box.locale_edit, "de_DE.UTF-8")
    qtbot.keyClicks(box.keyboard_edit, "de(nodeadkeys)")
    qtbot.keyClicks(box.enable_edit, "ssh.service, ssh;")
    assert box.problems_label.isVisible()
    assert box.problems_label.text().splitlines() == [
        "time zone: unknown time zone 'Europe/Atlantis' (e.g. Europe/Berlin or UTC)",
        "services to enable: 'ssh;' is not a service name (e.g. ssh.service or fstrim.timer)",
    ]
    box.timezone_edit.clear()
    qtbot.keyClicks(box.timezone_edit, "Europe/Berlin")
    box.enable_edit.clear()
    qtbot.keyClicks(box.enable_edit, "ssh.service")
    qtbot.keyClicks(box.disable_edit, "apt-daily.timer apt-daily-upgrade.timer")
    script = tmp_path / "hello.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    qtbot.keyClicks(box.first_boot_edit, str(script))
    assert not box.problems_label.isVisible()
    system = wizard.profile().system
    assert (system.timezone, system.locale, system.keyboard) == (
        "Europe/Berlin",
        "de_DE.UTF-8",
        "de(nodeadkeys)",
    )
    assert system.enable_units == ("ssh.service",)
    assert system.disable_units == ("apt-daily.timer", "apt-daily-upgrade.timer")
    assert system.first_boot == str(script)
    path = tmp_path / "p.toml"
    save_profile(wizard.profile(), path)
    assert load_profile(path) == wizard.profile()
    reopened = make_wizard(load_profile(path)).system_page.settings
    assert reopened.disable_edit.text() == "apt-daily.timer apt-daily-upgrade.timer"
    assert reopened.timezone_edit.text() == "Europe/Berlin"


@pytest.mark.slow
def test_services_no_package_ships_are_named_on_the_system_page(
    qtbot: Any, make_wizard: Maker
) -> None:
    wizard = make_wizard(builtin_profile("rescue"), wait_loaded=False)
    go_to(qtbot, wizard, PageId.SYSTEM)
    box = wizard.system_page.settings
    checks = box.check_count
    qtbot.keyClicks(box.enable_edit, "nope.service ssh")
    qtbot.keyClicks(box.disable_edit, "apt-daily.timer")
    qtbot.waitUntil(lambda: box.check_count > checks, timeout=240_000)
    lines = box.problems_label.text().splitlines()
    assert "services: no package in bookworm ships the unit nope.service" in lines
    assert any(
        line.startswith("services: the unit ssh comes with openssh-server") for line in lines
    )
    assert not any("apt-daily" in line for line in lines)  # apt's, always installed
