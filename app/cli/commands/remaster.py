"""`livesmith remaster IN.iso -o OUT.iso --add ISO_PATH=LOCAL_PATH --remove ISO_PATH`.

Other files in an existing image, with its boot setup kept as it was (El Torito
entries, emulation, load sizes, boot info tables, hybrid MBR code, MBR/GPT partitions and
appended partitions), as `xorriso -indev IN -outdev OUT -boot_image any replay` does.
An image whose boot setup cannot be kept is refused with the reason.
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "remaster"
HELP = "change the files of an ISO image, keeping its boot setup"
ORDER = 21


def _addition(text: str) -> tuple[str, Path]:
    iso_path, sep, local = text.partition("=")
    if not sep or not iso_path or not local:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not ISO_PATH=LOCAL_PATH (e.g. /boot/grub/grub.cfg=my-grub.cfg)"
        )
    return iso_path, Path(local)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="IN.iso", type=Path, help="the ISO image to remaster")
    parser.add_argument(
        "-o", "--output", required=True, type=Path, metavar="OUT.iso", help="the new ISO image"
    )
    parser.add_argument(
        "--add",
        action="append",
        default=[],
        type=_addition,
        metavar="ISO_PATH=LOCAL_PATH",
        help="add a local file at ISO_PATH, or replace the file there (repeatable)",
    )
    parser.add_argument(
        "--remove",
        action="append",
        default=[],
        metavar="ISO_PATH",
        help="remove a file or a whole directory from the image (repeatable)",
    )
    parser.add_argument("--label", help="a new volume label (default: keep the label)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="only check and say what of the boot setup is kept; write nothing",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="more output")


def run(args: argparse.Namespace) -> int:
    from app.errors import ValidationError
    from app.iso.remaster import RemasterSpec, plan_remaster, remaster_iso
    from app.reporter import ConsoleReporter

    spec = RemasterSpec(
        source=args.source,
        output=args.output,
        add=tuple(args.add),
        remove=tuple(args.remove),
        label=args.label,
    )
    if args.check:
        plan = plan_remaster(spec)
        if plan.problems:
            raise ValidationError(plan.problems)
        for line in plan.kept:
            print(f"keeps: {line}")
        return 0
    result = remaster_iso(spec, ConsoleReporter(verbose=args.verbose))
    for line in result.kept:
        print(f"kept: {line}")
    print(f"{result.path}: {result.size} bytes")
    return 0
