"""The planned layout of the live medium: which files the build puts where on the ISO.

Derived from the profile alone (before anything is built) with the same names the stages
use, so the wizard can show the tree a build will produce. The layout itself is described
in docs/live-medium.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.compose.bootloader import (
    EFI_BOOT_FILE,
    EFI_IMAGE,
    GRUB_DIR,
    SYSLINUX_DIR,
    SYSLINUX_MODULES,
)
from app.compose.live.planned import planned_root_files
from app.compose.pipeline import LIVE_DIR, PACKAGES_DIR
from app.compose.profile import Profile, RootImageFormat, SecureBoot
from app.compose.rootimage import IMAGE_NAMES
from app.compose.secureboot import GRUB_FILE, MOK_MANAGER_FILE, SHIM_FILE, profile_problems
from app.iso.master import BootSpec
from app.packages.model import PackageInfo
from app.packages.repository import repository_files

BUILD_ID_PLACEHOLDER = "<BUILD_ID>"


@dataclass(frozen=True)
class PlannedFile:
    path: str  # absolute path on the medium, e.g. "/live/vmlinuz"
    what: str  # a few words on what it is


def planned_iso_tree(
    profile: Profile,
    *,
    build_id: str = BUILD_ID_PLACEHOLDER,
    packages: Sequence[tuple[PackageInfo, str]] = (),
) -> list[PlannedFile]:
    """Every file the build will write onto the medium, sorted by path.

    `packages` are the carried packages with their file names (when the resolution is
    known); without them a carried-packages build lists only the index files.
    """
    boot = profile.boot
    planned = [
        PlannedFile(f"/{LIVE_DIR}/vmlinuz", "the kernel"),
        PlannedFile(
            f"/{LIVE_DIR}/initramfs.img",
            "initramfs with the whole root"
            if profile.image.format is RootImageFormat.RAM
            else "initramfs",
        ),
        PlannedFile(f"/{LIVE_DIR}/{build_id}.id", "build-unique ID file (finds the medium)"),
    ]
    if profile.image.format in IMAGE_NAMES:
        image = IMAGE_NAMES[profile.image.format]
        planned.append(
            PlannedFile(f"/{LIVE_DIR}/{image}", f"root image ({profile.image.format.value})")
        )
        planned.append(PlannedFile(f"/{LIVE_DIR}/{image}.sha512", "root image checksum"))
    if boot.bios:
        planned.append(PlannedFile(f"/{SYSLINUX_DIR}/isolinux.bin", "BIOS boot loader"))
        planned += [
            PlannedFile(f"/{SYSLINUX_DIR}/{m}", "isolinux module") for m in SYSLINUX_MODULES
        ]
        planned.append(PlannedFile(f"/{SYSLINUX_DIR}/syslinux.cfg", "BIOS boot menu"))
    if boot.uefi and boot.secure_boot is not SecureBoot.OFF and not profile_problems(profile):
        # The archive decides `auto` at build time; planned as it will be when it has them.
        planned.append(PlannedFile(f"/{GRUB_DIR}/grub.cfg", "UEFI boot menu"))
        planned.append(PlannedFile(f"/{EFI_IMAGE}", "EFI system partition image"))
        planned.append(PlannedFile(f"/{SHIM_FILE}", "UEFI boot loader (signed shim)"))
        planned.append(PlannedFile(f"/{GRUB_FILE}", "signed GRUB (Secure Boot)"))
        planned.append(PlannedFile(f"/{MOK_MANAGER_FILE}", "MOK manager (Secure Boot)"))
    elif boot.uefi:
        planned.append(PlannedFile(f"/{GRUB_DIR}/grub.cfg", "UEFI boot menu"))
        planned.append(PlannedFile(f"/{EFI_IMAGE}", "EFI system partition image"))
        planned.append(PlannedFile(f"/{EFI_BOOT_FILE}", "UEFI boot loader (GRUB)"))
    if boot.bios or boot.uefi:
        planned.append(PlannedFile(f"/{BootSpec().boot_catalog}", "El Torito boot catalog"))
    if profile.packages.carry:
        planned += [
            PlannedFile(f"/{PACKAGES_DIR}/{path}", what)
            for path, what in repository_files(profile.packages.source.kind, packages)
        ]
    return sorted(planned, key=lambda f: f.path)


def planned_root_tree(profile: Profile) -> list[PlannedFile]:
    """Files the system options put into the root (inside the root image), by path."""
    return [PlannedFile(f"/{path}", what) for path, what in planned_root_files(profile.system)]


def tree_lines(planned: Sequence[PlannedFile]) -> list[str]:
    """The planned files as an indented tree: folders once, then their files."""
    lines: list[str] = []
    shown: set[tuple[str, ...]] = set()
    for entry in planned:
        parts = tuple(entry.path.strip("/").split("/"))
        for depth in range(1, len(parts)):
            folder = parts[:depth]
            if folder not in shown:
                shown.add(folder)
                lines.append("  " * (depth - 1) + f"{folder[-1]}/")
        lines.append("  " * (len(parts) - 1) + f"{parts[-1]}  — {entry.what}")
    return lines
