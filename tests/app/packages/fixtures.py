"""Builders of real package sources in temporary folders, from real content.

Every format the app reads can be made here: a glaucus tree, Arch-style packages (with an
optional repo database), a folder of tarballs and Debian packages (built by `dpkg-deb
--build`, or in pure Python when an entry cannot exist on disk, e.g. a device node).
The busybox binary comes from the real Debian busybox-static package.

    pkg = busybox_package()                       # bin/busybox (real) + bin/sh -> busybox
    repo = make_glaucus_repo(tmp_path, [pkg, FixturePackage("hello", entries=(...))])
    folder = make_arch_folder(tmp_path, [pkg], with_database=True)  # .INSTALL: arch_install
    folder = make_tarball_folder(tmp_path, [pkg], compression="xz")
    folder = make_deb_folder(tmp_path, [pkg])      # dpkg-deb --build
    folder = real_deb_folder(tmp_path, ["busybox-static"])

Entries are written with tarfile, so owners, setuid bits and device nodes are exactly as
declared whoever runs the tests; malicious members (`../evil`, absolute paths, symlinks
followed by files "through" them) can be declared the same way.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import xxhash
import zstandard

from tests.support.debian import busybox_static, debian_package

MTIME = 1_700_000_000


@dataclass(frozen=True)
class Entry:
    path: str
    kind: str = "file"  # file, dir, symlink, hardlink, char, block, fifo
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    target: str = ""
    major: int = 0
    minor: int = 0
    uname: str = "root"
    gname: str = "root"


def file(
    path: str, data: bytes | str = b"", mode: int = 0o644, uid: int = 0, gid: int = 0
) -> Entry:
    return Entry(path, "file", data.encode() if isinstance(data, str) else data, mode, uid, gid)


def directory(path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Entry:
    return Entry(path, "dir", mode=mode, uid=uid, gid=gid)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, "symlink", mode=0o777, target=target)


def hardlink(path: str, target: str) -> Entry:
    return Entry(path, "hardlink", target=target)


def device(path: str, kind: str, major: int, minor: int, mode: int = 0o666) -> Entry:
    return Entry(path, {"c": "char", "b": "block"}[kind], mode=mode, major=major, minor=minor)


def fifo(path: str, mode: int = 0o644) -> Entry:
    return Entry(path, "fifo", mode=mode)


@dataclass(frozen=True)
class FixturePackage:
    name: str
    version: str = "1.0"
    entries: tuple[Entry, ...] = ()
    depends: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    description: str = ""
    auto_dirs: bool = True  # add entries for missing parent directories (like real packages)
    extra: dict[str, str] = field(default_factory=dict)  # more control/.PKGINFO fields
    arch_install: str = ""  # an Arch package's .INSTALL scriptlets (pre_install() { ...; } ...)

    @property
    def desc(self) -> str:
        return self.description or f"{self.name} test package"


def busybox_package(
    name: str = "busybox",
    version: str = "1.35.0",
    *,
    applets: Sequence[str] = ("sh", "ls"),
    **kwargs,
) -> FixturePackage:  # type: ignore[no-untyped-def]
    """The real static busybox binary at /bin/busybox plus applet symlinks to it."""
    entries = [file("bin/busybox", busybox_static().read_bytes(), 0o755)]
    entries += [symlink(f"bin/{a}", "busybox") for a in applets]
    kwargs.setdefault("description", "Tiny utilities in one static binary")
    return FixturePackage(name, version, tuple(entries), **kwargs)


def text_package(
    name: str, version: str = "1.0", files: dict[str, str] | None = None, **kwargs
) -> FixturePackage:  # type: ignore[no-untyped-def]
    """A small package of text files (default: /usr/share/<name>/README)."""
    files = files or {f"usr/share/{name}/README": f"{name} {version}\n"}
    return FixturePackage(name, version, tuple(file(p, d) for p, d in files.items()), **kwargs)


# -- tar ---------------------------------------------------------------------------------
def _tarinfo(entry: Entry, prefix: str) -> tuple[tarfile.TarInfo, bytes | None]:
    if entry.path.startswith("/"):
        prefix = ""  # an absolute member stays absolute (malicious packages)
    info = tarfile.TarInfo(prefix + entry.path + ("/" if entry.kind == "dir" else ""))
    info.mode, info.uid, info.gid = entry.mode, entry.uid, entry.gid
    info.uname, info.gname, info.mtime = entry.uname, entry.gname, MTIME
    data = None
    if entry.kind == "file":
        info.type, info.size, data = tarfile.REGTYPE, len(entry.data), entry.data
    elif entry.kind == "dir":
        info.type = tarfile.DIRTYPE
    elif entry.kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, entry.target
    elif entry.kind == "hardlink":
        info.type, info.linkname = tarfile.LNKTYPE, prefix + entry.target
    elif entry.kind in ("char", "block"):
        info.type = tarfile.CHRTYPE if entry.kind == "char" else tarfile.BLKTYPE
        info.devmajor, info.devminor = entry.major, entry.minor
    elif entry.kind == "fifo":
        info.type = tarfile.FIFOTYPE
    else:
        raise ValueError(entry.kind)
    return info, data


def _with_parents(entries: Iterable[Entry]) -> list[Entry]:
    result: list[Entry] = []
    seen: set[str] = set()
    for entry in entries:
        parts = entry.path.strip("/").split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent not in seen and parent not in ("", ".", ".."):
                seen.add(parent)
                result.append(directory(parent))
        seen.add(entry.path.strip("/"))
        result.append(entry)
    return result


def tar_bytes(
    entries: Iterable[Entry],
    *,
    prefix: str = "",
    auto_dirs: bool = True,
    first: Iterable[tuple[str, bytes]] = (),
) -> bytes:
    """An uncompressed tar (GNU format) of `entries`; `first` are plain files put before."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in first:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), MTIME, 0o644
            tar.addfile(info, io.BytesIO(data))
        for entry in _with_parents(entries) if auto_dirs else list(entries):
            info, data = _tarinfo(entry, prefix)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def compress(data: bytes, fmt: str) -> bytes:
    if fmt == "zst":
        return zstandard.ZstdCompressor(level=3).compress(data)
    if fmt == "xz":
        return lzma.compress(data, preset=1)
    if fmt == "gz":
        return gzip.compress(data, compresslevel=1, mtime=0)
    if fmt == "":
        return data
    raise ValueError(fmt)


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut the file to `keep` of its size (a damaged download)."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(int(size * keep))
    return path


