"""Stage 3 on real packages: contents, metadata in the manifest, and every kind of bad input."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

from app.compose.assemble import assemble_root, disk_mode
from app.compose.manifest import Kind
from app.errors import Cancelled, InputError, StageError, ValidationError
from app.packages.deb import read_package
from app.packages.model import PackageInfo, SourceKind, SourceSpec
from app.packages.sources import open_source
from app.reporter import NullReporter, RecordingReporter
from tests.app.packages.fixtures import (
    FixturePackage,
    busybox_package,
    compress,
    device,
    directory,
    fifo,
    file,
    hardlink,
    make_arch_folder,
    make_deb_folder,
    make_glaucus_repo,
    make_tarball_folder,
    real_deb_folder,
    symlink,
    text_package,
    truncate,
)
from tests.conftest import needs_root
from tests.support.debian import busybox_static, debian_package

MAKERS = {
    "glaucus": lambda tmp, pkgs: make_glaucus_repo(tmp, pkgs),
    "arch": lambda tmp, pkgs: make_arch_folder(tmp, pkgs),
    "tarballs-zst": lambda tmp, pkgs: make_tarball_folder(tmp, pkgs, compression="zst"),
    "tarballs-xz": lambda tmp, pkgs: make_tarball_folder(tmp, pkgs, compression="xz"),
    "tarballs-gz": lambda tmp, pkgs: make_tarball_folder(tmp, pkgs, compression="gz"),
    "deb-dpkg": lambda tmp, pkgs: make_deb_folder(tmp, pkgs, builder="dpkg-deb"),
    "deb-python": lambda tmp, pkgs: make_deb_folder(tmp, pkgs, builder="python"),
}
KINDS = {
    "glaucus": SourceKind.GLAUCUS,
    "arch": SourceKind.ARCH,
    "deb": SourceKind.DEB,
    "tarballs": SourceKind.TARBALLS,
}


def packages_of(
    folder: Path, fmt: str, names: list[str] | None = None
) -> list[tuple[PackageInfo, Path]]:
    source = open_source(SourceSpec(KINDS[fmt.split("-")[0]], str(folder)))
    pkgs = source.packages()
    if names is not None:
        pkgs = [source.get(n) for n in names]  # type: ignore[misc]
    return [(p, p.file) for p in pkgs if p is not None and p.file is not None]


def build(tmp: Path, fmt: str, pkgs: list[FixturePackage], order: list[str] | None = None):  # type: ignore[no-untyped-def]
    folder = MAKERS[fmt](tmp / "src", pkgs)
    return packages_of(folder, fmt, order or [p.name for p in pkgs])


def snapshot(top: Path, skip: Path) -> dict[str, tuple[int, int]]:
    """Every path under `top` except inside `skip`, with size and mtime."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(top):
        if Path(dirpath) == skip or skip in Path(dirpath).parents:
            continue
        for name in dirnames + filenames:
            if Path(dirpath, name) == skip:
                continue
            st = os.lstat(Path(dirpath, name))
            found[str(Path(dirpath, name))] = (st.st_size, st.st_mtime_ns)
    return found


# -- good packages ---------------------------------------------------------------------
@pytest.mark.parametrize("fmt", sorted(MAKERS))
def test_real_busybox_is_extracted_from_every_format(tmp_path: Path, fmt: str) -> None:
    pkgs = build(
        tmp_path, fmt, [busybox_package(), text_package("motd", files={"etc/motd": "hello\n"})]
    )
    root = tmp_path / "root"
    manifest = assemble_root(pkgs, root, RecordingReporter())

    binary = root / "bin" / "busybox"
    assert binary.read_bytes() == busybox_static().read_bytes()
    out = subprocess.run([str(binary), "echo", "works"], capture_output=True, text=True)
    assert out.stdout == "works\n"
    assert os.readlink(root / "bin" / "sh") == "busybox"
    assert (root / "etc" / "motd").read_text() == "hello\n"
    meta = manifest.get("bin/busybox")
    assert meta is not None and meta.kind is Kind.FILE and meta.mode == 0o755
    assert (meta.uid, meta.gid, meta.owner) == (0, 0, "busybox")
    sh = manifest.get("bin/sh")
    assert sh is not None and sh.kind is Kind.SYMLINK and sh.target == "busybox"
    assert manifest.get("etc").kind is Kind.DIR  # type: ignore[union-attr]
    assert ".PKGINFO" not in manifest and not (root / ".PKGINFO").exists()
    # parents come before children, as image writers need
    paths = [m.path for m in manifest]
    assert paths.index("bin") < paths.index("bin/busybox")


