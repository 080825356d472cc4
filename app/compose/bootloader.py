"""Bootloaders of the live medium: isolinux for BIOS, a GRUB EFI binary for UEFI.

Both show the same menu (see docs/live-medium.md for the layout and the kernel command
line contract):

- BIOS: `boot/syslinux/` holds isolinux.bin, ldlinux.c32, menu.c32 + libutil.c32 (a text
  menu: it also draws on the first serial port, where vesamenu would not) and
  syslinux.cfg. The mastering step makes isolinux.bin El Torito entry #1.
- UEFI: one GRUB binary made with `grub-mkimage` with every module it needs built in and
  a small embedded config that finds the medium by its build-unique ID file (falling
  back to the volume label, so a relabelled stick still boots) and then reads
  `boot/grub/grub.cfg` from ISO 9660. The binary goes into `boot/grub/efi.img`, a FAT
  image made with mtools (no loop mounts, no root), which the mastering step makes El
  Torito entry #2 and the ESP of the hybrid partition table; a copy sits at
  `EFI/BOOT/BOOTX64.EFI` so a plain file copy of the medium to a FAT stick boots too.

Reproducible: with the same inputs and `epoch` (the build's SOURCE_DATE_EPOCH), the GRUB
binary and efi.img are byte-identical (grub-mkimage writes a fixed PE timestamp; the FAT
serial number comes from the build ID; mtools dates files from `epoch`, in UTC).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from app.display import control_character
from app.errors import Problem, StageError, ValidationError
from app.reporter import Level, Reporter, check_cancelled
from app.tools import DEBIAN_PACKAGES, find_tool, have_tool

MAX_TIMEOUT_S = 5
SERIAL_SPEED = 115200
BASE_CONSOLES = f"console=tty0 console=ttyS0,{SERIAL_SPEED}"
# The "safe" entry: no kernel mode setting, so the firmware's framebuffer stays in use;
# for machines whose graphics driver hangs or blanks the screen while booting.
SAFE_PARAMETERS = "nomodeset"
COPYTORAM_PARAMETER = "livesmith.copytoram"
# The "without persistence" entry: the live init leaves a LIVESMITH-RW partition (see
# app/usb/persistence.py) alone and keeps the changes in RAM, as on a stick without one.
NO_PERSISTENCE_PARAMETER = "livesmith.persistence=no"

SYSLINUX_DIR = "boot/syslinux"
GRUB_DIR = "boot/grub"
EFI_IMAGE = f"{GRUB_DIR}/efi.img"
EFI_BOOT_FILE = "EFI/BOOT/BOOTX64.EFI"

# GRUB modules built into the EFI binary: the medium (ISO 9660 on a CD or a hybrid stick,
# FAT), finding it (search by file and label), the menu, serial + screen, and Linux.
GRUB_MODULES = (
    "part_gpt",
    "part_msdos",
    "iso9660",
    "fat",
    "search",
    "search_fs_file",
    "search_label",
    "search_fs_uuid",
    "normal",
    "configfile",
    "eval",
    "echo",
    "test",
    "true",
    "sleep",
    "minicmd",
    "ls",
    "cat",
    "serial",
    "terminal",
    "all_video",
    "efi_gop",
    "efi_uga",
    "video_bochs",
    "video_cirrus",
    "linux",
    "reboot",
    "halt",
)

# FAT image geometry: 64 heads x 32 sectors of 512 bytes = 1 MiB per cylinder.
_FAT_HEADS = 64
_FAT_SECTORS = 32
_MIB = 1024 * 1024
_EFI_IMAGE_LIMIT = 32 * _MIB  # El Torito sector counts are 16-bit (pycdlib fails at 32 MiB)


@dataclass(frozen=True)
class BootFiles:
    """Where the host's boot files are, and which Debian package ships each of them."""

    isolinux_bin: Path = Path("/usr/lib/ISOLINUX/isolinux.bin")
    syslinux_modules: Path = Path("/usr/lib/syslinux/modules/bios")
    grub_efi_modules: Path = Path("/usr/lib/grub/x86_64-efi")


