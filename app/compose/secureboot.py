"""Secure Boot: UEFI boot through the distribution's signed chain.

With Secure Boot enforced, firmware runs only EFI programs signed by a key it trusts
(Microsoft's, on nearly every PC). Debian and Ubuntu ship a chain signed that way:

- shim (`shim-signed`: shimx64.efi.signed), signed by Microsoft, which trusts the
  distribution's own key;
- GRUB signed by the distribution (`grub-efi-amd64-signed`). Its CD build, gcdx64.efi,
  reads `/boot/grub/grub.cfg` on the device it was loaded from: the CD itself, or the
  EFI system partition when booted from a stick. It cannot load modules (they are not
  signed), so the menu uses only commands built into it;
- the MOK manager (`shim-helpers-amd64-signed`: mmx64.efi), which shim starts when the
  user is asked to enrol a key;
- the kernel, signed by the distribution (Debian's linux-image-* packages are).

The signed packages are downloaded (never installed into the live root) through the same
private apt view of the profile's archive that validation uses, checked against the
archive's Packages index (SHA256) and unpacked with dpkg-deb into the build's scratch
folder; their .deb files are kept in the package cache.

Under Secure Boot the kernel is locked down: it loads only signed modules, so modules
without a signature (built by the user, DKMS) are reported.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from app.compose import kmod
from app.compose.profile import InstallMethod, Profile, SecureBoot
from app.errors import Problem, StageError
from app.packages.deb import parse_stanzas
from app.packages.model import SourceKind
from app.procs import run_tool
from app.reporter import Level, Reporter, check_cancelled
from app.tools import find_tool, missing_tool_problems

WHERE = "boot: secure_boot"
SHIM_PACKAGE = "shim-signed"
GRUB_PACKAGE = "grub-efi-amd64-signed"
HELPERS_PACKAGE = "shim-helpers-amd64-signed"
REQUIRED_PACKAGES = (SHIM_PACKAGE, GRUB_PACKAGE)
PACKAGES = (*REQUIRED_PACKAGES, HELPERS_PACKAGE)  # the MOK manager is wanted, not required
CACHE_FOLDER = "debian-signed"
TOOLS = ("apt-get", "apt-cache", "dpkg-deb")

# Where each EFI program goes on the medium (the removable-media path firmware boots), and
# where the packages ship it (Debian first, then Ubuntu's names).
SHIM_FILE = "EFI/BOOT/BOOTX64.EFI"
GRUB_FILE = "EFI/BOOT/grubx64.efi"  # the name shim loads
MOK_MANAGER_FILE = "EFI/BOOT/mmx64.efi"
SHIPPED: dict[str, tuple[str, ...]] = {
    SHIM_FILE: ("usr/lib/shim/shimx64.efi.signed", "usr/lib/shim/shimx64.efi.signed.latest"),
    GRUB_FILE: ("usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed",),
    MOK_MANAGER_FILE: ("usr/lib/shim/mmx64.efi.signed", "usr/lib/shim/mmx64.efi"),
}
# Commands the signed GRUB must have built in for the menus Livesmith writes (it cannot
# load modules under Secure Boot). Checked on the unpacked binary.
GRUB_COMMANDS = ("linux", "initrd", "search", "configfile", "serial", "terminal", "echo", "test")
# What a signed kernel module ends with (after decompression): see the kernel's
# scripts/sign-file.c.
MODULE_SIGNATURE_MARKER = b"~Module signature appended~\n"


@dataclass(frozen=True)
class SignedPackage:
    name: str
    version: str
    filename: str  # the .deb's name in the archive pool
    sha256: str


@dataclass(frozen=True)
class SignedChain:
    """The unpacked EFI programs, by where they go on the medium, and the package versions."""

    files: tuple[tuple[str, Path], ...]
    packages: tuple[SignedPackage, ...]

    def file(self, dest: str) -> Path | None:
        return next((path for where, path in self.files if where == dest), None)


# -------------------------------------------------------------------------- the profile


def from_debian_archive(profile: Profile) -> bool:
    """Whether the profile's packages (and so its kernel) come from a Debian or Ubuntu
    archive: the apt source, or a folder of .deb files installed by mmdebstrap beside the
    suite."""
    packages = profile.packages
    if packages.source.kind is SourceKind.APT:
        return packages.install is not InstallMethod.PACMAN
    return packages.source.kind is SourceKind.DEB and packages.uses_mmdebstrap


def profile_problems(profile: Profile) -> list[Problem]:
    """Why the profile alone rules Secure Boot out (whatever the archive holds), all at once."""
    problems = []
    if not profile.boot.uefi:
        problems.append(Problem(WHERE, "Secure Boot is a UEFI feature, and UEFI boot is off"))
    if not from_debian_archive(profile):
        kind = profile.packages.source.kind.value
        problems.append(
            Problem(
                WHERE,
                f"the signed boot chain comes from Debian or Ubuntu packages, and this profile's "
                f"packages come from a {kind} source"
                + (" without mmdebstrap" if profile.packages.source.kind is SourceKind.DEB else ""),
                hint="use the apt source (or .deb files with install = mmdebstrap)",
            )
        )
    return problems


def wanted(profile: Profile) -> bool:
    """Whether a build of `profile` tries the signed chain at all (on, or auto)."""
    return profile.boot.secure_boot is not SecureBoot.OFF


# ------------------------------------------------------------------------ the archive


# archive_packages' answers, by apt options and the time the package lists were read: the
# wizard's Review page validates again at every edit.
_ANSWERS: dict[tuple[tuple[str, ...], float], dict[str, SignedPackage]] = {}


def _lists_time(apt_options: tuple[str, ...]) -> float:
    prefix = "Dir::State::Lists="
    for option in apt_options:
        if option.startswith(prefix):
            with contextlib.suppress(OSError):
                return Path(option[len(prefix) :]).stat().st_mtime
    return -1.0


def archive_packages(apt_options: Iterable[str]) -> dict[str, SignedPackage]:
    """The signed packages the archive seen through `apt_options` has (candidate versions)."""
    options = tuple(apt_options)
    key = (options, _lists_time(options))
    if key[1] >= 0 and key in _ANSWERS:
        return dict(_ANSWERS[key])
    found = _ask_archive(options)
    _ANSWERS[key] = found
    return dict(found)


def _ask_archive(apt_options: tuple[str, ...]) -> dict[str, SignedPackage]:
    out = subprocess.run(
        [find_tool("apt-cache"), *apt_options, "show", "--no-all-versions", "--", *PACKAGES],
        capture_output=True,
        text=True,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
        check=False,
    )
    found: dict[str, SignedPackage] = {}
    for stanza in parse_stanzas(out.stdout):
        name = stanza.get("Package", "")
        if name in PACKAGES and name not in found and stanza.get("SHA256"):
            found[name] = SignedPackage(
                name,
                stanza.get("Version", ""),
                stanza.get("Filename", "").rsplit("/", 1)[-1],
                stanza["SHA256"].lower(),
            )
    return found


def availability_problems(found: dict[str, SignedPackage], suite: str) -> list[Problem]:
    missing = [name for name in REQUIRED_PACKAGES if name not in found]
    if not missing:
        return []
    return [
        Problem(
            WHERE,
            f"the archive of {suite} has no {' or '.join(missing)}, "
            "so there is no signed boot chain to install",
            hint="choose a Debian or Ubuntu suite with signed packages (amd64), "
            "and the main component",
        )
    ]


def tool_problems() -> list[Problem]:
    return missing_tool_problems(TOOLS, WHERE)


# --------------------------------------------------------------------- fetching the chain


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _download(
    package: SignedPackage, apt_options: Iterable[str], cache: Path, reporter: Reporter
) -> Path:
    """The package's .deb in `cache` (downloaded if not already there), checked against
    the SHA256 of the archive's Packages index."""
    folder = cache / CACHE_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    deb = folder / package.filename
    if deb.is_file() and _sha256(deb) == package.sha256:
        reporter.log(Level.DEBUG, f"Secure Boot: {package.filename} from the cache")
        return deb
    reporter.log(Level.INFO, f"Secure Boot: downloading {package.name} {package.version}")
    with tempfile.TemporaryDirectory(prefix=".download-", dir=folder) as work:
        options = list(apt_options)
        if os.geteuid() == 0:  # apt would hand the download to _apt, who cannot write here
            options += ["-o", "APT::Sandbox::User=root"]
        run_tool(
            ["apt-get", *options, "download", "--", f"{package.name}={package.version}"],
            reporter,
            stage="bootloaders",
            cwd=Path(work),
            env={"LC_ALL": "C.UTF-8"},
        )
        got = sorted(Path(work).glob("*.deb"))
        if len(got) != 1:
            raise StageError(
                f"apt-get download of {package.name} left {len(got)} .deb files",
                stage="bootloaders",
            )
        digest = _sha256(got[0])
        if digest != package.sha256:
            raise StageError(
                f"{package.name} {package.version}: the download's SHA256 {digest} is not "
                f"the archive's {package.sha256}",
                stage="bootloaders",
                hint="try again; if it persists, the mirror or a proxy serves a different file",
            )
        os.replace(got[0], deb)
    return deb


