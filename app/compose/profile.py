"""Build profiles: everything a build needs to know, as frozen dataclasses saved as TOML.

A profile is pure data. `validate_profile` checks what can be checked without touching the
package source; the pipeline's validate stage adds the checks that need the source and the disk.
"""

from __future__ import annotations

import enum
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, is_dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import tomli_w

from app.compose.bootloader import cmdline_text_problems
from app.compose.compress import Compression
from app.compose.live import region, services
from app.display import control_character
from app.errors import InputError, Problem, ValidationError
from app.iso.labels import validate_label
from app.packages.model import SourceKind, SourceSpec

PROFILE_VERSION = 1


class RootImageFormat(enum.Enum):
    SQUASHFS = "squashfs"
    EROFS = "erofs"
    RAM = "ram"  # no image: the whole root lives in the initramfs


FORMAT_NAMES = {
    RootImageFormat.SQUASHFS: "a SquashFS image",
    RootImageFormat.EROFS: "an EROFS image",
    RootImageFormat.RAM: "RAM mode",
}
# The program that compresses each format (RAM mode: Livesmith's own initramfs writer).
FORMAT_TOOLS = {
    RootImageFormat.SQUASHFS: "mksquashfs",
    RootImageFormat.EROFS: "mkfs.erofs",
    RootImageFormat.RAM: "the initramfs writer",
}


class Compressor(enum.Enum):
    ZSTD = "zstd"
    XZ = "xz"
    GZIP = "gzip"
    LZ4 = "lz4"
    LZ4HC = "lz4hc"
    NONE = "none"


@dataclass(frozen=True)
class LevelRange:
    """The compression levels a tool accepts, and the one used when none is chosen."""

    low: int
    high: int
    default: int

    def __contains__(self, level: object) -> bool:
        return isinstance(level, int) and self.low <= level <= self.high


def _initramfs_levels(compression: Compression, default: int) -> LevelRange:
    # RAM mode packs the root with the initramfs writer, so its limits are the writer's.
    levels = compression.levels
    assert levels is not None, compression
    return LevelRange(levels.start, levels.stop - 1, default)


# What each root image format can compress with (in the order offered) and the levels the
# program doing the compressing accepts for it: mksquashfs, mkfs.erofs, or for RAM mode the
# initramfs writer (app.compose.compress). None: no level can be chosen. Validation, the
# wizard's level box and the build all read this one table, so none accepts what another
# refuses.
COMPRESSION_LEVELS: dict[RootImageFormat, dict[Compressor, LevelRange | None]] = {
    RootImageFormat.SQUASHFS: {
        Compressor.ZSTD: LevelRange(1, 22, 15),  # -Xcompression-level
        Compressor.XZ: None,  # only -Xbcj and -Xdict-size, no level
        Compressor.GZIP: LevelRange(1, 9, 9),  # -Xcompression-level
        Compressor.LZ4: None,  # only -Xhc, no level
    },
    RootImageFormat.EROFS: {
        Compressor.LZ4HC: LevelRange(1, 12, 9),  # -zlz4hc,<level>
        Compressor.LZ4: None,  # mkfs.erofs refuses -zlz4,<level>
        Compressor.NONE: None,
    },
    RootImageFormat.RAM: {  # zstd stops at 19: the kernel may refuse --ultra windows
        Compressor.ZSTD: _initramfs_levels(Compression.ZSTD, 15),
        Compressor.XZ: _initramfs_levels(Compression.XZ, 6),
        Compressor.GZIP: _initramfs_levels(Compression.GZIP, 9),
        Compressor.NONE: None,
    },
}
FORMAT_COMPRESSORS: dict[RootImageFormat, tuple[Compressor, ...]] = {
    fmt: tuple(levels) for fmt, levels in COMPRESSION_LEVELS.items()
}


def level_range(fmt: RootImageFormat, compressor: Compressor) -> LevelRange | None:
    """The levels `compressor` takes in a `fmt` image; None if it takes none (or cannot be
    used there at all)."""
    return COMPRESSION_LEVELS[fmt].get(compressor)


class InstallMethod(enum.Enum):
    """How the selected packages become a root."""

    # With dependencies followed: mmdebstrap for the Debian archive, pacman for Arch-style
    # packages; else unpack.
    AUTO = "auto"
    UNPACK = "unpack"  # our own extraction only: no maintainer scripts run
    MMDEBSTRAP = "mmdebstrap"  # Debian's own tooling: maintainer scripts run in a sandbox
    PACMAN = "pacman"  # Arch-style packages: install scriptlets and alpm hooks run, sandboxed


