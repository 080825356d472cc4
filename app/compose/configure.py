"""Stage 4, configure: host name, accounts, /etc/issue, os-release, fstab, init, overlay.

Every file written here is recorded in the RootManifest as owned by root, so the image
carries the right owners even though the build runs as an ordinary user.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from app.compose.busybox_table import applets_from_binary
from app.compose.crypt import SALT_CHARS, sha512_crypt
from app.compose.live import busybox as busybox_live
from app.compose.live import region, services
from app.compose.live import systemd as systemd_live
from app.compose.live import user as live_user
from app.compose.manifest import FileMeta, Kind, RootManifest
from app.compose.profile import SystemOptions
from app.compose.rootpath import resolve_in_root, root_relative
from app.compose.sandbox import CannotRun, run_in_root
from app.display import printable
from app.errors import InputError, Problem, StageError
from app.reporter import Level, Reporter, check_cancelled

STAGE = "configure"
USER_UID = 1000

# Directories every live root needs: (path, mode)
SKELETON = (
    ("dev", 0o755),
    ("proc", 0o555),
    ("sys", 0o555),
    ("run", 0o755),
    ("tmp", 0o1777),
    ("root", 0o700),
    ("etc", 0o755),
    ("mnt", 0o755),
    ("var", 0o755),
    ("var/tmp", 0o1777),
    ("var/log", 0o755),
    ("home", 0o755),
)

FSTAB = """\
# Written by Livesmith. / is an overlay set up by the initramfs, which also hands over
# /proc, /sys, /dev and /run already mounted.
devpts  /dev/pts  devpts  gid=5,mode=620  0 0
tmpfs   /dev/shm  tmpfs   defaults  0 0
tmpfs   /tmp      tmpfs   mode=1777 0 0
"""


@dataclass(frozen=True)
class BuildFacts:
    """What configure needs to know about the build besides the system options."""

    name: str
    label: str
    build_id: str
    date: str  # YYYY-MM-DD, from SOURCE_DATE_EPOCH when set


ISSUE_FIELDS = (
    "name",
    "label",
    "date",
    "hostname",
    "user",
    "user_password",
    "root_password",
    "user_line",
    "build_id",
)


def render_issue(options: SystemOptions, facts: BuildFacts) -> str:
    user_line = ""
    if options.user and options.user_password:
        user_line = f"or as {options.user} with password: {options.user_password}\n"
    elif options.user:
        user_line = f"or as {options.user} (no password)\n"
    values = {
        "name": facts.name,
        "label": facts.label,
        "date": facts.date,
        "hostname": options.hostname,
        "user": options.user,
        "user_password": options.user_password,
        "root_password": options.root_password,
        "user_line": user_line,
        "build_id": facts.build_id,
    }
    text = options.issue.format(**values)
    # getty treats backslashes as escapes (\n = host name); keep the user's text literal.
    return text.replace("\\", "\\\\").rstrip("\n") + "\n\n"


def validate_issue(template: str) -> list[Problem]:
    try:
        template.format(**{k: "" for k in ISSUE_FIELDS})
    except (KeyError, IndexError, ValueError) as exc:
        fields = ", ".join("{" + f + "}" for f in ISSUE_FIELDS)
        return [Problem("/etc/issue text", f"bad placeholder {exc}; you can use {fields}")]
    return []


def os_release_value(value: str) -> str:
    """`value` quoted for os-release(5): shell-compatible double quotes, with \\, ", ` and $
    escaped. Newlines cannot be quoted there; validation keeps them out of the profile name."""
    escaped = "".join("\\" + ch if ch in '\\"`$' else ch for ch in value)
    return f'"{escaped}"'


def render_os_release(facts: BuildFacts) -> str:
    fields = {
        "NAME": "Livesmith live",
        "ID": "livesmith",
        "PRETTY_NAME": f"{facts.name} (Livesmith live)",
        "BUILD_ID": facts.build_id,
        "IMAGE_ID": facts.label,
        "IMAGE_VERSION": facts.date,
    }
    return "".join(f"{key}={os_release_value(value)}\n" for key, value in fields.items())


def _open_subdir(name: str, dir_fd: int, *, create: bool) -> int:
    """Open folder `name` in `dir_fd` without following a link; with `create`, make it
    first if it is missing (only then: most folders exist, so most opens succeed first)."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        if not create:
            raise
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o755, dir_fd=dir_fd)
    return os.open(name, flags, dir_fd=dir_fd)


