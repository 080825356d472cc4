"""The newc writer, checked against GNU cpio (listing and extraction) and a header parser.

The kernel's own unpacker is exercised by tests/integration/test_initramfs_boot.py.
"""

from __future__ import annotations

import io
import os
import re
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.compose.cpio import NewcWriter, write_tree
from app.compose.manifest import FileMeta, Kind, RootManifest
from app.errors import Cancelled, StageError
from app.reporter import NullReporter
from tests.conftest import needs_root

MTIME = 1_700_000_000


@dataclass
class Entry:
    name: str
    ino: int
    mode: int
    uid: int
    gid: int
    nlink: int
    mtime: int
    dev: tuple[int, int]
    rdev: tuple[int, int]
    data: bytes


def parse_newc(archive: bytes) -> list[Entry]:
    """An independent reader: checks magic, alignment and the trailer as it goes."""
    entries = []
    offset = 0
    while True:
        assert offset % 4 == 0
        header = archive[offset : offset + 110]
        assert header[:6] == b"070701", f"bad magic at {offset}"
        fields = [int(header[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        ino, mode, uid, gid, nlink, mtime, size, dmaj, dmin, rmaj, rmin, namesize, check = fields
        assert check == 0
        name_end = offset + 110 + namesize
        name = archive[offset + 110 : name_end - 1].decode()
        assert archive[name_end - 1] == 0
        data_start = name_end + (-name_end % 4)
        data = archive[data_start : data_start + size]
        offset = data_start + size + (-size % 4)
        if name == "TRAILER!!!":
            assert offset == len(archive)
            return entries
        entries.append(
            Entry(name, ino, mode, uid, gid, nlink, mtime, (dmaj, dmin), (rmaj, rmin), data)
        )


def meta(
    path: str,
    kind: Kind,
    mode: int,
    uid: int = 0,
    gid: int = 0,
    target: str = "",
    major: int = 0,
    minor: int = 0,
) -> FileMeta:
    return FileMeta(path, kind, mode, uid, gid, target, major, minor, MTIME)


@pytest.fixture
def staged(tmp_path: Path) -> tuple[Path, RootManifest]:
    """A staging root as a rootless build leaves it, and the manifest with the truth."""
    root = tmp_path / "root"
    for d in ("bin", "etc", "dev", "run", "tmp", "usr/bin", "home/user"):
        (root / d).mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc/shadow").write_text("root:*:19000:0:99999:7:::\n")
    (root / "bin/busybox").write_bytes(os.urandom(5 << 20))  # above the streaming threshold
    (root / "bin/su").write_bytes(b"\x7fELF su")
    os.symlink("busybox", root / "bin/sh")
    (root / "usr/bin/a").write_bytes(b"one inode, three names\n")
    os.link(root / "usr/bin/a", root / "usr/bin/b")
    (root / "usr/bin/c").write_bytes(b"one inode, three names\n")  # a copy on disk
    (root / "home/user/.profile").write_text("PS1='$ '\n")
    (root / "generated.txt").write_text("not in the manifest\n")

    manifest = RootManifest()
    for entry in [
        meta("bin", Kind.DIR, 0o755),
        meta("bin/busybox", Kind.FILE, 0o755),
        meta("bin/sh", Kind.SYMLINK, 0o777, target="busybox"),
        meta("bin/su", Kind.FILE, 0o4755),
        meta("dev", Kind.DIR, 0o755),
        meta("dev/console", Kind.CHAR, 0o600, major=5, minor=1),
        meta("dev/null", Kind.CHAR, 0o666, major=1, minor=3),
        meta("dev/sda", Kind.BLOCK, 0o660, gid=6, major=8, minor=0),
        meta("etc", Kind.DIR, 0o755),
        meta("etc/passwd", Kind.FILE, 0o644),
        meta("etc/shadow", Kind.FILE, 0o640, gid=42),
        meta("home", Kind.DIR, 0o755),
        meta("home/user", Kind.DIR, 0o700, 1000, 1000),
        meta("home/user/.profile", Kind.FILE, 0o644, 1000, 1000),
        meta("run", Kind.DIR, 0o755),
        meta("run/initctl", Kind.FIFO, 0o600),
        meta("tmp", Kind.DIR, 0o1777),
        meta("usr", Kind.DIR, 0o755),
        meta("usr/bin", Kind.DIR, 0o755),
        meta("usr/bin/a", Kind.FILE, 0o755),
        meta("usr/bin/b", Kind.HARDLINK, 0o755, target="usr/bin/a"),
        meta("usr/bin/c", Kind.HARDLINK, 0o755, target="usr/bin/a"),
    ]:
        manifest.add(entry)
    return root, manifest


def archive_of(root: Path, manifest: RootManifest | None, **kw: str) -> bytes:
    out = io.BytesIO()
    write_tree(root, manifest, out, NullReporter(), **kw)
    return out.getvalue()


LISTING = re.compile(
    r"^(?P<mode>\S{10})\s+(?P<nlink>\d+)\s+(?P<uid>\d+)\s+(?P<gid>\d+)\s+"
    r"(?P<size>\d+,\s*\d+|\d+)\s+\w{3}\s+\d+\s+[\d:]+\s+(?P<name>.*)$"
)


def gnu_listing(archive: bytes) -> dict[str, dict[str, str]]:
    out = subprocess.run(
        ["cpio", "-itv", "--numeric-uid-gid", "--quiet"],
        input=archive,
        capture_output=True,
        check=True,
    )
    listing = {}
    for line in out.stdout.decode().splitlines():
        match = LISTING.match(line)
        assert match, line
        fields = match.groupdict()
        name, _, target = fields["name"].partition(" -> ")
        fields["target"] = target
        listing[name] = fields
    return listing


def test_gnu_cpio_lists_owners_modes_devices_links_from_the_manifest(staged) -> None:
    root, manifest = staged
    listing = gnu_listing(archive_of(root, manifest))
    expected = {
        "bin/su": ("-rwsr-xr-x", "1", "0", "0", "7"),
        "bin/sh": ("lrwxrwxrwx", "1", "0", "0", "7"),
        "dev/console": ("crw-------", "1", "0", "0", "5,   1"),
        "dev/null": ("crw-rw-rw-", "1", "0", "0", "1,   3"),
        "dev/sda": ("brw-rw----", "1", "0", "6", "8,   0"),
        "etc/shadow": ("-rw-r-----", "1", "0", "42", "26"),
        "home/user": ("drwx------", "2", "1000", "1000", "0"),
        "home/user/.profile": ("-rw-r--r--", "1", "1000", "1000", "9"),
        "run/initctl": ("prw-------", "1", "0", "0", "0"),
        "tmp": ("drwxrwxrwt", "2", "0", "0", "0"),
        "usr": ("drwxr-xr-x", "3", "0", "0", "0"),
        "usr/bin/c": ("-rwxr-xr-x", "3", "0", "0", "23"),  # the last link carries the data
    }
    for name, (mode, nlink, uid, gid, size) in expected.items():
        got = listing[name]
        assert (got["mode"], got["nlink"], got["uid"], got["gid"], got["size"]) == (
            mode,
            nlink,
            uid,
            gid,
            size,
        ), name
    assert listing["bin/sh"]["target"] == "busybox"
    assert listing["usr/bin/a"]["size"] == listing["usr/bin/b"]["size"] == "0"
    assert listing["usr/bin/a"]["nlink"] == "3"
    # a file the manifest does not know keeps what lstat says
    st = (root / "generated.txt").lstat()
    assert listing["generated.txt"]["uid"] == str(st.st_uid)


@needs_root
def test_gnu_cpio_extracts_the_same_tree(staged, tmp_path: Path) -> None:
    root, manifest = staged
    dest = tmp_path / "extracted"
    dest.mkdir()
    subprocess.run(
        ["cpio", "-idm", "--quiet"], input=archive_of(root, manifest), cwd=dest, check=True
    )
    for entry in manifest:
        st = (dest / entry.path).lstat()
        assert stat.S_IMODE(st.st_mode) == entry.mode, entry.path
        assert (st.st_uid, st.st_gid) == (entry.uid, entry.gid), entry.path
        assert stat.S_IFMT(st.st_mode) == entry.type_bits, entry.path
        if entry.kind in (Kind.CHAR, Kind.BLOCK):
            assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (
                entry.rdev_major,
                entry.rdev_minor,
            )
        if entry.kind is Kind.FILE:
            assert (dest / entry.path).read_bytes() == (root / entry.path).read_bytes()
            assert int(st.st_mtime) == MTIME
        if entry.kind is Kind.SYMLINK:
            assert os.readlink(dest / entry.path) == entry.target
    inodes = {(dest / f"usr/bin/{n}").stat().st_ino for n in "abc"}
    assert len(inodes) == 1 and (dest / "usr/bin/b").read_bytes() == b"one inode, three names\n"


def test_the_archive_is_deterministic_and_well_formed(staged) -> None:
    root, manifest = staged
    first = archive_of(root, manifest)
    (root / "generated.txt").read_text()  # access times are no part of the archive
    assert archive_of(root, manifest) == first
    entries = parse_newc(first)
    names = [e.name for e in entries]
    assert names.index("usr") < names.index("usr/bin") < names.index("usr/bin/c")
    assert all(e.dev == (0, 0) for e in entries)
    links = [e for e in entries if e.name.startswith("usr/bin/")]
    assert len({e.ino for e in links}) == 1
    assert [len(e.data) for e in links] == [0, 0, 23]
    others = [e.ino for e in entries if e not in links]
    assert len(set(others)) == len(others) and min(others) == 1
    busybox = next(e for e in entries if e.name == "bin/busybox")
    assert busybox.data == (root / "bin/busybox").read_bytes()


def test_the_mtime_clamp_caps_mtimes(staged) -> None:
    root, manifest = staged
    out = io.BytesIO()
    writer = NewcWriter(out, mtime_clamp=1000)
    write_tree(root, manifest, writer, NullReporter())
    writer.close()
    assert {e.mtime for e in parse_newc(out.getvalue())} == {1000}


def test_without_a_clamp_the_environment_changes_no_mtime(
    staged, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, manifest = staged
    unset = archive_of(root, manifest)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1000")  # the build passes its epoch explicitly
    assert archive_of(root, manifest) == unset
    assert max(e.mtime for e in parse_newc(unset)) > 1000


def test_a_prefix_places_the_tree_below_created_parents(staged) -> None:
    root, manifest = staged
    entries = parse_newc(archive_of(root, manifest, prefix="lib/modules/x"))
    names = [e.name for e in entries]
    assert names[:3] == ["lib", "lib/modules", "lib/modules/x"]
    assert "lib/modules/x/bin/su" in names


def test_hardlinks_on_disk_are_found_without_a_manifest(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d/one").write_bytes(b"data")
    os.link(tmp_path / "d/one", tmp_path / "two")
    os.symlink("d/one", tmp_path / "link")
    listing = gnu_listing(archive_of(tmp_path, None))
    assert listing["d/one"]["nlink"] == listing["two"]["nlink"] == "2"
    assert listing["link"]["target"] == "d/one"


def test_writer_creates_missing_parents_and_writes_directories_once() -> None:
    out = io.BytesIO()
    writer = NewcWriter(out, mtime_clamp=5)
    writer.add(meta("a/b/file", Kind.FILE, 0o600), b"x")
    writer.add(meta("a", Kind.DIR, 0o700))  # already created: skipped
    writer.close()
    entries = parse_newc(out.getvalue())
    assert [(e.name, stat.S_IMODE(e.mode)) for e in entries] == [
        ("a", 0o755),
        ("a/b", 0o755),
        ("a/b/file", 0o600),
    ]
    assert writer.has("a/b/file") and not writer.has("a/c")


def test_writer_rejects_what_newc_cannot_hold(tmp_path: Path) -> None:
    writer = NewcWriter(io.BytesIO())
    with pytest.raises(StageError, match="escapes the root"):
        writer.add(meta("../etc/passwd", Kind.FILE, 0o644), b"")
    with pytest.raises(StageError, match="empty target"):
        writer.add(meta("bad", Kind.SYMLINK, 0o777))
    with pytest.raises(ValueError, match="add_links"):
        writer.add(meta("l", Kind.HARDLINK, 0o644, target="x"))
    huge = tmp_path / "huge"
    with open(huge, "wb") as f:
        f.truncate((4 << 30) + 1)  # sparse: costs no disk
    with pytest.raises(StageError, match="larger than 4 GiB"):
        writer.add(meta("huge", Kind.FILE, 0o644), huge)
    os.symlink("huge", tmp_path / "sym")
    with pytest.raises(StageError, match="cannot read"):
        writer.add(meta("sym", Kind.FILE, 0o644), tmp_path / "sym")  # never follows links


def test_a_manifest_file_missing_on_disk_is_an_error(staged) -> None:
    root, manifest = staged
    (root / "etc/passwd").unlink()
    with pytest.raises(StageError, match="etc/passwd.*missing from the staging root"):
        archive_of(root, manifest)


def test_writing_a_tree_can_be_cancelled(staged) -> None:
    root, manifest = staged
    reporter = NullReporter()
    reporter.cancel()
    with pytest.raises(Cancelled):
        write_tree(root, manifest, io.BytesIO(), reporter)
