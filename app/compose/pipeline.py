"""The build pipeline: stages are plain functions over a BuildContext, listed in order in
STAGES. Each stage may have a validate step; `validate_build` runs all of them (plus the
profile's own checks) and reports every problem together before anything is built.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from app.compose import bootloader, initramfs, kmod, rootimage, secureboot
from app.compose.assemble import assemble_root
from app.compose.configure import BuildFacts, configure_root, find_busybox, validate_issue
from app.compose.install import debian, pacman
from app.compose.live import modules as live_modules
from app.compose.live import region
from app.compose.live import services as live_services
from app.compose.manifest import RootManifest
from app.compose.profile import (
    Profile,
    RootImageFormat,
    SecureBoot,
    compression_level,
    package_name_problems,
    profile_to_dict,
    validate_profile,
)
from app.compose.scratch import remove_tree, scratch_problem, take_scratch
from app.epoch import source_date_epoch
from app.errors import Cancelled, LivesmithError, Problem, StageError, ValidationError
from app.iso.inspect import inspect_iso
from app.iso.master import BootSpec, MasterSpec, master_iso
from app.packages.apt import AptSource
from app.packages.deb import read_package, write_flat_repository
from app.packages.gather import gather
from app.packages.model import PackageInfo, PackageSource, SourceKind, SourceSpec
from app.packages.repository import write_repository
from app.packages.resolve import Resolution, resolve
from app.packages.sources import LayeredSource, open_source
from app.reporter import Level, Reporter, check_cancelled
from app.tools import missing_tool_problems

LIVE_DIR = "live"
PACKAGES_DIR = "packages"  # carried packages on the medium


@dataclass
class BuildContext:
    profile: Profile
    output: Path
    reporter: Reporter
    work: Path
    cache: Path
    epoch: int  # every time stamp of the build: SOURCE_DATE_EPOCH, else the start time
    build_id: str
    epoch_problem: Problem | None = None  # a bad SOURCE_DATE_EPOCH, for validate_build
    source: PackageSource | None = None
    resolution: Resolution | None = None
    archives: list[tuple[PackageInfo, Path]] = field(default_factory=list)
    manifest: RootManifest = field(default_factory=RootManifest)
    kernel_version: str = ""
    root_image: Path | None = None
    bios_boot: str | None = None
    efi_image: str | None = None
    # Whether UEFI boots through the signed chain (decided by validate_secure_boot), and
    # the apt options that see the archive it comes from.
    secure_boot: bool = False
    secure_apt_options: tuple[str, ...] = ()

    @property
    def root(self) -> Path:
        return self.work / "root"

    @property
    def stage_dir(self) -> Path:
        return self.work / "iso"

    @property
    def live(self) -> Path:
        return self.stage_dir / LIVE_DIR

    @property
    def date(self) -> str:
        return datetime.fromtimestamp(self.epoch, UTC).strftime("%Y-%m-%d")

    @property
    def image_path(self) -> str:
        fmt = self.profile.image.format
        if fmt is RootImageFormat.RAM:
            return "none"
        return f"/{LIVE_DIR}/{rootimage.IMAGE_NAMES[fmt]}"

    def log(self, message: str, level: Level = Level.INFO) -> None:
        self.reporter.log(level, message)


class StageReporter:
    """What a stage's own code sees: steps inside a stage become log lines, so the
    pipeline's STAGES stay the only steps the user sees."""

    def __init__(self, outer: Reporter):
        self.outer = outer

    def step(self, name: str) -> None:
        self.outer.log(Level.DEBUG, f"-- {name}")

    def progress(self, done: int, total: int) -> None:
        self.outer.progress(done, total)

    def log(self, level: Level, message: str) -> None:
        self.outer.log(level, message)

    def cancelled(self) -> bool:
        return self.outer.cancelled()


@dataclass(frozen=True)
class Stage:
    key: str
    title: str
    run: Callable[[BuildContext], None]
    validate: Callable[[BuildContext], list[Problem]] = lambda ctx: []


@dataclass(frozen=True)
class BuildResult:
    iso: Path
    sha256: str
    size: int
    build_id: str
    seconds: float
    stage_seconds: tuple[tuple[str, float], ...] = ()


# --- validate steps -------------------------------------------------------------------------


