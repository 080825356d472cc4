"""Kernel modules for the initramfs: find the kernel, pick modules, resolve dependencies.

Debian's kernel package ships neither `modules.dep` nor kmod's other index files, and the
build host may have no kmod at all. Dependencies therefore come from `modules.dep` when it
exists and otherwise from each module's ELF `.modinfo` section (`depends=`, `softdep=`),
which is what depmod reads too. Modules may be `.ko`, `.ko.xz`, `.ko.zst` (or `.ko.gz`);
compressed ones are decompressed to read their `.modinfo` (and for the initramfs, where
busybox `insmod` cannot unpack zstd and the image is compressed as a whole anyway).
"""

from __future__ import annotations

import difflib
import fnmatch
import gzip
import lzma
import mmap
import os
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import zstandard

from app.errors import InputError, Problem, StageError
from app.reporter import Level, Reporter

# What a live system needs to find and mount its medium, by bus and filesystem.
LIVE_MODULES: tuple[str, ...] = (
    # CD/DVD drives and ISO 9660
    "sr_mod",
    "cdrom",
    "isofs",
    # SATA / AHCI / IDE (QEMU's -M pc drives sit on ata_piix)
    "ahci",
    "ata_piix",
    "ata_generic",
    # NVMe
    "nvme",
    # USB host controllers and USB mass storage
    "xhci_pci",
    "xhci_hcd",
    "ehci_pci",
    "ehci_hcd",
    "ohci_pci",
    "ohci_hcd",
    "uhci_hcd",
    "usb_storage",
    "uas",
    # virtio (QEMU/KVM, clouds)
    "virtio_pci",
    "virtio_blk",
    "virtio_scsi",
    # SD / MMC cards
    "mmc_block",
    "sdhci_pci",
    "sdhci_acpi",
    # SCSI disks (USB sticks and SATA disks appear as sd*)
    "scsi_mod",
    "sd_mod",
    # FAT (ESP, relabelled sticks) with the code pages vfat uses by default
    "vfat",
    "nls_cp437",
    "nls_iso8859_1",
    "nls_utf8",
    "nls_ascii",
    # the root image and the writable layer
    "loop",
    "squashfs",
    "erofs",
    "overlay",
    # the persistence partition (LIVESMITH-RW, see app/usb/persistence.py)
    "ext4",
)

SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")
_VERSION_PART = re.compile(r"(\d+)")


def canonical(name: str) -> str:
    """Module names are dash/underscore-insensitive; the kernel uses underscores."""
    return name.replace("-", "_")


def _strip_suffix(filename: str) -> str | None:
    for suffix in SUFFIXES:
        if filename.endswith(suffix):
            return filename[: -len(suffix)]
    return None


def _version_key(version: str) -> list[tuple[int, object]]:
    return [(0, int(p)) if p.isdigit() else (1, p) for p in _VERSION_PART.split(version) if p]


def _plain_dir(root: Path, rel: str) -> Path | None:
    """root/rel if every component is a real directory (no symlink can lead outside root)."""
    current = root
    for part in rel.split("/"):
        current = current / part
        if current.is_symlink() or not current.is_dir():
            return None
    return current


def find_kernel(root: Path) -> tuple[Path, str] | None:
    """(vmlinuz, version) in an assembled root: boot/vmlinuz-<v>, or <lib>/modules/<v>/vmlinuz.

    Only regular files count (a symlink in a staging root could point at the host's
    kernel). With several kernels the highest version wins.
    """
    found: dict[str, Path] = {}
    boot = _plain_dir(root, "boot")
    if boot is not None:
        for path in boot.glob("vmlinuz-*"):
            if path.is_file() and not path.is_symlink():
                found.setdefault(path.name.removeprefix("vmlinuz-"), path)
    for lib in ("usr/lib/modules", "lib/modules"):
        base = _plain_dir(root, lib)
        if base is None:
            continue
        for path in base.glob("*/vmlinuz"):
            if path.is_file() and not path.is_symlink() and not path.parent.is_symlink():
                found.setdefault(path.parent.name, path)
    if not found:
        return None
    version = max(found, key=_version_key)
    return found[version], version


