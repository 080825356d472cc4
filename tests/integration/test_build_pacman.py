"""A live system from Arch-style packages: the pipeline installs them with pacman, so their
install scriptlets and alpm hooks shape the root image (small real package set)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from app.compose.install import pacman
from app.compose.pipeline import run_build
from app.compose.profile import InstallMethod
from app.packages.model import SourceKind, SourceSpec
from app.reporter import RecordingReporter
from tests.app.packages.fixtures import FixturePackage, busybox_package, file, make_arch_folder
from tests.support.images import root_image_entries
from tests.support.live_fixtures import kernel_package, live_profile

pytestmark = pytest.mark.skipif(
    bool(pacman.validate()), reason="pacman or the sandbox for package code is not available"
)

EPOCH = "1767225600"
HOOK = """\
[Trigger]
Operation = Install
Type = Package
Target = svc

[Action]
Description = Stamping the service
When = PostTransaction
Exec = /bin/sh -c 'echo stamped >/var/lib/svc/hooked'
"""
SERVICE = FixturePackage(
    "svc",
    depends=("busybox",),
    entries=(
        file("etc/svc.conf", "port = 1\n"),
        file("usr/share/libalpm/hooks/svc.hook", HOOK),
    ),
    arch_install="""\
post_install() {
    echo "svc:x:990:990:test service:/var/lib/svc:/bin/false" >>/etc/passwd
    echo "svc:x:990:" >>/etc/group
    mkdir -p /var/lib/svc
    echo made >/var/lib/svc/state
    chown -R svc:svc /var/lib/svc
}
""",
)


def test_an_arch_style_source_is_installed_by_pacman_with_scriptlets_and_hooks(
    tmp_path: Path,
) -> None:
    shell = busybox_package(applets=("sh", "chown", "mkdir"))
    folder = make_arch_folder(tmp_path, [shell, kernel_package(), SERVICE])
    profile = live_profile(tmp_path, "svc")
    profile = replace(
        profile, packages=replace(profile.packages, source=SourceSpec(SourceKind.ARCH, str(folder)))
    )
    assert profile.packages.install is InstallMethod.AUTO and profile.packages.uses_pacman
    out = tmp_path / "out" / "live.iso"
    out.parent.mkdir()
    reporter = RecordingReporter()
    os.environ["SOURCE_DATE_EPOCH"] = EPOCH
    try:
        result = run_build(profile, out, reporter, cache_dir=tmp_path / "cache")
    finally:
        del os.environ["SOURCE_DATE_EPOCH"]
    assert any("installing 3 packages with pacman" in m for _, m in reporter.logs)

    (tmp_path / "x").mkdir()
    entries = root_image_entries(result.iso, tmp_path / "x")
    assert entries["/var/lib/svc/state"] == ["-rw-r--r--", "990/990"]  # by the scriptlet
    assert entries["/var/lib/svc/hooked"][0] == "-rw-r--r--"  # by the hook
    assert "/var/lib/pacman/local/svc-1.0-1/desc" in entries  # pacman's own database
    passwd = subprocess.run(
        ["unsquashfs", "-cat", str(tmp_path / "x" / "rootfs.sfs"), "etc/passwd"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    users = [line.split(":")[0] for line in passwd.splitlines()]
    assert users == ["svc", "root"]  # the scriptlet's user, then the one configure adds
