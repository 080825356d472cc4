"""Arch-style roots made by pacman, so install scriptlets and alpm hooks run.

Unpacking .pkg.tar files gives a tree, not a system: `.INSTALL` scriptlets (system users,
generated files) and alpm hooks (`/usr/share/libalpm/hooks/*.hook`: caches, sysusers,
tmpfiles) never run. Here the gathered package files are installed in one `pacman -U`
transaction into a fresh root, as pacstrap would, so pacman checks their dependencies among
themselves (nothing is downloaded) and runs every scriptlet and hook.

pacman runs in the same sandbox as Debian's maintainer scripts (`debian.sandbox_prefix`, no
network): new network, mount and PID namespaces, and for an ordinary user a user namespace
that maps them to root and their /etc/subuid range to the other ids. Its configuration is
ours alone (not the host's /etc/pacman.conf): no repositories, local files accepted unsigned
(`LocalFileSigLevel = Never`; the gather stage has checked their sums), hooks from the
root's own /usr/share/libalpm/hooks and /etc/pacman.d/hooks. pacman chroots into the root
to run scriptlets (with the root's /bin/sh, pacman 6's SCRIPTLET_SHELL) and hooks, with
/dev's usual character devices and /proc mounted there, so a root without /bin/sh cannot run
them.

pacman only prints an error when a scriptlet or hook fails, and still exits 0; its output
(with `--debug` lines kept only where a scriptlet starts) is read for those errors, and the
build stops naming the package, the scriptlet and its last lines. The root is packed as a
tarball inside the sandbox, with the owners pacman and the scriptlets gave, and goes
through our own safe extraction like any other package.

The chroot keeps careless scripts inside the root (a write to /tmp lands in the root's
/tmp); like mmdebstrap's, it is no wall against package code that means harm, which has
the network namespace around it and the building user's rights (as root: root's). pacman
itself keeps package members inside the root: `..` members are skipped, absolute ones go
below the root.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from app.compose.install import debian
from app.errors import Problem, StageError
from app.packages.model import PackageInfo, SourceKind
from app.procs import run_tool
from app.reporter import Level, NullReporter, Reporter
from app.tools import find_tool, missing_tool_problems

# pacman 6 runs scriptlets with this shell, chrooted into the root (its SCRIPTLET_SHELL).
SCRIPTLET_SHELL = "/bin/sh"
SHELL_HINT = (
    "pacman runs install scriptlets and hooks with the root's own /bin/sh: add a package "
    "that ships it (bash, or busybox with its sh link) and make the others depend on it"
)
SUBUID_MESSAGE = (
    "user {user} has no subordinate user ids in /etc/subuid, which pacman needs to run "
    "install scriptlets and hooks without root"
)
# What package code sees of the environment (none of the build machine's).
ENVIRONMENT = (
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin",
    "LC_ALL=C",  # pacman's messages are read below
    "HOME=/root",
)

# Runs inside the sandbox: $1 work folder, $2 tarball, $3 epoch, $4 tar, then pacman's
# environment and command. The root is made, used and removed here, where its owners are.
SCRIPT = r"""
set -eu
work=$1 out=$2 epoch=$3 tar=$4
shift 4
root=$work/root
unmount() {
    umount -R "$root/dev" 2>/dev/null || :
    umount "$root/proc" 2>/dev/null || :
}
trap 'unmount; rm -rf --one-file-system "$root"' EXIT
trap 'exit 143' HUP INT TERM
mkdir -m 0755 "$root"
mkdir -p "$root/var/lib/pacman" "$root/var/cache/pacman/pkg" "$root/dev" "$root/proc"
mount -t tmpfs -o mode=0755,nosuid,noexec livesmith-dev "$root/dev"
for node in null zero full random urandom; do
    : >"$root/dev/$node"
    mount --bind "/dev/$node" "$root/dev/$node"
done
ln -s /proc/self/fd "$root/dev/fd"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
{
    env -i "$@" 2>&1 || echo "$?" >"$work/failed"
} | sed -u -n -e '/^debug: executing "\. /p' -e '/^debug: /!p'
[ ! -e "$work/failed" ] || exit "$(cat "$work/failed")"
unmount
for desc in "$root"/var/lib/pacman/local/*/desc; do
    [ ! -f "$desc" ] || sed -i "/^%INSTALLDATE%\$/{n;s/.*/$epoch/}" "$desc"
