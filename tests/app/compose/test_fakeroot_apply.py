"""The EROFS path: the manifest reaches fakeroot as NUL-separated records, applied without
ever leaving the root or following a symlink. Real fakeroot and mkfs.erofs runs."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from app.compose.fakeroot_apply import ListingError, encode_record, read_records
from app.compose.manifest import FileMeta, Kind, RootManifest
from app.compose.profile import Compressor, ImageOptions, RootImageFormat
from app.compose.rootimage import make_root_image, manifest_records
from app.errors import LivesmithError
from app.reporter import RecordingReporter
from tests.app.compose.test_rootimage import staged_root
from tests.conftest import needs_root

EROFS = ImageOptions(RootImageFormat.EROFS, Compressor.LZ4HC)


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A host file outside the root whose mode must never change."""
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim"
    victim.write_text("secret")
    victim.chmod(0o600)
    return victim


def erofs(tmp_path: Path, root: Path, manifest: RootManifest) -> Path:
    live = tmp_path / "live"
    live.mkdir(exist_ok=True)
    image = make_root_image(
        root,
        manifest,
        EROFS,
        live,
        RecordingReporter(),
        epoch=1_700_000_000,
        work=tmp_path,
        uuid="12345678-1234-1234-1234-123456789abc",
    )
    assert image is not None
    return image


def test_a_name_with_a_line_break_stays_one_entry_inside_the_root(
    tmp_path: Path, victim: Path
) -> None:
    # The audit's proof: with a line-based listing this name became a second line, an entry
    # with the absolute path of the victim, and its mode was really changed to 1777.
    root, manifest = staged_root(tmp_path)
    evil = f"a\nfile\t1777\t0\t0\t0\t0\t{victim}"
    (root / evil).parent.mkdir(parents=True)
    (root / evil).write_text("hi")
    parts = evil.split("/")
    for i in range(1, len(parts)):
        manifest.add(FileMeta("/".join(parts[:i]), Kind.DIR, 0o755, owner="evil"))
    manifest.add(FileMeta(evil, Kind.FILE, 0o644, owner="evil"))
    image = erofs(tmp_path, root, manifest)
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600
    assert image.stat().st_size > 0
    # One record per entry, whatever the names hold.
    records = read_records(manifest_records(manifest))
    assert [r.path for r in records] == [m.path for m in manifest.sorted()]


def test_a_symlinked_directory_inside_the_root_is_never_followed(
    tmp_path: Path, victim: Path
) -> None:
    # The manifest says etc is a directory; on disk it is a symlink to the outside.
    root, manifest = staged_root(tmp_path)
    (root / "etc/shadow").unlink()
    (root / "etc/with space").unlink()
    (root / "etc").rmdir()
    (root / "etc").symlink_to(victim.parent)
    for path in ("etc", "etc/shadow", "etc/with space"):
        manifest.remove(path)  # only the walk to etc/victim meets the symlink
    manifest.add(FileMeta("etc/victim", Kind.FILE, 0o4777))
    with pytest.raises(LivesmithError) as info:
        erofs(tmp_path, root, manifest)
    assert "/etc" in str(info.value) and "never followed" in str(info.value)
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600


def test_a_symlink_where_the_manifest_has_a_file_is_refused(tmp_path: Path, victim: Path) -> None:
    root, manifest = staged_root(tmp_path)
    (root / "bin/tool").symlink_to(victim)
    manifest.add(FileMeta("bin/tool", Kind.FILE, 0o4777))
    with pytest.raises(LivesmithError) as info:
        erofs(tmp_path, root, manifest)
    assert "/bin/tool" in str(info.value) and "symlink" in str(info.value)
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "path", [b"/etc/passwd", b"../outside", b"a/../../b", b"a//b", b"./a", b"a/", b""]
)
def test_the_helper_refuses_paths_that_are_not_normalised_and_relative(path: bytes) -> None:
    record = b"file\x00644\x000\x000\x000\x000\x00" + path + b"\x00"
    with pytest.raises(ListingError, match="unsafe path"):
        read_records(record)
    with pytest.raises(ListingError, match="unsafe path"):
        encode_record("file", 0o644, 0, 0, 0, 0, os.fsdecode(path))


def test_the_helper_refuses_a_torn_listing() -> None:
    good = encode_record("file", 0o644, 0, 0, 0, 0, "etc/x")
    assert [r.path for r in read_records(good + good)] == ["etc/x", "etc/x"]
    with pytest.raises(ListingError):
        read_records(good[:-1])
    with pytest.raises(ListingError):
        read_records(good + b"file\x00644\x00")


@needs_root
def test_erofs_keeps_a_non_utf8_name_with_its_owner(tmp_path: Path) -> None:
    root, manifest = staged_root(tmp_path)
    raw = b"caf\xe9.txt"
    (root / os.fsdecode(b"etc/" + raw)).write_text("x")
    manifest.add(FileMeta(os.fsdecode(b"etc/" + raw), Kind.FILE, 0o640, 5, 6))
    image = erofs(tmp_path, root, manifest)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "erofs", "-o", "loop,ro", str(image), str(mnt)], check=True)
    try:
        assert raw in os.listdir(os.fsencode(mnt / "etc"))
        st = os.lstat(os.fsencode(mnt / "etc") + b"/" + raw)
        assert (st.st_uid, st.st_gid, st.st_mode) == (5, 6, 0o100640)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
