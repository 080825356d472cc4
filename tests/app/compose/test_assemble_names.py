"""A valid file name that is not UTF-8 goes from a real package through extraction into a
real image, byte for byte, with the owner and mode the package gave it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from app.compose.assemble import assemble_root
from app.compose.profile import Compressor, ImageOptions, RootImageFormat
from app.compose.rootimage import make_root_image
from app.reporter import NullReporter
from tests.app.compose.test_assemble import build
from tests.app.packages.fixtures import FixturePackage, file
from tests.conftest import needs_root

RAW = b"usr/share/doc/caf\xe9.txt"  # Latin-1: a valid name, not valid UTF-8


def latin1_root(tmp_path: Path, fmt: RootImageFormat) -> Path:
    pkg = FixturePackage("latin", entries=(file(os.fsdecode(RAW), "x", 0o640, 5, 6),))
    root = tmp_path / "root"
    manifest = assemble_root(build(tmp_path, "tarballs-zst", [pkg]), root, NullReporter())
    assert os.path.exists(os.fsencode(root) + b"/" + RAW)
    live = tmp_path / "live"
    live.mkdir()
    options = (
        ImageOptions() if fmt is RootImageFormat.SQUASHFS else ImageOptions(fmt, Compressor.LZ4HC)
    )
    image = make_root_image(
        root,
        manifest,
        options,
        live,
        NullReporter(),
        epoch=1_700_000_000,
        work=tmp_path,
        uuid="12345678-1234-1234-1234-123456789abc",
    )
    assert image is not None
    return image


def test_a_latin1_name_reaches_the_squashfs_image(tmp_path: Path) -> None:
    image = latin1_root(tmp_path, RootImageFormat.SQUASHFS)
    listing = subprocess.run(
        ["unsquashfs", "-lln", str(image)], capture_output=True, check=True
    ).stdout
    line = next(ln for ln in listing.splitlines() if ln.endswith(b"/" + RAW))
    assert line.split()[:2] == [b"-rw-r-----", b"5/6"]


@needs_root
def test_a_latin1_name_reaches_the_erofs_image(tmp_path: Path) -> None:
    image = latin1_root(tmp_path, RootImageFormat.EROFS)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "erofs", "-o", "loop,ro", str(image), str(mnt)], check=True)
    try:
        st = os.lstat(os.fsencode(mnt) + b"/" + RAW)
        assert (st.st_uid, st.st_gid, st.st_mode) == (5, 6, 0o100640)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