def test_real_debian_busybox_static_matches_dpkg_deb(tmp_path: Path) -> None:
    deb = debian_package("busybox-static")
    pkg = read_package(deb)
    root = tmp_path / "root"
    manifest = assemble_root([(pkg, deb)], root, NullReporter())
    listing = subprocess.run(
        ["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True
    ).stdout
    names = (
        subprocess.run(["tar", "-t"], input=listing, capture_output=True, check=True)
        .stdout.decode()
        .split()
    )
    expected = {n.removeprefix("./").rstrip("/") for n in names} - {""}
    assert {m.path for m in manifest} == expected
    for rel in expected:
        assert (root / rel).exists() or (root / rel).is_symlink(), rel
    assert (root / "bin/busybox").read_bytes() == busybox_static().read_bytes()


def test_real_debian_folder_with_packages_in_order(tmp_path: Path) -> None:
    folder = real_deb_folder(tmp_path, ["busybox-static"])
    pkgs = packages_of(folder, "deb")
    manifest = assemble_root(pkgs, tmp_path / "root", NullReporter())
    assert manifest.get("bin/busybox").owner == "busybox-static"  # type: ignore[union-attr]


def test_metadata_is_kept_in_the_manifest_not_on_disk(tmp_path: Path) -> None:
    pkg = FixturePackage(
        "special",
        entries=(
            file("usr/bin/su", b"#!/bin/sh\n", 0o4755),
            file("usr/bin/wall", b"#!/bin/sh\n", 0o2755, uid=0, gid=5),
            file("etc/shadow", b"root:*:1::::::\n", 0o640, uid=0, gid=42),
            directory("tmp", 0o1777),
            directory("home/user", 0o750, uid=1000, gid=1000),
            file("home/user/.profile", b"PS1='$ '\n", 0o644, uid=1000, gid=1000),
            device("dev/null", "c", 1, 3),
            device("dev/sda", "b", 8, 0, 0o660),
            fifo("run/initctl", 0o600),
        ),
    )
    pkgs = build(tmp_path, "deb-python", [pkg])
    root = tmp_path / "root"
    manifest = assemble_root(pkgs, root, NullReporter())

    su = manifest.get("usr/bin/su")
    assert su is not None and su.mode == 0o4755 and su.uid == 0
    assert manifest.get("usr/bin/wall").mode == 0o2755  # type: ignore[union-attr]
    assert manifest.get("usr/bin/wall").gid == 5  # type: ignore[union-attr]
    shadow = manifest.get("etc/shadow")
    assert shadow is not None and (shadow.mode, shadow.gid) == (0o640, 42)
    assert manifest.get("tmp").mode == 0o1777  # type: ignore[union-attr]
    home = manifest.get("home/user")
    assert home is not None and (home.uid, home.gid, home.mode) == (1000, 1000, 0o750)
    null = manifest.get("dev/null")
    assert null is not None and null.kind is Kind.CHAR
    assert (null.rdev_major, null.rdev_minor, null.mode) == (1, 3, 0o666)
    assert null.st_mode == stat.S_IFCHR | 0o666
    sda = manifest.get("dev/sda")
    assert sda is not None and sda.kind is Kind.BLOCK and (sda.rdev_major, sda.rdev_minor) == (8, 0)
    assert manifest.get("run/initctl").kind is Kind.FIFO  # type: ignore[union-attr]

    # On disk: contents only, no special files, no setuid, owner-accessible.
    assert not (root / "dev" / "null").exists() and not (root / "run" / "initctl").exists()
    assert stat.S_IMODE((root / "usr/bin/su").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "etc/shadow").stat().st_mode) == 0o640
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o755
    assert (root / "usr/bin/su").stat().st_uid == os.geteuid()


