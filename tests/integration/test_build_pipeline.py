"""The pipeline on small real package sets: validation, bad input, cancel, disk space,
rootless builds and reproducibility."""

from __future__ import annotations

import os
import subprocess
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from app.compose.pipeline import run_build
from app.compose.profile import (
    IsoOptions,
    PackageOptions,
    Profile,
    RootImageFormat,
    SystemOptions,
)
from app.compose.scratch import MARKER
from app.errors import Cancelled, InputError, LivesmithError, ValidationError
from app.iso.inspect import inspect_iso
from app.packages import SourceKind, SourceSpec
from app.reporter import Level, RecordingReporter
from tests.app.packages.fixtures import (
    FixturePackage,
    directory,
    file,
    make_glaucus_repo,
    symlink,
    text_package,
    truncate,
)
from tests.conftest import needs_root
from tests.support.live_fixtures import live_glaucus_repo, live_packages, live_profile
from tests.support.unprivileged import run_as_nobody

EPOCH = 1_767_225_600


def glaucus_profile(
    repo: Path, *names: str, fmt: RootImageFormat = RootImageFormat.SQUASHFS, **system: str
) -> Profile:
    return live_profile(repo, *names, fmt=fmt, **system)


def build(profile: Profile, out: Path, **kwargs) -> object:  # type: ignore[no-untyped-def]
    os.environ["SOURCE_DATE_EPOCH"] = str(EPOCH)
    try:
        return run_build(
            profile,
            out,
            kwargs.pop("reporter", RecordingReporter()),
            cache_dir=out.parent / "cache",
            **kwargs,
        )
    finally:
        del os.environ["SOURCE_DATE_EPOCH"]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != "cache")


def test_fixture_build_makes_a_checked_iso(tmp_path: Path) -> None:
    repo = live_glaucus_repo(tmp_path)
    out = tmp_path / "out" / "live.iso"
    out.parent.mkdir()
    reporter = RecordingReporter()
    result = build(glaucus_profile(repo), out, reporter=reporter)
    assert result.iso == out and out.is_file()
    assert leftovers(out.parent) == ["live.iso", "live.iso.sha256"]  # scratch removed
    assert reporter.steps[0] == "Validate" and reporter.steps[-1] == "Checksum and structure check"
    assert any("BusyBox applets" in m for _, m in reporter.logs)
    report = inspect_iso(out)
    assert report.label == "FIXTURE" and report.hybrid


def test_same_epoch_and_inputs_give_identical_isos(tmp_path: Path) -> None:
    repo = live_glaucus_repo(tmp_path)
    digests = []
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        digests.append(build(glaucus_profile(repo), tmp_path / run / "live.iso").sha256)
    assert digests[0] == digests[1]


def test_validation_reports_every_problem_at_once(tmp_path: Path) -> None:
    repo = make_glaucus_repo(tmp_path, [text_package("docs", depends=("ghost",))])
    profile = Profile(
        name="broken",
        packages=PackageOptions(SourceSpec(SourceKind.GLAUCUS, str(repo)), ("docs", "nope")),
        system=SystemOptions(hostname="bad host!", user="Root User", user_password=""),
        iso=IsoOptions(label="my live!"),
    )
    out = tmp_path / "out.iso"
    with pytest.raises(ValidationError) as info:
        build(profile, out)
    text = str(info.value)
    for expected in (
        "my live!",
        "MY_LIVE",
        "unknown package 'nope'",
        "'ghost' is needed by docs",
        "no kernel among the selected packages",
        "no static shell toolkit",
        "'bad host!' is not a valid host name",
        "'Root User' is not a valid user",
    ):
        assert expected in text, expected
    assert not out.exists() and leftovers(tmp_path) == ["glaucus"]