def validate_packages(ctx: BuildContext) -> list[Problem]:
    options = ctx.profile.packages
    if package_name_problems(options, ctx.profile.kernel):
        # validate_profile reports them; a name like '-o...' must not reach apt-cache.
        return []
    unit_problems: list[Problem] = []
    try:
        # mmdebstrap installs from the profile's suite, not from what the host's apt sees.
        archive = None
        if options.uses_mmdebstrap and options.source.kind in (SourceKind.APT, SourceKind.DEB):
            root = debian_root(ctx)
            if debian.validate_names(root):
                return []  # validate_install names them; nothing malformed reaches apt
            view = debian.archive_view(root, ctx.cache, ctx.reporter)
            if view.problems:
                return list(view.problems)
            unit_problems = _archive_unit_problems(ctx, view, root)
            archive = AptSource(SourceSpec(SourceKind.APT), apt_options=view.apt_options)
        wanted = archive.apt_options if archive is not None else ()
        if (
            ctx.source is None
            or ctx.source.spec != options.source
            or getattr(ctx.source, "apt_options", ()) != wanted
        ):
            ctx.source = archive if options.source.kind is SourceKind.APT and archive else None
            ctx.source = ctx.source or open_source(options.source)
        source = ctx.source
        if archive is not None and options.source.kind is SourceKind.DEB:
            # apt sees the folder beside the suite: dependencies come from the suite.
            source = LayeredSource(ctx.source, archive)
        ctx.resolution = resolve(
            source, options.packages, follow_dependencies=options.follow_dependencies
        )
    except ValidationError as exc:
        return exc.problems
    except LivesmithError as exc:
        return [Problem("package source", str(exc))]
    res = ctx.resolution
    problems = [
        Problem("packages", f"unknown package {name!r} in the package source")
        for name in res.unknown
    ]
    problems += [
        Problem("packages", f"{dep!r} is needed by {by} but is not in the source")
        for dep, by in res.missing
    ]
    names = {p.name for p in res.packages}
    kernel = ctx.profile.kernel.package
    if kernel and kernel not in names and kernel not in res.reasons:
        problems.append(Problem("kernel", f"the kernel package {kernel!r} is not selected"))
    if not kernel and not any(looks_like_kernel_package(n) for n in names):
        problems.append(
            Problem(
                "kernel",
                "no kernel among the selected packages",
                "select a package that ships /boot/vmlinuz-*",
            )
        )
    if not any("busybox" in n or "toybox" in n for n in names):
        problems.append(
            Problem(
                "packages",
                "no static shell toolkit for the initramfs",
                "select busybox (busybox-static on Debian) or toybox",
            )
        )
    return [*problems, *unit_problems]


def _archive_unit_problems(
    ctx: BuildContext, view: debian.ArchiveView, root: debian.DebianRoot
) -> list[Problem]:
    """Units to switch, looked up in the archive's Contents: none may be missing."""
    system = ctx.profile.system
    units = (*system.enable_units, *system.disable_units)
    if not units or live_services.unit_problems(units, "services"):
        return []  # none, or names validate_profile refuses
    return debian.unit_problems(view, root, units, ctx.reporter)


def service_problems(
    profile: Profile, reporter: Reporter, *, cache_dir: Path | None = None
) -> list[Problem]:
    """The services the profile switches that no package of a Debian-archive build ships,
    alone (the wizard checks them as they are typed); [] for other builds, whose packages'
    files are known only once the root is assembled, and where Configure checks them."""
    options = profile.packages
    units = (*profile.system.enable_units, *profile.system.disable_units)
    if not units or not options.uses_mmdebstrap:
        return []
    if options.source.kind not in (SourceKind.APT, SourceKind.DEB):
        return []
    scratch = Path(tempfile.gettempdir()) / "livesmith-services-check.iso"
    ctx = make_context(profile, scratch, reporter, cache_dir=cache_dir)
    root = debian_root(ctx)
    if debian.validate_names(root):
        return []
    view = debian.archive_view(root, ctx.cache, reporter)
    return [] if view.problems else _archive_unit_problems(ctx, view, root)


# Packages named like a kernel that ship no kernel image (headers, docs, debug symbols).
_NOT_A_KERNEL = ("-headers", "-api-headers", "-docs", "-doc", "-dbg", "-dbgsym", "-source")


