"""Validation on the live fixture set: problems the build would otherwise meet late, or not
at all, are reported before anything is built, or (extra kernel modules, which need the
kernel's files) as soon as the kernel is unpacked."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from app.compose.pipeline import make_context, run_build, validate_build
from app.compose.profile import (
    Compressor,
    ImageOptions,
    InstallMethod,
    KernelOptions,
    PackageOptions,
    Profile,
    RootImageFormat,
)
from app.errors import ValidationError
from app.packages.model import SourceKind, SourceSpec
from app.reporter import RecordingReporter
from tests.conftest import ROOT, needs_root
from tests.support.debian import kernel_tree, script_package
from tests.support.live_fixtures import (
    live_glaucus_repo,
    live_profile,
    refused_before_building,
)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return live_glaucus_repo(tmp_path_factory.mktemp("repo"))


def test_a_ram_mode_zstd_level_the_initramfs_cannot_take_is_refused_up_front(
    repo: Path, tmp_path: Path
) -> None:
    profile = replace(
        live_profile(repo, fmt=RootImageFormat.RAM),
        image=ImageOptions(RootImageFormat.RAM, Compressor.ZSTD, 22),
    )
    assert refused_before_building(profile, tmp_path) == [
        "compression level: level 22 is out of range for zstd in RAM mode (choose 1 to 19)"
    ]


def test_a_package_name_apt_would_read_as_an_option_never_reaches_apt(tmp_path: Path) -> None:
    profile = Profile(
        name="apt",
        packages=PackageOptions(
            SourceSpec(SourceKind.APT), ("busybox-static", "-oAPT::Architecture=foo")
        ),
        kernel=KernelOptions(package="linux-image-amd64"),
    )
    ctx = make_context(profile, tmp_path / "live.iso", RecordingReporter())
    problems = validate_build(ctx)
    assert [str(p) for p in problems if p.where == "packages"] == [
        "packages: not valid package name: '-oAPT::Architecture=foo' (Debian package names "
        "are at least two lower-case letters, digits, '+', '-' and '.', starting with a "
        "letter or digit)"
    ]
    assert ctx.source is None and ctx.resolution is None  # the source was never asked


def test_bad_package_names_in_a_folder_source_are_refused_up_front(
    repo: Path, tmp_path: Path
) -> None:
    profile = live_profile(repo, "--version", "a b")
    assert refused_before_building(profile, tmp_path) == [
        "packages: not valid package names: '--version', 'a b' (package names are letters, "
        "digits, '@', '_', '+', '.' and '-', not starting with '-' or '.')"
    ]


def test_an_unknown_extra_module_stops_the_build_once_the_kernel_is_known(
    repo: Path, tmp_path: Path
) -> None:
    _, _, version = kernel_tree()
    base = live_profile(repo)
    # nvme_core is in the fixture kernel only as a dependency; the other two are not in it.
    profile = replace(
        base,
        kernel=replace(base.kernel, extra_modules=("nvme_core", "usb_storag", "zz_not_a_module")),
    )
    reporter = RecordingReporter()
    out = tmp_path / "out" / "live.iso"
    out.parent.mkdir()
    with pytest.raises(ValidationError) as info:
        run_build(profile, out, reporter, cache_dir=tmp_path / "cache")
    assert [(p.where, p.message) for p in info.value.problems] == [
        (
            "extra kernel module",
            f"'usb_storag' is neither a module of kernel {version} nor built into it",
        ),
        (
            "extra kernel module",
            f"'zz_not_a_module' is neither a module of kernel {version} nor built into it",
        ),
    ]
    assert info.value.problems[0].hint == "did you mean 'usb_storage'?"
    assert reporter.steps[-1] == "Make the initramfs"  # before the root image is made
    assert sorted(p.name for p in out.parent.iterdir()) == []


def test_a_malformed_extra_module_name_is_refused_before_building(
    repo: Path, tmp_path: Path
) -> None:
    base = live_profile(repo)
    profile = replace(base, kernel=replace(base.kernel, extra_modules=("nvme.ko", "nvme")))
    assert refused_before_building(profile, tmp_path) == [
        "extra kernel modules: not valid module name: 'nvme.ko' (module names are letters, "
        "digits, '_' and '-', starting with a letter or digit, without a path or '.ko', as "
        "modprobe takes them)"
    ]


HIDE_BWRAP_AND_PLAN = """
import sys
from pathlib import Path
from app.compose.profile import RootImageFormat
from tests.support.live_fixtures import live_glaucus_repo, live_profile, refused_before_building
repo = live_glaucus_repo(Path(sys.argv[1]))
for problem in refused_before_building(live_profile(repo, fmt=RootImageFormat.RAM),
                                       Path(sys.argv[2])):
    print(problem)
"""


@needs_root
def test_a_missing_bubblewrap_is_named_before_building(tmp_path: Path) -> None:
    # bwrap runs the packaged BusyBox to list its applets, after assembly: a machine without
    # it hears so at Validate. A private mount namespace hides the real /usr/bin/bwrap.
    (tmp_path / "repo").mkdir()
    (tmp_path / "build").mkdir()
    bwrap = shutil.which("bwrap")
    assert bwrap is not None
    script = 'mount --bind /dev/null "$1" && shift && exec "$@"'
    run = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
            bwrap,
            sys.executable,
            "-c",
            HIDE_BWRAP_AND_PLAN,
            str(tmp_path / "repo"),
            str(tmp_path / "build"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "configure: the program 'bwrap' is not installed (install it with: sudo apt-get "
        "install bubblewrap)"
    ]


def test_a_deb_folder_beside_the_suite_takes_its_dependencies_from_the_suite(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "debs"
    script_package(folder, "site-tools", "true\n", depends="bash, e2fsprogs", index=False)
    options = PackageOptions(
        SourceSpec(SourceKind.DEB, str(folder)),
        ("site-tools", "busybox-static", "linux-image-amd64"),
        install=InstallMethod.MMDEBSTRAP,
    )
    ctx = make_context(
        Profile(name="site", packages=options), tmp_path / "o.iso", RecordingReporter()
    )
    problems = [str(p) for p in validate_build(ctx)]
    assert not [p for p in problems if p.startswith(("packages", "kernel"))], problems
    assert ctx.resolution is not None
    found = {p.name: p.kind for p in ctx.resolution.packages}
    assert found["site-tools"] is SourceKind.DEB  # from the folder
    assert found["e2fsprogs"] is SourceKind.APT  # its dependency, from the suite
    unpacked = Profile(name="site", packages=replace(options, install=InstallMethod.UNPACK))
    ctx = make_context(unpacked, tmp_path / "o.iso", RecordingReporter())
    assert "packages: 'bash' is needed by site-tools but is not in the source" in [
        str(p) for p in validate_build(ctx)
    ]