@pytest.mark.parametrize("evil", ["dotdot", "absolute", "through-symlink"])
def test_malicious_packages_are_refused_and_write_nothing_outside(
    tmp_path: Path, evil: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    sentinel = outside / "sentinel"
    sentinel.write_text("untouched")
    entries = {
        "dotdot": (file("../../../../outside/evil", "x"),),
        "absolute": (file(str(outside / "evil"), "x"),),
        "through-symlink": (symlink("escape", str(outside)), file("escape/evil", "x")),
    }[evil]
    repo = live_glaucus_repo(tmp_path, FixturePackage("evil", entries=entries, auto_dirs=False))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(LivesmithError) as info:
        build(glaucus_profile(repo, "evil"), out_dir / "live.iso")
    assert "evil" in str(info.value)
    assert sorted(p.name for p in outside.iterdir()) == ["sentinel"]
    assert sentinel.read_text() == "untouched"
    assert leftovers(out_dir) == []


def test_truncated_package_and_checksum_mismatch_say_which_package(tmp_path: Path) -> None:
    repo = live_glaucus_repo(tmp_path, text_package("docs"))
    archive = next((repo / "docs").glob("*.tar.zst"))
    original = archive.read_bytes()
    truncate(archive)
    (repo / "docs" / "sum").unlink()  # no checksum: the damage itself must be noticed
    (tmp_path / "o1").mkdir()
    with pytest.raises(InputError, match="docs") as info:
        build(glaucus_profile(repo, "docs"), tmp_path / "o1" / "live.iso")
    assert "damaged" in str(info.value) or "truncated" in str(info.value)
    archive.write_bytes(original + b"tampered")
    (repo / "docs" / "sum").write_text("0" * 32 + f"  {archive.name}\n")
    (tmp_path / "o2").mkdir()
    with pytest.raises(InputError, match="checksum mismatch") as info:
        build(glaucus_profile(repo, "docs"), tmp_path / "o2" / "live.iso")
    assert "docs" in str(info.value)
    assert leftovers(tmp_path / "o1") == [] and leftovers(tmp_path / "o2") == []


def test_file_conflict_names_both_packages(tmp_path: Path) -> None:
    repo = live_glaucus_repo(
        tmp_path,
        text_package("one", files={"etc/motd": "1"}),
        text_package("two", files={"etc/motd": "2"}),
    )
    (tmp_path / "out").mkdir()
    with pytest.raises(LivesmithError) as info:
        build(glaucus_profile(repo, "one", "two"), tmp_path / "out" / "live.iso")
    assert "etc/motd" in str(info.value) and "one" in str(info.value) and "two" in str(info.value)


@needs_root
def test_a_nearly_full_build_folder_is_refused_before_building(tmp_path: Path) -> None:
    repo = live_glaucus_repo(tmp_path)
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(small)], check=True)
    try:
        with pytest.raises(ValidationError, match="not enough free space") as info:
            build(glaucus_profile(repo), small / "live.iso")
        assert str(small) in str(info.value)
        assert os.listdir(small) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_cancel_leaves_no_iso_and_no_scratch(tmp_path: Path) -> None:
    repo = live_glaucus_repo(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    reporter = RecordingReporter()
    original_step = reporter.step

    def cancel_at_root_image(name: str) -> None:
        original_step(name)
        if name == "Make the root image":
            threading.Timer(0.05, reporter.cancel).start()

    reporter.step = cancel_at_root_image  # type: ignore[method-assign]
    with pytest.raises(Cancelled):
        build(glaucus_profile(repo), out_dir / "live.iso", reporter=reporter)
    assert leftovers(out_dir) == []
    assert "Master the ISO" not in reporter.steps


def test_a_work_dir_holding_other_files_is_refused_and_left_alone(tmp_path: Path) -> None:
    repo = live_glaucus_repo(tmp_path)
    documents = tmp_path / "Documents"
    (documents / "letters").mkdir(parents=True)
    (documents / "letters/precious.txt").write_text("keep me")
    with pytest.raises(ValidationError) as info:
        build(glaucus_profile(repo), tmp_path / "live.iso", work_dir=documents)
    assert f"{documents}: this folder holds files that Livesmith did not put there" in str(
        info.value
    )
    assert (documents / "letters/precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in documents.iterdir()) == ["letters"]


def test_an_empty_work_dir_is_used_then_emptied_and_a_stale_one_removed(tmp_path: Path) -> None:
    repo = live_glaucus_repo(tmp_path)
    empty = tmp_path / "scratch"
    empty.mkdir()
    build(glaucus_profile(repo), tmp_path / "a.iso", work_dir=empty)
    assert empty.is_dir() and not any(empty.iterdir())  # the user's folder stays, empty
    # A scratch folder left by a killed build (it has the marker) is taken and removed.
    out_dir = tmp_path / "out"
    stale = out_dir / ".live.iso.build"
    (stale / "root").mkdir(parents=True)
    (stale / MARKER).write_text("")
    build(glaucus_profile(repo), out_dir / "live.iso")
    assert leftovers(out_dir) == ["live.iso", "live.iso.sha256"]


def test_rootless_build_keeps_package_owners_and_modes(tmp_path: Path) -> None:
    suid = FixturePackage(
        "tools",
        entries=(
            directory("usr/bin"),
            file("usr/bin/su", "#!/bin/sh\n", 0o4755),
            file("etc/private", "x", 0o640, 0, 42),
            directory("home/ana", 0o700, 1000, 1000),
        ),
    )
    repo = live_glaucus_repo(tmp_path, suid)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    subprocess.run(["chown", "-R", "nobody:nogroup", str(tmp_path)], check=True)
    profile_file = tmp_path / "profile.toml"
    from app.compose.profile import save_profile

    for fmt, name in ((RootImageFormat.SQUASHFS, "sfs"), (RootImageFormat.RAM, "ram")):
        save_profile(glaucus_profile(repo, "tools", fmt=fmt), profile_file)
        os.chown(profile_file, 65534, 65534)
        result = run_as_nobody(
            "import sys; from app.cli import main; sys.exit(main(sys.argv[1:]))".replace(
                "sys.argv[1:]",
                repr(
                    [
                        "build",
                        str(profile_file),
                        "-o",
                        str(out_dir / f"{name}.iso"),
                        "--cache-dir",
                        str(tmp_path / "cache"),
                    ]
                ),
            ),
            extra_paths=(tmp_path,),
        )
        assert result.returncode == 0, result.stderr.decode()
        assert (out_dir / f"{name}.iso").stat().st_uid == 65534  # really built by nobody

    from app.iso.extract import extract

    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    extract(out_dir / "sfs.iso", "/live/rootfs.sfs", tmp_path / "x")
    listing = subprocess.run(
        ["unsquashfs", "-lln", str(tmp_path / "x" / "rootfs.sfs")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    owners = {
        line.split("squashfs-root", 1)[1].split(" -> ")[0]: line.split()[:2]
        for line in listing.splitlines()
        if "squashfs-root/" in line
    }
    assert owners["/usr/bin/su"] == ["-rwsr-xr-x", "0/0"]
    assert owners["/etc/private"] == ["-rw-r-----", "0/42"]
    assert owners["/home/ana"] == ["drwx------", "1000/1000"]
    assert owners["/bin/busybox"] == ["-rwxr-xr-x", "0/0"]

    # RAM mode: the same truth in the initramfs's cpio listing
    extract(out_dir / "ram.iso", "/live/initramfs.img", tmp_path / "y")
    raw = subprocess.run(
        ["zstd", "-dc", str(tmp_path / "y" / "initramfs.img")], capture_output=True, check=True
    ).stdout
    cpio = subprocess.run(
        ["cpio", "-itv", "--numeric-uid-gid", "--quiet"], input=raw, capture_output=True, check=True
    ).stdout.decode()
    rows = {line.split()[-1]: line.split() for line in cpio.splitlines()}
    assert rows["usr/bin/su"][0] == "-rwsr-xr-x" and rows["usr/bin/su"][2:4] == ["0", "0"]
    assert rows["home/ana"][2:4] == ["1000", "1000"]
    assert rows["etc/private"][2:4] == ["0", "42"]


def test_build_log_names_every_stage(tmp_path: Path) -> None:
    repo = live_glaucus_repo(tmp_path)
    reporter = RecordingReporter()
    (tmp_path / "out").mkdir()
    build(
        glaucus_profile(repo, fmt=RootImageFormat.RAM),
        tmp_path / "out" / "ram.iso",
        reporter=reporter,
    )
    from app.compose.pipeline import STAGES

    assert reporter.steps == ["Validate", *[s.title for s in STAGES]]
    assert any(level == Level.INFO and "RAM mode" in m for level, m in reporter.logs)


def test_live_packages_are_small() -> None:
    total = sum(len(e.data) for pkg in live_packages() for e in pkg.entries)
    assert total < 40 << 20  # the point of the fixture: seconds, not minutes


def test_carried_packages_are_on_the_iso_with_their_index(tmp_path: Path) -> None:
    import hashlib
    import json

    from app.iso.extract import extract

    repo = live_glaucus_repo(tmp_path, text_package("docs"))
    profile = glaucus_profile(repo, "docs", fmt=RootImageFormat.RAM)
    profile = replace(profile, packages=replace(profile.packages, carry=True))
    (tmp_path / "out").mkdir()
    iso = build(profile, tmp_path / "out" / "carry.iso").iso
    dest = tmp_path / "carried"
    extract(iso, "/packages", dest)
    index = json.loads((dest / "index.json").read_text())
    assert {e["name"] for e in index} == {"busybox", "linux", "docs"}
    for entry in index:
        data = (dest / entry["file"]).read_bytes()
        source = next((repo / entry["name"]).glob("*.tar.zst")).read_bytes()
        assert data == source and hashlib.sha256(data).hexdigest() == entry["sha256"]
    sums = (dest / "SHA256SUMS").read_text().splitlines()
    assert len(sums) == 3 and all(
        line.split("  ")[1] in {e["file"] for e in index} for line in sums
    )
    # The glaucus tree itself, as rad reads it: info and XXH3-128 sum beside each tarball.
    from app.packages.glaucus import GlaucusSource

    carried = GlaucusSource(SourceSpec(SourceKind.GLAUCUS, str(dest))).packages()
    assert {p.name for p in carried} == {"busybox", "linux", "docs"}
    assert all(p.checksum and p.checksum.startswith("xxh128:") for p in carried)
