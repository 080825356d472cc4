"""Debian and Ubuntu roots made by the distribution's own tooling: mmdebstrap.

Unpacking .deb files gives a tree, not a system: maintainer scripts, triggers, system users
and groups, alternatives, ldconfig and depmod never run. mmdebstrap runs them as Debian
does, and does so in two passes here so that no package code ever has the network:

1. download (network, no package code): `--variant=extract` resolves the same set as the
   real pass (Essential packages, apt, the selection and their dependencies), downloads what
   the shared package cache lacks and "unpacks" empty trees (a stand-in dpkg-deb); its
   package lists and .deb files are kept (`sync-out`).
2. install (no network): with those .deb files and the lists cut down to them synced in
   and `--skip=update`, apt finds everything it needs locally and dpkg runs every
   maintainer script in mmdebstrap's chroot.

Both passes run mmdebstrap in root mode inside new network (install pass only), mount and
PID namespaces made by util-linux `unshare`. As root that is all; as an ordinary user, a
new user namespace maps the user to root and their /etc/subuid range to ids 1-65535
(`--map-users=auto`), so maintainer scripts can chown as on a real system while nothing
they do reaches past the user's own rights, the host's files outside the chroot, or the
network. (mmdebstrap's own unshare mode would leave them the network.)

The result is a tar stream that goes straight from mmdebstrap's output through our own safe
extraction and manifest like any other package, so the rest of the pipeline does not change.
Memory: the whole build of `desktop` stays under 300 MB, tools included (see
tests/benchmarks/test_debian_build_bench.py). update-initramfs is diverted
while packages install (Livesmith makes its own initramfs) and restored afterwards.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from app.compose.assemble import assemble_root_stream
from app.compose.live.services import systemd_name, template_of
from app.compose.manifest import RootManifest
from app.errors import Problem, StageError
from app.packages.deb import parse_stanzas
from app.packages.model import PackageInfo, SourceKind
from app.procs import run_tool, tool_output
from app.reporter import Level, Reporter
from app.tools import find_tool, missing_tool_problems

# Diverted while packages install, restored before the root is packed: Livesmith makes its
# own initramfs, and the manual page index (man-db's trigger, a minute for a desktop) is
# rebuilt by the live system's daily man-db timer when it is wanted at all.
DIVERTED = ("/usr/sbin/update-initramfs", "/usr/bin/mandb")
# A local repository (a folder of .deb files) is preferred to the suite for the names it
# has: apt otherwise takes the suite's version whenever it is higher.
LOCAL_PREFERENCES = "/etc/apt/preferences.d/livesmith-local"
LOCAL_PIN = 'Package: *\nPin: origin ""\nPin-Priority: 990\n'
# The build machine's folders mean nothing in the live system: its apt sources keep only
# the suite's mirrors.
FORGET_LOCAL = (
    'for f in "$1/etc/apt/sources.list" "$1"/etc/apt/sources.list.d/*.list; do '
    '[ -f "$f" ] || continue; sed -i "/ copy:\\/\\//d" "$f"; [ -s "$f" ] || rm -f "$f"; done; '
    f'rm -f "$1{LOCAL_PREFERENCES}"'
)
VARIANT = "apt"  # Essential packages and apt, then the selection
# dpkg-deb decodes xz with a thread per core, each with its own buffers, for no gain on
# packages of one or a few blocks: the kernel package took 128 MB with threads, 64 MB and
# no more time without (passed through mmdebstrap and its chroot to dpkg's dpkg-deb).
DPKG_DEB_ENV = {"DPKG_DEB_THREADS_MAX": "1"}
USERNS_HINT = (
    "allow unprivileged user namespaces (Debian: sysctl kernel.unprivileged_userns_clone=1; "
    "Ubuntu 24.04: sysctl kernel.apparmor_restrict_unprivileged_userns=0), or build as root"
)


@dataclass(frozen=True)
class DebianRoot:
    """What to install: the suite, where from, and the packages (dependencies follow)."""

    suite: str
    packages: tuple[str, ...]
    mirror: str = ""  # "" = mmdebstrap's default for the suite (Debian adds -updates, -security)
    components: tuple[str, ...] = ()  # () = main
    # More sources.list lines beside the suite, e.g. local_repository(folder)
    extra_sources: tuple[str, ...] = ()
    # A flat repository made by this build (deb.write_flat_repository), preferred to the
    # suite; not part of the cache key, as its packages never go into the shared cache.
    local_repo: str = ""
    # A locale to generate with the distribution's locale-gen (its SUPPORTED line, e.g.
    # "de_DE.UTF-8 UTF-8"); needs the locales package among `packages`.
    locale_line: str = ""

    @property
    def cache_key(self) -> str:
        """Packages of one suite and mirror share a cache folder."""
        text = "\0".join((self.suite, self.mirror, *self.components, *self.extra_sources))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def local_repository(folder: Path) -> str:
    """The sources.list line of a flat repository of .deb files (a `Packages` index beside
    them). apt's copy: method copies each file into its cache, so the packages reach the
    install pass like downloaded ones."""
    return f"deb [trusted=yes] copy://{folder.absolute()} ./"


def host_suite(os_release: Path = Path("/etc/os-release")) -> str:
    """The build machine's own suite (VERSION_CODENAME), so an Ubuntu host makes Ubuntu."""
    with contextlib.suppress(OSError):
        for line in os_release.read_text().splitlines():
            key, _, value = line.partition("=")
            if key == "VERSION_CODENAME" and value.strip().strip("\"'"):
                return value.strip().strip("\"'")
    return ""