HOST_FILES = BootFiles()
SYSLINUX_MODULES = ("ldlinux.c32", "menu.c32", "libutil.c32")
UEFI_TOOLS = ("grub-mkimage", "mformat", "mmd", "mcopy")


@dataclass(frozen=True)
class BootEntry:
    key: str  # "live", "toram", "safe": the isolinux label and the GRUB menu entry id
    title: str
    cmdline: str
    kernel: str = "/live/vmlinuz"
    initrd: str = "/live/initramfs.img"


@dataclass(frozen=True)
class BootMenu:
    title: str
    entries: tuple[BootEntry, ...]
    build_id: str
    label: str
    default: int = 0
    timeout_s: int = MAX_TIMEOUT_S
    serial: bool = True


def default_menu(
    *,
    title: str,
    build_id: str,
    label: str,
    image_path: str = "/live/rootfs.sfs",
    extra_cmdline: str = "",
    copytoram: bool = True,
    safe: bool = True,
    timeout_s: int = MAX_TIMEOUT_S,
) -> BootMenu:
    """The standard menu: live (default), copy-to-RAM, safe and without-persistence
    entries, per docs/live-medium.md.

    `image_path` is "none" in RAM mode (then there is no copy-to-RAM entry: the whole
    system already is in RAM; and none without persistence: there is no overlay). `extra_cmdline` (the profile's own parameters) comes last
    in every entry so it can override what comes before.
    """
    base = f"livesmith.id={build_id} livesmith.label={label} livesmith.image={image_path}"

    def cmdline(*specific: str) -> str:
        return " ".join(
            part for part in (base, BASE_CONSOLES, *specific, extra_cmdline.strip()) if part
        )

    entries = [BootEntry("live", f"{title} (live)", cmdline())]
    if copytoram and image_path != "none":
        entries.append(BootEntry("toram", f"{title} (copy to RAM)", cmdline(COPYTORAM_PARAMETER)))
    if safe:
        entries.append(BootEntry("safe", f"{title} (safe graphics)", cmdline(SAFE_PARAMETERS)))
    if image_path != "none":
        entries.append(
            BootEntry(
                "nopersist",
                f"{title} (without persistence)",
                cmdline(NO_PERSISTENCE_PARAMETER),
            )
        )
    return BootMenu(
        title=title, entries=tuple(entries), build_id=build_id, label=label, timeout_s=timeout_s
    )


def id_file_path(build_id: str) -> str:
    """Path (relative to the medium's root) of the build-unique ID file both GRUB and /init find."""
    return f"live/{build_id}.id"


# ---------------------------------------------------------------------------- validation

_BUILD_ID = re.compile(r"[0-9a-f]{16}")
_LABEL = re.compile(r"[A-Z0-9_]{1,32}")
_KEY = re.compile(r"[a-z0-9_-]{1,32}")
_PATH = re.compile(r"/[A-Za-z0-9._/+-]+")
# Characters in a kernel command line that GRUB and isolinux would pass on differently.
_CMDLINE_FORBIDDEN = set("'\"\\")
MAX_CMDLINE = 2000  # x86 Linux takes 2048 bytes; GRUB adds BOOT_IMAGE=...


def _has_control(text: str) -> bool:
    return control_character(text) is not None