@dataclass(frozen=True)
class PackageOptions:
    source: SourceSpec = SourceSpec(SourceKind.APT)
    packages: tuple[str, ...] = ()
    follow_dependencies: bool = True
    carry: bool = False  # copy the package files and their index onto the ISO under /packages
    install: InstallMethod = InstallMethod.AUTO
    # The Debian archive (apt source, mmdebstrap): "" = the build machine's own suite, and
    # mmdebstrap's default mirror for it; () = main.
    suite: str = ""
    mirror: str = ""
    components: tuple[str, ...] = ()

    @property
    def uses_mmdebstrap(self) -> bool:
        if self.install is InstallMethod.AUTO:
            return self.source.kind is SourceKind.APT and self.follow_dependencies
        return self.install is InstallMethod.MMDEBSTRAP

    @property
    def uses_pacman(self) -> bool:
        if self.install is InstallMethod.AUTO:
            return self.source.kind is SourceKind.ARCH and self.follow_dependencies
        return self.install is InstallMethod.PACMAN


@dataclass(frozen=True)
class KernelOptions:
    package: str = ""  # package that ships the kernel; "" = find it among the selected packages
    extra_modules: tuple[str, ...] = ()


class SecureBoot(enum.Enum):
    """Whether UEFI boots through the distribution's signed chain (shim, signed GRUB, the
    signed kernel), so the medium boots with Secure Boot enforced."""

    AUTO = "auto"  # on when the packages come from Debian/Ubuntu and the signed chain is there
    ON = "on"  # required: the build refuses to start when it cannot be met
    OFF = "off"  # Livesmith's own GRUB (unsigned): boots only with Secure Boot disabled


@dataclass(frozen=True)
class BootOptions:
    bios: bool = True
    uefi: bool = True
    timeout: int = 5  # seconds, at most 5
    cmdline: str = ""  # extra kernel parameters
    copytoram_entry: bool = True
    safe_entry: bool = True
    secure_boot: SecureBoot = SecureBoot.AUTO


DEFAULT_ISSUE = (
    "{name} live system ({label}), built {date}\n"
    "Log in as root with password: {root_password}\n"
    "{user_line}"
)


@dataclass(frozen=True)
class SystemOptions:
    hostname: str = "livesmith"
    root_password: str = "live"
    user: str = ""  # the live user; "" = none
    user_password: str = ""  # "" = logs in without a password
    autologin: bool = False  # the live user is logged in on every console and the desktop
    sudo: bool = False  # the live user may run commands as root (when sudo is installed)
    user_groups: tuple[str, ...] = ()  # beyond the usual live groups (audio, video, ...)
    issue: str = DEFAULT_ISSUE
    overlay: str = ""  # folder copied on top of the root
    timezone: str = ""  # e.g. "Europe/Berlin"; "" = UTC
    locale: str = ""  # e.g. "de_DE.UTF-8"; "" = what the packages set (C.UTF-8 on Debian)
    keyboard: str = ""  # xkb layout, optionally with a variant: "de", "de(nodeadkeys)"; "" = us
    enable_units: tuple[str, ...] = ()  # systemd units to enable
    disable_units: tuple[str, ...] = ()  # systemd units to disable, even if packages enable them
    first_boot: str = ""  # a script on the build machine, run once when the live system boots


@dataclass(frozen=True)
class ImageOptions:
    format: RootImageFormat = RootImageFormat.SQUASHFS
    compressor: Compressor = Compressor.ZSTD
    level: int | None = None  # None: the compressor's default


@dataclass(frozen=True)
class IsoOptions:
    label: str = "LIVESMITH"
    publisher: str = ""
    application: str = "LIVESMITH LIVE"


@dataclass(frozen=True)
class Profile:
    name: str
    description: str = ""
    packages: PackageOptions = field(default_factory=PackageOptions)
    kernel: KernelOptions = field(default_factory=KernelOptions)
    boot: BootOptions = field(default_factory=BootOptions)
    system: SystemOptions = field(default_factory=SystemOptions)
    image: ImageOptions = field(default_factory=ImageOptions)
    iso: IsoOptions = field(default_factory=IsoOptions)

    def with_changes(self, **changes: Any) -> Profile:
        return replace(self, **changes)


# --- TOML --------------------------------------------------------------------------------


def _to_plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return [_to_plain(v) for v in value]
    return value


def profile_to_dict(profile: Profile) -> dict[str, Any]:
    data = _to_plain(profile)
    # TOML has no null: drop unset optional values.
    if data["image"]["level"] is None:
        del data["image"]["level"]
    return {"version": PROFILE_VERSION, **data}


