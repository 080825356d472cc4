"""Debian packages in pure Python: the ar container, control fields and the data tarball.

A .deb is an ar archive: `debian-binary`, `control.tar[.xz|.zst|.gz]`, `data.tar[.*]`.
No dpkg is needed to read one. This module also holds the folder-of-.deb source, which
uses a flat `Packages` index (with SHA256 sums) when the folder has one.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import lzma
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from app.errors import InputError
from app.packages.archive import (
    INDEX_LIMIT,
    METADATA_LIMIT,
    METADATA_TAR_LIMIT,
    CountingReader,
    DamagedArchive,
    open_stream,
    size_text,
)
from app.packages.model import (
    FolderSource,
    PackageInfo,
    SourceKind,
    SourceSpec,
    alternatives,
    check_inside_folder,
    has_constraint,
    member_name,
    strip_constraint,
)

AR_MAGIC = b"!<arch>\n"
AR_HEADER = 60


@dataclass(frozen=True)
class ArMember:
    name: str
    offset: int  # of the member's data in the file
    size: int


def ar_members(f: BinaryIO, total: int, what: str) -> list[ArMember]:
    """Members of an ar archive; DamagedArchive if a header or member runs past the end."""
    f.seek(0)
    if f.read(len(AR_MAGIC)) != AR_MAGIC:
        raise DamagedArchive(f"{what} is not a Debian package (no ar archive signature)")
    members = []
    pos = len(AR_MAGIC)
    while pos < total:
        f.seek(pos)
        header = f.read(AR_HEADER)
        if len(header) == 0:
            break
        if len(header) < AR_HEADER or header[58:60] != b"`\n":
            raise DamagedArchive(f"truncated or corrupt ar header at byte {pos} of {what}")
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        # Only decimal digits: int() also takes '-60', '+1', '1_0' or ' 1 ', and a negative
        # size would never move past this header.
        size_field = header[48:58].rstrip(b" ")
        if not size_field or not all(0x30 <= b <= 0x39 for b in size_field):
            raise DamagedArchive(f"corrupt ar member size {size_field!r} at byte {pos} of {what}")
        size = int(size_field)
        start = pos + AR_HEADER
        if start + size > total:
            raise DamagedArchive(
                f"truncated: member {name} of {what} needs {size} bytes "
                f"at byte {start}, the file has {total} bytes"
            )
        members.append(ArMember(name, start, size))
        pos = start + size + (size & 1)
    return members


def _member(members: list[ArMember], prefix: str, what: str) -> ArMember:
    for m in members:
        if m.name == prefix or m.name.startswith(prefix + "."):
            return m
    raise DamagedArchive(f"{what} has no {prefix} member")


@contextlib.contextmanager
def open_member_tar(
    path: Path, prefix: str, on_read: Callable[[int], None] | None = None, *, threaded: bool = False
) -> Iterator[tarfile.TarFile]:
    """Stream the tarball `prefix` (control.tar / data.tar, any compression) of a .deb."""
    what = path.name
    with open(path, "rb") as f:
        total = f.seek(0, io.SEEK_END)
        member = _member(ar_members(f, total, what), prefix, what)
        f.seek(member.offset)
        counted = CountingReader(f, member.size, on_read)
        with open_stream(counted, f"{member.name} of {what}", threaded=threaded) as stream:
            try:
                with tarfile.open(fileobj=stream, mode="r|") as tar:
                    yield tar
            except tarfile.ReadError as exc:
                raise DamagedArchive(
                    f"corrupt or truncated {member.name} in {what}: {exc}"
                ) from exc


def parse_control(text: str) -> dict[str, str]:
    """One control stanza (RFC 822 style, continuation lines kept with newlines)."""
    fields: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        if line[0] in " \t" and key:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            key = key.strip()
            fields[key] = value.strip()
    return fields


def parse_stanzas(text: str) -> list[dict[str, str]]:
    stanzas, current = [], []
    for line in text.splitlines():
        if line.strip():
            current.append(line)
        elif current:
            stanzas.append(parse_control("\n".join(current)))
            current = []
    if current:
        stanzas.append(parse_control("\n".join(current)))
    return stanzas


def parse_relations(value: str, *, keep_versioned: bool = True) -> tuple[str, ...]:
    """'a (>= 1) | b, c:any' -> ('a | b', 'c'); versioned entries dropped if not keep_versioned."""
    result = []
    for group in value.split(","):
        names = []
        for alt in alternatives(group):
            if not keep_versioned and has_constraint(alt):
                continue
            name = strip_constraint(alt)
            if name:
                names.append(name)
        if names:
            result.append(" | ".join(names))
    return tuple(result)


def is_metapackage(fields: dict[str, str]) -> bool:
    summary = fields.get("Description", "").split("\n", 1)[0].lower()
    return (
        "meta-package" in summary
        or "metapackage" in summary
        or fields.get("Section", "").rpartition("/")[2] == "metapackages"
    )


def info_from_control(
    fields: dict[str, str], *, kind: SourceKind, file: Path | None, size: int
) -> PackageInfo:
    depends = parse_relations(fields.get("Pre-Depends", "")) + parse_relations(
        fields.get("Depends", "")
    )
    installed = fields.get("Installed-Size", "")
    sha256 = fields.get("SHA256", "").strip()
    return PackageInfo(
        name=fields.get("Package", "").strip(),
        version=fields.get("Version", "").strip(),
        size=size,
        installed_size=int(installed) * 1024 if installed.isdigit() else None,
        description=fields.get("Description", "").split("\n", 1)[0].strip(),
        depends=depends,
        provides=tuple(
            strip_constraint(p) for p in fields.get("Provides", "").split(",") if p.strip()
        ),
        # Versioned conflicts name other releases of a package, which one archive snapshot
        # never holds together with this one; without a version they are real conflicts.
        conflicts=parse_relations(fields.get("Conflicts", ""), keep_versioned=False),
        file=file,
        checksum=f"sha256:{sha256.lower()}" if sha256 else None,
        kind=kind,
        replaces=tuple(
            strip_constraint(p) for p in fields.get("Replaces", "").split(",") if p.strip()
        ),
        metapackage=is_metapackage(fields),
    )


def read_control(path: Path) -> dict[str, str]:
    """The control fields of the .deb at `path`; InputError if it is damaged."""
    try:
        with open_member_tar(path, "control.tar") as tar:
            for member in tar:
                # Checked before the member is read or skipped, which decompresses it.
                if member.offset_data + member.size > METADATA_TAR_LIMIT:
                    raise InputError(
                        f"its control.tar is larger than "
                        f"{size_text(METADATA_TAR_LIMIT)} (at member "
                        f"{member.name!r}); not a real package",
                        where=str(path),
                    )
                if member_name(member.name) == "control" and member.isfile():
                    if member.size > METADATA_LIMIT:
                        raise InputError(
                            f"its control file has {size_text(member.size)}, "
                            f"more than the {size_text(METADATA_LIMIT)} allowed",
                            where=str(path),
                        )
                    data = tar.extractfile(member)
                    assert data is not None
                    return parse_control(data.read().decode("utf-8", "replace"))
    except DamagedArchive as exc:
        raise InputError(f"the Debian package is damaged ({exc})", where=str(path)) from exc
    raise InputError("the Debian package has no control file", where=str(path))


def read_package(path: Path, kind: SourceKind = SourceKind.DEB) -> PackageInfo:
    fields = read_control(path)
    if not fields.get("Package"):
        raise InputError("the Debian package has no Package field", where=str(path))
    return info_from_control(fields, kind=kind, file=path, size=path.stat().st_size)


def _read_index(folder: Path) -> tuple[Path, list[dict[str, str]]]:
    """The flat-repository index of `folder` and its stanzas ((folder, []) if none)."""
    for name, opener in (
        ("Packages", open),
        ("Packages.gz", gzip.open),
        ("Packages.xz", lzma.open),
    ):
        index = folder / name
        if index.is_file():
            try:
                with opener(index, "rb") as f:
                    data = f.read(INDEX_LIMIT + 1)
            except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
                raise InputError(f"the package index is damaged ({exc})", where=str(index)) from exc
            if len(data) > INDEX_LIMIT:
                raise InputError(
                    f"the package index is larger than {size_text(INDEX_LIMIT)}", where=str(index)
                )
            return index, parse_stanzas(data.decode("utf-8", "replace"))
    return folder, []


class DebFolderSource(FolderSource):
    """A folder of .deb files, optionally with a flat-repository `Packages` index."""

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec)

    def _scan(self) -> list[PackageInfo]:
        found: dict[Path, PackageInfo] = {}
        index, stanzas = _read_index(self.folder)
        for stanza in stanzas:
            file = (self.folder / stanza.get("Filename", "")).resolve()
            check_inside_folder(
                file, self.folder, f"Filename of {stanza.get('Package', '')!r}", str(index)
            )
            if stanza.get("Package") and file.is_file():
                found[file] = info_from_control(
                    stanza, kind=SourceKind.DEB, file=file, size=file.stat().st_size
                )
        for path in sorted(self.folder.glob("*.deb")):
            if path.resolve() not in found and path.is_file():
                found[path.resolve()] = read_package(path)
        return list(found.values())


def write_flat_repository(debs: Iterable[Path], folder: Path) -> list[str]:
    """A flat repository of `debs` in `folder` for apt (what dpkg-scanpackages makes): a
    link to each file and a `Packages` index of their control stanzas with Filename, Size
    and SHA256. The debs stay where they are; the package names, in order."""
    folder.mkdir(parents=True, exist_ok=True)
    stanzas, names = [], []
    for deb in debs:
        fields = read_control(deb)
        if not fields.get("Package"):
            raise InputError("the Debian package has no Package field", where=str(deb))
        link = folder / deb.name
        link.unlink(missing_ok=True)
        link.symlink_to(deb.resolve())
        digest = hashlib.sha256()
        with deb.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        fields = {
            "Package": fields["Package"],
            **fields,
            "Filename": f"./{deb.name}",
            "Size": str(deb.stat().st_size),
            "SHA256": digest.hexdigest(),
        }
        # Continuation lines start with a blank, as in the control file.
        stanzas.append(
            "".join(f"{k}: {v.replace(chr(10), chr(10) + ' ')}\n" for k, v in fields.items())
        )
        names.append(fields["Package"])
    (folder / "Packages").write_text("\n".join(stanzas))
    return names
