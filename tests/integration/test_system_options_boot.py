"""System options on a real Debian system: `rescue` built with a live user (no password,
autologin, sudo), a time zone, a locale, a keyboard layout, a unit disabled that Debian
enables, a template unit enabled, a first-boot script, and its packages carried on the
ISO; booted, and each checked from the live user's automatic login on the serial console."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.compose.profile import builtin_profile, with_settings
from app.iso.inspect import inspect_iso
from tests.integration.qemu import BootConfig, QemuSession

pytestmark = pytest.mark.slow

# agetty says so when it logs the live user in; typing before that would reach the loader
AUTOLOGIN = re.compile(r"login: live \(automatic login\)")

FIRST_BOOT = '#!/bin/sh\necho "first boot ran as $(id -un)" > /run/first-boot-ran\n'


@pytest.fixture(scope="module")
def options_iso(build_iso, tmp_path_factory: pytest.TempPathFactory):
    script = tmp_path_factory.mktemp("first-boot") / "first-boot.sh"
    script.write_text(FIRST_BOOT)
    profile = with_settings(
        builtin_profile("rescue"),
        [
            "system.user=live",
            "system.autologin=true",
            "system.sudo=true",
            "system.user_groups=['systemd-journal']",
            "system.timezone=Europe/Berlin",
            "system.locale=de_DE.UTF-8",
            "system.keyboard=de",
            "system.disable_units=['apt-daily.timer']",
            "system.enable_units=['getty@tty2.service']",
            f"system.first_boot={script}",
            "packages.carry=true",
        ],
    )
    return build_iso(profile, "rescue-options")


def test_the_packages_mmdebstrap_installed_are_carried_with_an_index(options_iso) -> None:
    files = {f.path for f in inspect_iso(options_iso.iso).files}
    assert "/packages/Packages" in files
    assert any(p.startswith("/packages/") and "/bash_" in p and p.endswith(".deb") for p in files)
    assert any("/systemd_" in p and p.endswith(".deb") for p in files)  # dependencies too


def test_the_live_user_and_system_options_work_after_boot(options_iso, tmp_path: Path) -> None:
    config = BootConfig(firmware="bios", medium="cd", image=options_iso.iso, memory_mb=1024)
    with QemuSession(config, extra_args=("-nic", "user,model=virtio-net-pci")) as vm:
        vm.expect(AUTOLOGIN, timeout=180)  # no password asked
        vm.wait_for_shell()
        ids = vm.run("id", check=True)
        assert ids.startswith("uid=1000(live) gid=1000(live)"), ids
        for group in ("audio", "video", "plugdev", "systemd-journal"):
            assert f"({group})" in ids, ids
        assert vm.run("sudo -n id -un", check=True).splitlines()[-1] == "root"
        state = vm.run("systemctl is-system-running --wait", timeout=180)
        failed = vm.run("systemctl --failed --no-legend --plain")
        assert state.strip() == "running", f"{state}\n{failed}"

        assert vm.run("date +%Z", check=True) in ("CET", "CEST")
        assert vm.run("cat /etc/timezone", check=True) == "Europe/Berlin"
        assert vm.run("echo $LANG", check=True) == "de_DE.UTF-8"
        assert "de_DE.utf8" in vm.run("locale -a", check=True).splitlines()
        assert 'XKBLAYOUT="de"' in vm.run("cat /etc/default/keyboard", check=True)
        vm.run("systemctl is-enabled apt-daily.timer")
        assert vm.run("systemctl is-enabled apt-daily.timer").strip() == "disabled"
        assert vm.run("systemctl is-enabled getty@tty2.service").strip() == "enabled"
        assert vm.run("systemctl is-active getty@tty2.service").strip() == "active"
        assert vm.run("cat /run/first-boot-ran", check=True) == "first boot ran as root"
