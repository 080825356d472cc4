"""A Debian system built by an ordinary user: mmdebstrap's maintainer scripts run in a user
namespace that maps the user's /etc/subuid range, so owners and set-id bits come out as on
a real system, and the build needs no root at all."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from app.compose.profile import (
    InstallMethod,
    IsoOptions,
    KernelOptions,
    PackageOptions,
    Profile,
    save_profile,
)
from app.iso.inspect import inspect_iso
from app.packages.model import SourceKind, SourceSpec
from tests.conftest import needs_root
from tests.integration.conftest import EPOCH
from tests.support.images import root_image_entries
from tests.support.unprivileged import REPO, builder_user, unprivileged_python

pytestmark = [pytest.mark.slow, needs_root]


def give(path: Path, uid: int, gid: int) -> None:
    """`path` and everything below it to the user."""
    os.chown(path, uid, gid)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [*dirnames, *filenames]:
            os.chown(Path(dirpath, name), uid, gid)


def test_an_ordinary_user_builds_a_debian_system_with_real_owners(package_cache: Path) -> None:
    user = builder_user()
    account = pwd.getpwnam(user)
    place = Path(tempfile.mkdtemp(prefix="livesmith-user-build-"))
    try:
        cache = place / "cache"
        cache.mkdir()
        if (package_cache / "debian").is_dir():  # a warm start, as for the user's own cache
            shutil.copytree(package_cache / "debian", cache / "debian")
        profile = Profile(
            name="user-build",
            packages=PackageOptions(
                SourceSpec(SourceKind.APT),
                ("systemd-sysv", "bash", "busybox-static", "linux-image-amd64"),
                install=InstallMethod.MMDEBSTRAP,
            ),
            kernel=KernelOptions(package="linux-image-amd64"),
            iso=IsoOptions(label="USERBUILD"),
        )
        save_profile(profile, place / "profile.toml")
        give(place, account.pw_uid, account.pw_gid)
        iso = place / "out.iso"
        with unprivileged_python(user=user) as prefix:
            proc = subprocess.run(
                [
                    *prefix,
                    "-m",
                    "app",
                    "build",
                    str(place / "profile.toml"),
                    "-o",
                    str(iso),
                    "--cache-dir",
                    str(cache),
                ],
                cwd=REPO,
                env={
                    **os.environ,
                    "PYTHONPATH": str(REPO),
                    "SOURCE_DATE_EPOCH": EPOCH,
                    "HOME": account.pw_dir,
                    "USER": user,
                    "LOGNAME": user,
                },
                capture_output=True,
                text=True,
            )
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
        assert "(no network)" in proc.stdout + proc.stderr
        assert iso.stat().st_uid == account.pw_uid
        # The signed boot chain (secure_boot = auto) was fetched without root too.
        assert "Secure Boot: on" in proc.stdout + proc.stderr
        assert "/EFI/BOOT/grubx64.efi" in {f.path for f in inspect_iso(iso).files}

        entries = root_image_entries(iso, place)
        assert entries["/etc/shadow"] == ["-rw-r-----", "0/42"]  # group shadow, from a script
        assert entries["/usr/bin/passwd"] == ["-rwsr-xr-x", "0/0"]
        groups = subprocess.run(
            ["unsquashfs", "-cat", str(place / "rootfs.sfs"), "etc/group"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "\nsystemd-journal:x:" in groups  # made by systemd's maintainer scripts
    finally:
        shutil.rmtree(place, ignore_errors=True)
