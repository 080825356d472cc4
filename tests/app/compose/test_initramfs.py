"""The initramfs image, read back with the real zstd and GNU cpio (booting it: integration)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from app.compose.compress import Compression
from app.compose.initramfs import InitramfsSpec, build_initramfs, init_script, validate_spec
from app.compose.manifest import FileMeta, Kind, RootManifest
from app.errors import Cancelled, ValidationError
from app.reporter import NullReporter, RecordingReporter
from tests.app.compose.test_cpio import LISTING, parse_newc
from tests.support.debian import busybox_static, kernel_tree

BUILD_ID = "0123456789abcdef"
EPOCH = 1_700_000_000


@pytest.fixture(scope="module")
def spec() -> InitramfsSpec:
    _, mod_dir, version = kernel_tree()
    return InitramfsSpec(
        busybox=busybox_static(),
        kernel_version=version,
        modules_dir=mod_dir,
        build_id=BUILD_ID,
        label="LIVE_TEST",
        epoch=EPOCH,
    )


def unpack(image: Path) -> bytes:
    return subprocess.run(
        ["zstd", "-d", "-c", "-q", str(image)], capture_output=True, check=True
    ).stdout


def listing(archive: bytes) -> dict[str, tuple[str, str, str, str]]:
    out = subprocess.run(
        ["cpio", "-itv", "--numeric-uid-gid", "--quiet"],
        input=archive,
        capture_output=True,
        check=True,
    ).stdout.decode()
    result = {}
    for line in out.splitlines():
        match = LISTING.match(line)
        assert match, line
        name = match["name"].partition(" -> ")[0]
        result[name] = (match["mode"], match["uid"], match["gid"], match["size"])
    return result


@pytest.fixture(scope="module")
def built(spec: InitramfsSpec, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("initramfs") / "initramfs.img"
    reporter = RecordingReporter()
    result = build_initramfs(spec, out, reporter)
    return result, unpack(out), reporter


def test_the_image_holds_init_busybox_modules_and_defaults(spec, built) -> None:
    result, archive, _ = built
    files = listing(archive)
    assert files["init"][0] == "-rwxr-xr-x"
    assert files["dev/console"][0] == "crw-------" and files["dev/console"][3] == "5,   1"
    assert files[".livesmith/bin/busybox"][0] == "-rwxr-xr-x"
    assert files[".livesmith/bin/sh"][0].startswith("l")
    base = f".livesmith/lib/modules/{spec.kernel_version}"
    dep_paths = set()
    entries = {e.name: e for e in parse_newc(archive)}
    for line in entries[f"{base}/modules.dep"].data.decode().splitlines():
        module, _, deps = line.partition(":")
        dep_paths.update([module, *deps.split()])
    assert dep_paths and all(f"{base}/{p}" in files for p in dep_paths)
    assert len(dep_paths) == len(result.modules) > 40
    assert {"isofs", "squashfs", "overlay", "uas", "vfat"} <= set(result.modules)
    defaults = entries[".livesmith/defaults"].data.decode()
    assert f"LIVESMITH_ID={BUILD_ID}\n" in defaults
    assert "LIVESMITH_LABEL=LIVE_TEST\n" in defaults
    assert "LIVESMITH_IMAGE=/live/rootfs.sfs\n" in defaults
    assert f"LIVESMITH_KVER={spec.kernel_version}\n" in defaults
    assert entries["init"].data == init_script()
    assert entries[".livesmith/bin/busybox"].data == busybox_static().read_bytes()
    # the kernel unpacks parents first; /init comes last (RAM mode: ours wins)
    names = list(entries)
    assert names.index(".livesmith") < names.index(".livesmith/bin/busybox")
    assert names[-1] == "init"


def test_the_result_describes_the_file(built) -> None:
    result, archive, reporter = built
    assert result.size == result.path.stat().st_size
    assert result.size < len(archive) // 2
    assert any("kernel modules" in message for _, message in reporter.logs)


def test_the_init_script_is_valid_busybox_sh() -> None:
    script = init_script()
    assert script.startswith(b"#!/.livesmith/bin/sh\n")
    check = subprocess.run(
        [str(busybox_static()), "sh", "-n", "/dev/stdin"], input=script, capture_output=True
    )
    assert check.returncode == 0, check.stderr


def test_same_inputs_give_the_same_bytes(spec, tmp_path: Path) -> None:
    small = replace(spec, modules=("loop", "squashfs"), compression=Compression.GZIP)
    first = build_initramfs(small, tmp_path / "a.img", NullReporter())
    second = build_initramfs(small, tmp_path / "b.img", NullReporter())
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.modules == ("loop", "squashfs")
    archive = subprocess.run(
        ["gzip", "-d", "-c", str(first.path)], capture_output=True, check=True
    ).stdout
    assert {e.mtime for e in parse_newc(archive)} == {EPOCH}


def test_the_spec_epoch_dates_the_entries_whatever_the_environment_says(
    spec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1000")  # read by the build's context, not here
    root = tmp_path / "system"
    (root / "etc").mkdir(parents=True)
    (root / "etc/new").write_text("written now, after the epoch\n")
    (root / "etc/old").write_text("written before the epoch\n")
    os.utime(root / "etc/old", (500, 500))
    ram = replace(spec, modules=("loop",), ram_root=root, ram_manifest=None)
    entries = parse_newc(unpack(build_initramfs(ram, tmp_path / "ram.img", NullReporter()).path))
    mtimes = {e.name: e.mtime for e in entries}
    assert mtimes["etc/old"] == 500 and mtimes["etc/new"] == EPOCH
    assert mtimes["init"] == mtimes[".livesmith/defaults"] == EPOCH


def test_ram_mode_puts_the_system_first_with_its_manifest_metadata(spec, tmp_path: Path) -> None:
    root = tmp_path / "system"
    (root / "sbin").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "home/user").mkdir(parents=True)
    (root / "sbin/init").write_text("#!/bin/sh\n")
    (root / "etc/shadow").write_text("root:*:1::::::\n")
    (root / "init").write_text("the system's own /init\n")
    manifest = RootManifest()
    manifest.add(FileMeta("etc/shadow", Kind.FILE, 0o640, 0, 42))
    manifest.add(FileMeta("home/user", Kind.DIR, 0o700, 1000, 1000))
    manifest.add(FileMeta("dev", Kind.DIR, 0o755))
    manifest.add(FileMeta("dev/console", Kind.CHAR, 0o620, 0, 5, rdev_major=5, rdev_minor=1))
    ram = replace(spec, modules=("loop",), ram_root=root, ram_manifest=manifest)
    reporter = RecordingReporter()
    result = build_initramfs(ram, tmp_path / "ram.img", reporter)
    archive = unpack(result.path)
    entries = parse_newc(archive)
    names = [e.name for e in entries]
    assert names.index("sbin/init") < names.index(".livesmith")
    files = listing(archive)
    assert files["etc/shadow"][:3] == ("-rw-r-----", "0", "42")
    assert files["home/user"][:3] == ("drwx------", "1000", "1000")
    assert names.count("dev/console") == 1 and files["dev/console"][2] == "5"  # the system's
    assert names.count("init") == 2  # the kernel keeps the later one: ours
    assert entries[-1].name == "init" and entries[-1].data == init_script()
    defaults = next(e for e in entries if e.name == ".livesmith/defaults").data.decode()
    assert "LIVESMITH_IMAGE=none\n" in defaults
    assert any("own /init is replaced" in message for _, message in reporter.logs)


def test_every_problem_of_a_spec_is_reported_at_once(spec, tmp_path: Path) -> None:
    dynamic = shutil.which("ls")
    assert dynamic is not None
    bad = replace(
        spec,
        busybox=Path(dynamic),
        build_id="XYZ",
        label="my label",
        level=42,
        image="rootfs.sfs",
        modules_dir=tmp_path / "nope",
    )
    problems = validate_spec(bad)
    text = "\n".join(str(p) for p in problems)
    assert len(problems) == 6, text
    for expected in (
        "dynamically linked",
        "16 lowercase hex",
        "'my label'",
        "level 42",
        "absolute path",
        "modules directory is missing",
    ):
        assert expected in text
    with pytest.raises(ValidationError):
        build_initramfs(bad, tmp_path / "x.img", NullReporter())
    assert not (tmp_path / "x.img").exists()
    missing_busybox = replace(spec, busybox=tmp_path / "busybox")
    assert "add busybox-static" in str(validate_spec(missing_busybox)[0])


def test_a_cancelled_build_leaves_no_file(spec, tmp_path: Path) -> None:
    reporter = NullReporter()
    reporter.cancel()
    with pytest.raises(Cancelled):
        build_initramfs(spec, tmp_path / "initramfs.img", reporter)
    assert not (tmp_path / "initramfs.img").exists()
