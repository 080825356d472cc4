"""Finding external programs, with the Debian package to install when one is missing."""

from __future__ import annotations

import shutil
from collections.abc import Iterable

from app.errors import MissingToolError, Problem

# program -> Debian package that ships it
DEBIAN_PACKAGES: dict[str, str] = {
    "xorriso": "xorriso",
    "isoinfo": "genisoimage",
    "mksquashfs": "squashfs-tools",
    "unsquashfs": "squashfs-tools",
    "mkfs.erofs": "erofs-utils",
    "dump.erofs": "erofs-utils",
    "mformat": "mtools",
    "mcopy": "mtools",
    "mmd": "mtools",
    "mkfs.vfat": "dosfstools",
    "mkfs.exfat": "exfatprogs",
    "mke2fs": "e2fsprogs",
    "grub-mkimage": "grub-common",
    "grub-mkstandalone": "grub-common",
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "sgdisk": "gdisk",
    "fdisk": "fdisk",
    "sfdisk": "fdisk",
    "losetup": "mount",
    "partx": "util-linux",
    "blkid": "util-linux",
    "umount": "mount",
    "fakeroot": "fakeroot",
    "apt-get": "apt",
    "apt-cache": "apt",
    "dpkg": "dpkg",
    "xxhsum": "xxhash",
    "dpkg-deb": "dpkg",
    "gpgv": "gpgv",
    "zstd": "zstd",
    "xz": "xz-utils",
    "cpio": "cpio",
    "busybox": "busybox-static",
    "bwrap": "bubblewrap",
    "mmdebstrap": "mmdebstrap",
    "newuidmap": "uidmap",
    "pacman": "pacman-package-manager",
    "unshare": "util-linux",
    "depmod": "kmod",
    "umockdev-wrapper": "umockdev",
    "xvfb-run": "xvfb",
    "udisksctl": "udisks2",
}

# Data files shipped by Debian packages that we read (not programs on PATH).
DEBIAN_FILES: dict[str, str] = {
    "/usr/lib/ISOLINUX/isolinux.bin": "isolinux",
    "/usr/lib/ISOLINUX/isohdpfx.bin": "isolinux",
    "/usr/lib/syslinux/modules/bios/ldlinux.c32": "syslinux-common",
    "/usr/lib/grub/x86_64-efi": "grub-efi-amd64-bin",
    "/usr/share/OVMF/OVMF_CODE_4M.fd": "ovmf",
}


def find_tool(name: str) -> str:
    """Absolute path of program `name`, or MissingToolError naming its Debian package."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if path is None:
        raise MissingToolError(name, DEBIAN_PACKAGES.get(name))
    return path


def have_tool(name: str) -> bool:
    try:
        find_tool(name)
    except MissingToolError:
        return False
    return True


def missing_tool_problems(names: Iterable[str], where: str) -> list[Problem]:
    """A validation problem, with the package to install, for each program not installed."""
    problems = []
    for name in names:
        try:
            find_tool(name)
        except MissingToolError as exc:
            problems.append(Problem(where, exc.message, hint=exc.hint))
    return problems