def test_disk_modes_never_carry_special_bits() -> None:
    assert disk_mode(Kind.FILE, 0o4755) == 0o755
    assert disk_mode(Kind.FILE, 0o000) == 0o600
    assert disk_mode(Kind.FILE, 0o666) == 0o644
    assert disk_mode(Kind.DIR, 0o1777) == 0o755
    assert disk_mode(Kind.DIR, 0o500) == 0o700


def test_hardlinks_become_hardlink_entries_and_real_links(tmp_path: Path) -> None:
    pkg = FixturePackage(
        "links",
        entries=(
            file("usr/bin/gzip", b"gzip binary", 0o755),
            hardlink("usr/bin/gunzip", "usr/bin/gzip"),
            hardlink("usr/bin/zcat", "usr/bin/gunzip"),
        ),
    )
    for fmt in ("deb-dpkg", "tarballs-zst"):
        pkgs = build(tmp_path / fmt, fmt, [pkg])
        root = tmp_path / fmt / "root"
        manifest = assemble_root(pkgs, root, NullReporter())
        metas = [manifest.get(f"usr/bin/{n}") for n in ("gzip", "gunzip", "zcat")]
        # dpkg-deb sorts members, so which path holds the data first depends on the builder
        files = [m for m in metas if m is not None and m.kind is Kind.FILE]
        links = [m for m in metas if m is not None and m.kind is Kind.HARDLINK]
        assert len(files) == 1 and len(links) == 2, metas
        inode = (root / files[0].path).stat().st_ino
        for meta in links:
            assert meta.target == files[0].path and meta.mode == 0o755
            assert (root / meta.path).read_bytes() == b"gzip binary"
            assert (root / meta.path).stat().st_ino == inode


