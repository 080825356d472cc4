"""Arch-style roots by pacman: install scriptlets and alpm hooks run in the sandbox, their
failures stop the build, and package code reaches neither the host's files nor the network
(real pacman runs on packages made here, with a real static BusyBox as the root's shell)."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from app.compose.assemble import assemble_root
from app.compose.install import pacman
from app.compose.manifest import RootManifest
from app.errors import Cancelled, StageError
from app.packages.model import PackageInfo, SourceKind
from app.reporter import Level, RecordingReporter
from tests.app.packages.fixtures import (
    FixturePackage,
    busybox_package,
    file,
    make_arch_folder,
    text_package,
)
from tests.conftest import needs_root
from tests.support.unprivileged import (
    REPO,
    builder_user,
    run_as_nobody,
    unprivileged_python,
)

EPOCH = 1_767_225_600
needs_sandbox = pytest.mark.skipif(
    bool(pacman.validate()), reason="pacman or the sandbox for package code is not available"
)

SHELL = busybox_package(
    applets=("sh", "cat", "chmod", "chown", "echo", "mkdir", "nc", "sleep", "true")
)
BASE = FixturePackage(  # what Arch's `filesystem` package gives every root
    "filesystem",
    entries=(
        file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
        file("etc/group", "root:x:0:\n"),
    ),
)


def make_packages(tmp_path: Path, packages: Sequence[FixturePackage]) -> list[Path]:
    folder = make_arch_folder(tmp_path, packages, name="arch")
    return sorted(folder.glob("*.pkg.tar.zst"))


def out_folder(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    return out


def install(
    tmp_path: Path, packages: Sequence[FixturePackage], reporter: RecordingReporter | None = None
) -> Path:
    files = make_packages(tmp_path, packages)
    tar = out_folder(tmp_path) / "root.tar"
    pacman.install(files, tar, reporter or RecordingReporter(), epoch=EPOCH, stage="assemble")
    return tar


def extracted(tar: Path, tmp_path: Path) -> tuple[Path, RootManifest]:
    """The tarball through our own extraction, as the pipeline does."""
    root = tmp_path / "root"
    info = PackageInfo("pacman-root", "", 0, None, "", (), (), (), tar, None, SourceKind.TARBALLS)
    return root, assemble_root([(info, tar)], root, RecordingReporter())


def failure(tmp_path: Path, packages: Sequence[FixturePackage]) -> StageError:
    with pytest.raises(StageError) as caught:
        install(tmp_path, packages)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []  # no tar, no work folder
    return caught.value


# --- reading what pacman said (no pacman run) --------------------------------------------

PACMAN_SAID = """\
:: Processing package changes...
installing busybox...
installing quiet...
debug: executing ". /tmp/alpm_Ab12Cd/.INSTALL; pre_install 1.0-1"
checking the moon
error: command failed to execute correctly
debug: executing ". /tmp/alpm_Ef34Gh/.INSTALL; post_install 1.0-1"
all fine
installing lonely...
debug: executing ". /tmp/alpm_Ij56Kl/.INSTALL; post_install 2.0-1"
call to execv failed (No such file or directory)
error: command failed to execute correctly
:: Running post-transaction hooks...
(1/2) Updating the cache
(2/2) Counting sheep
sheep 1
sheep 2
error: command failed to execute correctly
"""


def test_each_failed_scriptlet_and_hook_is_found_with_its_last_lines() -> None:
    found = pacman.failed_steps(PACMAN_SAID)
    assert [(f.what, f.package, f.lines, f.no_program) for f in found] == [
        ("the pre_install scriptlet of quiet", "quiet", ("checking the moon",), False),
        ("the post_install scriptlet of lonely", "lonely", (), True),
        ("the alpm hook 'Counting sheep'", "", ("sheep 1", "sheep 2"), False),
    ]
    error = pacman.failures_error(found, "assemble")
    assert error.message.startswith("the pre_install scriptlet of quiet failed; its last lines:")
    assert error.where == "quiet"
    assert "and also: the post_install scriptlet of lonely; the alpm hook" in error.message
    assert pacman.failed_steps(PACMAN_SAID.replace("error: command failed", "ok")) == []


def test_a_refused_transaction_names_the_unmet_dependency_or_the_shared_file() -> None:
    root = Path("/w/root")
    unmet = StageError(
        "unshare failed with exit status 1:\n"
        "error: failed to prepare transaction (could not satisfy dependencies)\n"
        ":: unable to satisfy dependency 'libfoo>=2' required by app\n",
        stage="assemble",
    )
    error = pacman.transaction_error(unmet, root)
    assert error.message == "app depends on libfoo>=2, which none of the packages provides"
    assert error.where == "app"
    shared = StageError(
        "unshare failed with exit status 1:\n"
        "error: failed to commit transaction (conflicting files)\n"
        "/w/root/usr/bin/x exists in both 'one' and 'two'\n",
        stage="assemble",
    )
    assert pacman.transaction_error(shared, root).message == (
        "packages ship the same files: /usr/bin/x is in both one and two"
    )


@needs_root
def test_a_user_without_subordinate_ids_is_told_why_pacman_needs_them() -> None:
    out = run_as_nobody(
        "from app.compose.install.pacman import sandbox_problems\n"
        "for p in sandbox_problems(): print(p.message, '|', p.hint)"
    )
    assert out.returncode == 0, out.stderr.decode()
    text = out.stdout.decode()
    assert "user nobody has no subordinate user ids in /etc/subuid, which pacman needs" in text
    assert "mmdebstrap" not in text
    assert "usermod --add-subuids 100000-165535 --add-subgids 100000-165535 nobody" in text


# --- real runs -----------------------------------------------------------------------------

SERVICE = FixturePackage(
    "svc",
    depends=("busybox", "filesystem"),
    entries=(file("usr/share/svc/README", "a service\n"),),
    arch_install="""\