class RootWriter:
    """Writes files into the staged root (chroot-style paths) and records them as root's.

    Packages decide what the root holds, links included. Paths are first resolved the way
    the live system would see them (resolve_in_root); every file operation then goes through
    folder descriptors opened one component at a time with O_NOFOLLOW, and names inside a
    folder are created with O_EXCL|O_NOFOLLOW, so no link a package ships (a folder, the
    file, or a name we pick for a temporary file) can lead a write, chmod or read out of
    the root.
    """

    def __init__(self, root: Path, manifest: RootManifest):
        self.root = root
        self.manifest = manifest

    def host_path(self, path: str) -> Path:
        return resolve_in_root(self.root, path)

    def _open_dir(self, host_dir: Path, *, create: bool = False, mode: int = 0o755) -> int:
        """A descriptor of `host_dir` (inside the root), reached without following links;
        with `create`, missing folders are made (and recorded as ours)."""
        rel_parts = Path(root_relative(self.root, host_dir)).parts
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for depth, part in enumerate(rel_parts, 1):
                try:
                    child = _open_subdir(part, fd, create=create)
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    shown = "/".join(rel_parts[:depth])
                    raise InputError(
                        f"/{shown} exists in the packages and is not a folder", where=STAGE
                    ) from exc
                os.close(fd)
                fd = child
                rel = "/".join(rel_parts[:depth])
                if create and rel not in self.manifest:  # a folder of our own, not a package's
                    self.manifest.add(
                        FileMeta(rel, Kind.DIR, mode if depth == len(rel_parts) else 0o755)
                    )
        except BaseException:
            os.close(fd)
            raise
        return fd

    def ensure_dir(self, path: str, mode: int = 0o755) -> Path:
        host = self.host_path(path)
        os.close(self._open_dir(host, create=True, mode=mode))
        return host

    def write(
        self, path: str, data: str | bytes, mode: int = 0o644, *, keep_meta: bool = True
    ) -> Path:
        host = self.host_path(path)
        if host == self.root:
            raise InputError(f"/{path} is the root folder; cannot write it", where=STAGE)
        blob = data.encode() if isinstance(data, str) else data
        dir_fd = self._open_dir(host.parent, create=True)
        try:
            existing_kind = _lstat_kind(host.name, dir_fd)
            if existing_kind in (stat.S_IFLNK, stat.S_IFDIR):
                raise InputError(
                    f"/{path} exists in the packages as a link or folder; cannot write it",
                    where=STAGE,
                )
            tmp = _write_new_file(dir_fd, host.name, blob, 0o644 if mode & 0o111 == 0 else 0o755)
            try:
                # rename() replaces the name itself, never what a link there points at.
                os.replace(tmp, host.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=dir_fd)
                raise
        finally:
            os.close(dir_fd)
        rel = root_relative(self.root, host)
        existing = self.manifest.get(rel)
        if keep_meta and existing is not None and existing.kind is Kind.FILE:
            return host  # a package's file we edited keeps its owner and mode
        self.manifest.add(FileMeta(rel, Kind.FILE, mode))
        return host

    def symlink(self, path: str, target: str) -> None:
        host = resolve_in_root(self.root, path, follow_last=False)
        if host == self.root:
            return
        dir_fd = self._open_dir(host.parent, create=True)
        try:
            if _lstat_kind(host.name, dir_fd) is not None:
                return
            os.symlink(target, host.name, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
        self.manifest.add(
            FileMeta(root_relative(self.root, host), Kind.SYMLINK, 0o777, target=target)
        )

    def remove(self, path: str) -> bool:
        """Remove a file or link (never what a link points at); whether it was there."""
        host = resolve_in_root(self.root, path, follow_last=False)
        if host == self.root:
            return False
        try:
            dir_fd = self._open_dir(host.parent)
        except (FileNotFoundError, InputError):
            return False
        try:
            if _lstat_kind(host.name, dir_fd) not in (stat.S_IFREG, stat.S_IFLNK):
                return False
            os.unlink(host.name, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
        self.manifest.remove(root_relative(self.root, host))
        return True

    def read(self, path: str) -> str | None:
        host = self.host_path(path)
        if host == self.root:
            return None
        try:
            dir_fd = self._open_dir(host.parent)
        except (FileNotFoundError, InputError):
            return None
        try:
            if _lstat_kind(host.name, dir_fd) != stat.S_IFREG:
                return None
            fd = os.open(
                host.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd
            )
            with open(fd, "rb") as f:
                return f.read().decode(errors="replace")
        finally:
            os.close(dir_fd)


def _lstat_kind(name: str, dir_fd: int) -> int | None:
    """The file type bits of `name` in the folder `dir_fd` (a link's own), None if absent."""
    try:
        return stat.S_IFMT(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return None


def _write_new_file(dir_fd: int, name: str, blob: bytes, perms: int) -> str:
    """Write `blob` to a fresh temporary file next to `name`; returns the temporary name.

    O_EXCL|O_NOFOLLOW: whatever a package put under a name we pick is never opened, and a
    random part keeps a package from occupying the name in advance."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        tmp = f".{name}.{secrets.token_hex(6)}.livesmith-tmp"
        try:
            fd = os.open(tmp, flags, 0o600, dir_fd=dir_fd)
        except FileExistsError:
            continue
        try:
            with open(fd, "wb") as f:
                f.write(blob)
                os.fchmod(f.fileno(), perms)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
        return tmp
    raise StageError(f"cannot create a temporary file next to {name}", stage=STAGE)


def deterministic_salt(*parts: str) -> str:
    digest = hashlib.sha256("\0".join(parts).encode()).digest()
    return "".join(SALT_CHARS[b % 64] for b in digest[:16])


def _set_account(lines: list[str], name: str, entry: str) -> list[str]:
    kept = [line for line in lines if line.split(":", 1)[0] != name]
    return [*kept, entry]


BASH = "/bin/bash"


def login_shell(writer: RootWriter) -> str:
    """bash when the packages bring it, else /bin/sh: Debian's BusyBox ash runs its own
    applets (ls, ip, ps) even where coreutils or iproute2 ship the real programs."""
    bash = writer.host_path(BASH)
    return BASH if bash.is_file() and bash.stat().st_mode & 0o111 else "/bin/sh"


def _with_shell(entry: str, shell: str) -> str:
    fields = entry.split(":")
    return ":".join([*fields[:6], shell]) if len(fields) == 7 else entry


def live_user_id(passwd: list[str], group: list[str], user: str) -> int:
    """The live user's id (also its group's): 1000, or the next one the packages leave free.
    A name the packages already use for a system account is refused: overwriting it would
    break that package's service."""
    for line in passwd:
        fields = line.split(":")
        if fields[0] == user and len(fields) > 2 and fields[2].isdigit():
            if int(fields[2]) < USER_UID:
                raise InputError(
                    f"the live user name {user!r} is a system account of the packages "
                    f"(uid {fields[2]}); choose another name",
                    where="user",
                )
    taken = {
        int(fields[2])
        for fields in (line.split(":") for line in (*passwd, *group))
        if len(fields) > 2 and fields[2].isdigit() and fields[0] != user
    }
    uid = USER_UID
    while uid in taken:
        uid += 1
    return uid


def configure_accounts(
    writer: RootWriter, options: SystemOptions, facts: BuildFacts, days: int
) -> None:
    passwd = (writer.read("etc/passwd") or "").splitlines()
    group = (writer.read("etc/group") or "").splitlines()
    shadow = (writer.read("etc/shadow") or "").splitlines()
    shell = login_shell(writer)
    if not any(line.startswith("root:") for line in passwd):
        passwd = _set_account(passwd, "root", f"root:x:0:0:root:/root:{shell}")
    elif shell == BASH:
        passwd = [_with_shell(line, shell) if line.startswith("root:") else line for line in passwd]
    if not any(line.startswith("root:") for line in group):
        group = _set_account(group, "root", "root:x:0:")
    if not any(line.startswith("tty:") for line in group):
        group.append("tty:x:5:")
    root_hash = sha512_crypt(options.root_password, deterministic_salt(facts.build_id, "root"))
    shadow = _set_account(shadow, "root", f"root:{root_hash}:{days}:0:99999:7:::")
    if options.user:
        user = options.user
        uid = live_user_id(passwd, group, user)
        passwd = _set_account(passwd, user, f"{user}:x:{uid}:{uid}:{user}:/home/{user}:{shell}")
        group = _set_account(group, user, f"{user}:x:{uid}:")
        # An empty password field: login and su let the user in without one (nullok).
        user_hash = (
            sha512_crypt(options.user_password, deterministic_salt(facts.build_id, user))
            if options.user_password
            else ""
        )
        shadow = _set_account(shadow, user, f"{user}:{user_hash}:{days}:0:99999:7:::")
        gshadow = writer.read("etc/gshadow")
        if gshadow is not None:
            lines = _set_account(gshadow.splitlines(), user, f"{user}:!::")
            writer.write("etc/gshadow", "\n".join(lines) + "\n", 0o640)
        home = writer.ensure_dir(f"home/{user}", 0o700)
        writer.manifest.add(FileMeta(root_relative(writer.root, home), Kind.DIR, 0o700, uid, uid))
    writer.write("etc/passwd", "\n".join(passwd) + "\n", 0o644)
    writer.write("etc/group", "\n".join(group) + "\n", 0o644)
    packaged = writer.manifest.get("etc/shadow")
    writer.write("etc/shadow", "\n".join(shadow) + "\n", 0o600, keep_meta=False)
    if packaged is not None and packaged.kind is Kind.FILE:
        # Debian's is root:shadow 0640, so setgid helpers (unix_chkpwd: screen lockers,
        # su) can check passwords; never more than that, whatever a package says.
        writer.manifest.add(
            FileMeta("etc/shadow", Kind.FILE, packaged.mode & 0o640, 0, packaged.gid)
        )


def find_busybox(root: Path) -> Path | None:
    for rel in ("bin/busybox", "usr/bin/busybox", "sbin/busybox", "usr/sbin/busybox"):
        host = resolve_in_root(root, rel)
        if host.is_file():
            return host
    return None


# Where BusyBox installs applets (its install_dir table) and what an applet name may be.
APPLET_PATH = re.compile(r"(?:(?:usr/)?s?bin/)?[A-Za-z0-9_.+\[\]-]{1,64}")


BUSYBOX_READ_LIMIT = 64 << 20  # a BusyBox binary is 1-3 MiB


def _applets_read_from(busybox: Path) -> list[str] | None:
    with open(busybox, "rb") as f:
        data = f.read(BUSYBOX_READ_LIMIT + 1)
    if len(data) > BUSYBOX_READ_LIMIT:
        return None
    return applets_from_binary(data)


def busybox_applets(root: Path, busybox: Path, reporter: Reporter | None = None) -> list[str]:
    """Applet paths (e.g. 'bin/sh', 'sbin/init') of this busybox build.

    The binary is package code, so it runs sandboxed (app.compose.sandbox); what it prints
    must look like BusyBox's own list, or nothing is linked. Where it cannot run (no
    sandbox on this machine, or built for another one) the list is read from the binary
    (app.compose.busybox_table), with a warning.
    """
    rel = root_relative(root, busybox)
    try:
        out = run_in_root(root, [f"/{rel}", "--list-full"], stage=STAGE)
        applets = [line.strip() for line in out.splitlines() if line.strip()]
        said = "printed"
    except CannotRun as exc:
        # No sandbox here (or a binary for another machine): read the list from the binary.
        found = _applets_read_from(busybox)
        if found is None:
            raise
        if reporter is not None:
            reporter.log(
                Level.WARNING,
                f"{exc.message}; read the {len(found)} applets from the binary instead",
            )
        applets, said = found, "holds"
    bad = [
        line
        for line in applets
        if not APPLET_PATH.fullmatch(line) or line.rsplit("/", 1)[-1] in (".", "..")
    ]
    if bad:
        raise StageError(
            f"/{printable(rel)} --list-full {said} {len(bad)} line(s) that are "
            f"not applet paths, e.g. '{printable(bad[0])}'",
            stage=STAGE,
        )
    if not applets:
        raise StageError(f"/{printable(rel)} --list-full listed no applets", stage=STAGE)
    return applets


def install_busybox_init(writer: RootWriter, reporter: Reporter, *, autologin: str = "") -> bool:
    """Give a root without an init of its own BusyBox's init, getty and applet links."""
    if writer.host_path("sbin/init").exists():
        reporter.log(Level.INFO, "the packages bring their own /sbin/init; leaving it alone")
        return False
    busybox = find_busybox(writer.root)
    if busybox is None:
        raise StageError(
            "the system has no /sbin/init and no BusyBox to provide one; "
            "add busybox (or a package with an init) to the packages",
            stage=STAGE,
        )
    target = "/" + root_relative(writer.root, busybox)
    applets = busybox_applets(writer.root, busybox, reporter)
    for applet in applets:
        if applet.lstrip("/") != target.lstrip("/"):
            writer.symlink(applet.lstrip("/"), target)
    reporter.log(Level.INFO, f"linked {len(applets)} BusyBox applets to {target}")
    for path, content, mode in busybox_live.FILES:
        writer.write(path, content, mode)
    if autologin:
        live_user.busybox_autologin(writer, autologin)
        program = "/" + live_user.AUTOLOGIN_PROGRAM
    writer.write("etc/inittab", busybox_live.inittab(program if autologin else ""))
    return True


FIRST_BOOT_SCRIPT = busybox_live.FIRST_BOOT_SCRIPT
FIRST_BOOT_DONE = busybox_live.FIRST_BOOT_DONE
FIRST_BOOT_UNIT = "livesmith-first-boot.service"
FIRST_BOOT_SERVICE = f"""\
# Written by Livesmith: the profile's first-boot script, once the network is up.
[Unit]
Description=Livesmith first-boot script
Wants=network-online.target
After=network-online.target
ConditionPathExists=!{FIRST_BOOT_DONE}

[Service]
Type=oneshot
StateDirectory=livesmith
ExecStart=/{FIRST_BOOT_SCRIPT}
ExecStartPost=/bin/touch {FIRST_BOOT_DONE}
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target
"""


def install_first_boot(writer: RootWriter, script: Path, *, systemd: bool) -> None:
    """The script, and what runs it once: a unit (systemd) or rcS (BusyBox, see live.busybox).
    Each boot of a live system is its first, unless persistence keeps the done-marker."""
    try:
        data = script.read_bytes()
    except OSError as exc:
        raise InputError(
            f"cannot read the first-boot script: {exc.strerror}", where=str(script)
        ) from None
    writer.write(FIRST_BOOT_SCRIPT, data, 0o755, keep_meta=False)
    if systemd:
        unit = f"etc/systemd/system/{FIRST_BOOT_UNIT}"
        writer.write(unit, FIRST_BOOT_SERVICE)
        writer.symlink(f"etc/systemd/system/multi-user.target.wants/{FIRST_BOOT_UNIT}", f"/{unit}")


def configure_live_user(
    writer: RootWriter, options: SystemOptions, reporter: Reporter, *, systemd: bool, busybox: bool
) -> None:
    """Groups, automatic login and sudo for the live user (see live.user)."""
    user = options.user
    groups = live_user.join_groups(writer, user, options.user_groups, reporter)
    reporter.log(Level.INFO, f"live user {user}: groups {', '.join(groups) or '(none)'}")
    if options.autologin:
        where = []
        if systemd:
            where += live_user.systemd_autologin(writer, user, reporter)
        elif busybox:
            where.append("BusyBox getty on tty1 and ttyS0")
        where += live_user.display_manager_autologin(writer, user)
        if where:
            reporter.log(
                Level.INFO, f"live user {user}: logged in automatically by {', '.join(where)}"
            )
        else:
            reporter.log(
                Level.WARNING,
                f"live user {user}: autologin asked for, but the system's own init and "
                "display manager are unknown to Livesmith",
            )
    if options.sudo and live_user.configure_sudo(
        writer, user, password=bool(options.user_password), reporter=reporter
    ):
        reporter.log(
            Level.INFO,
            f"live user {user}: sudo" + ("" if options.user_password else " without a password"),
        )


def copy_overlay(writer: RootWriter, overlay: Path, reporter: Reporter) -> int:
    count = 0
    for dirpath, dirnames, filenames in os.walk(overlay):
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(overlay).as_posix()
        for name in dirnames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if Path(dirpath, name).is_symlink():
                writer.symlink(rel, os.readlink(Path(dirpath, name)))
            else:
                writer.ensure_dir(rel, stat.S_IMODE(Path(dirpath, name).stat().st_mode))
        for name in sorted(filenames):
            check_cancelled(reporter)
            src = Path(dirpath, name)
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if src.is_symlink():
                writer.symlink(rel, os.readlink(src))
            elif src.is_file():
                writer.write(
                    rel, src.read_bytes(), stat.S_IMODE(src.stat().st_mode), keep_meta=False
                )
            else:
                reporter.log(Level.WARNING, f"overlay: skipping {src} (not a file or link)")
                continue
            count += 1
    return count


def configure_root(
    root: Path,
    manifest: RootManifest,
    options: SystemOptions,
    facts: BuildFacts,
    reporter: Reporter,
    *,
    epoch: int,
) -> None:
    writer = RootWriter(root, manifest)
    for path, mode in SKELETON:
        writer.ensure_dir(path, mode)
    writer.write("etc/hostname", options.hostname + "\n")
    writer.write(
        "etc/hosts",
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{options.hostname}\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n",
    )
    configure_accounts(writer, options, facts, days=epoch // 86400)
    writer.write("etc/issue", render_issue(options, facts), keep_meta=False)
    if writer.read("etc/os-release") is None and writer.read("usr/lib/os-release") is None:
        writer.write("etc/os-release", render_os_release(facts))
    else:
        reporter.log(Level.INFO, "the packages bring their own os-release; leaving it alone")
    if writer.read("etc/fstab") is None:
        writer.write("etc/fstab", FSTAB)
    check_cancelled(reporter)
    autologin = options.user if options.autologin else ""
    systemd = systemd_live.configure_systemd(writer, reporter)
    busybox = not systemd and install_busybox_init(writer, reporter, autologin=autologin)
    if options.user:
        configure_live_user(writer, options, reporter, systemd=systemd, busybox=busybox)
    region.configure_region(writer, options.timezone, options.locale, options.keyboard, reporter)
    if options.first_boot:
        install_first_boot(writer, Path(options.first_boot).expanduser(), systemd=systemd)
        reporter.log(Level.INFO, f"first-boot script: {options.first_boot}")
    if options.overlay:  # over what Livesmith wrote, and before services: it may bring some
        overlay = Path(options.overlay).expanduser()
        count = copy_overlay(writer, overlay, reporter)
        reporter.log(Level.INFO, f"copied {count} files from the overlay folder {overlay}")
    services.configure_services(
        writer,
        options.enable_units,
        options.disable_units,
        reporter,
        systemd=systemd,
        stage=STAGE,
    )


def clean_scratch(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
