"""Arch-style packages: `*.pkg.tar.{zst,xz,gz}` with a `.PKGINFO`, optionally a repo database.

`.PKGINFO` (written by makepkg) holds `key = value` lines: pkgname, pkgver, pkgdesc, size
(installed bytes), and repeatable depend / provides / conflict / replaces, with version
constraints such as `glibc>=2.3`. A repo database (`<repo>.db.tar.*`, made by repo-add)
gives the same per package in `desc` files, plus %SHA256SUM% of the package file.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from app.errors import InputError
from app.packages.archive import (
    INDEX_LIMIT,
    METADATA_LIMIT,
    METADATA_TAR_LIMIT,
    DamagedArchive,
    open_stream,
    size_text,
)
from app.packages.model import (
    FolderSource,
    PackageInfo,
    SourceKind,
    check_inside_folder,
    member_name,
    strip_constraint,
)

PACKAGE_SUFFIXES = (".pkg.tar.zst", ".pkg.tar.xz", ".pkg.tar.gz", ".pkg.tar")
# Metadata members at the top of an Arch package; they are not installed.
METADATA_MEMBERS = frozenset({".PKGINFO", ".BUILDINFO", ".MTREE", ".INSTALL", ".CHANGELOG"})


def is_package_file(path: Path) -> bool:
    return path.name.endswith(PACKAGE_SUFFIXES) and not path.name.endswith(".sig")


def is_database_file(path: Path) -> bool:
    name = path.name
    return ".db.tar." in name or name.endswith((".db", ".db.tar"))


def parse_pkginfo(text: str) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or " = " not in line:
            continue
        key, value = line.split(" = ", 1)
        fields.setdefault(key.strip(), []).append(value.strip())
    return fields


def parse_desc(text: str) -> dict[str, list[str]]:
    """repo-add `desc`/`depends` files: %KEY% lines followed by values, blank-separated."""
    fields: dict[str, list[str]] = {}
    key = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("%") and line.endswith("%") and len(line) > 2:
            key = line.strip("%")
            fields.setdefault(key, [])
        elif not line:
            key = None
        elif key:
            fields[key].append(line)
    return fields


def _names(values: list[str]) -> tuple[str, ...]:
    return tuple(n for n in (strip_constraint(v) for v in values) if n)


def _first(fields: dict[str, list[str]], key: str, default: str = "") -> str:
    return fields.get(key, [default])[0] if fields.get(key) else default


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def read_pkginfo(path: Path) -> dict[str, list[str]]:
    """The .PKGINFO of a package file (read from the start of the stream only)."""
    try:
        with (
            open(path, "rb") as raw,
            open_stream(raw, path.name) as stream,
            tarfile.open(fileobj=stream, mode="r|") as tar,
        ):
            for count, member in enumerate(tar):
                if member_name(member.name) == ".PKGINFO" and member.isfile():
                    if member.size > METADATA_LIMIT:
                        raise InputError(
                            f"its .PKGINFO has {size_text(member.size)}, more "
                            f"than the {size_text(METADATA_LIMIT)} allowed",
                            where=str(path),
                        )
                    data = tar.extractfile(member)
                    assert data is not None
                    return parse_pkginfo(data.read().decode("utf-8", "replace"))
                # makepkg writes it first; do not read (decompress) a whole package.
                if count > 16 or member.offset_data + member.size > METADATA_TAR_LIMIT:
                    break
    except (DamagedArchive, tarfile.TarError, EOFError) as exc:
        raise InputError(f"the package is damaged ({exc})", where=str(path)) from exc
    raise InputError("not an Arch package: no .PKGINFO at its start", where=str(path))


def info_from_pkginfo(fields: dict[str, list[str]], path: Path) -> PackageInfo:
    name = _first(fields, "pkgname")
    if not name:
        raise InputError(".PKGINFO has no pkgname", where=str(path))
    return PackageInfo(
        name=name,
        version=_first(fields, "pkgver"),
        size=path.stat().st_size,
        installed_size=_int(_first(fields, "size")),
        description=_first(fields, "pkgdesc"),
        depends=_names(fields.get("depend", [])),
        provides=_names(fields.get("provides", [])),
        conflicts=_names(fields.get("conflict", [])),
        file=path,
        checksum=None,
        kind=SourceKind.ARCH,
    )


def info_from_desc(fields: dict[str, list[str]], path: Path) -> PackageInfo:
    sha256 = _first(fields, "SHA256SUM").lower()
    return PackageInfo(
        name=_first(fields, "NAME"),
        version=_first(fields, "VERSION"),
        size=path.stat().st_size,
        installed_size=_int(_first(fields, "ISIZE")),
        description=_first(fields, "DESC"),
        depends=_names(fields.get("DEPENDS", [])),
        provides=_names(fields.get("PROVIDES", [])),
        conflicts=_names(fields.get("CONFLICTS", [])),
        file=path,
        checksum=f"sha256:{sha256}" if sha256 else None,
        kind=SourceKind.ARCH,
    )


def read_database(db: Path) -> list[dict[str, list[str]]]:
    """Every package entry of a repo database (desc and depends merged)."""
    entries: dict[str, dict[str, list[str]]] = {}
    try:
        with (
            open(db, "rb") as raw,
            open_stream(raw, db.name) as stream,
            tarfile.open(fileobj=stream, mode="r|") as tar,
        ):
            for member in tar:
                # Checked before the member is read or skipped, which decompresses it.
                if member.offset_data + member.size > INDEX_LIMIT:
                    raise InputError(
                        f"the repository database is larger than "
                        f"{size_text(INDEX_LIMIT)} (at member {member.name!r})",
                        where=str(db),
                    )
                parts = member_name(member.name).split("/")
                if len(parts) == 2 and parts[1] in ("desc", "depends") and member.isfile():
                    if member.size > METADATA_LIMIT:
                        raise InputError(
                            f"its member {member.name!r} has "
                            f"{size_text(member.size)}, more than the "
                            f"{size_text(METADATA_LIMIT)} allowed",
                            where=str(db),
                        )
                    data = tar.extractfile(member)
                    assert data is not None
                    entry = entries.setdefault(parts[0], {})
                    entry.update(parse_desc(data.read().decode("utf-8", "replace")))
    except (DamagedArchive, tarfile.TarError, EOFError) as exc:
        raise InputError(f"the repository database is damaged ({exc})", where=str(db)) from exc
    return list(entries.values())


class ArchSource(FolderSource):
    def _scan(self) -> list[PackageInfo]:
        found: dict[str, PackageInfo] = {}
        for db in sorted(p for p in self.folder.iterdir() if is_database_file(p)):
            if not db.is_file():
                continue
            for entry in read_database(db):
                file = self.folder / _first(entry, "FILENAME")
                check_inside_folder(
                    file, self.folder, f"FILENAME of {_first(entry, 'NAME')!r}", str(db)
                )
                if _first(entry, "NAME") and file.is_file() and file.name not in found:
                    found[file.name] = info_from_desc(entry, file)
        for path in sorted(self.folder.iterdir()):
            if is_package_file(path) and path.is_file() and path.name not in found:
                found[path.name] = info_from_pkginfo(read_pkginfo(path), path)
        return list(found.values())