post_install() {
    echo "svc:x:990:990:test service:/var/lib/svc:/bin/false" >>/etc/passwd
    echo "svc:x:990:" >>/etc/group
    mkdir -p /var/lib/svc
    echo "made by post_install $1" >/var/lib/svc/state
    chown -R svc:svc /var/lib/svc
    chmod 0750 /var/lib/svc
    echo "svc is ready"
}
""",
)


@needs_sandbox
def test_a_post_install_scriptlet_adds_a_system_user_who_owns_its_files(tmp_path: Path) -> None:
    reporter = RecordingReporter()
    tar = install(tmp_path, [SHELL, BASE, SERVICE], reporter)
    assert any(message == "svc is ready" for _, message in reporter.logs)
    root, manifest = extracted(tar, tmp_path)
    assert "svc:x:990:990:test service:" in (root / "etc/passwd").read_text()
    assert (root / "var/lib/svc/state").read_text() == "made by post_install 1.0-1\n"
    state, folder = manifest.get("var/lib/svc/state"), manifest.get("var/lib/svc")
    assert state is not None and (state.uid, state.gid, state.mode) == (990, 990, 0o644)
    assert folder is not None and (folder.uid, folder.gid, folder.mode) == (990, 990, 0o750)
    # pacman's own database is in the root, dated by the epoch, not the build's clock
    desc = (root / "var/lib/pacman/local/svc-1.0-1/desc").read_text()
    assert f"%INSTALLDATE%\n{EPOCH}\n" in desc


HOOK = """\
[Trigger]
Operation = Install
Type = Path
Target = usr/share/probe/*

[Action]
Description = Listing the probe's files
When = PostTransaction
Exec = /bin/sh -c 'mkdir -p /var/cache/probe && cat >/var/cache/probe/targets'
NeedsTargets
"""


@needs_sandbox
def test_a_packaged_alpm_hook_runs_after_the_transaction(tmp_path: Path) -> None:
    hooks = FixturePackage(
        "probe-hooks", entries=(file("usr/share/libalpm/hooks/50-probe.hook", HOOK),)
    )
    data = text_package(
        "probe-data", files={"usr/share/probe/a": "a\n", "usr/share/probe/b": "b\n"}
    )
    reporter = RecordingReporter()
    root, _ = extracted(install(tmp_path, [SHELL, hooks, data], reporter), tmp_path)
    targets = (root / "var/cache/probe/targets").read_text().splitlines()
    assert targets == ["usr/share/probe/", "usr/share/probe/a", "usr/share/probe/b"]
    assert any("Listing the probe's files" in message for _, message in reporter.logs)


@needs_sandbox
@pytest.mark.parametrize("scriptlet", ["pre_install", "post_install"])
def test_a_failing_scriptlet_stops_the_build_naming_package_scriptlet_and_output(
    tmp_path: Path, scriptlet: str
) -> None:
    breaks = FixturePackage(
        "breaks",
        depends=("busybox",),
        arch_install=f'{scriptlet}() {{\n  echo "disk quota of the unicorn exceeded"\n'
        "  return 3\n}\n",
    )
    error = failure(tmp_path, [SHELL, breaks])
    assert error.message.startswith(f"the {scriptlet} scriptlet of breaks failed")
    assert "disk quota of the unicorn exceeded" in error.message
    assert error.where == "breaks"


@needs_sandbox
def test_scriptlets_need_a_shell_in_the_root_and_are_told_so(tmp_path: Path) -> None:
    lonely = FixturePackage("lonely", arch_install="post_install() {\n  true\n}\n")
    error = failure(tmp_path, [lonely])
    assert (
        error.message
        == "the post_install scriptlet of lonely could not run: the root has no /bin/sh"
    )
    assert error.hint is not None and "/bin/sh" in error.hint


class CancelWhenSaid(RecordingReporter):
    """Cancels as soon as package code prints `line`."""

    def __init__(self, line: str) -> None:
        super().__init__()
        self.line = line

    def log(self, level: Level, message: str) -> None:
        super().log(level, message)
        if message == self.line:
            self.cancel()


@needs_sandbox
def test_a_cancel_while_a_scriptlet_runs_stops_it_and_leaves_nothing(tmp_path: Path) -> None:
    sleeper = FixturePackage(
        "sleeper",
        depends=("busybox",),
        arch_install="post_install() {\n  echo dozing off\n  sleep 60\n}\n",
    )
    started = time.monotonic()
    with pytest.raises(Cancelled):
        install(tmp_path, [SHELL, sleeper], CancelWhenSaid("dozing off"))
    assert time.monotonic() - started < 20
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []


@needs_sandbox
def test_a_missing_dependency_is_named(tmp_path: Path) -> None:
    needy = text_package("needy", depends=("busybox", "libunicorn>=2"))
    error = failure(tmp_path, [SHELL, needy])
    assert error.message == "needy depends on libunicorn>=2, which none of the packages provides"


PROBE = """\
post_install() {
    mkdir -p /var/lib/probe
    {
        if cat @SECRET@ >/dev/null 2>&1; then echo "host file: read"; else echo "host file: unreadable"; fi
        if echo escaped >@ESCAPE@; then echo "write: done"; else echo "write: refused"; fi
        if nc -w 2 127.0.0.1 @PORT@ -e true </dev/null >/dev/null 2>&1; then echo "network: connected"; else echo "network: none"; fi
    } >/var/lib/probe/result
}
"""


@needs_sandbox
def test_scriptlets_reach_no_host_file_and_no_network(tmp_path: Path) -> None:
    tag = f"{os.getpid()}-{os.urandom(4).hex()}"
    secret = Path("/tmp") / f"livesmith-host-secret-{tag}"
    escape = Path("/tmp") / f"livesmith-hostfile-{tag}"
    secret.write_text("only on the host\n")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0)
    port = listener.getsockname()[1]
    try:
        probe = FixturePackage(
            "probe",
            depends=("busybox",),
            arch_install=PROBE.replace("@SECRET@", str(secret))
            .replace("@ESCAPE@", str(escape))
            .replace("@PORT@", str(port)),
        )
        root, _ = extracted(install(tmp_path, [SHELL, probe]), tmp_path)
        assert (root / "var/lib/probe/result").read_text().splitlines() == [
            "host file: unreadable",  # the root has no /tmp/livesmith-host-secret-*
            "write: done",  # ...into the root's own /tmp
            "network: none",
        ]
        assert (root / escape.relative_to("/")).read_text() == "escaped\n"
        assert not escape.exists()  # nothing reached the host's /tmp
        with pytest.raises(BlockingIOError):
            listener.accept()  # and no connection reached the host
    finally:
        listener.close()
        secret.unlink()
        escape.unlink(missing_ok=True)


@needs_sandbox
@pytest.mark.parametrize("evil", ["dotdot", "absolute"])
def test_package_members_naming_places_outside_stay_out_of_the_host(
    tmp_path: Path, evil: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    member = {
        "dotdot": "../" * 12 + str(outside / "evil").lstrip("/"),
        "absolute": str(outside / "evil"),
    }[evil]
    package = FixturePackage("evil", entries=(file(member, "x"),), auto_dirs=False)
    root, _ = extracted(install(tmp_path, [package]), tmp_path)
    assert list(outside.iterdir()) == []
    if evil == "absolute":  # pacman puts it below the root
        assert (root / member.lstrip("/")).read_text() == "x"


@needs_sandbox
def test_the_same_packages_and_epoch_give_the_same_tarball(tmp_path: Path) -> None:
    first = install(tmp_path / "a", [SHELL, BASE, SERVICE])
    second = install(tmp_path / "b", [SHELL, BASE, SERVICE])
    assert first.read_bytes() == second.read_bytes()


def give(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [*dirnames, *filenames]:
            os.chown(Path(dirpath, name), uid, gid)


INSTALL_AS_USER = """\
import sys
from pathlib import Path
from app.compose.install import pacman
from app.reporter import Level, RecordingReporter
folder = Path(sys.argv[1])
pacman.install(
    sorted((folder / "arch").glob("*.pkg.tar.zst")), folder / "out" / "root.tar",
    RecordingReporter(), epoch=1767225600, stage="assemble",
)
"""


@needs_root
def test_an_ordinary_user_installs_with_real_owners(tmp_path: Path) -> None:
    user = builder_user()  # with a range of subordinate ids, as an unprivileged build needs
    account = pwd.getpwnam(user)
    place = Path(tempfile.mkdtemp(prefix="livesmith-pacman-user-"))
    try:
        shipped = FixturePackage(
            "shipped", entries=(file("usr/share/shipped/data", "x", uid=991, gid=992),)
        )
        make_packages(place, [SHELL, BASE, SERVICE, shipped])
        out_folder(place)
        give(place, account.pw_uid, account.pw_gid)
        with unprivileged_python(user=user) as prefix:
            proc = subprocess.run(
                [*prefix, "-c", INSTALL_AS_USER, str(place)],
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO), "HOME": account.pw_dir},
                capture_output=True,
                text=True,
            )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        tar = place / "out" / "root.tar"
        assert tar.stat().st_uid == account.pw_uid
        with tarfile.open(tar) as archive:
            owners = {m.name: (m.uid, m.gid) for m in archive.getmembers()}
        assert owners["./var/lib/svc/state"] == (990, 990)  # chown in a scriptlet
        assert owners["./usr/share/shipped/data"] == (991, 992)  # as the package says
        assert owners["./etc/passwd"] == (0, 0)
        assert sorted(p.name for p in (place / "out").iterdir()) == ["root.tar"]
    finally:
        shutil.rmtree(place, ignore_errors=True)