def validate_menu(menu: BootMenu) -> list[Problem]:
    """Everything wrong with a menu, all at once (empty list = fine)."""
    problems: list[Problem] = []
    where = "boot menu"
    if not _BUILD_ID.fullmatch(menu.build_id):
        problems.append(
            Problem(where, f"build ID {menu.build_id!r} is not 16 lowercase hex digits")
        )
    if not _LABEL.fullmatch(menu.label):
        problems.append(
            Problem(where, f"volume label {menu.label!r} must be 1-32 characters A-Z, 0-9 or _")
        )
    if not menu.entries:
        problems.append(Problem(where, "the menu has no entries"))
    elif not 0 <= menu.default < len(menu.entries):
        problems.append(
            Problem(
                where,
                f"default entry {menu.default} does not exist (the menu has {len(menu.entries)})",
            )
        )
    if not 0 <= menu.timeout_s <= MAX_TIMEOUT_S:
        problems.append(
            Problem(where, f"timeout {menu.timeout_s} s is outside 0-{MAX_TIMEOUT_S} s")
        )
    if not menu.title.strip() or _has_control(menu.title):
        problems.append(Problem(where, "the menu title is empty or has control characters"))
    seen: set[str] = set()
    for entry in menu.entries:
        at = f"boot menu entry {entry.key!r}"
        if not _KEY.fullmatch(entry.key):
            problems.append(Problem(at, "the key must be 1-32 characters a-z, 0-9, _ or -"))
        if entry.key in seen:
            problems.append(Problem(at, "two entries have this key"))
        seen.add(entry.key)
        if not entry.title.strip() or _has_control(entry.title):
            problems.append(Problem(at, "the title is empty or has control characters"))
        for name, path in (("kernel", entry.kernel), ("initrd", entry.initrd)):
            if not _PATH.fullmatch(path) or ".." in path.split("/"):
                problems.append(
                    Problem(
                        at,
                        f"{name} path {path!r} must be absolute on the medium "
                        "and use only A-Z a-z 0-9 . _ - + /",
                    )
                )
        problems += cmdline_text_problems(entry.cmdline, where=at)
        if len(entry.cmdline) > MAX_CMDLINE:
            problems.append(
                Problem(
                    at,
                    f"the kernel command line is {len(entry.cmdline)} "
                    f"characters long (at most {MAX_CMDLINE})",
                )
            )
    return problems


def cmdline_text_problems(cmdline: str, *, where: str = "kernel command line") -> list[Problem]:
    """Characters in `cmdline` that GRUB and isolinux would pass on differently, if any."""
    bad = sorted(set(cmdline) & _CMDLINE_FORBIDDEN)
    if not bad and not _has_control(cmdline):
        return []
    shown = " ".join(bad) if bad else "control characters"
    return [
        Problem(
            where,
            f"the kernel command line contains {shown}",
            hint="quotes and backslashes are not supported",
        )
    ]


def cmdline_length_problem(menu: BootMenu, *, where: str = "kernel command line") -> Problem | None:
    """The menu's longest kernel command line, if it is longer than the kernel takes; said
    in terms of the profile's extra parameters, the part the user can shorten."""
    longest = max(menu.entries, key=lambda e: len(e.cmdline), default=None)
    if longest is None or len(longest.cmdline) <= MAX_CMDLINE:
        return None
    over = len(longest.cmdline) - MAX_CMDLINE
    return Problem(
        where,
        f"with the extra parameters, the {longest.key!r} boot entry's kernel "
        f"command line is {len(longest.cmdline)} characters long (at most "
        f"{MAX_CMDLINE})",
        hint=f"shorten the extra parameters by at least {over} characters",
    )


def _package_for(path: Path, files: BootFiles) -> str:
    if path == files.isolinux_bin:
        return "isolinux"
    if path.is_relative_to(files.grub_efi_modules):
        return "grub-efi-amd64-bin"
    return "syslinux-common"


def validate_bootloaders(bios: bool, uefi: bool, *, files: BootFiles = HOST_FILES) -> list[Problem]:
    """Missing host files and programs for the requested boot modes, each naming its package."""
    needed: list[Path] = []
    tools: list[str] = []
    if bios:
        needed += [files.isolinux_bin, *(files.syslinux_modules / m for m in SYSLINUX_MODULES)]
    if uefi:
        needed += [files.grub_efi_modules / f"{m}.mod" for m in GRUB_MODULES]
        tools += UEFI_TOOLS
    problems: list[Problem] = []
    missing_by_package: dict[str, list[Path]] = {}
    for path in needed:
        if not path.is_file():
            # A missing directory is one finding, not one per file in it.
            report = path.parent if not path.parent.is_dir() else path
            missing = missing_by_package.setdefault(_package_for(path, files), [])
            if report not in missing:
                missing.append(report)
    for package, paths in missing_by_package.items():
        listed = ", ".join(str(p) for p in paths[:3]) + (
            f" and {len(paths) - 3} more" if len(paths) > 3 else ""
        )
        mode = "UEFI" if package == "grub-efi-amd64-bin" else "BIOS"
        problems.append(
            Problem(
                f"{mode} boot", f"missing {listed}", hint=f"install the Debian package {package}"
            )
        )
    for tool in tools:
        if not have_tool(tool):
            package = DEBIAN_PACKAGES.get(tool, tool)
            problems.append(
                Problem(
                    "UEFI boot",
                    f"the program '{tool}' is not installed",
                    hint=f"install the Debian package {package}",
                )
            )
    return problems


