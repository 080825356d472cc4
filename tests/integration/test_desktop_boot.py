"""The built-in `desktop` profile booted for real (TCG, std VGA): the live user's X session
starts on seat0 without a password, the Xfce panel runs, and the VGA screen shows the
desktop. The screen is saved for the docs (docs/screenshots/desktop.png) when
LIVESMITH_SCREENSHOTS is set."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest
from PySide6.QtGui import QImage

from app.compose.profile import builtin_profile
from tests.conftest import ROOT
from tests.integration.qemu import BootConfig, QemuSession

pytestmark = pytest.mark.slow

# agetty says so when it logs the live user in; typing before that would reach the loader
AUTOLOGIN = re.compile(r"login: live \(automatic login\)")


@pytest.fixture(scope="module")
def desktop_iso(build_iso):
    return build_iso(builtin_profile("desktop"), "desktop")


def colours(png: Path) -> int:
    """How many different colours the picture has."""
    image = QImage(str(png)).convertToFormat(QImage.Format.Format_RGB888)
    assert not image.isNull(), png
    data = bytes(image.constBits())
    stride, row = image.bytesPerLine(), image.width() * 3
    return len(
        {
            data[y * stride + x : y * stride + x + 3]
            for y in range(image.height())
            for x in range(0, row, 3)
        }
    )


@pytest.mark.parametrize(("firmware", "medium"), [("uefi", "cd"), ("bios", "usb")])
def test_the_desktop_starts_for_the_live_user(
    desktop_iso, tmp_path: Path, firmware: str, medium: str
) -> None:
    config = BootConfig(firmware=firmware, medium=medium, image=desktop_iso.iso, memory_mb=2048)
    started = time.monotonic()
    with QemuSession(config, extra_args=("-vga", "std")) as vm:
        vm.expect(AUTOLOGIN, timeout=300)  # no password asked
        vm.wait_for_shell()
        assert vm.run("sudo -n id -un", check=True).splitlines()[-1] == "root"
        # LightDM's automatic login: an X11 session of the live user on seat0
        sessions = vm.run(
            "for s in $(loginctl list-sessions --no-legend | awk '{print $1}'); do "
            "loginctl show-session $s -p Name -p Seat -p Type -p Active --value | paste -sd ' '; "
            "done",
            timeout=60,
        )
        deadline = time.monotonic() + 300 * vm.scale
        while "live seat0 x11 yes" not in sessions and time.monotonic() < deadline:
            time.sleep(5)
            sessions = vm.run(
                "for s in $(loginctl list-sessions --no-legend | awk '{print $1}'); do "
                "loginctl show-session $s -p Name -p Seat -p Type -p Active --value "
                "| paste -sd ' '; done",
                timeout=60,
            )
        assert "live seat0 x11 yes" in sessions, sessions
        panel = ""
        while time.monotonic() < deadline:
            panel = vm.run("pgrep -u live -x xfce4-panel || true", timeout=60)
            if panel.strip().isdigit():
                break
            time.sleep(5)
        assert panel.strip().isdigit(), "the Xfce panel never started"
        # A text console has a handful of colours, a drawn desktop hundreds. The panel and
        # desktop take a while to draw on a busy machine, and X may have blanked the screen
        # by then: wake it and look again.
        shot = vm.screendump(tmp_path / "desktop.png")
        deadline = time.monotonic() + 180 * vm.scale
        while colours(shot) <= 200 and time.monotonic() < deadline:
            time.sleep(10)
            vm.run(
                "sudo -u live env DISPLAY=:0 XAUTHORITY=/home/live/.Xauthority "
                "xset s reset dpms force on 2>&1 || true",
                timeout=60,
            )
            shot = vm.screendump(tmp_path / "desktop.png")
        to_desktop = time.monotonic() - started
        assert colours(shot) > 200, colours(shot)
        state = vm.run("systemctl is-system-running --wait", timeout=240)
        failed = vm.run("systemctl --failed --no-legend --plain")
        assert state.strip() == "running", f"{state}\n{failed}"
        assert "NetworkManager" in vm.run(
            "systemctl is-active NetworkManager && echo NetworkManager"
        )
        assert vm.run("pgrep -u live -x nm-applet >/dev/null && echo applet") == "applet"
        assert vm.run("pgrep -u live -x pipewire >/dev/null && echo pipewire") == "pipewire"
        print(
            f"\n{config.describe()}: desktop after {to_desktop:.0f} s; ISO "
            f"{desktop_iso.size / 2**20:.0f} MiB, built in {desktop_iso.seconds:.0f} s"
        )
        if os.environ.get("LIVESMITH_SCREENSHOTS"):
            shutil.copy(shot, ROOT / "docs" / "screenshots" / "desktop.png")