def looks_like_kernel_package(name: str) -> bool:
    """Whether a package's name says it ships a bootable kernel (before its files are seen)."""
    if name.endswith(_NOT_A_KERNEL) or "-headers-" in name:
        return False
    return name == "linux" or name.startswith(
        ("linux-image", "linux-lts", "linux-zen", "linux-hardened", "kernel")
    )


def find_static_busybox(root: Path) -> Path:
    busybox = find_busybox(root)
    if busybox is None:
        raise StageError(
            "no busybox in the assembled root for the initramfs",
            stage="initramfs",
            hint="add busybox-static to the packages",
        )
    problem = initramfs.static_elf_problem(busybox)
    if problem:
        raise StageError(f"/{busybox.relative_to(root)} {problem}", stage="initramfs")
    return busybox


def validate_system(ctx: BuildContext) -> list[Problem]:
    problems = validate_issue(ctx.profile.system.issue)
    problems += missing_tool_problems(["depmod"], "configure")  # indexes the kernel's modules
    # A root without an init of its own gets BusyBox's, whose applet list comes from
    # running the packaged busybox in a sandbox: say now, not after assembly, if the
    # sandbox is missing.
    packages = ctx.resolution.packages if ctx.resolution else []
    if any("busybox" in p.name for p in packages):
        problems += missing_tool_problems(["bwrap"], "configure")
    return problems


def validate_tools(ctx: BuildContext) -> list[Problem]:
    needed = {
        RootImageFormat.SQUASHFS: ["mksquashfs"],
        RootImageFormat.EROFS: ["mkfs.erofs", "fakeroot"],
        RootImageFormat.RAM: [],
    }[ctx.profile.image.format]
    return missing_tool_problems(needed, "root image")


def validate_bootloaders(ctx: BuildContext) -> list[Problem]:
    boot = ctx.profile.boot
    problems = validate_secure_boot(ctx)
    if ctx.secure_boot and boot.secure_boot is SecureBoot.ON:
        # No fallback to Livesmith's own GRUB: its modules are not needed.
        return [
            *problems,
            *bootloader.validate_bootloaders(boot.bios, False),
            *bootloader.signed_efi_tool_problems(),
        ]
    return [*problems, *bootloader.validate_bootloaders(boot.bios, boot.uefi)]


def validate_secure_boot(ctx: BuildContext) -> list[Problem]:
    """Decide whether UEFI boots through the signed chain (ctx.secure_boot). `on` that
    cannot be met gives every reason; `auto` then says in the log why it is off."""
    ctx.secure_boot = False
    mode = ctx.profile.boot.secure_boot
    if mode is SecureBoot.OFF:
        return []
    reasons = secureboot.profile_problems(ctx.profile)
    apt_options: tuple[str, ...] = ()
    if not reasons:
        reasons += secureboot.tool_problems()
    if not reasons:
        root = debian_root(ctx)
        if debian.validate_names(root):
            return []  # validate_install names them; nothing malformed reaches apt
        view = debian.archive_view(root, ctx.cache, ctx.reporter)
        if view.problems:
            if ctx.profile.packages.uses_mmdebstrap:  # validate_packages reports them
                return []
            reasons += view.problems
        else:
            apt_options = view.apt_options
            found = secureboot.archive_packages(apt_options)
            reasons += secureboot.availability_problems(found, root.suite)
    if reasons:
        if mode is SecureBoot.ON:
            return reasons
        if ctx.profile.boot.uefi:
            ctx.log(f"Secure Boot: off, as {reasons[0].message}")
        return []
    ctx.secure_boot = True
    ctx.secure_apt_options = apt_options
    ctx.log("Secure Boot: on (UEFI boots through the signed shim, GRUB and kernel)")
    return []


def estimated_bytes(ctx: BuildContext) -> tuple[int, int]:
    """(scratch bytes, output bytes) this build needs, generously."""
    packed = sum(p.size for p in ctx.resolution.packages) if ctx.resolution else 0
    unpacked = (
        sum((p.installed_size or p.size * 4) for p in ctx.resolution.packages)
        if ctx.resolution
        else 0
    )
    scratch = packed + unpacked + packed * 2 + (64 << 20)
    return scratch, packed * 2 + (32 << 20)


