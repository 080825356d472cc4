"""`livesmith master DIR -o OUT.iso --label LABEL`: the mkisofs role.

Any bootable tree can be mastered, including non-Linux trees that bring their own
boot image: ISOLINUX or GRUB's eltorito.img without emulation (hybrid: isohdpfx or
GRUB's boot_hybrid.img in the MBR), a floppy image (`--bios-emulation floppy`) or a
disk image (`--bios-emulation hd`); these and other loaders need `--no-hybrid`.
The mastering core (pycdlib) is imported when the command runs: every `livesmith`
start imports all command modules. SOURCE_DATE_EPOCH (whole seconds) makes the image
reproducible; a bad value is reported with the other problems.
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "master"
HELP = "master a bootable hybrid ISO image from a directory tree"
ORDER = 20


def _boot_entry(text: str) -> tuple[str, str, str]:
    parts = text.split(":", 2)
    if len(parts) != 3 or not all(parts):
        raise argparse.ArgumentTypeError(
            f"'{text}' is not PLATFORM:EMULATION:PATH (e.g. bios:none:boot/grub/eltorito.img)"
        )
    return parts[0], parts[1], parts[2]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("tree", metavar="DIR", type=Path, help="the directory tree to master")
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        metavar="OUT.iso",
        help="the ISO file to write (replaced if it exists)",
    )
    parser.add_argument(
        "--label", required=True, help="volume label: 1-32 characters of A-Z, 0-9 and _"
    )
    parser.add_argument(
        "--bios-boot",
        metavar="PATH",
        help="BIOS boot file inside the tree, e.g. boot/syslinux/isolinux.bin, "
        "boot/grub/i386-pc/eltorito.img or a floppy image",
    )
    parser.add_argument(
        "--bios-emulation",
        choices=("none", "floppy", "hd"),
        default="none",
        help="El Torito emulation of the BIOS boot file: none (a loader), floppy (a 1.2, "
        "1.44 or 2.88 MB floppy image) or hd (a disk image with one partition)",
    )
    parser.add_argument(
        "--boot-load-size",
        type=int,
        metavar="SECTORS",
        help="512-byte sectors the BIOS loads (default: 4 without emulation)",
    )
    table = parser.add_mutually_exclusive_group()
    table.add_argument(
        "--boot-info-table",
        dest="boot_info_table",
        action="store_const",
        const=True,
        default=None,
        help="patch a boot info table into the BIOS boot file (default: when it is "
        "ISOLINUX or GRUB's eltorito.img, which need one)",
    )
    table.add_argument(
        "--no-boot-info-table",
        dest="boot_info_table",
        action="store_const",
        const=False,
        help="no boot info table, even for a loader that looks as if it needs one",
    )
    parser.add_argument(
        "--efi-image",
        metavar="PATH",
        help="FAT EFI boot image inside the tree, e.g. boot/grub/efi.img; an absolute path "
        "outside the tree is appended after the ISO data as the EFI System partition",
    )
    parser.add_argument(
        "--boot-entry",
        action="append",
        default=[],
        type=_boot_entry,
        metavar="PLATFORM:EMULATION:PATH",
        help="a further El Torito entry (a catalog section), e.g. bios:none:boot/grub/"
        "eltorito.img or uefi:none:boot/efi2.img (repeatable)",
    )
    parser.add_argument(
        "--boot-catalog",
        metavar="PATH",
        help="where the El Torito boot catalog goes (default: boot/boot.cat)",
    )
    parser.add_argument(
        "--no-hybrid", action="store_true", help="no MBR/GPT: an image for optical media only"
    )
    parser.add_argument("--publisher", default="", help="publisher identifier")
    parser.add_argument("--application", default="LIVESMITH", help="application identifier")
    parser.add_argument("--preparer", default="", help="data preparer identifier")
    parser.add_argument(
        "--check", action="store_true", help="only check the tree and the settings; write nothing"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="more output")


def run(args: argparse.Namespace) -> int:
    from app.epoch import source_date_epoch
    from app.errors import Problem, ValidationError
    from app.iso.master import BootEntry, BootSpec, MasterSpec, check_master, master_iso
    from app.reporter import ConsoleReporter

    epoch = source_date_epoch()
    epoch_problems = [epoch] if isinstance(epoch, Problem) else []
    catalog = {"boot_catalog": args.boot_catalog} if args.boot_catalog else {}
    efi_image, efi_partition = args.efi_image, None
    if efi_image is not None and Path(efi_image).is_absolute():
        try:
            efi_image = str(Path(efi_image).resolve().relative_to(args.tree.resolve()))
        except ValueError:
            efi_image, efi_partition = None, Path(args.efi_image)
    spec = MasterSpec(
        tree=args.tree,
        output=args.output,
        label=args.label,
        boot=BootSpec(
            bios_boot=args.bios_boot,
            efi_image=efi_image,
            efi_partition=efi_partition,
            more_entries=tuple(BootEntry(p, path, e) for p, e, path in args.boot_entry),
            hybrid=not args.no_hybrid,
            bios_emulation=args.bios_emulation,
            bios_load_size=args.boot_load_size,
            boot_info_table=args.boot_info_table,
            **catalog,
        ),
        publisher=args.publisher,
        application=args.application,
        preparer=args.preparer,
        source_date_epoch=epoch if isinstance(epoch, int) else None,
    )
    if args.check or epoch_problems:  # a bad value is listed with the tree's own problems
        check = check_master(spec)
        for warning in check.warnings:
            print(f"warning: {warning}")
        if epoch_problems or check.problems:
            raise ValidationError(epoch_problems + check.problems)
        print(f"{args.tree}: ready to master (about {check.estimated_size // 1024**2 + 1} MiB)")
        return 0
    result = master_iso(spec, ConsoleReporter(verbose=args.verbose))
    print(f"{result.path}: {result.size} bytes")
    return 0