# -- glaucus -----------------------------------------------------------------------------
def xxhsum_h2(path: Path) -> str:
    """`xxhsum -H2 <file>` output for the file (the real program; Python if it is absent)."""
    tool = shutil.which("xxhsum")
    if tool:
        out = subprocess.run(
            [tool, "-H2", path.name], cwd=path.parent, capture_output=True, text=True, check=True
        )
        return out.stdout
    return f"{xxhash.xxh3_128_hexdigest(path.read_bytes())}  {path.name}\n"


def make_glaucus_repo(
    tmp: Path, packages: Sequence[FixturePackage], *, name: str = "glaucus", sums: bool = True
) -> Path:
    """<tmp>/<name>/<pkg>/{info, <pkg>-<ver>.tar.zst, sum} as glaucus lays them out."""
    repo = tmp / name
    for pkg in packages:
        folder = repo / pkg.name
        folder.mkdir(parents=True, exist_ok=True)
        lines = [f"ver='{pkg.version}'", f"url='https://example.org/{pkg.name}.tar.xz'"]
        if pkg.depends:
            lines.append(f"run='{' '.join(pkg.depends)}'")
        lines += [f"{k}='{v}'" for k, v in pkg.extra.items()]
        (folder / "info").write_text("# generated by the tests\n\n" + "\n".join(lines) + "\n")
        archive = folder / f"{pkg.name}-{pkg.version}.tar.zst"
        archive.write_bytes(
            compress(tar_bytes(pkg.entries, prefix="./", auto_dirs=pkg.auto_dirs), "zst")
        )
        if sums:
            (folder / "sum").write_text(xxhsum_h2(archive))
    return repo


