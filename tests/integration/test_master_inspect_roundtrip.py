"""Issue 2's round trip: master a rich tree, inspect it, and get the source tree back —
the same as the tree on disk and as xorriso's own listing of the ISO."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from app.iso.inspect import inspect_iso
from app.iso.master import BootSpec, MasterSpec, master_iso
from tests.app.iso.mastering_helpers import Listed, tree_listing, xorriso_listing
from tests.app.iso.test_master import build_rich_tree

# pycdlib's relocation folder for >8 levels and the El Torito catalog exist only in the ISO.
ISO_ONLY = ("/.rr_moved", "/boot/boot.cat")


def inspected(iso: Path) -> dict[str, Listed]:
    listing = {}
    for entry in inspect_iso(iso).files:
        assert entry.mode is not None and entry.uid is not None and entry.gid is not None
        type_bits = {"file": stat.S_IFREG, "dir": stat.S_IFDIR, "symlink": stat.S_IFLNK}
        listing[entry.path] = Listed(
            entry.type,
            type_bits[entry.type] | entry.mode,
            entry.uid,
            entry.gid,
            entry.size if entry.type == "file" else 0,
            entry.target or "",
        )
    return listing


def without_iso_only(listing: dict[str, Listed]) -> dict[str, Listed]:
    return {p: e for p, e in listing.items() if not p.startswith(ISO_ONLY)}


@pytest.mark.parametrize("big_file", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_master_then_inspect_gives_the_source_tree_back(tmp_path: Path, big_file: bool) -> None:
    tree = build_rich_tree(tmp_path / "tree")
    if big_file:
        if os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize < 6 << 30:
            pytest.skip("needs about 5 GiB free for a >4 GiB ISO (written sparse)")
        with open(tree / "big.img", "wb") as f:  # > 4 GiB, sparse: multi-extent at level 3
            f.seek((4 << 30) + 12345)
            f.write(b"end")
    iso = master_iso(
        MasterSpec(
            tree=tree,
            output=tmp_path / "out.iso",
            label="ROUNDTRIP",
            boot=BootSpec(bios_boot="boot/syslinux/isolinux.bin", efi_image="boot/grub/efi.img"),
        ),
        None,
    ).path
    ours = without_iso_only(inspected(iso))
    theirs = without_iso_only(xorriso_listing(iso))
    source = tree_listing(tree)
    # the root folder's own metadata is not part of a tree listing in xorriso's view
    for listing in (ours, theirs, source):
        listing.pop("/", None)
    assert ours == source
    assert ours == theirs
    assert len(ours) > 40  # the rich tree really was walked
    if big_file:
        assert ours["/big.img"].size == (4 << 30) + 12348