T = TypeVar("T")


def _from_plain(cls: type[T], data: Any, where: str, problems: list[Problem]) -> T:
    if not isinstance(data, dict):
        problems.append(Problem(where, "must be a table"))
        return cls()
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in known:
            problems.append(Problem(f"{where}.{key}", "unknown setting"))
    kwargs: dict[str, Any] = {}
    defaults = cls()
    for name in known:
        if name in data:
            kwargs[name] = _convert(
                name, data[name], getattr(defaults, name), f"{where}.{name}", problems
            )
    return cls(**kwargs)


_NESTED: dict[str, type] = {
    "packages": PackageOptions,
    "kernel": KernelOptions,
    "boot": BootOptions,
    "system": SystemOptions,
    "image": ImageOptions,
    "iso": IsoOptions,
}
_ENUMS: dict[str, type[enum.Enum]] = {
    "format": RootImageFormat,
    "compressor": Compressor,
    "install": InstallMethod,
    "secure_boot": SecureBoot,
}


def _convert(name: str, value: Any, default: Any, where: str, problems: list[Problem]) -> Any:
    if name in _NESTED and isinstance(value, dict):
        return _from_plain(_NESTED[name], value, where, problems)
    if name == "source":
        if not isinstance(value, dict) or "kind" not in value:
            problems.append(Problem(where, "needs a table with `kind` (and `location`)"))
            return default
        try:
            kind = SourceKind(value["kind"])
        except ValueError:
            choices = ", ".join(k.value for k in SourceKind)
            problems.append(
                Problem(
                    f"{where}.kind",
                    f"unknown source kind {value['kind']!r}; choose one of {choices}",
                )
            )
            return default
        return SourceSpec(kind, str(value.get("location", "")))
    if name in _ENUMS:
        try:
            return _ENUMS[name](value)
        except ValueError:
            choices = ", ".join(e.value for e in _ENUMS[name])
            problems.append(Problem(where, f"unknown value {value!r}; choose one of {choices}"))
            return default
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append(Problem(where, "must be a list of strings"))
            return default
        return tuple(value)
    expected = type(default) if default is not None else (int if name == "level" else str)
    if (expected is int and isinstance(value, bool)) or not isinstance(value, expected):
        problems.append(Problem(where, f"must be {expected.__name__}, not {type(value).__name__}"))
        return default
    return value


def profile_from_dict(data: dict[str, Any], *, where: str = "profile") -> Profile:
    problems: list[Problem] = []
    data = dict(data)
    version = data.pop("version", PROFILE_VERSION)
    if version != PROFILE_VERSION:
        problems.append(Problem(f"{where}: version", f"unsupported profile version {version}"))
    if not isinstance(data.get("name"), str) or not data["name"]:
        problems.append(Problem(f"{where}: name", "every profile needs a name"))
        data["name"] = "unnamed"
    kwargs: dict[str, Any] = {"name": data.pop("name")}
    if "description" in data:
        kwargs["description"] = str(data.pop("description"))
    for key, value in data.items():
        if key not in _NESTED:
            problems.append(Problem(f"{where}: {key}", "unknown section"))
            continue
        kwargs[key] = _from_plain(_NESTED[key], value, f"{where}: {key}", problems)
    if problems:
        raise ValidationError(problems)
    return Profile(**kwargs)


def with_settings(profile: Profile, assignments: Iterable[str]) -> Profile:
    """`profile` with SECTION.KEY=VALUE settings (the CLI's --set) applied. VALUE is read
    as TOML (true, 3, ["a", "b"]) and otherwise taken as text; it is checked like a
    setting in a profile file."""
    data = profile_to_dict(profile)
    problems = []
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            problems.append(Problem(assignment, "write SECTION.KEY=VALUE, e.g. system.user=live"))
            continue
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        if section in ("name", "description") or section not in _NESTED:
            problems.append(Problem(key, f"unknown section {section!r}"))
            continue
        data[section][name] = value
    if problems:
        raise ValidationError(problems)
    return profile_from_dict(data, where="--set")


def save_profile(profile: Profile, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(tomli_w.dumps(profile_to_dict(profile)))
    tmp.replace(path)


def load_profile(path: Path) -> Profile:
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"cannot read the profile: {exc.strerror}", where=str(path)) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not a valid TOML file: {exc}", where=str(path)) from exc
    return profile_from_dict(data, where=str(path))