def test_directory_handle_cache_eviction_keeps_links_right(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import app.compose.assemble as assemble

    monkeypatch.setattr(assemble, "MAX_OPEN_DIRS", 3)  # evict constantly
    entries = [file(f"d{i}/sub/f", f"file {i}") for i in range(8)]
    entries += [hardlink(f"d{7 - i}/sub/link{i}", f"d{i}/sub/f") for i in range(8)]
    pkgs = build(tmp_path, "tarballs-zst", [FixturePackage("many", entries=tuple(entries))])
    root = tmp_path / "root"
    assemble_root(pkgs, root, NullReporter())
    for i in range(8):
        link = root / f"d{7 - i}/sub/link{i}"
        assert link.read_text() == f"file {i}"
        assert link.stat().st_ino == (root / f"d{i}/sub/f").stat().st_ino
    assert sorted(p.name for p in root.iterdir()) == [f"d{i}" for i in range(8)]


def test_absolute_symlinks_are_created_but_never_followed(tmp_path: Path) -> None:
    pkg = FixturePackage(
        "links",
        entries=(
            file("bin/busybox", b"x", 0o755),
            symlink("bin/sh", "/bin/busybox"),
            symlink("etc/mtab", "/proc/self/mounts"),
        ),
    )
    pkgs = build(tmp_path, "arch", [pkg])
    root = tmp_path / "root"
    manifest = assemble_root(pkgs, root, NullReporter())
    assert os.readlink(root / "bin/sh") == "/bin/busybox"
    assert manifest.get("etc/mtab").target == "/proc/self/mounts"  # type: ignore[union-attr]


def test_shared_directories_and_identical_symlinks_are_fine(tmp_path: Path) -> None:
    a = FixturePackage(
        "a",
        entries=(
            directory("usr/share", 0o755),
            file("usr/share/a", "a"),
            symlink("usr/lib/os-release", "../../etc/os-release"),
        ),
    )
    b = FixturePackage(
        "b",
        entries=(
            directory("usr/share", 0o755),
            file("usr/share/b", "b"),
            symlink("usr/lib/os-release", "../../etc/os-release"),
        ),
    )
    pkgs = build(tmp_path, "tarballs-zst", [a, b])
    manifest = assemble_root(pkgs, tmp_path / "root", NullReporter())
    assert manifest.get("usr/share").owner == "a"  # type: ignore[union-attr]
    assert manifest.get("usr/share/b").owner == "b"  # type: ignore[union-attr]
    assert manifest.get("usr/lib/os-release").owner == "a"  # type: ignore[union-attr]


def test_debian_replaces_lets_a_package_take_over_a_file(tmp_path: Path) -> None:
    old = FixturePackage("old-tools", entries=(file("bin/tool", "old"),))
    new = FixturePackage(
        "new-tools", entries=(file("bin/tool", "new"),), extra={"Replaces": "old-tools (<< 2)"}
    )
    pkgs = build(tmp_path, "deb-python", [old, new])
    reporter = RecordingReporter()
    manifest = assemble_root(pkgs, tmp_path / "root", reporter)
    assert (tmp_path / "root/bin/tool").read_text() == "new"
    assert manifest.get("bin/tool").owner == "new-tools"  # type: ignore[union-attr]
    assert any("replaces" in msg for _, msg in reporter.logs)


# -- bad input ---------------------------------------------------------------------------
@pytest.fixture
def arena(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A root inside a folder with a sentinel beside it; proves nothing escaped."""
    outside = tmp_path / "outside"
    outside.mkdir()
    sentinel = outside / "sentinel"
    sentinel.write_text("untouched\n")
    root = tmp_path / "build" / "root"
    before = snapshot(tmp_path, tmp_path / "build")
    yield root, outside
    assert sentinel.read_text() == "untouched\n"
    after = snapshot(tmp_path, tmp_path / "build")
    # only the package sources the test made may be new
    new = {p for p in set(after) - set(before) if not p.startswith(str(tmp_path / "src"))}
    assert new == set()
    assert not root.exists() or not any(root.iterdir()), "failed assembly left files behind"


def _fails(pkgs, root: Path, error: type[Exception] = InputError) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(error) as info:
        assemble_root(pkgs, root, NullReporter())
    return str(info.value)


@pytest.mark.parametrize("fmt", ["tarballs-zst", "deb-python", "arch", "glaucus"])
def test_dotdot_member_is_refused(tmp_path: Path, arena, fmt: str) -> None:  # type: ignore[no-untyped-def]
    root, outside = arena
    evil = FixturePackage(
        "evil", entries=(file("usr/../../../outside/evil", "x"),), auto_dirs=False
    )
    message = _fails(build(tmp_path, fmt, [evil]), root)
    assert "evil" in message and "'..'" in message and "usr/../../../outside/evil" in message
    assert not (outside / "evil").exists()


@pytest.mark.parametrize("fmt", ["tarballs-gz", "deb-python"])
def test_absolute_member_is_refused(tmp_path: Path, arena, fmt: str) -> None:  # type: ignore[no-untyped-def]
    root, outside = arena
    target = outside / "abs-evil"
    evil = FixturePackage("evil", entries=(file(str(target), "x"),), auto_dirs=False)
    message = _fails(build(tmp_path, fmt, [evil]), root)
    assert "absolute path" in message and str(target) in message and "evil" in message
    assert not target.exists()


def test_file_through_absolute_symlink_is_refused(tmp_path: Path, arena) -> None:  # type: ignore[no-untyped-def]
    root, outside = arena
    evil = FixturePackage(
        "evil", entries=(symlink("etc", str(outside)), file("etc/passwd", "owned\n"))
    )
    message = _fails(build(tmp_path, "tarballs-zst", [evil]), root)
    assert "through the symlink /etc" in message and str(outside) in message
    assert "etc/passwd" in message
    assert not (outside / "passwd").exists()


def test_file_through_absolute_symlink_to_system_dir_is_refused(tmp_path: Path, arena) -> None:  # type: ignore[no-untyped-def]
    root, _ = arena
    name = f"livesmith-evil-{uuid.uuid4().hex}"
    evil = FixturePackage("evil", entries=(symlink("x", "/tmp"), file(f"x/{name}", "owned")))
    message = _fails(build(tmp_path, "deb-python", [evil]), root)
    assert "through the symlink /x -> /tmp" in message
    assert not Path("/tmp", name).exists()


def test_file_through_escaping_relative_symlink_is_refused(tmp_path: Path, arena) -> None:  # type: ignore[no-untyped-def]
    root, outside = arena
    evil = FixturePackage(
        "evil", entries=(symlink("x", "../../outside"), file("x/sentinel", "overwritten\n"))
    )
    message = _fails(build(tmp_path, "glaucus", [evil]), root)
    assert "through the symlink /x -> ../../outside" in message


def test_symlink_from_one_package_cannot_be_used_by_another(tmp_path: Path, arena) -> None:  # type: ignore[no-untyped-def]
    root, outside = arena
    planter = FixturePackage("planter", entries=(symlink("var/lib", str(outside)),))
    user = FixturePackage("user", entries=(file("var/lib/sentinel", "overwritten\n"),))
    message = _fails(build(tmp_path, "arch", [planter, user]), root)
    assert "package user" in message and "from package planter" in message


def test_hardlink_to_a_file_outside_the_package_is_refused(tmp_path: Path, arena) -> None:  # type: ignore[no-untyped-def]
    root, outside = arena
    evil = FixturePackage(
        "evil", entries=(hardlink("etc/copy", "../outside/sentinel"),), auto_dirs=True
    )
    message = _fails(build(tmp_path, "tarballs-zst", [evil]), root)
    assert "hard link target" in message
    evil2 = FixturePackage("evil2", entries=(hardlink("etc/copy", "etc/missing"),))
    message = _fails(build(tmp_path / "src" / "2", "tarballs-zst", [evil2]), root)
    assert "not a file of this package" in message


def test_truncated_tar_zst_is_reported_as_damaged(tmp_path: Path, arena) -> None:  # type: ignore[no-untyped-def]
    root, _ = arena
    pkgs = build(tmp_path, "tarballs-zst", [busybox_package()])
    truncate(pkgs[0][1], 0.6)
    message = _fails(pkgs, root)
    assert "package busybox is damaged" in message and "truncated" in message
    assert str(pkgs[0][1]) in message


@pytest.mark.parametrize(
    "fmt,keep", [("glaucus", 0.3), ("arch", 0.999), ("tarballs-xz", 0.5), ("tarballs-gz", 0.5)]
)
def test_truncated_archives_of_every_format(tmp_path: Path, arena, fmt: str, keep: float) -> None:  # type: ignore[no-untyped-def]
    root, _ = arena
    pkgs = build(tmp_path, fmt, [busybox_package()])
    truncate(pkgs[0][1], keep)
    assert "is damaged" in _fails(pkgs, root)


def test_truncated_deb_is_reported_as_damaged(tmp_path: Path, arena) -> None:  # type: ignore[no-untyped-def]
    root, _ = arena
    deb = tmp_path / "src" / "busybox-static.deb"
    deb.parent.mkdir()
    deb.write_bytes(debian_package("busybox-static").read_bytes())
    pkg = read_package(deb)
    truncate(deb, 0.7)
    message = _fails([(pkg, deb)], root)
    assert "package busybox-static is damaged" in message and "truncated" in message


def test_file_conflicts_list_every_path_and_both_packages(tmp_path: Path, arena) -> None:  # type: ignore[no-untyped-def]
    root, _ = arena
    a = FixturePackage("coreutils", entries=(file("bin/ls", "a"), file("bin/cat", "a")))
    b = busybox_package(applets=("ls", "cat"))
    with pytest.raises(ValidationError) as info:
        assemble_root(build(tmp_path, "deb-dpkg", [a, b]), root, NullReporter())
    problems = {p.where: p.message for p in info.value.problems}
    assert set(problems) == {"/bin/ls", "/bin/cat"}
    assert all("coreutils" in m and "busybox" in m for m in problems.values())


def test_hard_links_to_a_conflicting_file_are_conflicts_too(tmp_path: Path, arena) -> None:  # type: ignore[no-untyped-def]
    root, _ = arena
    a = FixturePackage("gzip", entries=(file("bin/gzip", "a", 0o755),))
    b = FixturePackage(
        "busybox", entries=(file("bin/gzip", "b", 0o755), hardlink("bin/gunzip", "bin/gzip"))
    )
    with pytest.raises(ValidationError) as info:
        assemble_root(build(tmp_path, "tarballs-zst", [a, b]), root, NullReporter())
    assert {p.where for p in info.value.problems} == {"/bin/gzip", "/bin/gunzip"}


def test_directory_versus_file_is_a_conflict(tmp_path: Path, arena) -> None:  # type: ignore[no-untyped-def]
    root, _ = arena
    a = FixturePackage("a", entries=(file("opt/tool", "a file"),))
    b = FixturePackage("b", entries=(file("opt/tool/readme", "b"),))
    with pytest.raises(ValidationError) as info:
        assemble_root(build(tmp_path, "tarballs-zst", [a, b]), root, NullReporter())
    assert "/opt/tool" in str(info.value) and "package a" in str(info.value)


def test_device_node_and_file_at_one_path_conflict(tmp_path: Path, arena) -> None:  # type: ignore[no-untyped-def]
    root, _ = arena
    a = FixturePackage("makedev", entries=(device("dev/null", "c", 1, 3),))
    b = FixturePackage("other", entries=(file("dev/null", "not a device"),))
    with pytest.raises(ValidationError) as info:
        assemble_root(build(tmp_path, "deb-python", [a, b]), root, NullReporter())
    assert "/dev/null" in str(info.value) and "makedev" in str(info.value)


def test_cancel_removes_the_partial_root(tmp_path: Path, arena) -> None:  # type: ignore[no-untyped-def]
    root, _ = arena
    pkgs = build(tmp_path, "tarballs-zst", [busybox_package(), text_package("b")])
    reporter = NullReporter()
    reporter.cancel()
    with pytest.raises(Cancelled):
        assemble_root(pkgs, root, reporter)


def test_root_must_be_empty(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "leftover").write_text("x")
    with pytest.raises(InputError, match="must be empty"):
        assemble_root([], root, NullReporter())
    assert (root / "leftover").exists()


# -- control characters ------------------------------------------------------------------
# The audit's proof: a name that, written into a mksquashfs pseudo file, starts a second
# definition whose `f` type runs a shell command on the build host.
PSEUDO_INJECTION = "x\vm\v0644\v0\v0\npwn\vf\v0644\v0\v0\vtouch${IFS}PWNED_BY_PACKAGE;#"
# ... and one that adds a line with an absolute path to the fakeroot listing (EROFS).
LISTING_INJECTION = "a\nfile\t1777\t0\t0\t0\t0\t/tmp/victim"


@pytest.mark.parametrize(
    "name",
    [
        PSEUDO_INJECTION,
        LISTING_INJECTION,
        "usr/a\x85b",
        "usr/a\u2028b",
        "usr/a\u2029b",
        "usr/a\x7fb",
        "usr/a\rb",
        "usr/a\x9bb",
        "usr/a\tb",
    ],
    ids=["pseudo-poc", "listing-poc", "nel", "line-sep", "par-sep", "del", "cr", "csi", "tab"],
)
@pytest.mark.parametrize("fmt", ["tarballs-zst", "deb-python"])
def test_member_names_with_control_characters_are_refused(
    tmp_path: Path,
    arena,
    fmt: str,  # type: ignore[no-untyped-def]
    name: str,
) -> None:
    root, _ = arena
    evil = FixturePackage("evil", entries=(file(name, "hi"),), auto_dirs=False)
    message = _fails(build(tmp_path, fmt, [evil]), root)
    assert "package evil" in message and repr(name)[1:-1] in message
    assert "control character" in message


@pytest.mark.parametrize(
    "entry",
    [symlink("usr/link", "a\nb"), symlink("usr/link", "a\u2028"), hardlink("usr/hard", "usr/a\vb")],
    ids=["symlink-newline", "symlink-line-sep", "hardlink-vtab"],
)
def test_link_targets_with_control_characters_are_refused(
    tmp_path: Path,
    arena,  # type: ignore[no-untyped-def]
    entry,
) -> None:
    root, _ = arena
    evil = FixturePackage("evil", entries=(file("usr/plain", "x"), entry))
    message = _fails(build(tmp_path, "tarballs-zst", [evil]), root)
    assert "package evil" in message and repr(entry.path)[1:-1] in message
    assert "control character" in message and "link target" in message


# -- members the host cannot take -------------------------------------------------------
def pax_package(tmp_path: Path, name: str, pax: dict[str, str]) -> list[tuple[PackageInfo, Path]]:
    """A tarball package of one file whose PAX header says `pax`."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size, info.pax_headers = 2, pax
        tar.addfile(info, io.BytesIO(b"hi"))
    folder = tmp_path / "src" / "tarballs"
    folder.mkdir(parents=True)
    (folder / "evil-1.tar.zst").write_bytes(compress(buffer.getvalue(), "zst"))
    return packages_of(folder, "tarballs")


def test_a_pax_mtime_out_of_range_names_the_member(tmp_path: Path, arena) -> None:  # type: ignore[no-untyped-def]
    root, _ = arena
    message = _fails(pax_package(tmp_path, "usr/far-future", {"mtime": "1e20"}), root)
    assert "package evil" in message and "'usr/far-future'" in message
    assert "invalid value" in message


def test_a_name_too_long_for_the_host_names_the_member(tmp_path: Path, arena) -> None:  # type: ignore[no-untyped-def]
    root, _ = arena
    name = "usr/" + "a" * 300
    evil = FixturePackage("evil", entries=(file(name, "x"),))
    message = _fails(build(tmp_path, "tarballs-zst", [evil]), root)
    assert "package evil" in message and repr(f"./{name}") in message
    assert "File name too long" in message


@pytest.mark.parametrize("fmt", ["tarballs-zst", "deb-python"])
def test_a_file_hard_linked_to_itself_names_the_member(tmp_path: Path, arena, fmt: str) -> None:  # type: ignore[no-untyped-def]
    root, _ = arena
    evil = FixturePackage("evil", entries=(file("usr/a", "x"), hardlink("usr/a", "usr/a")))
    message = _fails(build(tmp_path, fmt, [evil]), root)
    assert "package evil" in message and "usr/a'" in message and "points to itself" in message


@needs_root
def test_no_space_stays_a_build_folder_error_not_a_package_error(tmp_path: Path) -> None:
    # Guard for the wrapper above: ENOSPC is the build folder's fault, never the package's.
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)], check=True)
    try:
        big = FixturePackage("big", entries=(file("usr/big", os.urandom(1 << 20)),))
        with pytest.raises(StageError, match="no space left") as info:
            assemble_root(build(tmp_path, "tarballs-zst", [big]), small / "root", NullReporter())
        assert not isinstance(info.value, InputError)
    finally:
        subprocess.run(["umount", str(small)], check=True)
