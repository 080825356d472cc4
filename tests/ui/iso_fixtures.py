"""Real ISOs for the preview tests: a tree mastered with app.iso.master, and Debian's images.

`source_listing` reads a tree on disk with lstat, `model_listing` reads what a tree model
shows; the tests compare the two.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from PySide6.QtCore import QAbstractItemModel, QModelIndex, QPersistentModelIndex

from app.iso.master import MasterSpec, master_iso
from ui.iso_tree import PATH_ROLE, Column, human_size

SMALL = 900
MEDIUM = 2 * 1024 + 7
LARGE = 10 * 1024
HUGE = 1536 * 1024  # "1.5 MiB": sorts first as text, last by bytes


def write(path: Path, data: bytes, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    return path


def make_source_tree(root: Path) -> Path:
    """Folders several levels deep, many modes, symlinks, empty files and folders."""
    write(root / "README.txt", b"read me first\n")
    write(root / "bin" / "tool", b"#!/bin/sh\necho tool\n", 0o755)
    write(root / "bin" / "private", b"secret\n", 0o600)
    write(root / "bin" / "setuid-tool", b"\x7fELF" + bytes(range(256)) * 3, 0o4755)
    write(root / "data" / "small.bin", os.urandom(SMALL))
    write(root / "data" / "medium.bin", os.urandom(MEDIUM))
    write(root / "data" / "large.bin", os.urandom(LARGE), 0o444)
    write(root / "data" / "huge.bin", os.urandom(HUGE))
    write(root / "data" / "nested" / "deeper" / "needle.txt", b"found me\n")
    write(root / "data" / "nested" / "deeper" / "hay.txt", b"")
    write(root / "docs" / "Needle-Guide.md", b"# Needles\n")
    write(root / "docs" / "manual.txt", b"manual\n" * 300)
    (root / "empty").mkdir()
    (root / "empty").chmod(0o700)
    (root / "shared").mkdir()
    (root / "shared").chmod(0o1777)
    (root / "link-to-readme").symlink_to("README.txt")
    (root / "data" / "link-dangling").symlink_to("/nowhere/at/all")
    if os.geteuid() == 0:  # owners other than the runner's, where we may set them
        os.chown(root / "bin" / "private", 1000, 100)
        os.chmod(root / "bin" / "private", 0o600)
        os.lchown(root / "link-to-readme", 42, 43)
    return root


def master(tree: Path, iso: Path, label: str = "PREVIEW_TEST") -> Path:
    return master_iso(
        MasterSpec(tree=tree, output=iso, label=label, publisher="LIVESMITH TESTS")
    ).path


def source_listing(root: Path) -> dict[str, tuple[str, str, str, str, str]]:
    """path -> (name, size, mode, owner, link target) as the tree view should show them."""
    listing = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            is_file = stat.S_ISREG(st.st_mode)
            listing["/" + str(path.relative_to(root))] = (
                name,
                human_size(st.st_size) if is_file else "",
                stat.filemode(st.st_mode),
                f"{st.st_uid}:{st.st_gid}",
                os.readlink(path) if path.is_symlink() else "",
            )
    return listing


def model_listing(
    model: QAbstractItemModel,
    parent: QModelIndex | QPersistentModelIndex | None = None,
) -> dict[str, tuple[str, str, str, str, str]]:
    """The same view of every row a (proxy or source) model shows."""
    listing = {}
    parent = parent if parent is not None else QModelIndex()
    for row in range(model.rowCount(parent)):
        index = model.index(row, 0, parent)
        cells = tuple(
            str(model.index(row, c, parent).data() or "")
            for c in (Column.NAME, Column.SIZE, Column.MODE, Column.OWNER, Column.TARGET)
        )
        listing[str(index.data(PATH_ROLE))] = cells
        listing.update(model_listing(model, index))
    return listing  # type: ignore[return-value]