# -- Arch --------------------------------------------------------------------------------
def pkginfo_text(pkg: FixturePackage, installed_size: int) -> str:
    lines = [
        "# Generated by the livesmith tests",
        f"pkgname = {pkg.name}",
        f"pkgbase = {pkg.name}",
        f"pkgver = {pkg.version}-1",
        f"pkgdesc = {pkg.desc}",
        "url = https://example.org",
        f"builddate = {MTIME}",
        "packager = tests",
        f"size = {installed_size}",
        "arch = x86_64",
        "license = GPL-2.0-only",
    ]
    lines += [f"depend = {d}" for d in pkg.depends]
    lines += [f"provides = {p}" for p in pkg.provides]
    lines += [f"conflict = {c}" for c in pkg.conflicts]
    lines += [f"{k} = {v}" for k, v in pkg.extra.items()]
    return "\n".join(lines) + "\n"


def arch_filename(pkg: FixturePackage, compression: str = "zst") -> str:
    return f"{pkg.name}-{pkg.version}-1-x86_64.pkg.tar.{compression}"


def make_arch_package(folder: Path, pkg: FixturePackage, compression: str = "zst") -> Path:
    size = sum(len(e.data) for e in pkg.entries)
    metadata = [(".PKGINFO", pkginfo_text(pkg, size).encode())]
    if pkg.arch_install:
        metadata.append((".INSTALL", pkg.arch_install.encode()))
    data = tar_bytes(pkg.entries, auto_dirs=pkg.auto_dirs, first=metadata)
    path = folder / arch_filename(pkg, compression)
    path.write_bytes(compress(data, compression))
    return path


def make_arch_folder(
    tmp: Path,
    packages: Sequence[FixturePackage],
    *,
    name: str = "arch",
    with_database: bool = False,
    compression: str = "zst",
) -> Path:
    """Arch-style packages; with_database adds `<name>.db.tar.gz` (+ `<name>.db` link) the
    way repo-add writes it, including each file's SHA-256."""
    folder = tmp / name
    folder.mkdir(parents=True, exist_ok=True)
    descs = []
    for pkg in packages:
        path = make_arch_package(folder, pkg, compression)
        fields = {
            "FILENAME": [path.name],
            "NAME": [pkg.name],
            "BASE": [pkg.name],
            "VERSION": [f"{pkg.version}-1"],
            "DESC": [pkg.desc],
            "CSIZE": [str(path.stat().st_size)],
            "ISIZE": [str(sum(len(e.data) for e in pkg.entries))],
            "SHA256SUM": [hashlib.sha256(path.read_bytes()).hexdigest()],
            "ARCH": ["x86_64"],
            "DEPENDS": list(pkg.depends),
            "PROVIDES": list(pkg.provides),
            "CONFLICTS": list(pkg.conflicts),
        }
        text = "".join(
            f"%{k}%\n" + "".join(f"{v}\n" for v in vals) + "\n"
            for k, vals in fields.items()
            if vals
        )
        descs.append((f"{pkg.name}-{pkg.version}-1", text))
    if with_database:
        entries = []
        for dirname, text in descs:
            entries += [directory(dirname), file(f"{dirname}/desc", text)]
        db = folder / f"{name}.db.tar.gz"
        db.write_bytes(compress(tar_bytes(entries, auto_dirs=False), "gz"))
        (folder / f"{name}.db").symlink_to(db.name)
    return folder


