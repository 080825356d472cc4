"""The live user on staged roots: groups, automatic login, sudo, the account itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.compose.configure import BuildFacts, configure_root
from app.compose.live import user as live_user
from app.compose.manifest import FileMeta, Kind, RootManifest
from app.compose.profile import Profile, SystemOptions, validate_profile
from app.errors import InputError
from app.reporter import Level, RecordingReporter
from tests.app.compose.live.test_systemd import UNITS, systemd_root
from tests.app.compose.test_configure import busybox_root

FACTS = BuildFacts(name="t", label="T", build_id="0123456789abcdef", date="2026-12-07")

# Debian 12's units, as systemd 252 ships them.
GETTY = """\
[Service]
ExecStart=-/sbin/agetty -o '-p -- \\\\u' --noclear - $TERM
Type=idle
"""
SERIAL_GETTY = """\
[Service]
ExecStart=-/sbin/agetty -o '-p -- \\\\u' --keep-baud 115200,57600,38400,9600 - $TERM
Type=idle
"""
GROUP = "root:x:0:\naudio:x:29:pulse\nvideo:x:44:\nsudo:x:27:\nshadow:x:42:\n"
GSHADOW = "root:*::\naudio:*::pulse\nvideo:*::\nsudo:*::\nshadow:*::\n"
PASSWD = "root:x:0:0:root:/root:/bin/bash\nmessagebus:x:100:106::/nonexistent:/usr/sbin/nologin\n"


def debian_like(tmp_path: Path) -> tuple[Path, RootManifest]:
    root, writer = systemd_root(tmp_path)
    (root / UNITS / "getty@.service").write_text(GETTY)
    (root / UNITS / "serial-getty@.service").write_text(SERIAL_GETTY)
    (root / "etc/passwd").write_text(PASSWD)
    (root / "etc/group").write_text(GROUP)
    (root / "etc/gshadow").write_text(GSHADOW)
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/sudo").write_bytes(b"\x7fELF")
    (root / "etc/sudoers").write_text("root ALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n")
    (root / "etc/lightdm").mkdir()
    manifest = writer.manifest
    manifest.add(FileMeta("etc/gshadow", Kind.FILE, 0o640, 0, 42))
    return root, manifest


def configure(root: Path, manifest: RootManifest, **options: object) -> RecordingReporter:
    reporter = RecordingReporter()
    system = SystemOptions(hostname="live", root_password="pw", **options)  # type: ignore[arg-type]
    configure_root(root, manifest, system, FACTS, reporter, epoch=1_700_000_000)
    return reporter


def test_systemd_gettys_and_lightdm_log_the_user_in_and_sudo_needs_no_password(
    tmp_path: Path,
) -> None:
    root, manifest = debian_like(tmp_path)
    configure(root, manifest, user="live", autologin=True, sudo=True, user_groups=("sudo",))

    dropins = root / "etc/systemd/system"
    tty = (dropins / "getty@.service.d/livesmith-autologin.conf").read_text()
    assert "[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin live -o" in tty
    assert tty.rstrip().endswith("--noclear - $TERM")
    serial = (dropins / "serial-getty@.service.d/livesmith-autologin.conf").read_text()
    assert "--autologin live -o '-p -- \\\\u' --keep-baud 115200" in serial
    lightdm = (root / live_user.LIGHTDM_CONF).read_text()
    assert "[Seat:*]\nautologin-user=live\n" in lightdm

    assert (root / live_user.SUDOERS).read_text().endswith("live ALL=(ALL:ALL) NOPASSWD: ALL\n")
    assert manifest.get(live_user.SUDOERS).mode == 0o440
    # no password at all: login and su let the user in (Debian's pam_unix nullok)
    shadow = dict(line.split(":", 2)[:2] for line in (root / "etc/shadow").read_text().split())
    assert shadow["live"] == ""
    assert "or as live (no password)" in (root / "etc/issue").read_text()


def test_the_user_joins_the_live_groups_that_exist_in_group_and_gshadow(tmp_path: Path) -> None:
    root, manifest = debian_like(tmp_path)
    reporter = configure(root, manifest, user="live", user_groups=("sudo", "wheel"))
    group = (root / "etc/group").read_text().splitlines()
    assert "audio:x:29:pulse,live" in group and "video:x:44:live" in group
    assert "sudo:x:27:live" in group and "shadow:x:42:" in group  # only groups asked for
    assert "live:x:1000:" in group
    gshadow = (root / "etc/gshadow").read_text().splitlines()
    assert "audio:*::pulse,live" in gshadow and "live:!::" in gshadow
    assert manifest.get("etc/gshadow") == FileMeta("etc/gshadow", Kind.FILE, 0o640, 0, 42)
    warnings = [m for level, m in reporter.logs if level is Level.WARNING]
    assert any("no group 'wheel'" in m for m in warnings)
    # no autologin asked: the packaged gettys stay as they are
    assert not (root / "etc/systemd/system/getty@.service.d").exists()


def test_a_password_gives_sudo_with_the_password(tmp_path: Path) -> None:
    root, manifest = debian_like(tmp_path)
    configure(root, manifest, user="live", user_password="secret", sudo=True)
    assert (root / live_user.SUDOERS).read_text().endswith("live ALL=(ALL:ALL) ALL\n")
    shadow = (root / "etc/shadow").read_text()
    assert "live:$6$" in shadow


def test_sudo_without_the_package_or_its_include_is_said_not_faked(tmp_path: Path) -> None:
    root, manifest = debian_like(tmp_path)
    (root / "etc/sudoers").write_text("root ALL=(ALL:ALL) ALL\n")
    reporter = configure(root, manifest, user="live", sudo=True)
    assert not (root / live_user.SUDOERS).exists()
    assert any("does not read /etc/sudoers.d" in m for _, m in reporter.logs)
    (root / "usr/bin/sudo").unlink()
    reporter = configure(root, manifest, user="live", sudo=True)
    assert any("no package brings it" in m for _, m in reporter.logs)


def test_busybox_getty_runs_login_f_for_the_user(tmp_path: Path) -> None:
    root, manifest = busybox_root(tmp_path)
    configure(root, manifest, user="ana", user_password="pw", autologin=True)
    inittab = (root / "etc/inittab").read_text()
    program = "/" + live_user.AUTOLOGIN_PROGRAM
    assert f"tty1::respawn:/sbin/getty -n -l {program} 38400 tty1" in inittab
    assert f"ttyS0::respawn:/sbin/getty -n -l {program} -L 115200 ttyS0" in inittab
    assert (root / live_user.AUTOLOGIN_PROGRAM).read_text().endswith("exec /bin/login -f ana\n")
    assert manifest.get(live_user.AUTOLOGIN_PROGRAM).mode == 0o755


def test_a_system_account_name_is_refused_and_a_taken_id_skipped(tmp_path: Path) -> None:
    root, manifest = debian_like(tmp_path)
    with pytest.raises(InputError, match="'messagebus' is a system account"):
        configure(root, manifest, user="messagebus")
    (root / "etc/passwd").write_text(PASSWD + "dev:x:1000:1000::/home/dev:/bin/sh\n")
    configure(root, manifest, user="live")
    assert "live:x:1001:1001:live:/home/live:" in (root / "etc/passwd").read_text()
    assert manifest.get("home/live").uid == 1001


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "ExecStart=-/sbin/agetty -o '-p -- \\\\u' --noclear - $TERM",
            "ExecStart=-/sbin/agetty --autologin u -o '-p -- \\\\u' --noclear - $TERM",
        ),
        ("ExecStart=/usr/sbin/agetty tty1", "ExecStart=/usr/sbin/agetty --autologin u tty1"),
        ("ExecStart=-/sbin/mingetty tty1", None),
    ],
)
def test_with_autologin(line: str, expected: str | None) -> None:
    assert live_user.with_autologin(line, "u") == expected


def test_gdm_gets_automatic_login_in_its_daemon_section() -> None:
    text = "# GDM\n[daemon]\n#AutomaticLoginEnable = true\n#AutomaticLogin = user1\n[security]\n"
    out = live_user.gdm_autologin(text, "live")
    assert out == ("# GDM\n[daemon]\nAutomaticLoginEnable=true\nAutomaticLogin=live\n[security]\n")


def test_profile_problems_for_the_live_user() -> None:
    def problems(**system: object) -> list[str]:
        profile = Profile(name="p", system=SystemOptions(**system))  # type: ignore[arg-type]
        return [f"{p.where}: {p.message}" for p in validate_profile(profile)]

    assert "autologin: needs a live user; name one" in problems(autologin=True)
    assert "sudo: needs a live user; name one" in problems(sudo=True)
    assert "user groups: 'Wheel!' is not a valid group name" in problems(
        user="u", user_groups=("Wheel!",)
    )
    found = problems(user="u", autologin=True, sudo=True, user_groups=("wheel",))
    assert not [p for p in found if p.startswith(("user", "autologin", "sudo"))]
