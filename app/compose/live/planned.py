"""The files the system options put into the root, known from the profile alone, for the
wizard's planned tree. Which of them a build writes can also depend on the packages (the
init, the display manager), and the description says so where it does."""

from __future__ import annotations

from app.compose.live import user as live_user
from app.compose.live.busybox import FIRST_BOOT_SCRIPT
from app.compose.profile import SystemOptions

SYSTEMD = "etc/systemd/system"


def planned_root_files(system: SystemOptions) -> list[tuple[str, str]]:
    """(root-relative path, what it is) for every file configure writes from `system`."""
    files = [
        ("etc/hostname", f"host name {system.hostname}"),
        ("etc/hosts", "the host name's addresses"),
        ("etc/passwd", "accounts: root" + (f" and {system.user}" if system.user else "")),
        ("etc/shadow", "passwords"),
        ("etc/group", "groups"),
        ("etc/issue", "the text before the login prompt"),
    ]
    if system.user:
        files.append((f"home/{system.user}", f"home folder of {system.user}"))
    if system.user and system.autologin:
        files += [
            (f"{SYSTEMD}/getty@.service.d/{live_user.GETTY_DROPIN}", "autologin on tty1 (systemd)"),
            (
                f"{SYSTEMD}/serial-getty@.service.d/{live_user.GETTY_DROPIN}",
                "autologin on the serial console (systemd)",
            ),
            (live_user.AUTOLOGIN_PROGRAM, "autologin (BusyBox init)"),
            (live_user.LIGHTDM_CONF, "autologin in LightDM (when installed)"),
        ]
    if system.user and system.sudo:
        files.append((live_user.SUDOERS, f"sudo for {system.user} (when sudo is installed)"))
    if system.timezone:
        files += [
            ("etc/localtime", f"link to the zone {system.timezone}"),
            ("etc/timezone", f"time zone {system.timezone}"),
        ]
    if system.locale:
        files += [
            ("etc/default/locale", f"LANG={system.locale}"),
            ("etc/locale.conf", f"LANG={system.locale}"),
        ]
    if system.keyboard:
        files += [
            ("etc/default/keyboard", f"keyboard layout {system.keyboard}"),
            ("etc/vconsole.conf", f"console keymap {system.keyboard}"),
            ("etc/X11/xorg.conf.d/00-keyboard.conf", f"X keyboard layout {system.keyboard}"),
        ]
    files += [(f"{SYSTEMD}/<target>.wants/{u}", f"enables {u}") for u in system.enable_units]
    if system.first_boot:
        files.append((FIRST_BOOT_SCRIPT, f"first-boot script ({system.first_boot})"))
    if system.overlay:
        files.append(("…", f"the files of the overlay folder {system.overlay}"))
    return sorted(files)