def _check(menu: BootMenu, *, bios: bool, uefi: bool, files: BootFiles) -> None:
    problems = validate_menu(menu) + validate_bootloaders(bios, uefi, files=files)
    if problems:
        raise ValidationError(problems)


# ------------------------------------------------------------------------------- isolinux


def syslinux_config(menu: BootMenu) -> str:
    """syslinux.cfg text: a menu.c32 text menu, also on the first serial port."""
    lines = ["# Generated by Livesmith: BIOS boot menu (isolinux)"]
    if menu.serial:
        lines.append(f"SERIAL 0 {SERIAL_SPEED}")
    lines += [
        "UI menu.c32",
        f"MENU TITLE {menu.title}",
        "PROMPT 0",
        # syslinux counts tenths of a second, and 0 would mean "wait forever".
        f"TIMEOUT {max(1, menu.timeout_s * 10)}",
        f"DEFAULT {menu.entries[menu.default].key}",
    ]
    for entry in menu.entries:
        lines += [
            "",
            f"LABEL {entry.key}",
            f"  MENU LABEL {entry.title}",
            f"  KERNEL {entry.kernel}",
            f"  INITRD {entry.initrd}",
            f"  APPEND {entry.cmdline}",
        ]
    return "\n".join(lines) + "\n"


def install_isolinux(
    stage: Path, menu: BootMenu, reporter: Reporter, *, files: BootFiles = HOST_FILES
) -> str:
    """Put isolinux and its menu into `stage`; returns the BIOS boot file for mastering."""
    _check(menu, bios=True, uefi=False, files=files)
    target = stage / SYSLINUX_DIR
    reporter.log(
        Level.INFO, f"BIOS boot: isolinux with {len(menu.entries)} menu entries in {SYSLINUX_DIR}"
    )
    target.mkdir(parents=True, exist_ok=True)
    sources = [files.isolinux_bin, *(files.syslinux_modules / m for m in SYSLINUX_MODULES)]
    for source in sources:
        check_cancelled(reporter)
        shutil.copyfile(source, target / source.name)
    (target / "syslinux.cfg").write_text(syslinux_config(menu))
    return f"{SYSLINUX_DIR}/isolinux.bin"


# ----------------------------------------------------------------------------------- GRUB

_GRUB_SAFE_WORD = re.compile(r"[A-Za-z0-9._,:=/+@%-]+")


def _grub_quote(word: str) -> str:
    """One GRUB script word (single quotes keep everything literal except the quote itself)."""
    if _GRUB_SAFE_WORD.fullmatch(word):
        return word
    return "'" + word.replace("'", "'\\''") + "'"


def _grub_serial_script(menu: BootMenu) -> str:
    """Screen and first serial port; on machines without a serial port, the screen alone
    (and no error message: `serial` only fails inside the condition)."""
    if not menu.serial:
        return ""
    return (
        f"if serial --unit=0 --speed={SERIAL_SPEED}; then "
        "terminal_input console serial; terminal_output console serial; fi"
    )