# --- where package code may run --------------------------------------------------------


def _sysctl(name: str) -> str | None:
    try:
        return Path("/proc/sys", *name.split(".")).read_text().strip()
    except OSError:
        return None


def subuid_entry(user: str, uid: int, subuid: Path = Path("/etc/subuid")) -> bool:
    """Whether /etc/subuid gives `user` (by name or number) a range of subordinate ids."""
    try:
        lines = subuid.read_text().splitlines()
    except OSError:
        return False
    for line in lines:
        owner, _, rest = line.strip().partition(":")
        if owner in (user, str(uid)) and rest.count(":") == 1:
            return True
    return False


def sandbox_prefix(*, network: bool) -> list[str]:
    """The `unshare` command that runs mmdebstrap apart from the host (see above)."""
    args = [find_tool("unshare")]
    if os.geteuid() != 0:
        args += ["--user", "--map-users=auto", "--map-groups=auto", "--map-root-user"]
    if not network:
        args.append("--net")
    # slave: a stick unmounted on the host while a build runs is unmounted here too, so the
    # build's copy of the mount table never keeps it busy (where / is shared, as on desktops).
    return [*args, "--mount", "--propagation", "slave", "--pid", "--fork", "--kill-child", "--"]


def sandbox_problems() -> list[Problem]:
    """Why package code cannot be sandboxed for this user on this machine, if it cannot."""
    if os.geteuid() == 0:
        return []
    problems = []
    user, uid = getpass.getuser(), os.getuid()
    if not subuid_entry(user, uid):
        problems.append(
            Problem(
                "package installation",
                f"user {user} has no subordinate user ids in /etc/subuid, which "
                "mmdebstrap needs to run Debian's maintainer scripts without root",
                hint=f"sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}",
            )
        )
    if (
        _sysctl("kernel.unprivileged_userns_clone") == "0"
        or _sysctl("kernel.apparmor_restrict_unprivileged_userns") == "1"
        or _sysctl("user.max_user_namespaces") == "0"
    ):
        problems.append(
            Problem(
                "package installation",
                "unprivileged user namespaces are switched off on this machine",
                hint=USERNS_HINT,
            )
        )
    missing = missing_tool_problems(["newuidmap", "unshare"], "package installation")
    if not missing and not unshare_maps_ranges():
        problems.append(
            Problem(
                "package installation",
                "this machine's unshare (util-linux) is older than 2.38 and cannot map the "
                "subordinate ids (--map-users)",
                hint="build as root, or on Debian 12 / Ubuntu 22.10 or newer",
            )
        )
    # unshare --map-users=auto runs newuidmap
    return [*problems, *missing]