done
"$tar" --create --file "$out" --directory "$root" --sort=name --mtime="@$epoch" \
    --clamp-mtime --numeric-owner --one-file-system --format=pax \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime .
"""


def pacman_conf(root: Path, work: Path) -> str:
    """Our own pacman.conf: the root's database and hooks, no repositories, and package
    files taken without signature checks. pacman's default (LocalFileSigLevel inherits
    SigLevel's Optional) already takes an unsigned file, but checks a `.sig` found beside
    one against a keyring we do not have ("invalid or corrupted package (PGP signature)");
    Never for both means no keyring is ever read."""
    return (
        "[options]\n"
        f"RootDir = {root}/\n"
        f"DBPath = {root}/var/lib/pacman/\n"
        f"CacheDir = {root}/var/cache/pacman/pkg/\n"
        f"HookDir = {root}/etc/pacman.d/hooks/\n"  # besides /usr/share/libalpm/hooks
        f"LogFile = {work}/pacman.log\n"  # not in the root: it has the time of the build
        f"GPGDir = {work}/gnupg/\n"
        "Architecture = auto\n"
        "SigLevel = Never\n"
        "LocalFileSigLevel = Never\n"
    )


# --- where package code may run --------------------------------------------------------


def sandbox_problems() -> list[Problem]:
    """debian.sandbox_problems (the same sandbox), said for pacman."""
    problems = []
    for problem in debian.sandbox_problems():
        if "/etc/subuid" in problem.message:  # that message names mmdebstrap
            problem = Problem(
                problem.where,
                SUBUID_MESSAGE.format(user=getpass.getuser()),
                hint=problem.hint,
            )
        problems.append(problem)
    return problems


def validate() -> list[Problem]:
    """Everything that would stop the install before it starts: the tools, the sandbox.
    (Whether the root will have a shell is only known from the packages' files; install
    says so if it does not.)"""
    return [
        *missing_tool_problems(["pacman", "unshare"], "package installation"),
        *sandbox_problems(),
    ]


# --- running pacman --------------------------------------------------------------------


def install(
    files: Sequence[Path],
    out_tar: Path,
    reporter: Reporter,
    *,
    epoch: int,
    stage: str,
) -> PackageInfo:
    """Install the package `files` with pacman into a fresh root, offline, and write that
    root into `out_tar`; returns the tarball as a package for our own extraction. Nothing is
    left at `out_tar` if any package, scriptlet or hook fails."""
    tools = {name: find_tool(name) for name in ("pacman", "sh", "tar")}
    work = Path(tempfile.mkdtemp(prefix=".pacman-", dir=out_tar.parent.absolute()))
    root = work / "root"
    pacman = [
        *ENVIRONMENT,
        f"SOURCE_DATE_EPOCH={epoch}",
        tools["pacman"],
        "--config",
        str(work / "pacman.conf"),
        "--root",
        str(root),
        "--dbpath",
        str(root / "var/lib/pacman"),
        "--noconfirm",
        "--noprogressbar",
        "--color",
        "never",
        "--debug",  # the only way pacman says which scriptlet runs; filtered in SCRIPT
        "-U",
        *(str(f.absolute()) for f in files),
    ]
    args = [
        *debian.sandbox_prefix(network=False),
        tools["sh"],
        "-c",
        SCRIPT,
        "livesmith-pacman",
        str(work),
        str(out_tar.absolute()),
        str(epoch),
        tools["tar"],
        *pacman,
    ]
    reporter.log(
        Level.INFO,
        f"installing {len(files)} packages with pacman (no network; scriptlets and hooks run)",
    )
    try:
        (work / "pacman.conf").write_text(pacman_conf(root, work))
        try:
            output = run_tool(args, reporter, stage=stage)
        except StageError as exc:
            raise transaction_error(exc, root) from None
        failures = failed_steps(output)
        if failures:
            raise failures_error(failures, stage)
    except BaseException:
        out_tar.unlink(missing_ok=True)
        raise
    finally:
        _remove_work(work)
    return PackageInfo(
        name="pacman-root",
        version="",
        size=out_tar.stat().st_size,
        installed_size=None,
        description=f"root made by pacman from {len(files)} packages",
        depends=(),
        provides=(),
        conflicts=(),
        file=out_tar,
        checksum=None,
        kind=SourceKind.TARBALLS,
    )


def _remove_work(work: Path) -> None:
    """The work folder; a root the sandbox could not remove (killed) has owners only the
    sandbox may remove as an ordinary user."""
    if (work / "root").exists() and os.geteuid() != 0:
        rm = [*debian.sandbox_prefix(network=False), "rm", "-rf", "--one-file-system"]
        try:
            run_tool([*rm, str(work / "root")], NullReporter(), stage="cleanup")
        except StageError:
            pass  # the scratch folder's own removal names what is left
    shutil.rmtree(work, ignore_errors=True)


# --- what pacman said ------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """A scriptlet or hook that pacman reported as failed."""

    what: str  # "the post_install scriptlet of foo", "the alpm hook 'Updating caches'"
    package: str  # "" for a hook
    lines: tuple[str, ...]  # its last output lines
    no_program: bool  # it could not even start (no /bin/sh, or no Exec program)


_INSTALLING = re.compile(r"(?:installing|upgrading|reinstalling) (\S+)\.\.\.")
_SCRIPTLET = re.compile(r'debug: executing "\. /tmp/alpm_\w+/\.INSTALL; (\w+)(?: .*)?"')
_HOOK = re.compile(r"\(\s*\d+/\d+\) (.*)")
FAILED = "error: command failed to execute correctly"


def failed_steps(output: str) -> list[Failure]:
    """Every scriptlet and hook pacman ran and reported as failed (it exits 0 for them)."""
    failures = []
    package = scriptlet = hook = ""
    lines: list[str] = []
    no_program = False
    for line in output.splitlines():
        if match := _INSTALLING.fullmatch(line):
            package, scriptlet, hook, lines = match.group(1), "", "", []
        elif match := _SCRIPTLET.fullmatch(line):
            scriptlet, lines, no_program = match.group(1), [], False
        elif line.startswith(":: Running ") and line.endswith(" hooks..."):
            package = scriptlet = ""
        elif not package and (match := _HOOK.fullmatch(line)):
            hook, lines, no_program = match.group(1), [], False
        elif line.startswith("call to execv failed"):
            no_program = True
        elif line == FAILED:
            if hook and not package:
                what, owner = f"the alpm hook {hook!r}", ""
            elif scriptlet:
                what, owner = f"the {scriptlet} scriptlet of {package}", package
            else:
                what, owner = f"a scriptlet of {package or 'a package'}", package
            failures.append(Failure(what, owner, tuple(lines[-8:]), no_program))
        else:
            lines.append(line)
    return failures


def failures_error(failures: Sequence[Failure], stage: str) -> StageError:
    first = failures[0]
    if first.no_program and first.package:
        message = f"{first.what} could not run: the root has no {SCRIPTLET_SHELL}"
        hint: str | None = SHELL_HINT
    elif first.no_program:
        message = f"{first.what} could not run: its program is not in the root"
        hint = "add the package that ships the hook's Exec program (and its shell, if any)"
    else:
        message = f"{first.what} failed" + (
            "; its last lines:\n" + "\n".join(first.lines) if first.lines else " (no output)"
        )
        hint = None
    if len(failures) > 1:
        message += "\nand also: " + "; ".join(f.what for f in failures[1:])
    return StageError(message, stage=stage, where=first.package or None, hint=hint)


_UNSATISFIED = re.compile(r":: unable to satisfy dependency '([^']+)' required by (\S+)")
_BOTH = re.compile(r"(\S+) exists in both '([^']+)' and '([^']+)'")


def transaction_error(exc: StageError, root: Path) -> StageError:
    """pacman refused the transaction (and installed nothing): said in the user's terms."""
    text = exc.message
    missing = _UNSATISFIED.findall(text)
    if missing:
        needs = "; ".join(f"{by} depends on {dep}" for dep, by in missing)
        return StageError(
            f"{needs}, which none of the packages provides",
            stage=exc.stage,
            where=missing[0][1],
            hint="add packages that provide them, in the versions asked for",
        )
    both = _BOTH.findall(text)
    if both:
        listed = "; ".join(
            f"/{Path(path).relative_to(root)} is in both {a} and {b}"
            if Path(path).is_relative_to(root)
            else f"{path} is in both {a} and {b}"
            for path, a, b in both
        )
        return StageError(f"packages ship the same files: {listed}", stage=exc.stage)
    said = [
        line
        for line in text.splitlines()
        if line.startswith("error: ")
        or (line.startswith(":: ") and "[" not in line and not line.endswith("..."))
    ]
    if said:
        return StageError(
            "pacman could not install the packages:\n" + "\n".join(said), stage=exc.stage
        )
    return exc
