"""Apply a root manifest's owners, modes and device nodes to a staged tree.

Run under `fakeroot -s STATE` (see rootimage.make_erofs): fakeroot records the chown and
mknod calls instead of performing them, so an ordinary user gets an image with the right
owners. Usage: python -m app.build.fakeroot_apply ROOT MANIFEST.tsv
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

DEVICE_KINDS = {"char": stat.S_IFCHR, "block": stat.S_IFBLK, "fifo": stat.S_IFIFO}


def apply(root: Path, listing: Path) -> None:
    for line in listing.read_text().splitlines():
        kind, mode_s, uid_s, gid_s, major_s, minor_s, rel = line.split("\t", 6)
        path = root / rel
        mode = int(mode_s, 8)
        if kind in DEVICE_KINDS:
            if path.exists() or path.is_symlink():
                path.unlink()
            os.mknod(path, DEVICE_KINDS[kind] | mode,
                     os.makedev(int(major_s), int(minor_s)) if kind != "fifo" else 0)
        elif kind == "socket" or not (path.exists() or path.is_symlink()):
            continue
        os.lchown(path, int(uid_s), int(gid_s))
        if kind != "symlink":
            os.chmod(path, mode)


if __name__ == "__main__":
    apply(Path(sys.argv[1]), Path(sys.argv[2]))
