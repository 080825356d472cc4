"""The live user: groups, automatic login and sudo, whatever the init and the packages.

configure_accounts writes the account itself (passwd, group, shadow). What makes it a live
user is here, done with what the packages bring, as Debian's live-config does:
- groups: the usual desktop groups that exist in the root (sound, video, removable media,
  network settings), plus the profile's extra ones;
- automatic login: on every getty (tty1 and the serial console) by adding agetty's
  `--autologin` to the packaged getty units (systemd) or a `login -f` program for BusyBox
  getty; and in the display manager when there is one (LightDM, GDM, SDDM);
- sudo, when the packages bring it: without a password for a user who has none.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from app.compose.live.systemd import unit_path
from app.reporter import Level, Reporter

if TYPE_CHECKING:
    from app.compose.configure import RootWriter

# Debian live-config's list (user-setup), plus the groups udev and logind use for devices.
LIVE_GROUPS = (
    "audio",
    "cdrom",
    "dip",
    "floppy",
    "video",
    "plugdev",
    "netdev",
    "users",
    "bluetooth",
    "scanner",
    "lpadmin",
    "input",
    "render",
)

AUTOLOGIN_PROGRAM = "etc/livesmith/autologin"
GETTY_DROPIN = "livesmith-autologin.conf"
SUDOERS = "etc/sudoers.d/livesmith-live-user"
LIGHTDM_CONF = "etc/lightdm/lightdm.conf.d/50-livesmith-autologin.conf"
GDM_CONF = "etc/gdm3/daemon.conf"
SDDM_CONF = "etc/sddm.conf.d/50-livesmith-autologin.conf"


def add_member(lines: list[str], group: str, user: str) -> tuple[list[str], bool]:
    """/etc/group or /etc/gshadow lines with `user` added to `group`'s members; whether
    the group exists."""
    found = False
    out = []
    for line in lines:
        fields = line.split(":")
        if fields[0] == group and len(fields) == 4:
            found = True
            members = [m for m in fields[3].split(",") if m]
            if user not in members:
                fields[3] = ",".join([*members, user])
            line = ":".join(fields)
        out.append(line)
    return out, found


def join_groups(
    writer: RootWriter, user: str, extra: tuple[str, ...], reporter: Reporter
) -> list[str]:
    """Add `user` to the live groups that exist and to every `extra` group; the groups
    joined. An extra group the packages do not make is said in the log."""
    group = (writer.read("etc/group") or "").splitlines()
    gshadow_text = writer.read("etc/gshadow")
    gshadow = gshadow_text.splitlines() if gshadow_text is not None else None
    joined = []
    for name in dict.fromkeys((*LIVE_GROUPS, *extra)):
        group, found = add_member(group, name, user)
        if not found:
            if name in extra:
                reporter.log(
                    Level.WARNING, f"live user: no group {name!r} in the system; not joined"
                )
            continue
        if gshadow is not None:
            gshadow, _ = add_member(gshadow, name, user)
        joined.append(name)
    writer.write("etc/group", "\n".join(group) + "\n", 0o644)
    if gshadow is not None:
        writer.write("etc/gshadow", "\n".join(gshadow) + "\n", 0o640)
    return joined


def with_autologin(exec_start: str, user: str) -> str | None:
    """An agetty ExecStart= line that logs `user` in: `--autologin USER` before agetty's
    first argument after the options that say how to call login; None if no agetty."""
    match = re.match(r"(ExecStart=-?\S*agetty)(\s.*)$", exec_start)
    if match is None:
        return None
    return f"{match.group(1)} --autologin {user}{match.group(2)}"


def _exec_start(unit_text: str) -> str | None:
    lines = [line.strip() for line in unit_text.splitlines()]
    return next((line for line in lines if line.startswith("ExecStart=")), None)


def systemd_autologin(writer: RootWriter, user: str, reporter: Reporter) -> list[str]:
    """Drop-ins for the packaged getty units; the units that log `user` in."""
    done = []
    for unit in ("getty@.service", "serial-getty@.service"):
        path = unit_path(writer, unit)
        text = writer.read(path.lstrip("/")) if path else None
        line = _exec_start(text) if text else None
        changed = with_autologin(line, user) if line else None
        if changed is None:
            reporter.log(Level.WARNING, f"live user: {unit} does not run agetty; no autologin")
            continue
        # An empty ExecStart= first: a drop-in adds to the unit's list otherwise.
        writer.write(
            f"etc/systemd/system/{unit}.d/{GETTY_DROPIN}",
            f"# Written by Livesmith: log {user} in without a password.\n"
            f"[Service]\nExecStart=\n{changed}\n",
        )
        done.append(unit)
    return done


def busybox_autologin(writer: RootWriter, user: str) -> None:
    """The program BusyBox getty runs instead of asking for a name (see live.busybox)."""
    writer.write(AUTOLOGIN_PROGRAM, f"#!/bin/sh\nexec /bin/login -f {user}\n", 0o755)


def display_manager_autologin(writer: RootWriter, user: str) -> list[str]:
    """Automatic login in the display managers the packages bring; their names."""
    done = []
    if writer.host_path("etc/lightdm").is_dir():
        writer.write(
            LIGHTDM_CONF,
            f"# Written by Livesmith\n[Seat:*]\nautologin-user={user}\nautologin-user-timeout=0\n",
        )
        done.append("LightDM")
    if writer.host_path("etc/gdm3").is_dir():
        text = writer.read(GDM_CONF) or "[daemon]\n"
        writer.write(GDM_CONF, gdm_autologin(text, user))
        done.append("GDM")
    if writer.host_path("usr/bin/sddm").exists():
        writer.write(SDDM_CONF, f"# Written by Livesmith\n[Autologin]\nUser={user}\n")
        done.append("SDDM")
    return done


def gdm_autologin(text: str, user: str) -> str:
    """GDM's daemon.conf with automatic login for `user` in its [daemon] section."""
    lines = [
        line
        for line in text.splitlines()
        if not re.match(r"\s*#?\s*(AutomaticLoginEnable|AutomaticLogin)\s*=", line)
    ]
    settings = ["AutomaticLoginEnable=true", f"AutomaticLogin={user}"]
    if "[daemon]" in (line.strip() for line in lines):
        at = [line.strip() for line in lines].index("[daemon]") + 1
        lines[at:at] = settings
    else:
        lines = ["[daemon]", *settings, *lines]
    return "\n".join(lines) + "\n"


def has_sudo(writer: RootWriter) -> bool:
    return any(writer.host_path(p).is_file() for p in ("usr/bin/sudo", "bin/sudo"))


def sudoers_rule(user: str, *, password: bool) -> str:
    return f"{user} ALL=(ALL:ALL) {'ALL' if password else 'NOPASSWD: ALL'}\n"


def configure_sudo(writer: RootWriter, user: str, *, password: bool, reporter: Reporter) -> bool:
    """Let `user` run commands as root through sudo, when the packages bring sudo."""
    if not has_sudo(writer):
        reporter.log(Level.WARNING, "live user: sudo was asked for, but no package brings it")
        return False
    sudoers = writer.read("etc/sudoers") or ""
    if not re.search(r"^[@#]includedir\s+/etc/sudoers\.d\s*$", sudoers, re.M):
        reporter.log(Level.WARNING, "live user: /etc/sudoers does not read /etc/sudoers.d; no sudo")
        return False
    writer.write(SUDOERS, "# Written by Livesmith\n" + sudoers_rule(user, password=password), 0o440)
    return True