def unshare_maps_ranges() -> bool:
    """Whether util-linux unshare has --map-users/--map-groups (2.38 and newer)."""
    out = subprocess.run(
        [find_tool("unshare"), "--help"], capture_output=True, text=True, check=False
    )
    return "--map-users" in out.stdout


def validate(root: DebianRoot) -> list[Problem]:
    """Everything that would stop the install: the names, the tools, the sandbox."""
    return [
        *missing_tool_problems(["mmdebstrap", "unshare"], "package installation"),
        *validate_names(root),
        *sandbox_problems(),
    ]


def validate_names(root: DebianRoot) -> list[Problem]:
    """The suite, mirror and components as written (cheap: for checking as you type)."""
    problems = []
    if not root.suite:
        problems.append(
            Problem(
                "packages: suite",
                "no suite named, and the build machine does not say its own",
                hint='name one in the profile, e.g. suite = "bookworm"',
            )
        )
    elif not re.fullmatch(r"[a-z][a-z0-9.+-]*", root.suite):
        problems.append(Problem("packages: suite", f"{root.suite!r} is not a suite name"))
    if root.mirror and not re.fullmatch(r"(https?|file)://[^\s,]+", root.mirror):
        problems.append(
            Problem("packages: mirror", f"{root.mirror!r} is not an http(s):// or file:// URL")
        )
    for component in root.components:
        if not re.fullmatch(r"[a-z][a-z0-9-]*", component):
            problems.append(Problem("packages: components", f"{component!r} is not a component"))
    return problems


# --- the profile's archive, for checking names before building ---------------------------

ARCHIVE_MAX_AGE = 6 * 3600  # seconds before the package lists are fetched again
DEBIAN_MIRROR = "http://deb.debian.org/debian"


def archive_sources(root: DebianRoot) -> list[tuple[str, str]]:
    """(file name, text) of the apt source files that show the archive mmdebstrap will
    install from: as mirror_args chooses, without the build's local repository."""
    components = " ".join(root.components or ("main",))
    if root.mirror:
        files = [("profile.list", f"deb {root.mirror} {root.suite} {components}\n")]
    elif root.suite == host_suite():
        files = [(f"{i:02d}-{p.name}", p.read_text()) for i, p in enumerate(host_sources())]
    else:
        files = [("profile.list", f"deb {DEBIAN_MIRROR} {root.suite} {components}\n")]
    if root.extra_sources:
        files.append(("extra.list", "".join(line + "\n" for line in root.extra_sources)))
    return files


@dataclass(frozen=True)
class ArchiveView:
    """apt options under which apt-cache and apt-get see the profile's archive, or the
    problems that keep it from being seen."""

    apt_options: tuple[str, ...]
    problems: tuple[Problem, ...] = ()


