"""Before a write: the image's facts, the target's safety gate, unmounting, the write task.

Qt-free, so the GUI's writer page and any other front end share one path to a write:
`check_target` (the safety gate, mounted partitions allowed and listed, the disk's identity
recorded), then after the user confirmed, `write_task` unmounts them (directly as root, else
through UDisks2) and runs the privileged helper, which writes only to that very disk.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.reporter import Reporter, check_cancelled
from app.tools import find_tool
from app.usb.engine import WriteResult, check_fits, layout_warnings
from app.usb.errors import DeviceBusy
from app.usb.helper import run_helper
from app.usb.identity import BlockIdentity, check_path
from app.usb.persistence import Persistence
from app.usb.source import ImageSource, open_image
from app.usb.target import Target, TargetKind, mounted_partitions, resolve_target

PHASE_UNMOUNT = "unmount"


@dataclass(frozen=True)
class ImageFacts:
    source: ImageSource
    layout_warnings: tuple[str, ...]


def read_image_facts(path: Path, reporter: Reporter) -> ImageFacts:
    source = open_image(path)
    check_cancelled(reporter)
    return ImageFacts(source, tuple(layout_warnings(source, force=True)))


@dataclass(frozen=True)
class Preflight:
    """A target that passed the safety gate, and what must be unmounted before writing."""

    target: Target
    mounted: tuple[tuple[str, str], ...]

    @property
    def identity(self) -> BlockIdentity | None:
        """The disk the user is asked about (a block device only): the write goes to that
        disk or nowhere, whatever its path names by then."""
        return self.target.identity


def check_target(path: str, source: ImageSource | None) -> Preflight:
    # Mounted partitions are allowed here: the page unmounts them after the user confirms.
    target = resolve_target(path, image=source.path if source else None, allow_mounted=True)
    mounted: tuple[tuple[str, str], ...] = ()
    if target.kind is TargetKind.BLOCK:
        if source is not None:
            check_fits(source, target.size, str(target.path))
        if target.devno is not None:
            mounted = tuple(mounted_partitions(target.devno))
    return Preflight(target, mounted)


def unmount_partitions(preflight: Preflight) -> None:
    """Unmount the drive's filesystems: directly as root, else through UDisks2 (polkit asks).

    Root opens the device directly as well (see `app.usb.engine.open_target`), so it needs
    no D-Bus service; a desktop user goes the desktop's own way.
    """
    target = preflight.target
    assert target.devno is not None
    where = str(target.path)
    hint = "unmount them (or eject the drive's filesystems) and try again"
    mounted = mounted_partitions(target.devno)
    if os.geteuid() == 0:
        umount = find_tool("umount")
        # Deepest first: a filesystem mounted inside another one goes before it.
        for node, point in sorted(mounted, key=lambda m: m[1].count("/"), reverse=True):
            out = subprocess.run([umount, point], capture_output=True, text=True, check=False)
            if out.returncode != 0:
                raise DeviceBusy(
                    f"{node} on {point} could not be unmounted: "
                    f"{out.stderr.strip() or f'exit status {out.returncode}'}",
                    where=where,
                    hint=hint,
                )
    else:
        from app.usb import udisks

        try:
            udisks.unmount_all(target.devno)
        except udisks.UDisksUnavailable as exc:
            listed = ", ".join(f"{node} on {point}" for node, point in mounted)
            raise DeviceBusy(
                f"has mounted partitions ({listed}) and they could not be unmounted: {exc.message}",
                where=where,
                hint=hint,
            ) from exc
    left = mounted_partitions(target.devno)
    if left:
        listed = ", ".join(f"{node} on {point}" for node, point in left)
        raise DeviceBusy(f"still has mounted partitions: {listed}", where=where, hint=hint)


def write_task(
    source: ImageSource,
    preflight: Preflight,
    *,
    verify: bool,
    force: bool,
    persistence: Persistence | None = None,
) -> Callable[[Reporter], WriteResult]:
    def run(reporter: Reporter) -> WriteResult:
        if preflight.mounted:
            if preflight.identity is not None:
                # Unmount nothing of a disk that took the confirmed one's name. (Without
                # mounts, the helper's gate is the first to look at the path again.)
                check_path(preflight.target.path, preflight.identity)
            reporter.step(PHASE_UNMOUNT)
            unmount_partitions(preflight)
            check_cancelled(reporter)
        done = run_helper(
            "write",
            source.path,
            preflight.target.path,
            reporter=reporter,
            verify=verify,
            force=force,
            expect=preflight.identity,
            persistence=persistence,
        )
        return WriteResult.from_json(done)

    return run
