"""A plain folder of root-filesystem tarballs: `<name>-<version>.tar.{zst,xz,gz}`.

Member paths are relative to `/` of the live system. Name and version come from the file
name (the version starts at the first '-' followed by a digit); such packages declare no
dependencies.
"""

from __future__ import annotations

from pathlib import Path

from app.packages.model import FolderSource, PackageInfo, SourceKind, split_name_version

TARBALL_SUFFIXES = (".tar.zst", ".tar.xz", ".tar.gz", ".tgz", ".txz", ".tzst")


def is_tarball(path: Path) -> bool:
    name = path.name
    return name.endswith(TARBALL_SUFFIXES) and ".pkg.tar." not in name


def tarball_stem(path: Path) -> str:
    for suffix in TARBALL_SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.name


class TarballSource(FolderSource):
    def _scan(self) -> list[PackageInfo]:
        found = []
        for path in sorted(self.folder.iterdir()):
            if not (is_tarball(path) and path.is_file()):
                continue
            name, version = split_name_version(tarball_stem(path))
            found.append(
                PackageInfo(
                    name=name,
                    version=version,
                    size=path.stat().st_size,
                    installed_size=None,
                    description="",
                    depends=(),
                    provides=(),
                    conflicts=(),
                    file=path,
                    checksum=None,
                    kind=SourceKind.TARBALLS,
                )
            )
        return found
