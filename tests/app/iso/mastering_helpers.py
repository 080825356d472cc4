"""Real boot files, real trees and external listings for the mastering tests.

Boot files come from the Debian packages the suite installs (isolinux, syslinux-common,
grub-efi-amd64-bin, mtools); ISOs are read back with xorriso, isoinfo and pycdlib.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

ISOLINUX_BIN = Path("/usr/lib/ISOLINUX/isolinux.bin")
LDLINUX_C32 = Path("/usr/lib/syslinux/modules/bios/ldlinux.c32")
BIOS_BOOT = "boot/syslinux/isolinux.bin"
EFI_IMAGE = "boot/grub/efi.img"
BIOS_MARKER = "LIVESMITH-BIOS-MARKER"
UEFI_MARKER = "LIVESMITH-UEFI-MARKER"


def run(*cmd: str | Path) -> str:
    out = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )
    assert out.returncode == 0, f"{cmd}: {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out.stdout + out.stderr


def grub_efi_binary(dest: Path) -> Path:
    """A small GRUB EFI binary whose embedded grub.cfg prints UEFI_MARKER on serial."""
    cfg = dest.parent / "grub-embedded.cfg"
    cfg.write_text(f"serial --unit=0 --speed=115200\nterminal_output serial\necho {UEFI_MARKER}\n")
    run(
        "grub-mkstandalone",
        "-O",
        "x86_64-efi",
        "-o",
        dest,
        "--install-modules=normal echo serial terminal configfile",
        "--modules=serial terminal echo",
        "--locales=",
        "--fonts=",
        "--themes=",
        f"boot/grub/grub.cfg={cfg}",
    )
    return dest


def make_efi_image(path: Path, efi_binary: Path, sectors: int = 4096) -> Path:
    """A FAT image with /EFI/BOOT/BOOTX64.EFI, made with mtools (no mounting)."""
    run("mformat", "-C", "-T", str(sectors), "-i", path, "::")
    run("mmd", "-i", path, "::/EFI", "::/EFI/BOOT")
    run("mcopy", "-i", path, efi_binary, "::/EFI/BOOT/BOOTX64.EFI")
    return path


def make_boot_tree(root: Path) -> Path:
    """ISOLINUX (prints BIOS_MARKER on serial), an ESP image with GRUB (prints UEFI_MARKER),
    and the same GRUB at /EFI/BOOT."""
    syslinux = root / "boot" / "syslinux"
    grub = root / "boot" / "grub"
    efi_boot = root / "EFI" / "BOOT"
    for d in (syslinux, grub, efi_boot):
        d.mkdir(parents=True, exist_ok=True)
    shutil.copy(ISOLINUX_BIN, syslinux / "isolinux.bin")
    shutil.copy(LDLINUX_C32, syslinux / "ldlinux.c32")
    # ISOLINUX echoes "Loading <kernel>..." on serial; the kernel is named after the marker.
    (syslinux / "isolinux.cfg").write_text(f"SERIAL 0 115200\nPROMPT 0\nDEFAULT {BIOS_MARKER}\n")
    binary = grub_efi_binary(root.parent / f"{root.name}-BOOTX64.EFI")
    make_efi_image(grub / "efi.img", binary)
    shutil.copy(binary, efi_boot / "BOOTX64.EFI")
    return root


@dataclass(frozen=True)
class Listed:
    kind: str  # "file", "dir", "symlink"
    mode: int  # full st_mode
    uid: int
    gid: int
    size: int  # 0 for directories and symlinks
    target: str = ""


_KIND = {"-": "file", "d": "dir", "l": "symlink", "e": "file"}
_TYPE_BITS = {"file": stat.S_IFREG, "dir": stat.S_IFDIR, "symlink": stat.S_IFLNK}
_LSDL = re.compile(
    r"^(\S{10})\s+\d+\s+(\d+)\s+(\d+)\s+(\d+)\s+\w{3}\s+\d+\s+[\d:]+\s+"
    r"'(.*?)'(?: -> '(.*)')?$"
)


def _mode(text: str) -> int:
    bits = 0
    for i, (char, value) in enumerate(
        zip(text[1:], (0o400, 0o200, 0o100, 0o40, 0o20, 0o10, 0o4, 0o2, 0o1), strict=True)
    ):
        if char not in "-ST":
            bits |= value
        if i == 2 and char in "sS":
            bits |= stat.S_ISUID
        if i == 5 and char in "sS":
            bits |= stat.S_ISGID
        if i == 8 and char in "tT":
            bits |= stat.S_ISVTX
    return _TYPE_BITS[_KIND[text[0]]] | bits


def xorriso_listing(iso: Path) -> dict[str, Listed]:
    """Every entry of the ISO as xorriso reads it (Rock Ridge): `-find / -exec lsdl`."""
    out = subprocess.run(
        ["xorriso", "-indev", str(iso), "-find", "/", "-exec", "lsdl"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    listing = {}
    for line in out.splitlines():
        match = _LSDL.match(line)
        assert match, f"unexpected xorriso line: {line!r}"
        perms, uid, gid, size, path, target = match.groups()
        kind = _KIND[perms[0]]
        listing[path] = Listed(
            kind, _mode(perms), int(uid), int(gid), int(size) if kind == "file" else 0, target or ""
        )
    return listing


def tree_listing(root: Path) -> dict[str, Listed]:
    """The same view of a directory tree, from lstat."""
    listing = {}
    for dirpath, dirnames, filenames in os.walk(root):  # symlinked dirs are not entered
        for name in ["", *dirnames, *filenames]:
            if not name and Path(dirpath) != root:
                continue  # listed by its parent
            path = Path(dirpath) / name if name else Path(dirpath)
            st = path.lstat()
            rel = "/" + str(path.relative_to(root)) if path != root else "/"
            if stat.S_ISLNK(st.st_mode):
                listed = Listed("symlink", st.st_mode, st.st_uid, st.st_gid, 0, os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                listed = Listed("dir", st.st_mode, st.st_uid, st.st_gid, 0)
            else:
                listed = Listed("file", st.st_mode, st.st_uid, st.st_gid, st.st_size)
            listing[rel] = listed
    return listing


def xorriso_report(iso: Path) -> str:
    return run(
        "xorriso", "-indev", iso, "-report_el_torito", "plain", "-report_system_area", "plain"
    )


GRUB_PC = Path("/usr/lib/grub/i386-pc")  # Debian package grub-pc-bin
FLOPPY_MARKER = "LIVESMITH-FLOPPY-MARKER"
GRUB_BIOS_MARKER = "LIVESMITH-GRUB-BIOS-MARKER"


def _grub_bios_config(dest: Path, marker: str) -> Path:
    cfg = dest.parent / f"{dest.name}.cfg"
    cfg.write_text(
        f"serial --unit=0 --speed=115200\nterminal_output console serial\necho {marker}\n"
    )
    return cfg


def grub_eltorito_image(dest: Path, marker: str = GRUB_BIOS_MARKER) -> Path:
    """GRUB's eltorito.img (cdboot.img + core.img) whose embedded config prints `marker`
    on the screen and the serial console; made with grub-mkimage as grub-mkrescue does."""
    cfg = _grub_bios_config(dest, marker)
    run(
        "grub-mkimage", "-O", "i386-pc-eltorito", "-o", dest, "-p", "/boot/grub", "-c", cfg,
        "biosdisk", "iso9660", "serial", "terminal", "echo",
    )  # fmt: skip
    return dest


def grub_floppy_image(dest: Path, marker: str = FLOPPY_MARKER, size: int = 1474560) -> Path:
    """A GRUB boot floppy (boot.img + core.img, padded to `size`) printing `marker`."""
    cfg = _grub_bios_config(dest, marker)
    core = dest.parent / f"{dest.name}.core"
    run(
        "grub-mkimage", "-O", "i386-pc", "-o", core, "-p", "(fd0)/boot/grub", "-c", cfg,
        "biosdisk", "serial", "terminal", "echo",
    )  # fmt: skip
    with open(dest, "wb") as out:
        out.write((GRUB_PC / "boot.img").read_bytes() + core.read_bytes())
        out.truncate(size)
    core.unlink()
    return dest


def disk_image_with_partitions(dest: Path, count: int, size: int = 1024 * 1024) -> Path:
    """A disk image whose MBR has `count` partition entries (type 0x83)."""
    mbr = bytearray(512)
    per = (size // 512 - 1) // max(count, 1)
    for i in range(count):
        entry = bytes([0x80 if i == 0 else 0, 0, 0, 0, 0x83, 0, 0, 0])
        entry += (1 + i * per).to_bytes(4, "little") + per.to_bytes(4, "little")
        mbr[446 + 16 * i : 462 + 16 * i] = entry
    mbr[510:512] = b"\x55\xaa"
    with open(dest, "wb") as out:
        out.write(mbr)
        out.truncate(size)
    return dest