def builtin_profiles() -> dict[str, Profile]:
    """Profiles shipped with the app (resources/profiles/*.toml), by name."""
    found: dict[str, Profile] = {}
    for entry in sorted(resources.files("resources.profiles").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            profile = profile_from_dict(
                tomllib.loads(entry.read_text()), where=f"built-in profile {entry.name}"
            )
            found[profile.name] = profile
    return found


def builtin_profile(name: str) -> Profile:
    profiles = builtin_profiles()
    if name not in profiles:
        raise InputError(
            f"no built-in profile named {name!r}; available: {', '.join(sorted(profiles))}"
        )
    return profiles[name]


# --- checks that need nothing but the profile -------------------------------------------

# Checked with fullmatch: `$` would also match before a final newline, and 'ana\n' would
# then reach /etc/passwd, /etc/shadow and the manifest as a user name.
_HOSTNAME_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")

# Package names go into tool command lines (apt-cache, apt-get), where one starting with '-'
# would be read as an option. Debian policy 5.6.1: lower-case letters, digits, '+', '-' and
# '.', at least two characters, starting with a letter or digit.
_DEBIAN_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+")
# Arch (makepkg's rule), glaucus and tarball names: letters, digits and '@', '_', '+', '.',
# '-', not starting with '-' or '.'; no '/', blanks or control characters.
_OTHER_PACKAGE = re.compile(r"[A-Za-z0-9@_+][A-Za-z0-9@_+.-]*")
_DEBIAN_RULE = (
    _DEBIAN_PACKAGE,
    "Debian package names are at least two lower-case letters, "
    "digits, '+', '-' and '.', starting with a letter or digit",
)
_OTHER_RULE = (
    _OTHER_PACKAGE,
    "package names are letters, digits, '@', '_', '+', '.' and '-', not starting with '-' or '.'",
)


def _name_rule(kind: SourceKind) -> tuple[re.Pattern[str], str]:
    return _DEBIAN_RULE if kind in (SourceKind.APT, SourceKind.DEB) else _OTHER_RULE


def bad_package_names(kind: SourceKind, names: Iterable[str]) -> list[str]:
    """The names in `names` that cannot be package names of a `kind` source."""
    pattern, _ = _name_rule(kind)
    return [name for name in names if not pattern.fullmatch(name)]


# Kernel module names as modprobe takes them: no path, no '.ko'.
_MODULE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def module_name_problems(kernel: KernelOptions) -> list[Problem]:
    """One problem listing every extra module name that cannot be a kernel module's."""
    bad = [name for name in dict.fromkeys(kernel.extra_modules) if not _MODULE_NAME.fullmatch(name)]
    if not bad:
        return []
    listed = ", ".join(repr(name) for name in bad)
    return [
        Problem(
            "extra kernel modules",
            f"not valid module name{'s' if len(bad) > 1 else ''}: {listed}",
            "module names are letters, digits, '_' and '-', starting with a letter or "
            "digit, without a path or '.ko', as modprobe takes them",
        )
    ]


def package_name_problems(options: PackageOptions, kernel: KernelOptions) -> list[Problem]:
    """One problem listing every selected (and kernel) package name that is not valid."""
    kind = options.source.kind
    names = [*options.packages, *([kernel.package] if kernel.package else [])]
    bad = list(dict.fromkeys(bad_package_names(kind, names)))
    if not bad:
        return []
    _, rule = _name_rule(kind)
    listed = ", ".join(repr(name) for name in bad)
    return [
        Problem("packages", f"not valid package name{'s' if len(bad) > 1 else ''}: {listed}", rule)
    ]


def name_problems(name: str) -> list[Problem]:
    """The profile name titles the boot menu and goes into /etc/os-release and /etc/issue:
    it must say something, on one line."""
    if not name.strip():
        return [Problem("name", "the profile name is empty")]
    if control_character(name) is not None:
        return [
            Problem(
                "name",
                f"the profile name {name!r} has control characters",
                "use letters, digits, spaces and punctuation, on one line",
            )
        ]
    return []


def validate_profile(profile: Profile) -> list[Problem]:
    """Every problem in the profile's own values, all at once (label checks included)."""
    problems: list[Problem] = list(validate_label(profile.iso.label))
    problems += name_problems(profile.name)
    if not profile.packages.packages:
        problems.append(Problem("packages", "no packages selected"))
    problems += package_name_problems(profile.packages, profile.kernel)
    if profile.packages.uses_mmdebstrap and profile.packages.source.kind not in (
        SourceKind.APT,
        SourceKind.DEB,
    ):
        problems.append(
            Problem(
                "packages: install",
                "mmdebstrap installs Debian packages only (the apt source or a folder of .deb files)",
                hint='use install = "unpack" for this source',
            )
        )
    if profile.packages.uses_pacman and profile.packages.source.kind is not SourceKind.ARCH:
        problems.append(
            Problem(
                "packages: install",
                "pacman installs Arch-style packages (*.pkg.tar.zst) only",
                hint='use install = "unpack" for this source',
            )
        )
    problems += module_name_problems(profile.kernel)
    host = profile.system.hostname
    if (
        not host
        or len(host) > 253
        or not all(_HOSTNAME_LABEL.fullmatch(p) for p in host.split("."))
    ):
        problems.append(
            Problem(
                "hostname",
                f"{host!r} is not a valid host name",
                "letters, digits and '-', at most 63 per dot-separated part",
            )
        )
    user = profile.system.user
    if user:
        if not _USER_NAME.fullmatch(user) or user == "root":
            problems.append(
                Problem(
                    "user",
                    f"{user!r} is not a valid user name",
                    "lower-case letters, digits, '_' and '-', starting with a "
                    "letter, at most 32 characters, not 'root'",
                )
            )
    for group in profile.system.user_groups:
        if not _USER_NAME.fullmatch(group):
            problems.append(Problem("user groups", f"{group!r} is not a valid group name"))
    if not user:
        for asked, what in ((profile.system.autologin, "autologin"), (profile.system.sudo, "sudo")):
            if asked:
                problems.append(Problem(what, "needs a live user; name one"))
    if not profile.system.root_password:
        problems.append(Problem("root password", "empty; a live system needs a root password"))
    problems += system_setting_problems(profile.system)
    if not profile.boot.bios and not profile.boot.uefi:
        problems.append(Problem("boot", "choose BIOS, UEFI or both"))
    if not 0 <= profile.boot.timeout <= 5:
        problems.append(Problem("boot timeout", f"{profile.boot.timeout} s; use 0 to 5 seconds"))
    problems += cmdline_text_problems(profile.boot.cmdline, where="kernel command line")
    image = profile.image
    allowed = FORMAT_COMPRESSORS[image.format]
    if image.compressor not in allowed:
        problems.append(
            Problem(
                "compressor",
                f"{image.format.value} cannot use "
                f"{image.compressor.value}; choose "
                f"{', '.join(c.value for c in allowed)}",
            )
        )
    elif (problem := level_problem(image)) is not None:
        problems.append(problem)
    overlay = profile.system.overlay
    if overlay and not Path(overlay).expanduser().is_dir():
        problems.append(Problem("overlay folder", f"{overlay} is not a folder"))
    if profile.packages.source.kind is not SourceKind.APT and not profile.packages.source.location:
        problems.append(Problem("package source", "no folder chosen"))
    return problems


def system_setting_problems(system: SystemOptions) -> list[Problem]:
    """Time zone, locale, keyboard, services and the first-boot script, as typed."""
    problems = [
        *region.timezone_problems(system.timezone),
        *region.locale_problems(system.locale),
        *region.keyboard_problems(system.keyboard),
        *services.unit_problems(system.enable_units, "services to enable"),
        *services.unit_problems(system.disable_units, "services to disable"),
    ]
    both = sorted(set(system.enable_units) & set(system.disable_units))
    if both:
        problems.append(
            Problem("services", f"{', '.join(both)} both enabled and disabled; choose one")
        )
    if system.first_boot:
        script = Path(system.first_boot).expanduser()
        if not script.is_file():
            problems.append(Problem("first-boot script", f"{system.first_boot} is not a file"))
    return problems


def level_problem(image: ImageOptions) -> Problem | None:
    """Why the image's chosen level cannot be used with its format and compressor, if so."""
    if image.level is None:
        return None
    levels = level_range(image.format, image.compressor)
    what = f"{image.compressor.value} in {FORMAT_NAMES[image.format]}"
    if levels is None:
        why = (
            "nothing is compressed"
            if image.compressor is Compressor.NONE
            else f"{FORMAT_TOOLS[image.format]} has no {image.compressor.value} level"
        )
        return Problem(
            "compression level",
            f"{what} takes no level (got {image.level})",
            f"{why}; leave the level at the default",
        )
    if image.level not in levels:
        return Problem(
            "compression level",
            f"level {image.level} is out of range for {what}",
            f"choose {levels.low} to {levels.high}",
        )
    return None


def compression_level(image: ImageOptions) -> int | None:
    """The level the build uses: the chosen one, else the default; None if the format and
    compressor take no level."""
    levels = level_range(image.format, image.compressor)
    if levels is None:
        return None
    return levels.default if image.level is None else image.level
