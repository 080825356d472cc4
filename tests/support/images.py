"""Looking inside built ISOs the way a user's tools do."""

from __future__ import annotations

import subprocess
from pathlib import Path

from app.iso.extract import extract


def root_image_entries(iso: Path, folder: Path) -> dict[str, list[str]]:
    """The root image (/live/rootfs.sfs, extracted into `folder`) as `unsquashfs -lln`
    lists it: path -> [permissions, "uid/gid"]."""
    extract(iso, "/live/rootfs.sfs", folder)
    listing = subprocess.run(
        ["unsquashfs", "-lln", str(folder / "rootfs.sfs")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {
        line.split("squashfs-root", 1)[1].split(" -> ")[0]: line.split()[:2]
        for line in listing.splitlines()
        if "squashfs-root/" in line
    }
