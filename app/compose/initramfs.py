"""Build the live initramfs: our /init, a static busybox, the kernel modules to find the
medium, and in RAM mode the whole live system, as one compressed newc cpio archive.

Layout (see resources/initramfs/init for how it is used at boot):
    /init, /dev/console, /.livesmith/{bin/busybox, bin/sh, defaults, lib/modules/<kver>/...}
In RAM mode the system's own tree is written first and ours after it, so `/init` is
always ours; nothing else of ours lies outside /.livesmith, which /init deletes before it
starts the system's init.
"""

from __future__ import annotations

import os
import re
import shlex
import struct
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from app.compose.compress import Compression, level_problem, open_compressed_writer
from app.compose.cpio import NewcWriter, write_tree
from app.compose.kmod import (
    LIVE_MODULES,
    KernelModule,
    missing_modules,
    modules_dep_text,
    resolve_modules,
)
from app.compose.manifest import FileMeta, Kind, RootManifest
from app.errors import Problem, ValidationError
from app.reporter import Level, Reporter, check_cancelled

PRIVATE = ".livesmith"
BUILD_ID = re.compile(r"[0-9a-f]{16}")
# A label travels on the kernel command line and in a shell file: no blanks, no quotes.
LABEL = re.compile(r"[A-Za-z0-9_.-]{1,32}")
IMAGE = re.compile(r"/[A-Za-z0-9_./-]+")


@dataclass(frozen=True, kw_only=True)
class InitramfsSpec:
    busybox: Path  # static busybox binary (from the package set)
    kernel_version: str | None  # None: modules_dir's name, or no modules at all
    modules_dir: Path | None  # <root>/lib/modules/<kver>; None = no modules
    build_id: str  # 16 lowercase hex digits (docs/live-medium.md)
    label: str  # volume label of the medium
    modules: tuple[str, ...] = LIVE_MODULES
    compression: Compression = Compression.ZSTD
    level: int | None = None  # None: the compression's default (zstd 9)
    image: str = "/live/rootfs.sfs"  # root image on the medium (ignored in RAM mode)
    timeout: int = 30  # seconds to look for the medium
    ram_root: Path | None = None  # RAM mode: the whole system goes into the initramfs
    ram_manifest: RootManifest | None = None
    epoch: int  # the build's time stamp: our entries' mtime, the latest any entry gets

    @property
    def ram_mode(self) -> bool:
        return self.ram_root is not None

    @property
    def version(self) -> str | None:
        if self.kernel_version:
            return self.kernel_version
        return self.modules_dir.name if self.modules_dir is not None else None


@dataclass(frozen=True)
class InitramfsResult:
    path: Path
    size: int  # bytes of the compressed file
    modules: tuple[str, ...]  # modules included, in load order


def init_script() -> bytes:
    """The /init shell script shipped with the app."""
    return resources.files("resources.initramfs").joinpath("init").read_bytes()


def static_elf_problem(path: Path) -> str | None:
    """Why `path` is not a static ELF executable, or None if it is one."""
    try:
        with open(path, "rb") as file:
            head = file.read(64)
            if head[:4] != b"\x7fELF" or len(head) < 52:
                return "is not an ELF executable"
            is64 = head[4] == 2
            order = "<" if head[5] == 1 else ">"
            if is64:
                (phoff,) = struct.unpack_from(order + "Q", head, 0x20)
                phentsize, phnum = struct.unpack_from(order + "HH", head, 0x36)
            else:
                (phoff,) = struct.unpack_from(order + "I", head, 0x1C)
                phentsize, phnum = struct.unpack_from(order + "HH", head, 0x2A)
            file.seek(phoff)
            table = file.read(phentsize * phnum)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    for i in range(phnum):
        (p_type,) = struct.unpack_from(order + "I", table, i * phentsize)
        if p_type == 3:  # PT_INTERP: needs a dynamic loader the initramfs does not have
            return "is dynamically linked (the initramfs has no libraries); use busybox-static"
    return None


def validate_spec(spec: InitramfsSpec) -> list[Problem]:
    """Every problem with the spec, for the pipeline's validate stage."""
    problems: list[Problem] = []
    if not spec.busybox.is_file():
        problems.append(
            Problem(
                str(spec.busybox),
                "the static busybox for the initramfs is missing",
                "add busybox-static to the packages",
            )
        )
    else:
        why = static_elf_problem(spec.busybox)
        if why:
            problems.append(Problem(str(spec.busybox), f"busybox {why}"))
    if not BUILD_ID.fullmatch(spec.build_id):
        problems.append(Problem("build ID", f"{spec.build_id!r} is not 16 lowercase hex digits"))
    if not LABEL.fullmatch(spec.label):
        problems.append(
            Problem("label", f"{spec.label!r} must be 1-32 letters, digits, '_', '.' or '-'")
        )
    if not spec.ram_mode and not IMAGE.fullmatch(spec.image):
        problems.append(
            Problem(
                "root image path",
                f"{spec.image!r} must be an absolute path on the medium without blanks",
            )
        )
    if spec.timeout < 0:
        problems.append(Problem("medium search timeout", "must not be negative"))
    problem = level_problem(spec.compression, spec.level, "initramfs compression")
    if problem:
        problems.append(problem)
    if spec.modules_dir is not None:
        if not spec.modules_dir.is_dir():
            problems.append(
                Problem(str(spec.modules_dir), "the kernel modules directory is missing")
            )
        else:
            missing = missing_modules(spec.modules_dir, spec.modules)
            if len(missing) == len(spec.modules) and spec.modules:
                problems.append(
                    Problem(
                        str(spec.modules_dir),
                        "none of the kernel modules needed to find the live medium exist there",
                    )
                )
    if spec.ram_mode and spec.ram_root is not None and not spec.ram_root.is_dir():
        problems.append(Problem(str(spec.ram_root), "the RAM-mode root directory is missing"))
    return problems


