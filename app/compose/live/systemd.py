"""The live layer of a system that boots with systemd.

udev coldplugs the hardware and the getty generator starts a login on each console of the
kernel command line (tty1 and ttyS0 here), so what is left is what a live system does not
share with an installed one:
- an empty /etc/machine-id: systemd makes a new one on each boot instead of every copy of
  the image sharing the one baked in at build time, and without systemd-firstboot asking
  for it;
- DHCP on every wired interface: NetworkManager does that by itself; otherwise
  systemd-networkd gets a `.network` file for all Ethernet links and is enabled (with
  systemd-resolved, when the packages bring it, for DNS).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.reporter import Level, Reporter

if TYPE_CHECKING:
    from app.compose.configure import RootWriter

UNIT_DIRS = ("usr/lib/systemd/system", "lib/systemd/system")
WIRED_NETWORK = "etc/systemd/network/80-livesmith-wired.network"
WIRED_NETWORK_TEXT = """\
# Written by Livesmith: DHCP on every wired interface of the live system.
[Match]
Type=ether
Kind=!*

[Network]
DHCP=yes
"""


def unit_path(writer: RootWriter, unit: str) -> str | None:
    """Where the packages ship `unit` ("/usr/lib/systemd/system/x.service"), if they do."""
    for folder in UNIT_DIRS:
        if writer.host_path(f"{folder}/{unit}").is_file():
            return f"/{folder}/{unit}"
    return None


def has_systemd(writer: RootWriter) -> bool:
    return any(writer.host_path(f"{lib}/systemd/systemd").is_file() for lib in ("usr/lib", "lib"))


def enable(writer: RootWriter, unit: str, target: str) -> bool:
    """Enable `unit` the way `systemctl enable` does for WantedBy=`target`."""
    path = unit_path(writer, unit)
    if path is None:
        return False
    writer.symlink(f"etc/systemd/system/{target}.wants/{unit}", path)
    return True


def configure_systemd(writer: RootWriter, reporter: Reporter) -> bool:
    """Make a systemd root live; False (and nothing done) when the root has no systemd."""
    if not has_systemd(writer):
        return False
    writer.write("etc/machine-id", "", 0o444, keep_meta=False)
    if unit_path(writer, "NetworkManager.service"):
        reporter.log(Level.INFO, "network: NetworkManager brings up the wired interfaces")
        return True
    if unit_path(writer, "systemd-networkd.service") is None:
        reporter.log(Level.WARNING, "network: no NetworkManager and no systemd-networkd; no DHCP")
        return True
    writer.write(WIRED_NETWORK, WIRED_NETWORK_TEXT)
    enable(writer, "systemd-networkd.service", "multi-user.target")
    enable(writer, "systemd-networkd.socket", "sockets.target")
    resolved = enable(writer, "systemd-resolved.service", "multi-user.target")
    reporter.log(
        Level.INFO,
        "network: systemd-networkd with DHCP on every wired interface"
        + (" and systemd-resolved for DNS" if resolved else ""),
    )
    return True