def grub_early_config(menu: BootMenu) -> str:
    """The config built into the EFI binary: find the medium, then read its grub.cfg.

    The ID file comes first because the label can change (a relabelled stick, Ventoy);
    on failure it says what it looked for instead of leaving a bare `grub>` prompt.
    An embedded config runs under GRUB's rescue parser, which knows no `if`: the
    decision runs through `eval`, which uses the full script parser.
    """
    id_file = "/" + id_file_path(menu.build_id)
    label = _grub_quote(menu.label)
    find = " ".join(
        [
            f"if search --no-floppy --file --set=root {id_file}; then true;",
            f"elif search --no-floppy --label --set=root {label}; then",
            f"echo 'Livesmith: found the medium by its label {menu.label} (no {id_file} on it).';",
            f"else echo 'Livesmith: the boot medium was not found: no disk has {id_file} "
            f"or the label {menu.label}.'; echo 'Type ls to see the disks GRUB can read.';",
            "fi",
        ]
    )
    return "\n".join(
        [
            *([f'eval "{_grub_serial_script(menu)}"'] if menu.serial else []),
            f'eval "{find}"',
            f"set prefix=($root)/{GRUB_DIR}",
            f"configfile ($root)/{GRUB_DIR}/grub.cfg",
            "",
        ]
    )


def grub_config(menu: BootMenu) -> str:
    """boot/grub/grub.cfg on ISO 9660: the same entries as syslinux.cfg."""
    lines = ["# Generated by Livesmith: UEFI boot menu (GRUB)"]
    if menu.serial:
        lines.append(_grub_serial_script(menu))
    lines += [
        f"set default={menu.entries[menu.default].key}",
        f"set timeout={menu.timeout_s}",
        "set timeout_style=menu",
    ]
    for entry in menu.entries:
        args = " ".join(_grub_quote(w) for w in entry.cmdline.split())
        lines += [
            "",
            f"menuentry {_grub_quote(entry.title)} --id {entry.key} {{",
            f"  echo {_grub_quote('Loading ' + entry.title + ' ...')}",
            f"  linux {entry.kernel} {args}",
            f"  initrd {entry.initrd}",
            "}",
        ]
    return "\n".join(lines) + "\n"