# -- tarballs ----------------------------------------------------------------------------
def make_tarball_folder(
    tmp: Path,
    packages: Sequence[FixturePackage],
    *,
    name: str = "tarballs",
    compression: str | Sequence[str] = "zst",
) -> Path:
    """<name>-<version>.tar.<compression> per package (one format, or one per package)."""
    folder = tmp / name
    folder.mkdir(parents=True, exist_ok=True)
    formats = [compression] * len(packages) if isinstance(compression, str) else list(compression)
    for pkg, fmt in zip(packages, formats, strict=True):
        data = tar_bytes(pkg.entries, prefix="./", auto_dirs=pkg.auto_dirs)
        (folder / f"{pkg.name}-{pkg.version}.tar.{fmt}").write_bytes(compress(data, fmt))
    return folder


# -- Debian ------------------------------------------------------------------------------
def control_text(pkg: FixturePackage, installed_kib: int = 1) -> str:
    fields = {
        "Package": pkg.name,
        "Version": pkg.version,
        "Architecture": "amd64",
        "Maintainer": "Livesmith Tests <tests@example.org>",
        "Installed-Size": str(installed_kib),
    }
    if pkg.depends:
        fields["Depends"] = ", ".join(pkg.depends)
    if pkg.provides:
        fields["Provides"] = ", ".join(pkg.provides)
    if pkg.conflicts:
        fields["Conflicts"] = ", ".join(pkg.conflicts)
    fields.update(pkg.extra)
    fields["Description"] = pkg.desc
    return "".join(f"{k}: {v}\n" for k, v in fields.items())


def deb_filename(pkg: FixturePackage) -> str:
    return f"{pkg.name}_{pkg.version.replace(':', '%3a')}_amd64.deb"


def ar_archive(members: Sequence[tuple[str, bytes]]) -> bytes:
    """An ar archive (the container of a .deb) of (name, data) members."""
    out = bytearray(b"!<arch>\n")
    for name, data in members:
        header = f"{name:<16}{MTIME:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n"
        out += header.encode("ascii") + data + (b"\n" if len(data) % 2 else b"")
    return bytes(out)


def build_deb(folder: Path, pkg: FixturePackage, *, data_compression: str = "xz") -> Path:
    """A .deb written in Python (any entry, e.g. device nodes, as declared)."""
    installed = max(1, sum(len(e.data) for e in pkg.entries) // 1024)
    control = tar_bytes(
        [file("control", control_text(pkg, installed))], prefix="./", auto_dirs=False
    )
    data = tar_bytes(pkg.entries, prefix="./", auto_dirs=pkg.auto_dirs)
    suffix = f".{data_compression}" if data_compression else ""
    path = folder / deb_filename(pkg)
    path.write_bytes(
        ar_archive(
            [
                ("debian-binary", b"2.0\n"),
                ("control.tar.xz", compress(control, "xz")),
                (f"data.tar{suffix}", compress(data, data_compression)),
            ]
        )
    )
    return path


def build_deb_with_dpkg(folder: Path, pkg: FixturePackage, work: Path) -> Path:
    """A .deb built by `dpkg-deb --root-owner-group --build` from a staged directory.
    Only files, directories, symlinks and hard links (what can exist on disk)."""
    stage = work / f"stage-{pkg.name}"
    (stage / "DEBIAN").mkdir(parents=True)
    for entry in pkg.entries:
        target = stage / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if entry.kind == "file":
            target.write_bytes(entry.data)
            target.chmod(entry.mode)
        elif entry.kind == "dir":
            target.mkdir(exist_ok=True)
            target.chmod(entry.mode)
        elif entry.kind == "symlink":
            target.symlink_to(entry.target)
        elif entry.kind == "hardlink":
            os.link(stage / entry.target, target)
        else:
            raise ValueError(f"dpkg-deb cannot package a {entry.kind} made without root")
        os.utime(target, (MTIME, MTIME), follow_symlinks=False)
    installed = max(1, sum(len(e.data) for e in pkg.entries) // 1024)
    (stage / "DEBIAN" / "control").write_text(control_text(pkg, installed))
    out = folder / deb_filename(pkg)
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(MTIME)}
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zxz", "-z1", "--build", str(stage), str(out)],
        check=True,
        capture_output=True,
        env=env,
    )
    shutil.rmtree(stage)
    return out


