"""What every package source has in common: its kind, its packages and how to get their files.

A dependency in `PackageInfo.depends` is a package name, or a group of alternatives written
"a | b" (Debian); version constraints are stripped by the sources. Names in `provides` and
`conflicts` are plain names too.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from app.display import control_character
from app.errors import InputError
from app.reporter import Reporter


class SourceKind(enum.Enum):
    GLAUCUS = "glaucus"
    ARCH = "arch"
    TARBALLS = "tarballs"
    DEB = "deb"
    APT = "apt"

    @property
    def title(self) -> str:
        return {
            SourceKind.GLAUCUS: "glaucus package tree",
            SourceKind.ARCH: "Arch-style packages (*.pkg.tar.zst)",
            SourceKind.TARBALLS: "folder of tarballs",
            SourceKind.DEB: "folder of Debian packages (*.deb)",
            SourceKind.APT: "Debian archive through the host's apt",
        }[self]


@dataclass(frozen=True)
class SourceSpec:
    kind: SourceKind
    location: str = ""  # folder path; "" for APT (the host's apt)

    def __str__(self) -> str:
        return "apt" if self.kind is SourceKind.APT else f"{self.kind.value}:{self.location}"


@dataclass(frozen=True)
class PackageInfo:
    name: str
    version: str
    size: int  # archive bytes (0 if unknown)
    installed_size: int | None  # unpacked bytes, if the package says
    description: str
    depends: tuple[str, ...]  # names, or "a | b" groups of alternatives
    provides: tuple[str, ...]
    conflicts: tuple[str, ...]
    file: Path | None  # the package file, if it is local
    checksum: str | None  # "xxh128:<hex>" or "sha256:<hex>", if the source gives one
    kind: SourceKind
    replaces: tuple[str, ...] = ()  # Debian: packages whose files this one may overwrite
    metapackage: bool = False  # only pulls in other packages (e.g. linux-image-amd64)

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}".strip()


@runtime_checkable
class PackageSource(Protocol):
    spec: SourceSpec

    def packages(self) -> list[PackageInfo]:
        """Every package the source offers (APT: the ones looked up so far)."""

    def get(self, name: str) -> PackageInfo | None:
        """The package called `name` (not a virtual name), or None."""

    def providers(self, name: str) -> list[PackageInfo]:
        """Packages that provide the virtual name `name`, best first."""

    def lookup(self, names: Iterable[str]) -> None:
        """Hint: these names will be asked for soon (lets APT batch its queries)."""

    def fetch(self, pkg: PackageInfo, cache_dir: Path, reporter: Reporter) -> Path:
        """A local path of the package file: the file itself for folder sources,
        a download placed in `cache_dir` for APT (gather passes a folder of its own there:
        builds running at the same time download files of the same names)."""


_CONSTRAINT = re.compile(r"\s*(\(.*?\)|\[.*?\]|<.*?>)\s*")
_OPERATOR = re.compile(r"\s*(<=|>=|<<|>>|=|<|>).*$")


def strip_constraint(text: str) -> str:
    """'glibc>=2.3' -> 'glibc'; 'libc6 (>= 2.34)' -> 'libc6'; 'perl:any' -> 'perl'."""
    name = _CONSTRAINT.sub("", text).strip()
    name = _OPERATOR.sub("", name).strip()
    return name.split(":", 1)[0].strip()


def has_constraint(text: str) -> bool:
    return bool(re.search(r"[<>=]", text))


def alternatives(group: str) -> list[str]:
    """Names of a dependency entry: 'a | b' -> ['a', 'b']."""
    return [part.strip() for part in group.split("|") if part.strip()]


def member_name(name: str) -> str:
    """A tar member name without leading './' and '/' (for reading metadata, not for safety)."""
    while name.startswith(("./", "/")):
        name = name[1:] if name.startswith("/") else name[2:]
    return name.rstrip("/")


def check_file_name_part(value: str, what: str, where: str) -> str:
    """`value` (a package name or version read from a package's metadata) unchanged, or
    InputError: it becomes part of file names (`<name>-<ver>.tar.zst`, `<name>/info`), so a
    '/', '..', a leading '.' or a control character could place a file anywhere."""
    problem = None
    if "/" in value or "\\" in value:
        problem = "contains a slash"
    elif ".." in value:
        problem = "contains '..'"
    elif value.startswith("."):
        problem = "starts with '.'"
    elif control_character(value) is not None:
        problem = "contains a control character"
    if problem:
        raise InputError(
            f"the package {what} {value!r} {problem}; it cannot be used in a file name", where=where
        )
    return value


def check_inside_folder(file: Path, folder: Path, what: str, where: str) -> None:
    """InputError unless `file` (named by an index, e.g. a repo database's FILENAME) is
    inside `folder` once links are followed: an index must not make a file elsewhere on
    the host (a backup, a key) a package that goes into the image."""
    if not file.resolve().is_relative_to(folder.resolve()):
        raise InputError(f"the {what} points outside the package folder: {file}", where=where)


def split_name_version(stem: str) -> tuple[str, str]:
    """'busybox-1.36.1' -> ('busybox', '1.36.1'): the version starts at the first '-digit'."""
    match = re.search(r"-(?=\d)", stem)
    if not match:
        return stem, ""
    return stem[: match.start()], stem[match.end() :]


# Version ordering: dpkg's algorithm (epoch, then alternating non-digit / digit runs where
# '~' sorts before everything, then the revision). It also orders Arch (epoch:ver-rel) and
# plain upstream versions sensibly, which is all folders with several versions need.
def _order(char: str) -> int:
    if char == "~":
        return -1
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


def _compare_part(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            bc = _order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ac != bc:
                return -1 if ac < bc else 1
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = (a[i] > b[j]) - (a[i] < b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


def _split_version(version: str) -> tuple[int, str, str]:
    epoch = 0
    if ":" in version:
        head, rest = version.split(":", 1)
        if head.isdigit():
            epoch, version = int(head), rest
    upstream, _, revision = version.rpartition("-")
    if not upstream:
        upstream, revision = revision, ""
    return epoch, upstream, revision


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as version `a` is older than, equal to or newer than `b`."""
    ea, ua, ra = _split_version(a)
    eb, ub, rb = _split_version(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _compare_part(ua, ub) or _compare_part(ra, rb)


def newest(packages: Iterable[PackageInfo]) -> dict[str, PackageInfo]:
    """name -> the newest version of that name."""
    best: dict[str, PackageInfo] = {}
    for pkg in packages:
        old = best.get(pkg.name)
        if old is None or compare_versions(pkg.version, old.version) > 0:
            best[pkg.name] = pkg
    return best


class FolderSource:
    """Shared behaviour of sources whose packages all sit in a local folder."""

    spec: SourceSpec

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec
        self.folder = Path(spec.location).expanduser()
        self._by_name: dict[str, PackageInfo] | None = None

    def _scan(self) -> list[PackageInfo]:
        raise NotImplementedError

    def _index(self) -> dict[str, PackageInfo]:
        if self._by_name is None:
            self._by_name = dict(sorted(newest(self._scan()).items()))
        return self._by_name

    def packages(self) -> list[PackageInfo]:
        return list(self._index().values())

    def get(self, name: str) -> PackageInfo | None:
        return self._index().get(name)

    def providers(self, name: str) -> list[PackageInfo]:
        return [p for p in self._index().values() if name in p.provides]

    def lookup(self, names: Iterable[str]) -> None:
        pass

    def fetch(self, pkg: PackageInfo, cache_dir: Path, reporter: Reporter) -> Path:
        if pkg.file is None or not pkg.file.is_file():
            where = str(pkg.file) if pkg.file else str(self.folder / pkg.name)
            raise InputError(f"the file of package {pkg.name} is missing", where=where)
        return pkg.file
