"""Units enabled and disabled as systemctl would, and the first-boot script."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.compose.configure import BuildFacts, RootWriter, configure_root
from app.compose.live import services
from app.compose.manifest import FileMeta, Kind
from app.compose.profile import Profile, SystemOptions, validate_profile
from app.errors import StageError
from app.reporter import RecordingReporter
from tests.app.compose.live.test_systemd import UNITS, systemd_root
from tests.app.compose.test_configure import busybox_root

SSH = "[Unit]\nDescription=ssh\n[Install]\nWantedBy=multi-user.target\nAlias=sshd.service\n"
TIMER = "[Timer]\nOnCalendar=weekly\n[Install]\nWantedBy=timers.target\n"
GETTY = "[Service]\nExecStart=-/sbin/agetty %I\n[Install]\nWantedBy=getty.target\nDefaultInstance=tty1\n"


def packaged(tmp_path: Path) -> tuple[Path, RootWriter]:
    root, writer = systemd_root(tmp_path)
    (root / UNITS / "ssh.service").write_text(SSH)
    (root / UNITS / "fstrim.timer").write_text(TIMER)
    (root / UNITS / "getty@.service").write_text(GETTY)
    # what the packages' maintainer scripts enabled
    wants = root / "etc/systemd/system/timers.target.wants"
    wants.mkdir(parents=True)
    (wants / "fstrim.timer").symlink_to(f"/{UNITS}/fstrim.timer")
    return root, writer


def test_enable_follows_the_install_section_and_disable_removes_every_link(
    tmp_path: Path,
) -> None:
    root, writer = packaged(tmp_path)
    link = "etc/systemd/system/timers.target.wants/fstrim.timer"
    writer.manifest.add(FileMeta(link, Kind.SYMLINK, 0o777, target=f"/{UNITS}/fstrim.timer"))
    services.configure_services(
        writer,
        ("ssh.service", "getty@tty2.service"),
        ("fstrim.timer",),
        RecordingReporter(),
        systemd=True,
        stage="configure",
    )
    system = root / "etc/systemd/system"
    assert (system / "multi-user.target.wants/ssh.service").readlink() == Path(
        f"/{UNITS}/ssh.service"
    )
    assert (system / "sshd.service").is_symlink()  # its Alias=
    assert (system / "getty.target.wants/getty@tty2.service").readlink() == Path(
        f"/{UNITS}/getty@.service"
    )
    assert not (system / "timers.target.wants/fstrim.timer").exists()
    assert "etc/systemd/system/timers.target.wants/fstrim.timer" not in writer.manifest


def test_units_no_package_ships_are_named_together(tmp_path: Path) -> None:
    _, writer = packaged(tmp_path)
    with pytest.raises(StageError) as caught:
        services.configure_services(
            writer,
            ("ssh.service", "nope.service"),
            ("gone.timer",),
            RecordingReporter(),
            systemd=True,
            stage="configure",
        )
    assert "no selected package ships the units nope.service, gone.timer" in str(caught.value)


def test_unit_names_and_contradictions_are_problems_before_building(tmp_path: Path) -> None:
    def problems(**system: object) -> list[str]:
        profile = Profile(name="p", system=SystemOptions(**system))  # type: ignore[arg-type]
        return [str(p) for p in validate_profile(profile)]

    assert (
        "services to enable: '-ssh' is not a service name (e.g. ssh.service or fstrim.timer)"
        in (problems(enable_units=("-ssh",)))
    )
    assert not [p for p in problems(enable_units=("ssh",)) if p.startswith("services")]
    assert "services: ssh.service both enabled and disabled; choose one" in problems(
        enable_units=("ssh.service",), disable_units=("ssh.service",)
    )
    assert f"first-boot script: {tmp_path}/none is not a file" in problems(
        first_boot=str(tmp_path / "none")
    )


FACTS = BuildFacts(name="t", label="T", build_id="0123456789abcdef", date="2026-12-07")


def test_the_first_boot_script_runs_from_a_unit_or_from_rcs(tmp_path: Path) -> None:
    script = tmp_path / "hello.sh"
    script.write_text("#!/bin/sh\necho hello > /root/first-boot\n")
    root, writer = systemd_root(tmp_path / "a")
    options = SystemOptions(first_boot=str(script))
    configure_root(root, writer.manifest, options, FACTS, RecordingReporter(), epoch=0)
    assert (root / "etc/livesmith/first-boot").read_text() == script.read_text()
    assert writer.manifest.get("etc/livesmith/first-boot").mode == 0o755
    unit = (root / "etc/systemd/system/livesmith-first-boot.service").read_text()
    assert "ExecStart=/etc/livesmith/first-boot" in unit
    wants = root / "etc/systemd/system/multi-user.target.wants/livesmith-first-boot.service"
    assert wants.is_symlink()
    bb_root, manifest = busybox_root(tmp_path / "b")
    configure_root(bb_root, manifest, options, FACTS, RecordingReporter(), epoch=0)
    assert "if [ -x /etc/livesmith/first-boot ]" in (bb_root / "etc/init.d/rcS").read_text()
    assert (bb_root / "etc/livesmith/first-boot").is_file()


def test_busybox_init_scripts_are_linked_for_rcs_and_unlinked(tmp_path: Path) -> None:
    root, manifest = busybox_root(tmp_path)
    init_d = root / "etc/init.d"
    init_d.mkdir(parents=True)
    for name in ("hello", "crond"):
        (init_d / name).write_text("#!/bin/sh\n")
        (init_d / name).chmod(0o755)
    (init_d / "S20crond").symlink_to("crond")
    options = SystemOptions(enable_units=("hello.service",), disable_units=("crond",))
    configure_root(root, manifest, options, FACTS, RecordingReporter(), epoch=0)
    assert (init_d / "S50hello").readlink() == Path("hello")
    assert manifest.get("etc/init.d/S50hello").kind is Kind.SYMLINK
    assert not (init_d / "S20crond").exists() and (init_d / "crond").exists()
    assert "for script in /etc/init.d/S[0-9][0-9]*" in (init_d / "rcS").read_text()
    with pytest.raises(StageError) as caught:
        configure_root(
            root,
            manifest,
            SystemOptions(enable_units=("sshd", "ntpd")),
            FACTS,
            RecordingReporter(),
            epoch=0,
        )
    assert "no selected package ships the init scripts /etc/init.d/sshd, /etc/init.d/ntpd" in (
        str(caught.value)
    )


def test_a_name_without_a_suffix_is_a_service_to_systemd(tmp_path: Path) -> None:
    root, writer = packaged(tmp_path)
    services.configure_services(
        writer, ("ssh",), (), RecordingReporter(), systemd=True, stage="configure"
    )
    assert (root / "etc/systemd/system/multi-user.target.wants/ssh.service").is_symlink()