def grub_missing_commands(binary: Path) -> list[str]:
    """Commands of GRUB_COMMANDS that the GRUB image does not have built in.

    Every built-in module carries its name as a NUL-terminated string (the module's
    `.modname` section), so a name that appears nowhere is certainly missing."""
    data = binary.read_bytes()
    return [name for name in GRUB_COMMANDS if b"\0" + name.encode() + b"\0" not in data]


def fetch_chain(
    apt_options: Iterable[str],
    suite: str,
    cache: Path,
    scratch: Path,
    reporter: Reporter,
) -> SignedChain:
    """Download the signed packages into the cache, unpack them into `scratch` and return
    the EFI programs by their place on the medium."""
    options = tuple(apt_options)
    found = _ask_archive(options)  # fresh: the versions to download now
    problems = availability_problems(found, suite)
    if problems:
        raise StageError(str(problems[0]), stage="bootloaders")
    unpacked = scratch / "unpacked"
    shutil.rmtree(unpacked, ignore_errors=True)
    unpacked.mkdir(parents=True)
    for package in found.values():
        check_cancelled(reporter)
        deb = _download(package, options, cache, reporter)
        run_tool(["dpkg-deb", "-x", str(deb), str(unpacked)], reporter, stage="bootloaders")
    files: list[tuple[str, Path]] = []
    for dest, candidates in SHIPPED.items():
        path = next((unpacked / c for c in candidates if (unpacked / c).is_file()), None)
        if path is None:
            if dest == MOK_MANAGER_FILE:
                reporter.log(
                    Level.WARNING,
                    "Secure Boot: no MOK manager (mmx64.efi) in the archive; shim cannot "
                    "enrol keys from this medium",
                )
                continue
            shipped = " or ".join(f"/{c}" for c in candidates)
            raise StageError(
                f"the signed packages of {suite} do not ship {shipped}", stage="bootloaders"
            )
        if not pe_signed(path):
            raise StageError(f"{path.name} carries no signature", stage="bootloaders")
        files.append((dest, path))
    grub = next(path for dest, path in files if dest == GRUB_FILE)
    if missing := grub_missing_commands(grub):
        raise StageError(
            f"the signed GRUB of {suite} lacks {', '.join(missing)}, which the boot menu uses",
            stage="bootloaders",
        )
    versions = ", ".join(f"{p.name} {p.version}" for p in found.values())
    reporter.log(Level.INFO, f"Secure Boot: signed chain from {versions}")
    return SignedChain(tuple(files), tuple(found.values()))


