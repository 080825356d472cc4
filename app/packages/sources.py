"""Opening a package source, and telling what kind a folder is."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from app.errors import InputError
from app.packages.apt import AptSource, require_apt
from app.packages.arch import ArchSource, is_database_file, is_package_file
from app.packages.deb import DebFolderSource
from app.packages.glaucus import GlaucusSource
from app.packages.model import PackageInfo, PackageSource, SourceKind, SourceSpec
from app.packages.tarballs import TarballSource, is_tarball
from app.reporter import Reporter

APT_NAMES = ("apt", "apt:")


def _folder(location: str) -> Path:
    if not location.strip():
        raise InputError("no package source folder given")
    path = Path(location).expanduser()
    if not path.exists():
        raise InputError("the package source folder does not exist", where=location)
    if not path.is_dir():
        raise InputError(
            "a package source must be a folder (or 'apt' for the host's apt)", where=location
        )
    return path


def detect_source(path: str) -> SourceSpec:
    """The kind of source at `path`: 'apt'/'apt:' is the host's apt, else a folder's content
    decides (glaucus tree, Arch packages, .deb files, tarballs, in that order)."""
    if path.strip().lower() in APT_NAMES:
        return SourceSpec(SourceKind.APT)
    folder = _folder(path)
    entries = sorted(folder.iterdir())
    location = str(folder)
    if any((e / "info").is_file() for e in entries if e.is_dir()):
        return SourceSpec(SourceKind.GLAUCUS, location)
    if any(is_package_file(e) or is_database_file(e) for e in entries):
        return SourceSpec(SourceKind.ARCH, location)
    if any(e.name.endswith(".deb") for e in entries):
        return SourceSpec(SourceKind.DEB, location)
    if any(is_tarball(e) for e in entries):
        return SourceSpec(SourceKind.TARBALLS, location)
    raise InputError(
        "no packages found: expected a glaucus tree (<name>/info), Arch packages "
        "(*.pkg.tar.zst), Debian packages (*.deb) or tarballs (*.tar.zst/xz/gz)",
        where=location,
    )


def open_source(spec: SourceSpec) -> PackageSource:
    if spec.kind is SourceKind.APT:
        require_apt()
        return AptSource(spec)
    _folder(spec.location)
    classes = {
        SourceKind.GLAUCUS: GlaucusSource,
        SourceKind.ARCH: ArchSource,
        SourceKind.DEB: DebFolderSource,
        SourceKind.TARBALLS: TarballSource,
    }
    return classes[spec.kind](spec)


class LayeredSource:
    """A folder of packages in front of another source, as apt sees a local repository
    beside the suite: a name the folder has comes from it (apt prefers it; see
    compose.install.debian), every other name and dependency from `behind`."""

    def __init__(self, front: PackageSource, behind: PackageSource) -> None:
        self.front, self.behind = front, behind
        self.spec = front.spec

    def packages(self) -> list[PackageInfo]:
        return [*self.front.packages(), *self.behind.packages()]

    def get(self, name: str) -> PackageInfo | None:
        return self.front.get(name) or self.behind.get(name)

    def providers(self, name: str) -> list[PackageInfo]:
        return [*self.front.providers(name), *self.behind.providers(name)]

    def lookup(self, names: Iterable[str]) -> None:
        self.behind.lookup([name for name in names if self.front.get(name) is None])

    def fetch(self, pkg: PackageInfo, cache_dir: Path, reporter: Reporter) -> Path:
        owner = self.front if self.front.get(pkg.name) is pkg else self.behind
        return owner.fetch(pkg, cache_dir, reporter)