def free_bytes(path: Path) -> int:
    probe = path
    while not probe.exists():
        probe = probe.parent
    return shutil.disk_usage(probe).free


def validate_space(ctx: BuildContext) -> list[Problem]:
    scratch, output = estimated_bytes(ctx)
    problems = []
    places = [(ctx.work, scratch, "build folder")]
    places.append((ctx.output.parent, output, "output folder"))
    same_fs = _device(ctx.work) == _device(ctx.output.parent)
    if same_fs:
        places = [(ctx.work, scratch + output, "build and output folder")]
    for path, need, what in places:
        have = free_bytes(path)
        if have < need:
            problems.append(
                Problem(
                    what,
                    f"not enough free space in {_existing(path)}: "
                    f"about {need >> 20} MiB needed, {have >> 20} MiB free",
                )
            )
    return problems


def _existing(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


def _device(path: Path) -> int:
    return _existing(path).stat().st_dev


def validate_output(ctx: BuildContext) -> list[Problem]:
    out = ctx.output
    problems = []
    if out.is_dir():
        problems.append(Problem("output", f"{out} is a folder; name the ISO file to write"))
    elif not _existing(out.parent).is_dir() or not os.access(_existing(out.parent), os.W_OK):
        problems.append(Problem("output", f"cannot write into {_existing(out.parent)}"))
    return problems


# --- stages ---------------------------------------------------------------------------------


def debian_root(ctx: BuildContext) -> debian.DebianRoot:
    """What mmdebstrap installs: the selection (and the kernel package) from the suite."""
    options = ctx.profile.packages
    kernel = ctx.profile.kernel.package
    names = (*options.packages, *((kernel,) if kernel and kernel not in options.packages else ()))
    # What the system options need from the archive comes with them.
    system = ctx.profile.system
    locale_line = region.locale_gen_line(system.locale)
    needed = (
        *(("locales",) if locale_line else ()),
        *(("sudo",) if system.user and system.sudo else ()),
        *(("tzdata",) if system.timezone else ()),
    )
    names = (*names, *(name for name in needed if name not in names))
    local = options.source.kind is SourceKind.DEB
    return debian.DebianRoot(
        suite=options.suite or debian.host_suite(),
        packages=names,
        mirror=options.mirror,
        components=options.components,
        local_repo=str(local_repository_dir(ctx)) if local else "",
        locale_line=locale_line,
    )


def local_repository_dir(ctx: BuildContext) -> Path:
    """Where a folder of .deb files becomes a repository beside the suite (mmdebstrap)."""
    return debian_dir(ctx) / "local"


def validate_install(ctx: BuildContext) -> list[Problem]:
    options = ctx.profile.packages
    if not options.uses_mmdebstrap or options.source.kind not in (SourceKind.APT, SourceKind.DEB):
        return []
    return debian.validate(debian_root(ctx))


def debian_dir(ctx: BuildContext) -> Path:
    return ctx.work / "debian"


def gather_stage(ctx: BuildContext) -> None:
    assert ctx.source is not None and ctx.resolution is not None
    if ctx.profile.packages.uses_mmdebstrap:
        folder = debian_dir(ctx)
        if ctx.profile.packages.source.kind is SourceKind.DEB:
            debs = [p.file for p in ctx.source.packages() if p.file is not None]
            names = write_flat_repository(debs, local_repository_dir(ctx))
            ctx.log(
                f"{len(names)} packages of {ctx.profile.packages.source.location} beside the suite"
            )
        debian.download(
            debian_root(ctx),
            ctx.cache,
            folder / "lists",
            folder / "archives",
            ctx.reporter,
            stage="gather",
        )
        if ctx.profile.packages.carry:  # exactly the files mmdebstrap installs from
            debs = sorted((folder / "archives").glob("*.deb"))
            ctx.archives = [(read_package(deb, SourceKind.APT), deb) for deb in debs]
        return
    for pkg in ctx.resolution.packages:
        ctx.log(f"{pkg.name} {pkg.version}: {ctx.resolution.reasons.get(pkg.name, 'selected')}")
    ctx.archives = gather(ctx.source, ctx.resolution, ctx.cache, ctx.reporter)


def assemble_stage(ctx: BuildContext) -> None:
    ctx.root.mkdir(parents=True, exist_ok=True)
    if ctx.profile.packages.uses_mmdebstrap:
        folder = debian_dir(ctx)
        ctx.manifest = debian.install(
            debian_root(ctx),
            folder / "lists",
            folder / "archives",
            ctx.root,
            ctx.reporter,
            epoch=ctx.epoch,
            stage="assemble",
        )
        if not ctx.profile.packages.carry:
            shutil.rmtree(folder / "archives")  # copies of the cache, no longer needed
    elif ctx.profile.packages.uses_pacman:
        ctx.manifest = pacman_root(ctx)
    else:
        ctx.manifest = assemble_root(ctx.archives, ctx.root, ctx.reporter)
    ctx.log(f"root assembled: {len(ctx.manifest)} entries")


def validate_pacman(ctx: BuildContext) -> list[Problem]:
    options = ctx.profile.packages
    if not options.uses_pacman or options.source.kind is not SourceKind.ARCH:
        return []  # validate_profile names a pacman install from another source
    return pacman.validate()


def validate_assemble(ctx: BuildContext) -> list[Problem]:
    return [*validate_install(ctx), *validate_pacman(ctx)]


def pacman_root(ctx: BuildContext) -> RootManifest:
    """The gathered Arch-style packages installed by pacman (scriptlets and hooks run),
    then extracted by us like any package."""
    folder = ctx.work / "pacman"
    folder.mkdir(parents=True, exist_ok=True)
    tar = folder / "root.tar"
    made = pacman.install(
        [path for _, path in ctx.archives], tar, ctx.reporter, epoch=ctx.epoch, stage="assemble"
    )
    manifest = assemble_root([(made, tar)], ctx.root, ctx.reporter)
    tar.unlink()
    return manifest


def configure_stage(ctx: BuildContext) -> None:
    facts = BuildFacts(
        name=ctx.profile.name, label=ctx.profile.iso.label, build_id=ctx.build_id, date=ctx.date
    )
    configure_root(ctx.root, ctx.manifest, ctx.profile.system, facts, ctx.reporter, epoch=ctx.epoch)
    found = kmod.find_kernel(ctx.root)
    if found is not None:  # without a kernel, the initramfs stage says so
        live_modules.index_modules(
            ctx.root, found[1], ctx.manifest, ctx.reporter, stage="configure"
        )
        if ctx.secure_boot:
            check_signed_kernel(ctx, found[0], found[1])


def check_signed_kernel(ctx: BuildContext, vmlinuz: Path, version: str) -> None:
    """Under Secure Boot the signed GRUB starts only a signed kernel, and the kernel loads
    only signed modules: an unsigned kernel fails `on` (and turns `auto` off); unsigned
    modules are named in a warning."""
    if not secureboot.pe_signed(vmlinuz):
        message = (
            f"the kernel /{vmlinuz.relative_to(ctx.root)} carries no signature, "
            "and the signed GRUB refuses to start it under Secure Boot"
        )
        if ctx.profile.boot.secure_boot is SecureBoot.ON:
            raise StageError(
                message,
                stage="configure",
                hint="use the distribution's signed kernel package (Debian: linux-image-amd64)",
            )
        ctx.log(f"Secure Boot: off, as {message}", Level.WARNING)
        ctx.secure_boot = False
        return
    modules = kmod.modules_dir(ctx.root, version)
    problem = secureboot.unsigned_module_problem(modules) if modules is not None else None
    if problem is not None:
        ctx.log(f"Secure Boot: {problem}", Level.WARNING)


def initramfs_stage(ctx: BuildContext) -> None:
    found = kmod.find_kernel(ctx.root)
    if found is None:
        raise StageError("no kernel (boot/vmlinuz-*) in the assembled root", stage="initramfs")
    vmlinuz, version = found
    ctx.kernel_version = version
    # The first moment the kernel's modules are known; the profile's checks ran before.
    problems = kmod.unknown_module_problems(
        kmod.modules_dir(ctx.root, version), version, ctx.profile.kernel.extra_modules
    )
    if problems:
        raise ValidationError(problems)
    ctx.live.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(vmlinuz, ctx.live / "vmlinuz")
    busybox = find_static_busybox(ctx.root)
    image = ctx.profile.image
    ram = image.format is RootImageFormat.RAM
    spec = initramfs.InitramfsSpec(
        busybox=busybox,
        kernel_version=version,
        modules_dir=kmod.modules_dir(ctx.root, version),
        modules=tuple(dict.fromkeys((*kmod.LIVE_MODULES, *ctx.profile.kernel.extra_modules))),
        build_id=ctx.build_id,
        label=ctx.profile.iso.label,
        image=ctx.image_path if not ram else "/live/none",
        ram_root=ctx.root if ram else None,
        ram_manifest=ctx.manifest if ram else None,
        compression=initramfs.Compression(image.compressor.value)
        if ram
        else initramfs.Compression.ZSTD,
        level=compression_level(image) if ram else None,
        epoch=ctx.epoch,
    )
    result = initramfs.build_initramfs(spec, ctx.live / "initramfs.img", ctx.reporter)
    ctx.log(f"initramfs: {result.size >> 10} KiB, {len(result.modules)} kernel modules")


def rootimage_stage(ctx: BuildContext) -> None:
    ctx.live.mkdir(parents=True, exist_ok=True)
    uuid = "-".join(
        (
            ctx.build_id[:8],
            ctx.build_id[8:12],
            ctx.build_id[12:16],
            ctx.build_id[:4],
            ctx.build_id[4:16],
        )
    )
    ctx.root_image = rootimage.make_root_image(
        ctx.root,
        ctx.manifest,
        ctx.profile.image,
        ctx.live,
        ctx.reporter,
        epoch=ctx.epoch,
        work=ctx.work,
        uuid=uuid,
    )
    if ctx.root_image is not None:
        digest = _sha512(ctx.root_image)
        ctx.root_image.with_name(ctx.root_image.name + ".sha512").write_text(
            f"{digest}  {ctx.root_image.name}\n"
        )
        ctx.log(f"{ctx.root_image.name}: {ctx.root_image.stat().st_size >> 20} MiB")
    else:
        ctx.log("RAM mode: the whole root is in the initramfs")
    (ctx.live / f"{ctx.build_id}.id").write_text(f"{ctx.build_id}\n{ctx.profile.iso.label}\n")


def boot_menu(ctx: BuildContext) -> bootloader.BootMenu:
    """The boot menu this build installs; validation checks this very menu up front."""
    boot = ctx.profile.boot
    return bootloader.default_menu(
        title=f"{ctx.profile.name} (Livesmith)",
        build_id=ctx.build_id,
        label=ctx.profile.iso.label,
        image_path=ctx.image_path,
        extra_cmdline=boot.cmdline,
        copytoram=boot.copytoram_entry and ctx.profile.image.format is not RootImageFormat.RAM,
        safe=boot.safe_entry,
        timeout_s=boot.timeout,
    )


def bootloaders_stage(ctx: BuildContext) -> None:
    boot = ctx.profile.boot
    menu = boot_menu(ctx)
    if boot.bios:
        ctx.bios_boot = bootloader.install_isolinux(ctx.stage_dir, menu, ctx.reporter)
    if boot.uefi and ctx.secure_boot:
        if not secureboot.pe_signed(ctx.live / "vmlinuz"):
            raise StageError("the kernel on the medium carries no signature", stage="bootloaders")
        chain = secureboot.fetch_chain(
            ctx.secure_apt_options,
            debian_root(ctx).suite,
            ctx.cache,
            ctx.work / "secureboot",
            ctx.reporter,
        )
        ctx.efi_image = bootloader.install_signed_efi(
            ctx.stage_dir, menu, chain.files, ctx.reporter, epoch=ctx.epoch
        )
    elif boot.uefi:
        ctx.efi_image = bootloader.install_grub_efi(
            ctx.stage_dir, menu, ctx.reporter, epoch=ctx.epoch
        )


def carry_stage(ctx: BuildContext) -> None:
    if not ctx.profile.packages.carry:
        return
    write_repository(
        ctx.profile.packages.source.kind,
        ctx.archives,
        ctx.stage_dir / PACKAGES_DIR,
        ctx.reporter,
        epoch=ctx.epoch,
    )


def master_stage(ctx: BuildContext) -> None:
    iso = ctx.profile.iso
    spec = MasterSpec(
        tree=ctx.stage_dir,
        output=ctx.output,
        label=iso.label,
        boot=BootSpec(bios_boot=ctx.bios_boot, efi_image=ctx.efi_image, hybrid=True),
        publisher=iso.publisher,
        application=iso.application,
        source_date_epoch=ctx.epoch,
    )
    master_iso(spec, ctx.reporter)


def check_stage(ctx: BuildContext) -> None:
    digest = _sha256(ctx.output)
    checksum_file(ctx.output).write_text(f"{digest}  {ctx.output.name}\n")
    problems = structure_problems(ctx)
    if problems:
        raise StageError(
            "the finished ISO failed its structure check:\n  - " + "\n  - ".join(problems),
            stage="check",
            where=str(ctx.output),
        )
    ctx.log(f"sha256 {digest}")


def structure_problems(ctx: BuildContext) -> list[str]:
    report = inspect_iso(ctx.output)
    problems = []
    platforms = {e.platform for e in report.eltorito}
    if ctx.profile.boot.bios and 0 not in platforms:
        problems.append("no BIOS El Torito entry")
    if ctx.profile.boot.uefi and 0xEF not in platforms:
        problems.append("no UEFI El Torito entry")
    if not report.hybrid:
        problems.append(f"not bootable from USB: {report.hybrid_reason}")
    problems += report.partition_problems
    if ctx.profile.boot.uefi and not any("EFI" in p.type_name for p in report.partitions):
        problems.append("no EFI System partition in the partition table")
    sizes = {f.path: f.size for f in report.files}
    for staged in sorted(ctx.live.iterdir()):
        iso_path = f"/{LIVE_DIR}/{staged.name}"
        if sizes.get(iso_path) != staged.stat().st_size:
            problems.append(f"{iso_path} is missing or has the wrong size")
    if report.label != ctx.profile.iso.label:
        problems.append(f"volume label is {report.label!r}, expected {ctx.profile.iso.label!r}")
    return problems


STAGES: tuple[Stage, ...] = (
    Stage("gather", "Gather packages", gather_stage, validate_packages),
    Stage("assemble", "Assemble the root", assemble_stage, validate_assemble),
    Stage("configure", "Configure the system", configure_stage, validate_system),
    Stage("initramfs", "Make the initramfs", initramfs_stage),
    Stage("rootimage", "Make the root image", rootimage_stage, validate_tools),
    Stage("bootloaders", "Install bootloaders", bootloaders_stage, validate_bootloaders),
    Stage("carry", "Carry packages", carry_stage),
    Stage("master", "Master the ISO", master_stage, validate_output),
    Stage("check", "Checksum and structure check", check_stage),
)


# --- running --------------------------------------------------------------------------------


def checksum_file(iso: Path) -> Path:
    return iso.with_name(iso.name + ".sha256")


def _hash(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(4 << 20):
            h.update(chunk)
    return h.hexdigest()


def _sha256(path: Path) -> str:
    return _hash(path, "sha256")


def _sha512(path: Path) -> str:
    return _hash(path, "sha512")


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "livesmith" / "packages"


def work_folder(output: Path, work_dir: Path | None = None) -> Path:
    """The scratch folder of a build into `output` (an absolute path)."""
    return work_dir or output.parent / f".{output.name}.build"


def make_context(
    profile: Profile,
    output: Path,
    reporter: Reporter,
    *,
    work_dir: Path | None = None,
    cache_dir: Path | None = None,
    epoch: int | None = None,
) -> BuildContext:
    """The context of one build. `epoch` (default: SOURCE_DATE_EPOCH, read here and nowhere
    else; the current time only when it is unset) dates everything the stages write."""
    output = output.expanduser().absolute()
    found = source_date_epoch() if epoch is None else epoch
    # A bad value stands in as the current time only until validate_build refuses it.
    seconds = found if isinstance(found, int) else int(time.time())
    canonical = json.dumps(profile_to_dict(profile), sort_keys=True)
    build_id = hashlib.sha256(f"{seconds}\0{canonical}".encode()).hexdigest()[:16]
    work = work_folder(output, work_dir)
    return BuildContext(
        profile=profile,
        output=output,
        reporter=reporter,
        work=work.absolute(),
        cache=cache_dir or default_cache_dir(),
        epoch=seconds,
        build_id=build_id,
        epoch_problem=found if isinstance(found, Problem) else None,
    )


# Where validate_profile reports the profile values the boot menu is made of.
MENU_INPUTS = frozenset({"name", "label", "boot timeout", "kernel command line"})


def validate_boot_menu(ctx: BuildContext, reported: list[Problem]) -> list[Problem]:
    """The boot menu's problems, found before anything is built rather than after the root
    image. The profile checks (`reported`) already name bad menu inputs in the user's terms;
    the length of the command lines needs the whole menu; the menu's own full check then
    backs them up without repeating them."""
    menu = boot_menu(ctx)
    if (problem := bootloader.cmdline_length_problem(menu)) is not None:
        return [problem]
    if any(p.where in MENU_INPUTS for p in reported):
        return []
    return bootloader.validate_menu(menu)


def validate_build(ctx: BuildContext) -> list[Problem]:
    """Every problem with this build, from every stage, all at once."""
    problems = [ctx.epoch_problem] if ctx.epoch_problem is not None else []
    problems += validate_profile(ctx.profile)
    problems += validate_boot_menu(ctx, problems)
    for stage in STAGES:
        problems += stage.validate(ctx)
    if ctx.resolution is not None:
        problems += validate_space(ctx)
    if (scratch := scratch_problem(ctx.work)) is not None:
        problems.append(scratch)
    return problems


def run_build(
    profile: Profile,
    output: Path,
    reporter: Reporter,
    *,
    work_dir: Path | None = None,
    cache_dir: Path | None = None,
    keep_work: bool = False,
) -> BuildResult:
    """Validate, then run every stage. On failure or cancel, nothing is left at `output`
    and the scratch folder is removed."""
    started = time.monotonic()
    ctx = make_context(
        profile, output, StageReporter(reporter), work_dir=work_dir, cache_dir=cache_dir
    )
    reporter.step("Validate")
    problems = validate_build(ctx)
    if problems:
        raise ValidationError(problems)
    existed_before = ctx.output.exists()
    own_work = take_scratch(ctx.work)
    timings: list[tuple[str, float]] = [("validate", time.monotonic() - started)]
    try:
        for stage in STAGES:
            check_cancelled(reporter)
            reporter.step(stage.title)
            stage_started = time.monotonic()
            try:
                stage.run(ctx)
            except OSError as exc:
                raise _os_error(exc, stage) from exc
            timings.append((stage.key, time.monotonic() - stage_started))
            reporter.log(Level.DEBUG, f"{stage.title}: {timings[-1][1]:.1f} s")
        seconds = time.monotonic() - started
        result = BuildResult(
            iso=ctx.output,
            sha256=checksum_file(ctx.output).read_text().split()[0],
            size=ctx.output.stat().st_size,
            build_id=ctx.build_id,
            seconds=seconds,
            stage_seconds=tuple(timings),
        )
        reporter.log(Level.INFO, f"built {ctx.output} ({result.size >> 20} MiB) in {seconds:.1f} s")
        return result
    except BaseException:
        # Only remove what this build wrote: a finished ISO that failed its check.
        if not existed_before or _written_by(ctx):
            for path in (ctx.output, checksum_file(ctx.output)):
                path.unlink(missing_ok=True)
        raise
    finally:
        if not keep_work:
            # A folder the user gave (empty) stays; only what the build put there goes.
            left = remove_tree(ctx.work, keep_top=not own_work)
            if left:
                reporter.log(
                    Level.WARNING,
                    f"could not remove all of the build folder "
                    f"{ctx.work}: {left[0]}"
                    + (f" (and {len(left) - 1} more)" if len(left) > 1 else ""),
                )


def _written_by(ctx: BuildContext) -> bool:
    try:
        return ctx.output.stat().st_mtime >= ctx.work.stat().st_mtime
    except OSError:
        return False


def _os_error(exc: OSError, stage: Stage) -> LivesmithError:
    if isinstance(exc, LivesmithError):
        return exc
    if exc.errno == errno.ENOSPC:
        return StageError(
            f"the disk is full ({exc.filename or 'while writing'})",
            stage=stage.title,
            hint="free some space or choose another folder",
        )
    return StageError(
        f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), stage=stage.title
    )


__all__ = [
    "STAGES",
    "BuildContext",
    "BuildResult",
    "Cancelled",
    "Stage",
    "make_context",
    "run_build",
    "validate_build",
    "work_folder",
]