def modules_dir(root: Path, version: str) -> Path | None:
    """<root>/usr/lib/modules/<v> or <root>/lib/modules/<v> (merged /usr or not)."""
    for lib in ("usr/lib/modules", "lib/modules"):
        found = _plain_dir(root, f"{lib}/{version}")
        if found is not None:
            return found
    return None


# -- reading modules ---------------------------------------------------------------------


def read_module(path: Path) -> bytes:
    """The module's ELF image, decompressed if the file is .ko.xz / .ko.zst / .ko.gz."""
    data = path.read_bytes()
    name = path.name
    try:
        if name.endswith(".xz"):
            return lzma.decompress(data)
        if name.endswith(".zst"):
            return zstandard.ZstdDecompressor().decompressobj().decompress(data)
        if name.endswith(".gz"):
            return gzip.decompress(data)
    except (lzma.LZMAError, zstandard.ZstdError, OSError, EOFError) as exc:
        raise StageError(
            f"cannot decompress kernel module {path}: {exc}", stage="initramfs"
        ) from None
    return data


def elf_section(image: bytes | mmap.mmap, wanted: str, where: str) -> bytes | None:
    """Contents of section `wanted` of an ELF image (32/64-bit, either byte order)."""
    if image[:4] != b"\x7fELF" or len(image) < 52:
        raise StageError(f"{where} is not an ELF file", stage="initramfs")
    is64 = image[4] == 2
    order = "<" if image[5] == 1 else ">"
    try:
        if is64:
            (shoff,) = struct.unpack_from(order + "Q", image, 0x28)
            shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", image, 0x3A)
            layout, off_index, size_index = order + "IIQQQQ", 4, 5
        else:
            (shoff,) = struct.unpack_from(order + "I", image, 0x20)
            shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", image, 0x2E)
            layout, off_index, size_index = order + "IIIIII", 4, 5
        headers = [struct.unpack_from(layout, image, shoff + i * shentsize) for i in range(shnum)]
        names_at, names_size = headers[shstrndx][off_index], headers[shstrndx][size_index]
        names = image[names_at : names_at + names_size]
        # Offsets in the string table where `wanted` ends a name (the table may share
        # tails, so the name can start inside a longer string): compare numbers, not text.
        needle = wanted.encode() + b"\0"
        candidates = set()
        found = names.find(needle)
        while found >= 0:
            candidates.add(found)
            found = names.find(needle, found + 1)
        for header in headers:
            if header[0] in candidates:
                offset, size = header[off_index], header[size_index]
                if offset + size > len(image):
                    raise StageError(
                        f"{where}: section {wanted} lies past the end of the file",
                        stage="initramfs",
                    )
                return image[offset : offset + size]
    except (struct.error, IndexError, ValueError, OverflowError):
        raise StageError(f"{where}: damaged ELF section table", stage="initramfs") from None
    return None


def module_info(path: Path) -> list[tuple[str, str]]:
    """The (key, value) pairs of a module's .modinfo section."""
    if path.name.endswith(".ko"):
        # Map plain modules: only the pages holding the headers and .modinfo get read,
        # which matters when every module of a kernel is scanned for aliases.
        try:
            with (
                open(path, "rb") as file,
                mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as image,
            ):
                section = elf_section(image, ".modinfo", str(path))
        except (OSError, ValueError) as exc:
            raise StageError(
                f"cannot read kernel module {path}: {exc}", stage="initramfs"
            ) from None
    else:
        section = elf_section(read_module(path), ".modinfo", str(path))
    return parse_modinfo(section or b"")


def parse_modinfo(section: bytes) -> list[tuple[str, str]]:
    pairs = []
    for raw in section.split(b"\0"):
        if b"=" in raw:
            key, _, value = raw.decode("utf-8", "replace").partition("=")
            pairs.append((key, value))
    return pairs


