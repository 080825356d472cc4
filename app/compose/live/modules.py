"""Kernel module indexes (modules.dep and friends) for the live system's own kernel.

`modprobe`, udev and BusyBox's mdev find a module by name or hardware alias only through
the index files depmod writes into /lib/modules/<version>. Debian writes them in the kernel
package's postinst, which unpacking alone never runs, and glaucus or Arch packages may ship
none or stale ones. So every build indexes the shipped kernel's modules with the build
machine's own depmod (kmod), which writes both the text files BusyBox reads and the binary
ones kmod reads.

depmod is our tool, not package code, but the tree it reads comes from packages: it reads
and writes only inside the modules folder, so a symbolic link there that leads outside the
staged root is refused before it runs (depmod would follow it on the build machine).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from app.compose.kmod import modules_dir
from app.compose.manifest import FileMeta, Kind, RootManifest
from app.compose.rootpath import root_relative
from app.errors import StageError
from app.reporter import Level, Reporter
from app.tools import find_tool

# depmod itself skips these two links to the kernel's build and source trees.
SKIPPED_LINKS = frozenset({"build", "source"})


def escaping_links(root: Path, folder: Path) -> list[str]:
    """Root-relative paths of symlinks under `folder` that lead outside `root`."""
    real_root = os.path.realpath(root)
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted([*dirnames, *filenames]):
            path = Path(dirpath, name)
            if not path.is_symlink():
                continue
            if Path(dirpath) == folder and name in SKIPPED_LINKS:
                continue
            target = os.path.realpath(path)
            if os.path.commonpath([real_root, target]) != real_root:
                found.append(root_relative(root, path))
    return found


def index_modules(
    root: Path, version: str, manifest: RootManifest, reporter: Reporter, *, stage: str
) -> list[str]:
    """Run depmod for kernel `version` in `root`; returns the index files it wrote."""
    folder = modules_dir(root, version)
    if folder is None:
        reporter.log(Level.WARNING, f"kernel {version} ships no modules folder; nothing to index")
        return []
    escaping = escaping_links(root, folder)
    if escaping:
        raise StageError(
            f"/{escaping[0]} is a symbolic link that leads outside the system"
            + (f" (and {len(escaping) - 1} more)" if len(escaping) > 1 else ""),
            stage=stage,
            where=f"/{root_relative(root, folder)}",
            hint="the kernel package is broken or hostile; module links must stay in the system",
        )
    # depmod -b BASE looks in BASE/lib/modules/<version>; a private BASE whose only entry
    # is a link to the real folder keeps it from ever looking at another part of the root.
    with tempfile.TemporaryDirectory(prefix="livesmith-depmod-") as base:
        (Path(base) / "lib" / "modules").mkdir(parents=True)
        (Path(base) / "lib" / "modules" / version).symlink_to(folder)
        proc = subprocess.run(
            [find_tool("depmod"), "--basedir", base, version],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            check=False,
        )
    if proc.returncode != 0:
        raise StageError(
            f"depmod could not index the modules of kernel {version}: "
            + (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1],
            stage=stage,
            where=f"/{root_relative(root, folder)}",
        )
    for line in proc.stderr.splitlines():
        reporter.log(Level.DEBUG, f"depmod: {line}")
    written = sorted(name for name in os.listdir(folder) if name.startswith("modules."))
    for name in written:
        rel = root_relative(root, folder / name)
        if manifest.get(rel) is None:  # a package's own index file keeps its entry
            manifest.add(FileMeta(rel, Kind.FILE, 0o644, owner=""))
    reporter.log(Level.INFO, f"indexed the modules of kernel {version} ({len(written)} files)")
    return written
