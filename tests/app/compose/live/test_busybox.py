"""The BusyBox live layer: its scripts run under the real BusyBox and do what they say."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from app.compose.live.busybox import FILES, MDEV_CONF, RCS, UDHCPC_SCRIPT
from tests.conftest import needs_root
from tests.support.debian import busybox_static


def test_every_script_parses_under_busybox_sh(tmp_path: Path) -> None:
    for path, content, mode in FILES:
        if mode & 0o111:
            script = tmp_path / Path(path).name
            script.write_text(content)
            check = subprocess.run(
                [str(busybox_static()), "sh", "-n", str(script)], capture_output=True, text=True
            )
            assert check.returncode == 0, (path, check.stderr)


def test_rcs_coldplugs_hardware_and_starts_dhcp() -> None:
    assert "mdev -s" in RCS and "mdev -d" in RCS  # nodes now, drivers for what comes later
    assert "-name modalias" in RCS and "modprobe -a" in RCS  # drivers for what is there
    assert "udhcpc -b" in RCS and "/etc/livesmith/udhcpc.script" in RCS
    assert '$MODALIAS=.* 0:0 660 @modprobe -q "$MODALIAS"' in MDEV_CONF


def busybox_bin(tmp_path: Path, *applets: str) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    shutil.copy2(busybox_static(), folder / "busybox")
    for applet in applets:
        (folder / applet).symlink_to("busybox")
    return folder


@needs_root
def test_the_dhcp_script_applies_a_lease_with_busybox_ip(tmp_path: Path) -> None:
    """A lease as udhcpc hands it over, applied in a private network and mount namespace
    (a tmpfs over /etc there takes resolv.conf); BusyBox's own `ip` does the work."""
    script = tmp_path / "udhcpc.script"
    script.write_text(UDHCPC_SCRIPT)
    bin_dir = busybox_bin(tmp_path, "ip", "sh")
    lease = "interface=lo ip=10.0.2.15 mask=24 router=10.0.2.2 dns='10.0.2.3 10.0.2.4' domain=lan"
    inner = (
        f"mount -t tmpfs tmpfs /etc && export {lease} && "
        f"sh {script} deconfig && sh {script} bound && "
        "ip -4 addr show dev lo && ip -4 route && cat /etc/resolv.conf"
    )
    host_resolv = Path("/etc/resolv.conf").read_bytes()
    out = subprocess.run(
        [
            shutil.which("unshare") or "unshare",
            "--mount",
            "--net",
            "--",
            str(bin_dir / "sh"),
            "-c",
            inner,
        ],
        capture_output=True,
        text=True,
        env={"PATH": str(bin_dir)},
    )
    assert out.returncode == 0, out.stderr
    assert "inet 10.0.2.15/24" in out.stdout
    assert "default via 10.0.2.2 dev lo" in out.stdout
    assert "search lan\nnameserver 10.0.2.3\nnameserver 10.0.2.4\n" in out.stdout
    assert Path("/etc/resolv.conf").read_bytes() == host_resolv  # the host's was never touched