def parse_softdep(text: str) -> tuple[list[str], list[str]]:
    """'pre: a b post: c' -> (['a', 'b'], ['c'])."""
    pre: list[str] = []
    post: list[str] = []
    target = pre
    for word in text.split():
        if word == "pre:":
            target = pre
        elif word == "post:":
            target = post
        else:
            target.append(word)
    return pre, post


@dataclass(frozen=True)
class KernelModule:
    name: str  # canonical name (underscores)
    path: Path  # file in the modules dir (maybe compressed)
    relpath: str  # path relative to the modules dir, as found
    depends: tuple[str, ...] = ()  # canonical names of hard dependencies
    softdeps: tuple[str, ...] = ()  # canonical names of resolved "pre:" soft dependencies

    @property
    def plain_relpath(self) -> str:
        """Where the decompressed module goes (busybox insmod reads only plain .ko)."""
        stem = _strip_suffix(self.relpath)
        return f"{stem}.ko" if stem else self.relpath

    def read(self) -> bytes:
        return read_module(self.path)


@dataclass
class ModuleIndex:
    """Everything known about one modules directory, read lazily."""

    mod_dir: Path
    files: dict[str, str] = field(default_factory=dict)  # name -> relpath
    dep_file: dict[str, list[str]] | None = None  # name -> names (modules.dep)
    softdep_file: dict[str, list[str]] | None = None  # name -> pre names
    _modinfo: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    @classmethod
    def load(cls, mod_dir: Path) -> ModuleIndex:
        if not mod_dir.is_dir():
            raise InputError(f"kernel modules directory {mod_dir} does not exist")
        index = cls(mod_dir)
        # os.walk with strings: pathlib costs ~0.5 s on a distribution kernel's 4000 modules
        for dirpath, dirnames, filenames in os.walk(mod_dir):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, mod_dir)
            for filename in sorted(filenames):
                stem = _strip_suffix(filename)
                if stem is None:
                    continue
                rel = filename if rel_dir == "." else f"{rel_dir}/{filename}"
                index.files.setdefault(canonical(stem), rel.replace(os.sep, "/"))
        dep = mod_dir / "modules.dep"
        if dep.is_file():
            index.dep_file = {}
            for line in dep.read_text(errors="replace").splitlines():
                if ":" not in line:
                    continue
                module, _, deps = line.partition(":")
                name = _file_module_name(module)
                index.dep_file[name] = [_file_module_name(d) for d in deps.split()]
        softdep = mod_dir / "modules.softdep"
        if softdep.is_file():
            index.softdep_file = {}
            for line in softdep.read_text(errors="replace").splitlines():
                words = line.split(None, 2)
                if len(words) == 3 and words[0] == "softdep":
                    index.softdep_file[canonical(words[1])] = parse_softdep(words[2])[0]
        return index

    def modinfo(self, name: str) -> list[tuple[str, str]]:
        if name not in self._modinfo:
            self._modinfo[name] = module_info(self.mod_dir / self.files[name])
        return self._modinfo[name]

    def depends(self, name: str) -> list[str]:
        if self.dep_file is not None and name in self.dep_file:
            return self.dep_file[name]
        names: list[str] = []
        for key, value in self.modinfo(name):
            if key == "depends":
                names += [canonical(n) for n in value.split(",") if n]
        return names

    def soft_pre(self, name: str) -> list[str]:
        if self.softdep_file is not None:
            return self.softdep_file.get(name, [])
        names: list[str] = []
        for key, value in self.modinfo(name):
            if key == "softdep":
                names += parse_softdep(value)[0]
        return names

    @cached_property
    def builtin(self) -> set[str]:
        names: set[str] = set()
        listing = self.mod_dir / "modules.builtin"
        if listing.is_file():
            for line in listing.read_text(errors="replace").split():
                names.add(_file_module_name(line))
        return names

    @cached_property
    def aliases(self) -> dict[str, list[str]]:
        """alias -> module names, from modules.alias or else every module's .modinfo, plus
        the builtin modules' aliases (modules.builtin.modinfo)."""
        table: dict[str, list[str]] = {}

        def note(alias: str, module: str) -> None:
            table.setdefault(canonical(alias), []).append(canonical(module))

        alias_file = self.mod_dir / "modules.alias"
        if alias_file.is_file():
            for line in alias_file.read_text(errors="replace").splitlines():
                words = line.split()
                if len(words) == 3 and words[0] == "alias":
                    note(words[1], words[2])
        else:
            for name in self.files:
                for key, value in self.modinfo(name):
                    if key == "alias":
                        note(value, name)
        builtin_info = self.mod_dir / "modules.builtin.modinfo"
        if builtin_info.is_file():
            for raw in builtin_info.read_bytes().split(b"\0"):
                key, _, value = raw.decode("utf-8", "replace").partition("=")
                module, _, attr = key.partition(".")
                if attr == "alias":
                    note(value, module)
        return table

    @cached_property
    def alias_patterns(self) -> list[tuple[str, str, list[str]]]:
        """(literal prefix, pattern, modules) of wildcard aliases such as 'pci:v00008086d*';
        the prefix check spares compiling thousands of patterns for each lookup."""
        patterns = []
        for alias, modules in self.aliases.items():
            wildcard = min((i for i in (alias.find(c) for c in "*?[") if i >= 0), default=-1)
            if wildcard >= 0:
                patterns.append((alias[:wildcard], alias, modules))
        return patterns

    def lookup(self, wanted: str) -> tuple[list[str], bool]:
        """(module names providing `wanted`, provided by builtin code)."""
        name = canonical(wanted)
        if name in self.files:
            return [name], False
        if name in self.builtin:
            return [], True
        # Soft dependencies name crypto algorithms ("crc32c"); the generic implementation
        # usually provides them. Checking that one module's own aliases spares reading
        # every module of the kernel for the full alias table.
        generic = f"{name}_generic"
        if generic in self.files and any(
            k == "alias" and canonical(v) == name for k, v in self.modinfo(generic)
        ):
            return [generic], False
        providers = list(self.aliases.get(name, ()))
        if not providers:
            for prefix, pattern, modules in self.alias_patterns:
                if name.startswith(prefix) and fnmatch.fnmatchcase(name, pattern):
                    providers += modules
        if any(p in self.builtin for p in providers):
            return [], True
        return sorted({p for p in providers if p in self.files}), False


