"""Third-party ISO images with different boot setups, for the remastering tests.

From Debian packages as they ship them:
- /usr/lib/ipxe/ipxe.iso (package ipxe): ISOLINUX hybrid (isohdpfx MBR, cylinder
  padding) with a UEFI El Torito image (efi.img) inside the tree;
- /usr/lib/grub-rescue/grub-rescue-cdrom.iso (package grub-rescue-pc): GRUB's
  eltorito.img with boot info table and grub2-boot-info, GRUB's hybrid MBR.
No Debian package ships an ISO that boots by floppy emulation or by UEFI alone, so these
are made here with xorriso from Debian-packaged boot files:
- floppy emulation (a GRUB boot floppy from grub-pc-bin) + an EFI System partition
  appended after the ISO data (xorriso -append_partition, iPXE's ipxe.efi), whose UEFI
  El Torito entry points into the partition (as Debian's own installer images do);
- UEFI only: efi.img (ipxe.efi) inside the tree, with a GPT partition over it
  (xorriso -efi-boot-part --efi-boot-image).
And one that cannot be kept: grub-mkrescue's UEFI image with an HFS+ partition for Macs
inside the ISO data (an Apple Partition Map and GPT partitions over HFS+ structures
that pycdlib does not write).
"""

from __future__ import annotations

from pathlib import Path

from app.iso.remaster import RemasterSpec, remaster_iso
from tests.app.iso.mastering_helpers import grub_floppy_image, make_efi_image, run

IPXE_ISO = Path("/usr/lib/ipxe/ipxe.iso")
GRUB_RESCUE_ISO = Path("/usr/lib/grub-rescue/grub-rescue-cdrom.iso")
IPXE_EFI = Path("/usr/lib/ipxe/ipxe.efi")
ADDED_TEXT = "added by livesmith remaster\n"
ADDED = "/livesmith/ADDED.txt"
SOURCES = ["ipxe", "grub-rescue", "floppy-efi", "efi-only"]


def floppy_efi_iso(workdir: Path) -> Path:
    tree = workdir / "floppy-tree"
    (tree / "boot").mkdir(parents=True)
    (tree / "README").write_text("floppy emulation with an appended EFI partition\n")
    grub_floppy_image(tree / "boot" / "floppy.img")
    efi = make_efi_image(workdir / "floppy-esp.img", IPXE_EFI)
    iso = workdir / "floppy-efi.iso"
    run(
        "xorriso", "-as", "mkisofs", "-R", "-J", "-V", "FLOPPY_EFI", "-o", iso,
        "-b", "boot/floppy.img", "-c", "boot/boot.cat",
        "-append_partition", "2", "0xef", efi,
        "-eltorito-alt-boot", "-e", "--interval:appended_partition_2:all::",
        "-no-emul-boot", tree,
    )  # fmt: skip
    return iso


def efi_only_iso(workdir: Path) -> Path:
    tree = workdir / "efi-tree"
    (tree / "boot").mkdir(parents=True)
    (tree / "README").write_text("UEFI only\n")
    make_efi_image(tree / "boot" / "efi.img", IPXE_EFI)
    iso = workdir / "efi-only.iso"
    run(
        "xorriso", "-as", "mkisofs", "-R", "-J", "-V", "EFI_ONLY", "-o", iso,
        "-c", "boot/boot.cat", "-e", "boot/efi.img", "-no-emul-boot",
        "-efi-boot-part", "--efi-boot-image", tree,
    )  # fmt: skip
    return iso


def grub_mkrescue_efi_iso(workdir: Path) -> Path:
    tree = workdir / "mkrescue-tree"
    (tree / "boot" / "grub").mkdir(parents=True)
    (tree / "boot" / "grub" / "grub.cfg").write_text("echo hello\n")
    iso = workdir / "mkrescue-efi.iso"
    run("grub-mkrescue", "-d", "/usr/lib/grub/x86_64-efi", "-o", iso, tree)
    return iso


def remastered_images(work: Path) -> dict[str, tuple[Path, Path]]:
    """name -> (original, the same remastered with ADDED), for each of SOURCES."""
    added = work / "added.txt"
    added.write_text(ADDED_TEXT)
    sources = {
        "ipxe": IPXE_ISO,
        "grub-rescue": GRUB_RESCUE_ISO,
        "floppy-efi": floppy_efi_iso(work),
        "efi-only": efi_only_iso(work),
    }
    result = {}
    for name, source in sources.items():
        out = work / f"{name}-remastered.iso"
        remaster_iso(RemasterSpec(source=source, output=out, add=((ADDED, added),)))
        result[name] = (source, out)
    return result