def archive_view(
    root: DebianRoot, cache: Path, reporter: Reporter, *, max_age: float = ARCHIVE_MAX_AGE
) -> ArchiveView:
    """A private apt configuration for the profile's suite, mirror and components, with
    its package lists in the cache (fetched by `apt-get update` when older than
    `max_age`). Only package lists are fetched; no package code runs."""
    sources = archive_sources(root)
    text = "\0".join(f"{name}\0{body}" for name, body in sources)
    folder = cache / "debian-archive" / hashlib.sha256(text.encode()).hexdigest()[:16]
    parts = folder / "sources.list.d"
    for sub in (parts, folder / "lists" / "partial", folder / "cache", folder / "preferences.d"):
        sub.mkdir(parents=True, exist_ok=True)
    for name, body in sources:
        (parts / name).write_text(body)
    (folder / "status").touch()
    options = (
        *("-o", f"Dir::Etc::SourceList={folder / 'sources.list'}"),
        *("-o", f"Dir::Etc::SourceParts={parts}"),
        *("-o", f"Dir::Etc::Preferences={folder / 'preferences'}"),
        *("-o", f"Dir::Etc::PreferencesParts={folder / 'preferences.d'}"),
        *("-o", f"Dir::State::Lists={folder / 'lists'}"),
        *("-o", f"Dir::State::Status={folder / 'status'}"),
        *("-o", f"Dir::Cache={folder / 'cache'}"),
        *("-o", "Acquire::Languages=none"),
        # root: apt would hand downloads to _apt, which cannot enter a cache under /root.
        *(("-o", "APT::Sandbox::User=root") if os.geteuid() == 0 else ()),
    )
    stamp = folder / "updated"
    with contextlib.suppress(OSError):
        if time.time() - stamp.stat().st_mtime < max_age:
            return ArchiveView(options)
    reporter.log(Level.INFO, f"reading the package lists of {root.suite}")
    out = subprocess.run(
        [find_tool("apt-get"), *options, "update", "-q"],
        capture_output=True,
        text=True,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
        check=False,
        timeout=600,
    )
    errors = [line for line in out.stderr.splitlines() if line.startswith("E:")]
    if out.returncode == 0 and not errors:
        stamp.touch()
        return ArchiveView(options)
    where = root.mirror or (
        "this machine's apt sources" if root.suite == host_suite() else DEBIAN_MIRROR
    )
    if any(f" {root.suite} Release' does not have a Release file" in e for e in errors):
        problem = Problem(
            "packages: suite",
            f"the suite {root.suite!r} is not in {where}",
            hint="check the suite name (e.g. bookworm, trixie, noble) and the mirror",
        )
        return ArchiveView(options, (problem,))
    if stamp.exists():  # offline, say: the lists from last time still name the packages
        reporter.log(
            Level.WARNING,
            f"could not refresh the package lists of {root.suite}; using the last ones",
        )
        return ArchiveView(options)
    detail = " ".join(errors) or out.stderr.strip()[-300:]
    problem = Problem(
        "packages",
        f"cannot read the package lists of {root.suite} from {where}: {detail}",
        hint="check the network and the mirror",
    )
    return ArchiveView(options, (problem,))


# Which file comes in which package: the archive's Contents index, fetched the way
# apt-file does (apt keeps it beside the package lists).
CONTENTS_OPTIONS = (
    *(
        "-o",
        "Acquire::IndexTargets::deb::Contents-deb::MetaKey=$(COMPONENT)/Contents-$(ARCHITECTURE)",
    ),
    *("-o", "Acquire::IndexTargets::deb::Contents-deb::ShortDescription=Contents-$(ARCHITECTURE)"),
    *(
        "-o",
        "Acquire::IndexTargets::deb::Contents-deb::Description=$(RELEASE)/$(COMPONENT) $(ARCHITECTURE) Contents",
    ),
    *("-o", "Acquire::IndexTargets::deb::Contents-deb::flatMetaKey=Contents-$(ARCHITECTURE)"),
)
APT_HELPER = "/usr/lib/apt/apt-helper"
UNIT_FOLDERS = ("lib/systemd/system/", "usr/lib/systemd/system/")


def _option(view: ArchiveView, name: str) -> Path:
    prefix = f"{name}="
    return Path(next(o[len(prefix) :] for o in view.apt_options if o.startswith(prefix)))


def packages_shipping(
    view: ArchiveView, files: set[str], reporter: Reporter, *, max_age: float = ARCHIVE_MAX_AGE
) -> dict[str, set[str]]:
    """For each root-relative path in `files`, the archive's packages that ship it."""
    lists = _option(view, "Dir::State::Lists")
    stamp = lists.parent / "contents-updated"
    fresh = stamp.exists() and time.time() - stamp.stat().st_mtime < max_age
    if not fresh:
        reporter.log(Level.INFO, "reading which package ships which file (Contents index)")
        out = subprocess.run(
            [find_tool("apt-get"), *view.apt_options, *CONTENTS_OPTIONS, "update", "-q"],
            capture_output=True,
            text=True,
            env={**os.environ, "LC_ALL": "C.UTF-8"},
            check=False,
            timeout=900,
        )
        if out.returncode == 0:
            stamp.touch()
    found: dict[str, set[str]] = {path: set() for path in files}
    for index in sorted(lists.glob("*_Contents-*")):
        with subprocess.Popen(
            [APT_HELPER, "cat-file", str(index)], stdout=subprocess.PIPE, text=True
        ) as cat:
            assert cat.stdout is not None
            for line in cat.stdout:
                path, _, owners = line.rstrip("\n").rpartition(" ")
                path = path.rstrip()
                if path in found:
                    found[path] |= {owner.rsplit("/", 1)[-1] for owner in owners.split(",")}
    return found