def _file_module_name(relpath: str) -> str:
    filename = relpath.rsplit("/", 1)[-1]
    return canonical(_strip_suffix(filename) or filename)


def _pick_provider(alias: str, providers: list[str]) -> str:
    """One module for an alias (a softdep such as 'crc32c' may match CPU-specific variants
    that fail to load on other CPUs): the same name, else the generic one, else the first."""
    name = canonical(alias)
    if name in providers:
        return name
    generic = [p for p in providers if p.endswith("_generic")]
    return (generic or providers)[0]


def resolve_modules(
    mod_dir: Path, wanted: Iterable[str], *, reporter: Reporter | None = None
) -> list[KernelModule]:
    """`wanted` and everything they need, dependencies before the modules using them.

    Names that are builtin (modules.builtin) need no file and are skipped; names that are
    neither a module nor builtin are logged as warnings through `reporter` (a kernel may
    simply lack a driver) and listed by `missing_modules`.
    """
    index = ModuleIndex.load(mod_dir)
    order: list[str] = []
    state: dict[str, str] = {}
    resolved: dict[str, KernelModule] = {}

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise StageError(
                "kernel modules depend on each other in a cycle: " + " -> ".join((*chain, name)),
                stage="initramfs",
            )
        state[name] = "visiting"
        depends: list[str] = []
        for dep in index.depends(name):
            providers, builtin = index.lookup(dep)
            if builtin:
                continue
            if not providers:
                raise StageError(
                    f"kernel module {name} needs {dep}, which is in neither "
                    f"{mod_dir} nor modules.builtin",
                    stage="initramfs",
                )
            depends.append(providers[0])
        softdeps: list[str] = []
        for dep in index.soft_pre(name):
            providers, builtin = index.lookup(dep)
            if providers and not builtin:
                softdeps.append(_pick_provider(dep, providers))
        for dep in [*softdeps, *depends]:
            visit(dep, (*chain, name))
        state[name] = "done"
        order.append(name)
        relpath = index.files[name]
        resolved[name] = KernelModule(
            name, mod_dir / relpath, relpath, tuple(depends), tuple(softdeps)
        )

    for item in wanted:
        providers, builtin = index.lookup(item)
        if builtin:
            continue
        if not providers:
            if reporter is not None:
                reporter.log(
                    Level.WARNING,
                    f"kernel module {item} is not in {mod_dir} and not built in; it is left out",
                )
            continue
        visit(_pick_provider(item, providers), ())
    return [resolved[name] for name in order]