def defaults_text(spec: InitramfsSpec, modules: list[KernelModule]) -> str:
    values = {
        "LIVESMITH_ID": spec.build_id,
        "LIVESMITH_LABEL": spec.label,
        "LIVESMITH_IMAGE": "none" if spec.ram_mode else spec.image,
        "LIVESMITH_TIMEOUT": str(spec.timeout),
        "LIVESMITH_KVER": spec.version or "",
        "LIVESMITH_MODULES": " ".join(m.name for m in modules),
    }
    lines = ["# Build defaults for /init; the kernel command line overrides them.\n"]
    lines += [f"{key}={shlex.quote(value)}\n" for key, value in values.items()]
    return "".join(lines)


_Data = Path | bytes | KernelModule | None


def _own_entries(
    spec: InitramfsSpec, modules: list[KernelModule], mtime: int
) -> list[tuple[FileMeta, _Data]]:
    def meta(
        path: str, kind: Kind, mode: int, target: str = "", major: int = 0, minor: int = 0
    ) -> FileMeta:
        return FileMeta(path, kind, mode, 0, 0, target, major, minor, mtime, owner="")

    entries: list[tuple[FileMeta, _Data]] = [
        (meta("dev", Kind.DIR, 0o755), None),
        (meta("dev/console", Kind.CHAR, 0o600, major=5, minor=1), None),
        (meta(PRIVATE, Kind.DIR, 0o755), None),
        (meta(f"{PRIVATE}/bin", Kind.DIR, 0o755), None),
        (meta(f"{PRIVATE}/bin/busybox", Kind.FILE, 0o755), spec.busybox),
        (meta(f"{PRIVATE}/bin/sh", Kind.SYMLINK, 0o777, target="busybox"), None),
        (meta(f"{PRIVATE}/defaults", Kind.FILE, 0o644), defaults_text(spec, modules).encode()),
        (meta(f"{PRIVATE}/proc", Kind.DIR, 0o755), None),
    ]
    if modules and spec.version:
        base = f"{PRIVATE}/lib/modules/{spec.version}"
        entries.append(
            (meta(f"{base}/modules.dep", Kind.FILE, 0o644), modules_dep_text(modules).encode())
        )
        for module in sorted(modules, key=lambda m: m.plain_relpath):
            entries.append((meta(f"{base}/{module.plain_relpath}", Kind.FILE, 0o644), module))
    entries.append((meta("init", Kind.FILE, 0o755), init_script()))
    return entries


def build_initramfs(spec: InitramfsSpec, out: Path, reporter: Reporter) -> InitramfsResult:
    """Write the compressed initramfs to `out`; on failure or cancel nothing is left there."""
    check_cancelled(reporter)
    problems = validate_spec(spec)
    if problems:
        raise ValidationError(problems)
    modules: list[KernelModule] = []
    if spec.modules_dir is not None and spec.modules:
        modules = resolve_modules(spec.modules_dir, spec.modules, reporter=reporter)
        reporter.log(
            Level.INFO,
            f"initramfs: {len(modules)} kernel modules to find and "
            f"mount the live medium (kernel {spec.version})",
        )
    with open_compressed_writer(out, spec.compression, spec.level) as stream:
        writer = NewcWriter(stream, mtime_clamp=spec.epoch)
        if spec.ram_root is not None:
            reporter.log(Level.INFO, f"initramfs: RAM mode, adding the system from {spec.ram_root}")
            write_tree(spec.ram_root, spec.ram_manifest, writer, reporter)
            if os.path.lexists(spec.ram_root / "init") or (
                spec.ram_manifest is not None and "init" in spec.ram_manifest
            ):
                reporter.log(
                    Level.WARNING, "the system's own /init is replaced by the live boot /init"
                )
        for number, (meta, data) in enumerate(_own_entries(spec, modules, spec.epoch)):
            if number % 16 == 0:
                check_cancelled(reporter)
            if isinstance(data, KernelModule):
                writer.add(meta, data.read())
            elif meta.kind is Kind.CHAR and writer.has(meta.path):
                continue  # the RAM-mode system brings its own /dev/console
            else:
                writer.add(meta, data)
        writer.close()
    size = out.stat().st_size
    reporter.log(
        Level.INFO,
        f"initramfs: {writer.entries} entries, {writer.size} bytes "
        f"uncompressed, {size} bytes as {spec.compression.value}",
    )
    return InitramfsResult(out, size, tuple(m.name for m in modules))