def _run(argv: list[str], *, env: dict[str, str] | None = None, what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()[-2000:]
        raise StageError(
            f"{what} failed (exit status {result.returncode}): {detail}",
            stage="bootloaders",
            where=argv[0],
        )


def efi_image_size(payload_bytes: int) -> int:
    """Size of the FAT image: the payload plus FAT overhead and slack, in whole MiB."""
    return max(1, math.ceil((payload_bytes + 256 * 1024) * 1.05 / _MIB)) * _MIB


def make_efi_image(image: Path, efi_binary: Path, *, serial: str, epoch: int) -> None:
    """A FAT image holding /EFI/BOOT/BOOTX64.EFI dated `epoch`, made with mtools only."""
    make_efi_files_image(image, ((EFI_BOOT_FILE, efi_binary),), serial=serial, epoch=epoch)


def make_efi_files_image(
    image: Path,
    files: Sequence[tuple[str, Path]],
    *,
    serial: str,
    epoch: int,
    min_bytes: int = 0,
) -> None:
    """A FAT image holding each (path in the image, source file) of `files`, dated `epoch`,
    of at least `min_bytes`; made with mtools only."""
    payload = sum(source.stat().st_size for _, source in files)
    size = max(efi_image_size(payload), math.ceil(min_bytes / _MIB) * _MIB)
    if size >= _EFI_IMAGE_LIMIT:
        names = ", ".join(str(source) for _, source in files)
        raise StageError(
            f"the EFI programs {names} are too big for an EFI image "
            f"({size // _MIB} MiB, at most 31)",
            stage="bootloaders",
        )
    # mtools dates what it writes from SOURCE_DATE_EPOCH (its own reading, in the child).
    env = {
        **os.environ,
        "MTOOLS_SKIP_CHECK": "1",
        "MTOOLSRC": os.devnull,
        "TZ": "UTC",
        "SOURCE_DATE_EPOCH": str(epoch),
    }
    with open(image, "wb") as out:
        out.truncate(size)
    sectors = size // 512
    _run(
        [
            find_tool("mformat"),
            "-i",
            str(image),
            "-N",
            serial,
            "-v",
            "EFIBOOT",
            "-T",
            str(sectors),
            "-h",
            str(_FAT_HEADS),
            "-s",
            str(_FAT_SECTORS),
            "::",
        ],
        env=env,
        what="making the FAT file system of the EFI image",
    )
    folders: list[str] = []
    for dest, _ in files:
        parts = dest.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            folder = "/".join(parts[:depth])
            if folder not in folders:
                folders.append(folder)
    if folders:
        _run(
            [find_tool("mmd"), "-i", str(image), *(f"::/{f}" for f in folders)],
            env=env,
            what="making folders in the EFI image",
        )
    for dest, source in files:
        os.utime(source, (epoch, epoch))
        _run(
            [find_tool("mcopy"), "-m", "-i", str(image), str(source), "::/" + dest],
            env=env,
            what=f"copying {dest} into the EFI image",
        )


def build_grub_efi(output: Path, menu: BootMenu, *, files: BootFiles = HOST_FILES) -> None:
    """The standalone GRUB EFI binary (all modules and the early config built in)."""
    with tempfile.TemporaryDirectory(prefix="livesmith-grub-") as work:
        early = Path(work, "early.cfg")
        early.write_text(grub_early_config(menu))
        _run(
            [
                find_tool("grub-mkimage"),
                "-O",
                "x86_64-efi",
                "-d",
                str(files.grub_efi_modules),
                "-p",
                f"/{GRUB_DIR}",
                "-c",
                str(early),
                "-o",
                str(output),
                *GRUB_MODULES,
            ],
            what="building the GRUB EFI binary with grub-mkimage",
        )


def install_grub_efi(
    stage: Path,
    menu: BootMenu,
    reporter: Reporter,
    *,
    files: BootFiles = HOST_FILES,
    epoch: int,
) -> str:
    """Put GRUB for UEFI into `stage`; returns the EFI boot image for mastering.

    Writes boot/grub/grub.cfg, boot/grub/efi.img and EFI/BOOT/BOOTX64.EFI. `epoch`
    (seconds since 1970 UTC) dates the files in efi.img. Outputs appear only when
    everything succeeded; a failure or cancel leaves none of them behind.
    """
    _check(menu, bios=False, uefi=True, files=files)
    grub_dir = stage / GRUB_DIR
    efi_dir = stage / Path(EFI_BOOT_FILE).parent
    reporter.log(
        Level.INFO,
        f"UEFI boot: GRUB with {len(menu.entries)} menu entries, "
        f"finds the medium by /{id_file_path(menu.build_id)}",
    )
    grub_dir.mkdir(parents=True, exist_ok=True)
    efi_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".livesmith-grub-", dir=grub_dir))
    try:
        binary = work / "BOOTX64.EFI"
        build_grub_efi(binary, menu, files=files)
        check_cancelled(reporter)
        image = work / "efi.img"
        make_efi_image(image, binary, serial=menu.build_id[:8], epoch=epoch)
        check_cancelled(reporter)
        config = work / "grub.cfg"
        config.write_text(grub_config(menu))
        reporter.log(
            Level.DEBUG,
            f"GRUB EFI binary {binary.stat().st_size} bytes, "
            f"EFI image {image.stat().st_size // 1024} KiB",
        )
        shutil.copy2(binary, efi_dir / "BOOTX64.EFI")
        os.replace(config, grub_dir / "grub.cfg")
        os.replace(image, stage / EFI_IMAGE)
    except BaseException:
        for leftover in (efi_dir / "BOOTX64.EFI", grub_dir / "grub.cfg", stage / EFI_IMAGE):
            leftover.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return EFI_IMAGE


# ------------------------------------------------------------------ the signed chain (UEFI)

# The signed GRUB (Debian's gcdx64.efi) reads this on the device it was loaded from: the
# CD itself (where it is the real menu) or the EFI system partition (where it is
# signed_grub_config's stub). An ESP of less than 8 MiB does not hold shim and GRUB.
SIGNED_GRUB_CONFIG = f"{GRUB_DIR}/grub.cfg"
SIGNED_EFI_IMAGE_MIN = 8 * _MIB