# ------------------------------------------------------------------------ what is signed


def pe_signed(path: Path) -> bool:
    """Whether `path` is a PE/COFF image (an EFI program, or a kernel's bzImage with its EFI
    stub) with an Authenticode signature: a non-empty certificate table."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    if len(head) < 0x40 or head[:2] != b"MZ":
        return False
    pe = struct.unpack_from("<I", head, 0x3C)[0]
    if pe + 24 + 2 > len(head) or head[pe : pe + 4] != b"PE\0\0":
        return False
    optional = pe + 24
    magic = struct.unpack_from("<H", head, optional)[0]
    if magic == 0x20B:  # PE32+
        directories, count_at = optional + 112, optional + 108
    elif magic == 0x10B:  # PE32
        directories, count_at = optional + 96, optional + 92
    else:
        return False
    if directories + 5 * 8 > len(head):
        return False
    if struct.unpack_from("<I", head, count_at)[0] <= 4:  # no security directory
        return False
    address, size = struct.unpack_from("<II", head, directories + 4 * 8)
    return address != 0 and size > 8


def module_signed(path: Path) -> bool:
    """Whether a kernel module (.ko, .ko.xz, .ko.zst, .ko.gz) carries a signature."""
    if path.name.endswith(".ko"):
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - len(MODULE_SIGNATURE_MARKER)))
            return f.read() == MODULE_SIGNATURE_MARKER
    return kmod.read_module(path).endswith(MODULE_SIGNATURE_MARKER)


def unsigned_modules(modules_dir: Path) -> list[Path]:
    """Kernel modules under `modules_dir` that carry no signature, sorted."""
    found = []
    for path in sorted(modules_dir.rglob("*")):
        if path.name.endswith(kmod.SUFFIXES) and path.is_file() and not path.is_symlink():
            if not module_signed(path):
                found.append(path)
    return found


def unsigned_module_problem(modules_dir: Path) -> Problem | None:
    """A warning naming the modules a locked-down kernel will refuse to load, if any."""
    unsigned = unsigned_modules(modules_dir)
    if not unsigned:
        return None
    names = [str(p.relative_to(modules_dir)) for p in unsigned]
    listed = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return Problem(
        "kernel modules",
        f"{len(names)} kernel module{'s' if len(names) > 1 else ''} without a signature: "
        f"{listed}; under Secure Boot the kernel refuses to load "
        f"{'them' if len(names) > 1 else 'it'}",
        hint="sign them with a key enrolled in shim (MOK), or boot with Secure Boot off",
    )