def missing_modules(
    mod_dir: Path, wanted: Iterable[str], *, index: ModuleIndex | None = None
) -> list[str]:
    """Names in `wanted` that are neither a module file nor built into the kernel
    (`index`: the folder's index, if the caller has loaded it already)."""
    if index is None:
        index = ModuleIndex.load(mod_dir)
    missing = []
    for item in wanted:
        providers, builtin = index.lookup(item)
        if not builtin and not providers:
            missing.append(item)
    return missing


def unknown_module_problems(
    mod_dir: Path | None, version: str, names: Iterable[str], *, where: str = "extra kernel module"
) -> list[Problem]:
    """A problem for each name that is neither a module of kernel `version` (in `mod_dir`,
    None if it has none) nor built into it; the hint names the kernel's closest modules."""
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return []
    if mod_dir is None:
        return [
            Problem(where, f"{name!r} is not in kernel {version}, which has no modules")
            for name in wanted
        ]
    index = ModuleIndex.load(mod_dir)
    missing = missing_modules(mod_dir, wanted, index=index)
    known = sorted(set(index.files) | index.builtin) if missing else []
    problems = []
    for name in missing:
        close = difflib.get_close_matches(canonical(name), known, n=3, cutoff=0.8)
        problems.append(
            Problem(
                where,
                f"{name!r} is neither a module of kernel {version} nor built into it",
                "did you mean " + " or ".join(repr(c) for c in close) + "?"
                if close
                else f"none of the kernel's {len(known)} modules has a similar name",
            )
        )
    return problems


def all_modules(mod_dir: Path) -> list[KernelModule]:
    """Every module of the directory with its dependencies (for a root's full modules.dep)."""
    return resolve_modules(mod_dir, sorted(ModuleIndex.load(mod_dir).files))


def load_order(module: KernelModule, modules: dict[str, KernelModule]) -> list[str]:
    """Names `module` needs loaded first (transitively, soft dependencies included), in the
    order to load them."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        found = modules[name]
        for dep in [*found.softdeps, *found.depends]:
            visit(dep)
        order.append(name)

    for dep in [*module.softdeps, *module.depends]:
        visit(dep)
    return order


def modules_dep_text(modules: Sequence[KernelModule], *, plain: bool = True) -> str:
    """modules.dep for these modules, one line per module; `plain` names the decompressed
    .ko files (as in the initramfs), otherwise the files as found.

    Each line lists every module that must be loaded first, closest first: modprobe (kmod
    and busybox alike) loads that list from the end. Soft "pre:" dependencies are listed as
    ordinary ones because busybox modprobe does not read softdeps.
    """
    by_name = {m.name: m for m in modules}

    def where(module: KernelModule) -> str:
        return module.plain_relpath if plain else module.relpath

    lines = []
    for module in sorted(modules, key=where):
        deps = [where(by_name[n]) for n in reversed(load_order(module, by_name))]
        lines.append(f"{where(module)}:{''.join(' ' + d for d in deps)}\n")
    return "".join(lines)


def write_modules_dep(
    modules: Sequence[KernelModule], dest_dir: Path, *, plain: bool = True
) -> Path:
    """Write dest_dir/modules.dep for `modules` (whose files sit under dest_dir)."""
    path = dest_dir / "modules.dep"
    path.write_text(modules_dep_text(modules, plain=plain))
    return path