def signed_grub_config(menu: BootMenu) -> str:
    """/boot/grub/grub.cfg on the EFI system partition, for the signed GRUB: find the
    medium by its ID file (else by its label), then read the real menu from it.

    Only commands built into Debian's signed GRUB (it cannot load modules under Secure
    Boot). It never reads itself again: when the medium is not found, it says so and stops
    at GRUB's prompt.
    """
    id_file = "/" + id_file_path(menu.build_id)
    label = _grub_quote(menu.label)
    menu_path = f"($root)/{GRUB_DIR}/grub.cfg"
    lines = ["# Generated by Livesmith: finds the medium, then its boot menu (signed GRUB)"]
    if menu.serial:
        lines.append(_grub_serial_script(menu))
    lines += [
        f"if search --no-floppy --file --set=root {id_file}; then",
        f"  set prefix=($root)/{GRUB_DIR}",
        f"  configfile {menu_path}",
        f"elif search --no-floppy --label --set=root {label}; then",
        f"  echo 'Livesmith: found the medium by its label {menu.label} (no {id_file} on it).'",
        f"  set prefix=($root)/{GRUB_DIR}",
        f"  configfile {menu_path}",
        "else",
        f"  echo 'Livesmith: the boot medium was not found: no disk has {id_file} "
        f"or the label {menu.label}.'",
        "  echo 'Type ls to see the disks GRUB can read.'",
        "fi",
    ]
    return "\n".join(lines) + "\n"


def signed_efi_tool_problems() -> list[Problem]:
    """The programs the signed chain's EFI image needs (mtools; no GRUB modules)."""
    return [
        Problem(
            "UEFI boot",
            f"the program '{tool}' is not installed",
            hint=f"install the Debian package {DEBIAN_PACKAGES.get(tool, tool)}",
        )
        for tool in UEFI_TOOLS
        if tool != "grub-mkimage" and not have_tool(tool)
    ]


def install_signed_efi(
    stage: Path,
    menu: BootMenu,
    programs: Sequence[tuple[str, Path]],
    reporter: Reporter,
    *,
    epoch: int,
) -> str:
    """Put the signed UEFI chain into `stage`; returns the EFI boot image for mastering.

    `programs` are (path on the medium, file) of the signed EFI programs (shim as
    EFI/BOOT/BOOTX64.EFI, GRUB as EFI/BOOT/grubx64.efi, ...). They go into EFI/BOOT of the
    ISO tree and into boot/grub/efi.img, which also gets signed_grub_config's stub as
    /boot/grub/grub.cfg; boot/grub/grub.cfg of the ISO tree is the menu. Outputs appear
    only when everything succeeded.
    """
    problems = validate_menu(menu) + signed_efi_tool_problems()
    if problems:
        raise ValidationError(problems)
    grub_dir = stage / GRUB_DIR
    reporter.log(
        Level.INFO,
        f"UEFI boot: signed chain ({', '.join(Path(d).name for d, _ in programs)}), "
        f"{len(menu.entries)} menu entries, finds the medium by /{id_file_path(menu.build_id)}",
    )
    grub_dir.mkdir(parents=True, exist_ok=True)
    placed = [stage / dest for dest, _ in programs]
    work = Path(tempfile.mkdtemp(prefix=".livesmith-grub-", dir=grub_dir))
    try:
        copies: list[tuple[str, Path]] = []
        for index, (dest, source) in enumerate(programs):
            copy = work / f"{index}-{Path(dest).name}"
            shutil.copyfile(source, copy)
            copies.append((dest, copy))
        stub = work / "stub.cfg"
        stub.write_text(signed_grub_config(menu))
        image = work / "efi.img"
        make_efi_files_image(
            image,
            [*copies, (SIGNED_GRUB_CONFIG, stub)],
            serial=menu.build_id[:8],
            epoch=epoch,
            min_bytes=SIGNED_EFI_IMAGE_MIN,
        )
        check_cancelled(reporter)
        config = work / "grub.cfg"
        config.write_text(grub_config(menu))
        for (_, copy), target in zip(copies, placed, strict=True):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(copy, target)
        os.replace(config, grub_dir / "grub.cfg")
        os.replace(image, stage / EFI_IMAGE)
    except BaseException:
        for leftover in (*placed, grub_dir / "grub.cfg", stage / EFI_IMAGE):
            leftover.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return EFI_IMAGE
