"""Carried packages: the build's package files on the ISO, indexed the way their own
package manager reads them, so it can install them into a custom root from the medium.

- Debian (`.deb` folder or apt): a flat repository — the files, `Packages`, `Packages.gz`
  and a `Release` with their checksums. `deb [trusted=yes] file:/run/livesmith/medium/packages ./`
  in a sources list is all apt needs.
- Arch-style: the files and a repo-add database `livesmith.db.tar.gz` (with `livesmith.db`
  beside it), for a `[livesmith]` section with `Server = file:///…/packages` in pacman.conf.
- glaucus: the tree rad reads, `<name>/{info, <name>-<ver>.tar.zst, sum}` (XXH3-128 sums in
  `xxhsum -H2` form).
- a plain tarball folder has no package manager: the files alone.

Every kind also gets `index.json` (name, version, file, size, sha256, depends, description)
and `SHA256SUMS`, for people and scripts.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import xxhash

from app.errors import InputError
from app.packages.arch import read_pkginfo
from app.packages.deb import read_control
from app.packages.model import PackageInfo, SourceKind, check_file_name_part
from app.reporter import Level, Reporter, check_cancelled

ARCH_REPO = "livesmith"
# Control fields in the order dpkg-scanpackages writes them; others follow alphabetically.
_DEB_ORDER = (
    "Package",
    "Source",
    "Version",
    "Installed-Size",
    "Maintainer",
    "Architecture",
    "Replaces",
    "Provides",
    "Depends",
    "Pre-Depends",
    "Recommends",
    "Suggests",
    "Conflicts",
    "Breaks",
    "Homepage",
    "Description",
)
_DEB_TAIL = ("Filename", "Size", "MD5sum", "SHA1", "SHA256")
# pacman's desc keys carried from .PKGINFO: (desc key, .PKGINFO key).
_ARCH_DESC = (
    ("NAME", "pkgname"),
    ("BASE", "pkgbase"),
    ("VERSION", "pkgver"),
    ("DESC", "pkgdesc"),
    ("URL", "url"),
    ("ARCH", "arch"),
    ("BUILDDATE", "builddate"),
    ("PACKAGER", "packager"),
    ("ISIZE", "size"),
    ("LICENSE", "license"),
    ("REPLACES", "replaces"),
    ("CONFLICTS", "conflict"),
    ("PROVIDES", "provides"),
    ("DEPENDS", "depend"),
    ("OPTDEPENDS", "optdepend"),
    ("MAKEDEPENDS", "makedepend"),
    ("CHECKDEPENDS", "checkdepend"),
)


@dataclass(frozen=True)
class CarriedFile:
    package: PackageInfo
    path: str  # relative to the repository folder
    size: int
    sha256: str


def _digests(path: Path) -> dict[str, str]:
    hashes = {"md5": hashlib.md5(), "sha1": hashlib.sha1(), "sha256": hashlib.sha256()}
    xxh = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            for h in hashes.values():
                h.update(chunk)
            xxh.update(chunk)
    return {**{k: h.hexdigest() for k, h in hashes.items()}, "xxh128": xxh.hexdigest()}


def carried_path(kind: SourceKind, pkg: PackageInfo, file_name: str) -> str:
    """Where a package file goes in the carried repository (relative to its folder)."""
    return f"{pkg.name}/{_glaucus_archive_name(pkg)}" if kind is SourceKind.GLAUCUS else file_name


def repository_files(
    kind: SourceKind, packages: Sequence[tuple[PackageInfo, str]]
) -> list[tuple[str, str]]:
    """(relative path, what) of every file `write_repository` writes for (package, file name)
    pairs: the plan of a build lists them before anything is built."""
    files = [
        ("index.json", "index of carried packages"),
        ("SHA256SUMS", "checksums of the packages"),
    ]
    for pkg, name in packages:
        path = carried_path(kind, pkg, name)
        files.append((path, "carried package"))
        if kind is SourceKind.GLAUCUS:
            folder = path.rsplit("/", 1)[0]
            files += [
                (f"{folder}/info", "package information"),
                (f"{folder}/sum", "XXH3-128 checksum"),
            ]
    if kind in (SourceKind.DEB, SourceKind.APT):
        files += [
            ("Packages", "apt index"),
            ("Packages.gz", "apt index (compressed)"),
            ("Release", "apt repository checksums"),
        ]
    elif kind is SourceKind.ARCH:
        files += [
            (f"{ARCH_REPO}.db.tar.gz", "pacman repository database"),
            (f"{ARCH_REPO}.db", "pacman repository database (link)"),
        ]
    return files


def write_repository(
    kind: SourceKind,
    archives: Sequence[tuple[PackageInfo, Path]],
    folder: Path,
    reporter: Reporter,
    *,
    epoch: int = 0,
) -> list[CarriedFile]:
    """Copy `archives` (package, file) into `folder` with the native index for `kind`."""
    folder.mkdir(parents=True, exist_ok=True)
    carried: list[CarriedFile] = []
    digests: dict[str, dict[str, str]] = {}
    for index, (pkg, path) in enumerate(archives):
        check_cancelled(reporter)
        relative = carried_path(kind, pkg, path.name)
        dest = _inside(folder, relative, pkg)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        sums = _digests(dest)
        digests[relative] = sums
        carried.append(CarriedFile(pkg, relative, dest.stat().st_size, sums["sha256"]))
        reporter.progress(index + 1, len(archives))
    if kind in (SourceKind.DEB, SourceKind.APT):
        _write_deb_index(folder, carried, digests, epoch)
    elif kind is SourceKind.ARCH:
        _write_arch_database(folder, carried, epoch)
    elif kind is SourceKind.GLAUCUS:
        _write_glaucus_tree(folder, carried, digests)
    _write_generic_index(folder, carried)
    reporter.log(Level.INFO, f"carried {len(carried)} package(s) with a {kind.title} index")
    return carried


def _inside(folder: Path, relative: str, pkg: PackageInfo) -> Path:
    """folder/relative, or InputError if it would land outside `folder` (a name or version
    with '/' or '..', or a link on the way)."""
    dest = folder / relative
    resolved, base = dest.resolve(), folder.resolve()
    if resolved == base or not resolved.is_relative_to(base):
        raise InputError(
            f"package {pkg.label!r} would be carried to {relative!r}, outside "
            "the carried packages folder",
            where=str(pkg.file) if pkg.file else pkg.name,
        )
    return dest


def _write_generic_index(folder: Path, carried: Sequence[CarriedFile]) -> None:
    index = [
        {
            "name": c.package.name,
            "version": c.package.version,
            "file": c.path,
            "size": c.size,
            "sha256": c.sha256,
            "depends": list(c.package.depends),
            "description": c.package.description,
        }
        for c in carried
    ]
    (folder / "index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    (folder / "SHA256SUMS").write_text("".join(f"{c.sha256}  {c.path}\n" for c in carried))


# -- Debian ------------------------------------------------------------------------------------


def _control_stanza(fields: dict[str, str]) -> str:
    keys = [k for k in _DEB_ORDER if k in fields]
    keys += sorted(k for k in fields if k not in keys)
    lines = []
    for key in keys:
        first, *rest = fields[key].split("\n")
        lines.append(f"{key}: {first}".rstrip())
        lines += [f" {line}" if line else " ." for line in rest]
    return "\n".join(lines) + "\n"


def _write_deb_index(
    folder: Path, carried: Sequence[CarriedFile], digests: dict[str, dict[str, str]], epoch: int
) -> None:
    stanzas = []
    for c in sorted(carried, key=lambda c: (c.package.name, c.package.version)):
        fields = {k: v for k, v in read_control(folder / c.path).items() if k not in _DEB_TAIL}
        sums = digests[c.path]
        fields.update(
            {
                "Filename": f"./{c.path}",
                "Size": str(c.size),
                "MD5sum": sums["md5"],
                "SHA1": sums["sha1"],
                "SHA256": sums["sha256"],
            }
        )
        stanzas.append(_control_stanza(fields))
    packages = "\n".join(stanzas).encode()
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=epoch) as gz:  # reproducible
        gz.write(packages)
    indexes = {"Packages": packages, "Packages.gz": packed.getvalue()}
    for name, data in indexes.items():
        (folder / name).write_bytes(data)
    date = datetime.fromtimestamp(epoch, UTC).strftime("%a, %d %b %Y %H:%M:%S UTC")
    release = ["Origin: Livesmith", "Label: Livesmith carried packages", f"Date: {date}"]
    for field, algorithm in (("MD5Sum", "md5"), ("SHA1", "sha1"), ("SHA256", "sha256")):
        release.append(f"{field}:")
        for name, data in indexes.items():
            release.append(f" {hashlib.new(algorithm, data).hexdigest()} {len(data):>8} {name}")
    (folder / "Release").write_text("\n".join(release) + "\n")


# -- Arch --------------------------------------------------------------------------------------


def _write_arch_database(folder: Path, carried: Sequence[CarriedFile], epoch: int) -> None:
    packed = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=packed, mode="wb", mtime=epoch) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        for c in sorted(carried, key=lambda c: (c.package.name, c.package.version)):
            info = read_pkginfo(folder / c.path)
            where = str(folder / c.path)
            entry = (
                f"{check_file_name_part(c.package.name, 'name', where)}-"
                f"{check_file_name_part(c.package.version, 'version', where)}"
            )
            fields: list[tuple[str, list[str]]] = [("FILENAME", [c.path])]
            for key, source in _ARCH_DESC:
                values = info.get(source, [])
                if values:
                    fields.append((key, values))
                if key == "DESC":
                    fields += [("CSIZE", [str(c.size)]), ("SHA256SUM", [c.sha256])]
            desc = "".join(
                f"%{key}%\n" + "".join(f"{v}\n" for v in values) + "\n" for key, values in fields
            ).encode()
            _add_tar_dir(tar, entry, epoch)
            _add_tar_file(tar, f"{entry}/desc", desc, epoch)
    database = folder / f"{ARCH_REPO}.db.tar.gz"
    database.write_bytes(packed.getvalue())
    # pacman downloads `<repo>.db`; repo-add makes it a symlink to the tarball.
    (folder / f"{ARCH_REPO}.db").symlink_to(database.name)


def _add_tar_dir(tar: tarfile.TarFile, name: str, epoch: int) -> None:
    member = tarfile.TarInfo(name)
    member.type, member.mode, member.mtime = tarfile.DIRTYPE, 0o755, epoch
    tar.addfile(member)


def _add_tar_file(tar: tarfile.TarFile, name: str, data: bytes, epoch: int) -> None:
    member = tarfile.TarInfo(name)
    member.size, member.mode, member.mtime = len(data), 0o644, epoch
    tar.addfile(member, io.BytesIO(data))


# -- glaucus -----------------------------------------------------------------------------------


def _glaucus_archive_name(pkg: PackageInfo) -> str:
    return f"{pkg.name}-{pkg.version}.tar.zst" if pkg.version else f"{pkg.name}.tar.zst"


def _write_glaucus_tree(
    folder: Path, carried: Sequence[CarriedFile], digests: dict[str, dict[str, str]]
) -> None:
    for c in carried:
        pkg_folder = _inside(folder, c.path, c.package).parent
        source_info = c.package.file.parent / "info" if c.package.file else None
        if source_info is not None and source_info.is_file():
            shutil.copyfile(source_info, pkg_folder / "info")
        else:
            lines = [f"ver = {json.dumps(c.package.version)}"]
            if c.package.depends:
                lines.append(f"run = {json.dumps(' '.join(c.package.depends))}")
            if c.package.description:
                lines.append(f"description = {json.dumps(c.package.description)}")
            (pkg_folder / "info").write_text("\n".join(lines) + "\n")
        name = Path(c.path).name
        (pkg_folder / "sum").write_text(f"{digests[c.path]['xxh128']}  {name}\n")
