"""The systemd live layer on staged roots shaped like Debian's (merged /usr)."""

from __future__ import annotations

from pathlib import Path

from app.compose.configure import RootWriter
from app.compose.live.systemd import WIRED_NETWORK, configure_systemd
from app.compose.manifest import Kind, RootManifest
from app.reporter import RecordingReporter

UNITS = "usr/lib/systemd/system"


def systemd_root(tmp_path: Path, *units: str) -> tuple[Path, RootWriter]:
    root = tmp_path / "root"
    (root / "usr/lib/systemd").mkdir(parents=True)
    (root / "usr/lib/systemd/systemd").write_bytes(b"\x7fELF")
    (root / UNITS).mkdir()
    for unit in units:
        (root / UNITS / unit).write_text("[Unit]\n")
    (root / "lib").symlink_to("usr/lib")
    (root / "etc").mkdir()
    (root / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    return root, RootWriter(root, RootManifest())


def test_networkd_gets_dhcp_on_wired_links_and_is_enabled(tmp_path: Path) -> None:
    root, writer = systemd_root(
        tmp_path, "systemd-networkd.service", "systemd-networkd.socket", "systemd-resolved.service"
    )
    assert configure_systemd(writer, RecordingReporter())
    assert (root / "etc/machine-id").read_text() == ""
    assert writer.manifest.get("etc/machine-id").mode == 0o444
    assert "Type=ether" in (root / WIRED_NETWORK).read_text()
    wants = root / "etc/systemd/system"
    for link, unit in (
        ("multi-user.target.wants/systemd-networkd.service", "systemd-networkd.service"),
        ("sockets.target.wants/systemd-networkd.socket", "systemd-networkd.socket"),
        ("multi-user.target.wants/systemd-resolved.service", "systemd-resolved.service"),
    ):
        assert (wants / link).readlink() == Path(f"/{UNITS}/{unit}")
        assert writer.manifest.get(f"etc/systemd/system/{link}").kind is Kind.SYMLINK


def test_networkmanager_is_left_to_do_it_alone(tmp_path: Path) -> None:
    root, writer = systemd_root(tmp_path, "NetworkManager.service", "systemd-networkd.service")
    assert configure_systemd(writer, RecordingReporter())
    assert not (root / WIRED_NETWORK).exists()
    assert not (root / "etc/systemd/system/multi-user.target.wants").exists()


def test_a_root_without_systemd_is_not_touched(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/machine-id").write_text("kept\n")
    assert not configure_systemd(RootWriter(root, RootManifest()), RecordingReporter())
    assert (root / "etc/machine-id").read_text() == "kept\n"