def installed_set(view: ArchiveView, root: DebianRoot) -> set[str]:
    """The packages mmdebstrap installs for `root` (Essential, apt, the selection and their
    dependencies, no Recommends), as apt's own resolver says in a simulation."""
    out = subprocess.run(
        [
            find_tool("apt-get"),
            *view.apt_options,
            "-o",
            "APT::Install-Recommends=false",
            "-s",
            "install",
            "--",
            "?essential",
            "apt",
            *root.packages,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
        check=False,
    )
    return {line.split()[1] for line in out.stdout.splitlines() if line.startswith("Inst ")}


def unit_problems(
    view: ArchiveView, root: DebianRoot, units: tuple[str, ...], reporter: Reporter
) -> list[Problem]:
    """Units (enable/disable) that no package of the build ships, named before building."""
    if not units:
        return []
    paths = {
        unit: [folder + template_of(systemd_name(unit)) for folder in UNIT_FOLDERS]
        for unit in units
    }
    shipping = packages_shipping(view, {p for ps in paths.values() for p in ps}, reporter)
    installed = installed_set(view, root)
    problems = []
    for unit, candidates in paths.items():
        owners = set().union(*(shipping[p] for p in candidates))
        if not owners:
            problems.append(
                Problem("services", f"no package in {root.suite} ships the unit {unit}")
            )
        elif installed and not owners & installed:
            problems.append(
                Problem(
                    "services",
                    f"the unit {unit} comes with {', '.join(sorted(owners))}, "
                    "which is not among the packages",
                    hint=f"add {sorted(owners)[0]} to the packages",
                )
            )
    return problems


# --- running mmdebstrap -----------------------------------------------------------------


def _common_args(root: DebianRoot, *, network: bool) -> list[str]:
    args = [
        *sandbox_prefix(network=network),
        find_tool("mmdebstrap"),
        "--mode=root",
        "--skip=download/empty",
        "--skip=output/dev",
    ]
    if root.components:
        args.append(f"--components={','.join(root.components)}")
    return args


def host_sources(apt_dir: Path = Path("/etc/apt")) -> list[Path]:
    """The build machine's apt source files (one-line and deb822), in apt's order."""
    files = [apt_dir / "sources.list"]
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources"))
    return [f for f in files if f.is_file() and _has_entries(f.read_text(errors="replace"))]


def _has_entries(text: str) -> bool:
    return any(line.strip() and not line.lstrip().startswith("#") for line in text.splitlines())


def mirror_args(root: DebianRoot) -> list[str]:
    """The MIRROR arguments: the profile's mirror; else, for the build machine's own suite,
    its own apt sources (so an Ubuntu machine makes Ubuntu from its usual mirror); else
    mmdebstrap's default for the suite (Debian's, with -updates and -security)."""
    extra = list(root.extra_sources)
    if root.local_repo:
        extra.append(local_repository(Path(root.local_repo)))
    if root.mirror:
        return [root.mirror, *extra]
    if root.suite == host_suite():
        return [*(str(path) for path in host_sources()), *extra]
    if extra:  # mmdebstrap adds its default only when it is given no mirror at all
        return ["http://deb.debian.org/debian", *extra]
    return []


def _target_args(root: DebianRoot, target: str) -> list[str]:
    return [root.suite, target, *mirror_args(root)]


def _local_args(root: DebianRoot) -> list[str]:
    """Prefer the local repository while resolving (both passes); forget it afterwards."""
    if not root.local_repo:
        return []
    return [
        f'--setup-hook=mkdir -p "$1/etc/apt/preferences.d" && '
        f"printf '{LOCAL_PIN}' > \"$1{LOCAL_PREFERENCES}\"",
    ]


def download(
    root: DebianRoot, cache: Path, lists: Path, archives: Path, reporter: Reporter, *, stage: str
) -> None:
    """Pass 1: the package lists into `lists`, every .deb the install needs into `archives`
    (those already in `cache` are not downloaded again; new ones are added to it)."""
    shared = cache / "debian" / root.cache_key
    shared.mkdir(parents=True, exist_ok=True)
    for folder in (lists, archives):
        folder.mkdir(parents=True, exist_ok=True)
    args = [
        *_common_args(root, network=True),
        "--variant=extract",
        # Nothing runs in the chroot; mounting sysfs there would need a network namespace.
        "--skip=chroot/mount",
        "--include=?essential",
        f"--include={','.join(('apt', *root.packages))}",
        '--setup-hook=mkdir -p "$1/var/cache/apt/archives"',
        f"--setup-hook=sync-in {shared} /var/cache/apt/archives",
        # apt made partial/ folders owned by _apt (a subordinate id for an ordinary user,
        # who could then not remove them); unpacking the apt package used to make them
        # root's, which is the user. Now nothing is unpacked: make them root's here.
        '--extract-hook=chown -R 0:0 "$1/var/cache/apt/archives" "$1/var/lib/apt/lists"',
        f"--extract-hook=sync-out /var/cache/apt/archives {archives}",
        f"--extract-hook=sync-out /var/lib/apt/lists {lists}",
        *_local_args(root),
        *_target_args(root, "/dev/null"),
    ]
    tools = stand_in_dpkg_deb(lists.parent / "download-tools")
    env = {**DPKG_DEB_ENV, "PATH": f"{tools}:{os.environ.get('PATH', os.defpath)}"}
    reporter.log(Level.INFO, f"resolving and downloading {root.suite} packages (no scripts run)")
    try:
        run_tool(args, reporter, stage=stage, env=env)
    except StageError as exc:
        raise _download_error(root, exc) from None
    _publish(archives, shared, skip=local_archive_names(root))


# The extract variant unpacks every package it downloaded (`dpkg-deb --fsys-tarfile | tar`)
# into a chroot the download pass then throws away: for a desktop that was most of the
# pass's time, and the kernel package's dpkg-deb the pass's largest process. The stand-in
# found first on mmdebstrap's PATH gives an empty tree instead; all else goes to dpkg-deb.
STAND_IN_DPKG_DEB = """#!/bin/sh
# Livesmith's download pass: packages are fetched and kept, not unpacked.
if [ "$1" = --fsys-tarfile ]; then exec head -c 10240 /dev/zero; fi
exec {dpkg_deb} "$@"
"""


def stand_in_dpkg_deb(folder: Path) -> Path:
    """A folder whose `dpkg-deb` gives an empty tree for --fsys-tarfile (see above)."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "dpkg-deb"
    script.write_text(STAND_IN_DPKG_DEB.format(dpkg_deb=shlex.quote(find_tool("dpkg-deb"))))
    script.chmod(0o755)
    return folder


def local_archive_names(root: DebianRoot) -> set[str]:
    """The names apt gives the local repository's packages in its archive cache."""
    if not root.local_repo:
        return set()
    index = Path(root.local_repo, "Packages").read_text()
    return {
        archive_name(s["Package"], s["Version"], s["Architecture"])
        for s in parse_stanzas(index)
        if {"Package", "Version", "Architecture"} <= s.keys()
    }


CACHE_KEEP_DAYS = 30  # a cached .deb no build has used for this long is removed


def _publish(archives: Path, shared: Path, *, skip: set[str]) -> None:
    """Add the new .deb files to the shared cache, each whole or not at all; those named in
    `skip` (a local repository's) are the user's, not the suite's. Files this build used
    are marked as used; ones unused for CACHE_KEEP_DAYS (older versions) are removed."""
    used = set()
    for deb in archives.glob("*.deb"):
        final = shared / deb.name
        used.add(deb.name)
        if final.exists():
            with contextlib.suppress(OSError):
                os.utime(final)  # in use: kept
            continue
        if deb.name in skip:
            continue
        fd, tmp = tempfile.mkstemp(dir=shared, prefix=".incoming-", suffix=".deb")
        os.close(fd)
        try:
            shutil.copyfile(deb, tmp)
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide it from the next build's sandbox
            os.replace(tmp, final)  # same name, same version: any winner is right
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    prune_cache(shared, keep=used)


def prune_cache(shared: Path, *, keep: set[str], days: float = CACHE_KEEP_DAYS) -> list[str]:
    """Remove the cached .deb files not in `keep` that no build used for `days`; their names."""
    limit = time.time() - days * 86400
    removed = []
    for deb in shared.glob("*.deb"):
        with contextlib.suppress(OSError):
            if deb.name not in keep and deb.stat().st_mtime < limit:
                deb.unlink()
                removed.append(deb.name)
    return sorted(removed)


def _download_error(root: DebianRoot, exc: StageError) -> StageError:
    text = exc.message
    if re.search(r"does not have a Release file|404\s+Not Found|no such suite", text):
        where = root.mirror or "the default mirror"
        return StageError(
            f"the suite {root.suite!r} is not in {where}",
            stage=exc.stage,
            hint="check the suite name (e.g. bookworm, trixie, noble) and the mirror",
        )
    missing = re.findall(r"E: Unable to locate package (\S+)", text)
    if missing:
        return StageError(
            f"{root.suite} has no package named {', '.join(sorted(set(missing)))}",
            stage=exc.stage,
        )
    return exc


def install(
    root: DebianRoot,
    lists: Path,
    archives: Path,
    target: Path,
    reporter: Reporter,
    *,
    epoch: int,
    stage: str,
) -> RootManifest:
    """Pass 2, offline: install everything with maintainer scripts, and extract the result
    into the empty (or new) folder `target` with our own safe extraction as it is made:
    mmdebstrap's tar goes straight from its output into the extraction, never to disk.
    Returns the root's manifest; on failure `target` is left empty."""
    divert = "; ".join(
        f'chroot "$1" dpkg-divert --quiet --local --rename --add {path}; ln -s /bin/true "$1{path}"'
        for path in DIVERTED
    )
    restore = "; ".join(
        f'rm -f "$1{path}"; chroot "$1" dpkg-divert --quiet --local --rename --remove {path}'
        for path in DIVERTED
    )
    locale_args = []
    if root.locale_line:
        # Uploaded rather than echoed: no profile text ever goes into a hook's shell.
        gen = lists.parent / "locale.gen"
        gen.write_text(root.locale_line + "\n")
        locale_args = [
            f"--customize-hook=upload {gen} /etc/locale.gen",
            '--customize-hook=chroot "$1" locale-gen',
        ]
    args = [
        *_common_args(root, network=False),
        f"--variant={VARIANT}",
        f"--include={','.join(root.packages)}",
        "--skip=update",
        '--setup-hook=mkdir -p "$1/var/cache/apt/archives" "$1/var/lib/apt/lists"',
        f"--setup-hook=sync-in {archives} /var/cache/apt/archives",
        f"--setup-hook=sync-in {lists} /var/lib/apt/lists",
        *_local_args(root),
        f"--essential-hook={divert}",
        f"--customize-hook={restore}",
        f"--customize-hook={FORGET_LOCAL}",
        *locale_args,
        "--format=tar",
        *_target_args(root, "-"),  # the tar on standard output
    ]
    before, after, installed = trim_lists(lists, archives)
    reporter.log(
        Level.INFO,
        f"package lists cut to the downloaded packages: {before // 1024} KiB -> {after // 1024} KiB",
    )
    reporter.log(
        Level.INFO,
        f"installing {len(root.packages)} packages and their dependencies with mmdebstrap "
        f"(no network); diverted while installing: {', '.join(DIVERTED)}",
    )
    made = PackageInfo(
        name=f"{root.suite}-root",
        version="",
        size=0,
        installed_size=None,
        description=f"{root.suite} root made by mmdebstrap",
        depends=(),
        provides=(),
        conflicts=(),
        file=None,
        checksum=None,
        kind=SourceKind.TARBALLS,
    )
    env = {**DPKG_DEB_ENV, "SOURCE_DATE_EPOCH": str(epoch)}
    try:
        with tool_output(args, reporter, stage=stage, env=env) as stream:
            return assemble_root_stream(made, stream, target, reporter, expected=installed)
    except BaseException as exc:
        _empty(target)  # e.g. mmdebstrap failed after the tar: never leave half a root
        if isinstance(exc, StageError):
            raise failed_script_error(exc) from None
        raise


def _empty(folder: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        for child in folder.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)


def archive_name(package: str, version: str, architecture: str) -> str:
    """The file name apt gives a package in its archive cache (the epoch's colon quoted)."""
    return f"{package}_{version.replace(':', '%3a')}_{architecture}.deb"


_FIELD = re.compile(rb"^(Package|Version|Architecture|Installed-Size):[ \t]*(\S+)", re.M)
_FIELD_KEYS = (b"Package", b"Version", b"Architecture")


def trim_lists(lists: Path, archives: Path) -> tuple[int, int, int]:
    """Keep in the package lists of `lists` only the stanzas of the packages in `archives`.

    The install pass is offline and can only install what the download pass fetched, so
    the rest of the suite (60,000 stanzas, 50 MB for Debian main) would only make apt-get
    build and map a cache of it: 57 MB of apt-get's memory for `rescue`, 11 MB with these.
    Returns the bytes of the lists before and after, and the installed size of the packages
    kept (bytes, about what the root holds)."""
    wanted = {deb.name for deb in archives.glob("*.deb")}
    before = after = installed = 0
    seen = set()
    for index in sorted(lists.glob("*_Packages")):
        kept = []
        for stanza in _stanzas(index):
            before += len(stanza) + 2
            fields = dict(_FIELD.findall(stanza))
            name = archive_name(
                *(fields.get(key, b"").decode(errors="replace") for key in _FIELD_KEYS)
            )
            if name in wanted:
                kept.append(stanza.strip(b"\n") + b"\n")
                if name not in seen:
                    seen.add(name)
                    size = fields.get(b"Installed-Size", b"0")
                    installed += int(size) * 1024 if size.isdigit() else 0
        trimmed = b"\n".join(kept)
        after += len(trimmed)
        index.write_bytes(trimmed)
    return before, after, installed


def _stanzas(index: Path) -> Iterator[bytes]:
    """The stanzas of a package list one at a time, read in blocks: splitting the whole
    50 MB at once left Python's heap 40 MB larger for the rest of the build (freed, but too
    scattered to go back to the system)."""
    rest = b""
    with open(index, "rb") as file:
        while block := file.read(1 << 20):
            parts = (rest + block).split(b"\n\n")
            rest = parts.pop()
            yield from parts
    if rest.strip():
        yield rest


_SCRIPT_NAMES = {
    "pre-installation": "preinst",
    "post-installation": "postinst",
    "pre-removal": "prerm",
    "post-removal": "postrm",
}


def failed_script_error(exc: StageError) -> StageError:
    """A dpkg failure said in the user's terms: which package, which script, what it said."""
    text = exc.message
    match = re.search(
        r"dpkg: error processing (?:package|archive) (\S+?)(?::\w+)? \(--\w+\):\n\s*(.*)", text
    )
    if match is None:
        return exc
    package, reason = match.group(1), match.group(2).strip()
    script = next((name for long, name in _SCRIPT_NAMES.items() if long in reason), "")
    status = re.search(r"exit status (\d+)", reason)
    before = text[: match.start()].rstrip().splitlines()[-8:]
    what = f"the {script} script of {package}" if script else f"installing {package}"
    return StageError(
        f"{what} failed"
        + (f" with exit status {status.group(1)}" if status else f": {reason}")
        + ("; its last lines:\n" + "\n".join(before) if before else ""),
        stage=exc.stage,
        where=package,
    )
