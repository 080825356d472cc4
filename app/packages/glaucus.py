"""glaucus package trees: `<repo>/<name>/info` beside `<name>-<ver>.tar.zst` and `sum`.

`info` is what glaucus's package manager (rad) reads: one `key='value'` (or "value") per
line, which is also valid TOML, e.g.

    ver='1.37.0'
    url='https://busybox.net/downloads/busybox-1.37.0.tar.bz2'
    run='musl zstd'

`run` lists run-time dependencies separated by spaces (a TOML array is accepted too).
`sum` holds the XXH3-128 of the tarball as `xxhsum -H2` prints it: `<32 hex>  <file name>`
(or the BSD form `XXH128 (<file name>) = <32 hex>`). rad names a package without a version
(no `url`) `<name>.tar.zst`.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from app.errors import InputError
from app.packages.archive import METADATA_LIMIT, size_text
from app.packages.model import FolderSource, PackageInfo, SourceKind, check_file_name_part

_GNU_LINE = re.compile(r"^\\?([0-9a-fA-F]{32})\s+\*?(.*)$")
_BSD_LINE = re.compile(r"^XXH128 \((.*)\) = ([0-9a-fA-F]{32})$")


def parse_info(text: str, where: str) -> dict[str, object]:
    """The keys of an `info` file; InputError naming the file and line if it is malformed."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        pass
    # rad itself accepts a little more than TOML (e.g. a value repeated); read it its way.
    values: dict[str, object] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        value = value.strip()
        if not sep or len(value) < 2 or value[0] not in "'\"" or value[-1] != value[0]:
            shown = raw if len(raw) <= 80 else raw[:80] + "…"  # the error must stay readable
            raise InputError(f"line {number} is not key='value': {shown!r}", where=where)
        values[key.strip()] = value[1:-1]
    return values


def parse_sum(text: str, filename: str) -> str | None:
    """The XXH3-128 hex digest for `filename` from `xxhsum -H2` output (GNU or BSD form)."""
    fallback = None
    for line in text.splitlines():
        line = line.strip()
        gnu, bsd = _GNU_LINE.match(line), _BSD_LINE.match(line)
        if gnu:
            digest, name = gnu.group(1), gnu.group(2)
        elif bsd:
            name, digest = bsd.group(1), bsd.group(2)
        elif re.fullmatch(r"[0-9a-fA-F]{32}", line):
            digest, name = line, ""
        else:
            continue
        if Path(name).name == filename:
            return digest.lower()
        fallback = fallback or digest.lower()
    return fallback


def _words(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return ()


def read_small_text(path: Path) -> str:
    """The text of a metadata file (`info`, `sum`); InputError if it is implausibly big."""
    with open(path, "rb") as f:
        data = f.read(METADATA_LIMIT + 1)
    if len(data) > METADATA_LIMIT:
        raise InputError(
            f"the file is larger than {size_text(METADATA_LIMIT)}; not package information",
            where=str(path),
        )
    return data.decode("utf-8", "replace")


class GlaucusSource(FolderSource):
    def _scan(self) -> list[PackageInfo]:
        found = []
        for info in sorted(self.folder.glob("*/info")):
            if info.is_file():
                found.append(self._read(info.parent))
        return found

    def _read(self, folder: Path) -> PackageInfo:
        info_path = folder / "info"
        info = parse_info(read_small_text(info_path), str(info_path))
        # Both end up in file names here and in the carried tree: refuse path tricks.
        name = check_file_name_part(str(info.get("nom") or folder.name), "name", str(info_path))
        version = check_file_name_part(str(info.get("ver", "")), "version", str(info_path))
        archive = folder / f"{name}-{version}.tar.zst"
        if not archive.is_file() and (folder / f"{name}.tar.zst").is_file():
            archive = folder / f"{name}.tar.zst"
        checksum = None
        sum_path = folder / "sum"
        if sum_path.is_file():
            digest = parse_sum(read_small_text(sum_path), archive.name)
            if digest is None:
                raise InputError(
                    "no XXH3-128 sum found (expected `xxhsum -H2` output)", where=str(sum_path)
                )
            checksum = f"xxh128:{digest}"
        description = str(info.get("description") or "")
        return PackageInfo(
            name=name,
            version=version,
            size=archive.stat().st_size if archive.is_file() else 0,
            installed_size=None,
            description=description,
            depends=_words(info.get("run")),
            provides=(),
            conflicts=(),
            file=archive if archive.is_file() else None,
            checksum=checksum,
            kind=SourceKind.GLAUCUS,
        )