def make_deb_folder(
    tmp: Path,
    packages: Sequence[FixturePackage],
    *,
    name: str = "debs",
    builder: str = "auto",
    with_index: bool = False,
) -> Path:
    """.deb files; builder "dpkg-deb", "python", or "auto" (dpkg-deb unless an entry cannot
    exist on disk). with_index writes a flat-repository `Packages` file with SHA256 sums."""
    folder = tmp / name
    folder.mkdir(parents=True, exist_ok=True)
    work = tmp / f".{name}-work-{time.monotonic_ns()}"
    for pkg in packages:
        on_disk = all(e.kind in ("file", "dir", "symlink", "hardlink") for e in pkg.entries)
        if builder == "dpkg-deb" or (builder == "auto" and on_disk and pkg.auto_dirs):
            build_deb_with_dpkg(folder, pkg, work)
        else:
            build_deb(folder, pkg)
    shutil.rmtree(work, ignore_errors=True)
    if with_index:
        write_packages_index(folder)
    return folder


def write_packages_index(folder: Path) -> Path:
    """A flat `Packages` index like `dpkg-scanpackages` writes (control + file fields)."""
    from app.packages.deb import read_control

    stanzas = []
    for deb in sorted(folder.glob("*.deb")):
        fields = read_control(deb)
        body = "".join(f"{k}: {v}\n" for k, v in fields.items() if k != "Description")
        data = deb.read_bytes()
        body += (
            f"Filename: ./{deb.name}\nSize: {len(data)}\n"
            f"SHA256: {hashlib.sha256(data).hexdigest()}\n"
            f"Description: {fields.get('Description', '')}\n"
        )
        stanzas.append(body)
    index = folder / "Packages"
    index.write_text("\n".join(stanzas))
    return index


def real_deb_folder(tmp: Path, names: Sequence[str], *, name: str = "real-debs") -> Path:
    """A folder with real Debian packages (from the shared test download cache)."""
    folder = tmp / name
    folder.mkdir(parents=True, exist_ok=True)
    for pkg in names:
        deb = debian_package(pkg)
        shutil.copyfile(deb, folder / deb.name)
    return folder


def local_apt(tmp: Path, repo_uri: str, *, name: str = "apt") -> Path:
    """An apt configuration (the file to put in $APT_CONFIG) that sees only the flat
    repository at `repo_uri` (e.g. `copy:<make_deb_folder(..., with_index=True)>` or an
    http:// URL), with its own state, so apt runs offline and without root; `apt-get update`
    has been run."""
    root = tmp / name
    empty = root / "empty"
    for folder in (empty, root / "state" / "lists" / "partial", root / "cache"):
        folder.mkdir(parents=True, exist_ok=True)
    (root / "status").touch()
    (root / "sources.list").write_text(f"deb [trusted=yes] {repo_uri} ./\n")
    config = root / "apt.conf"
    # Dir::Etc::Parts too: the host's apt.conf.d may ask for index formats we do not serve.
    settings = {
        "Dir::Etc::SourceList": root / "sources.list",
        "Dir::Etc::SourceParts": empty,
        "Dir::Etc::Parts": empty,
        "Dir::Etc::Preferences": empty / "none",
        "Dir::Etc::PreferencesParts": empty,
        "Dir::State": root / "state",
        "Dir::State::status": root / "status",
        "Dir::Cache": root / "cache",
    }
    config.write_text("".join(f'{key} "{value}";\n' for key, value in settings.items()))
    subprocess.run(
        ["apt-get", "update", "-q"],
        env={**os.environ, "APT_CONFIG": str(config)},
        check=True,
        capture_output=True,
    )
    return config
