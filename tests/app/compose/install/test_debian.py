"""Debian roots by mmdebstrap: where the suite and mirror come from, who may run package
code, and what package code can reach (real mmdebstrap runs, with maintainer scripts)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from app.compose.install import debian
from app.compose.install.debian import DebianRoot
from app.compose.pipeline import make_context, validate_build
from app.compose.profile import InstallMethod, PackageOptions, Profile, SystemOptions
from app.errors import StageError
from app.packages.apt import AptSource
from app.packages.deb import parse_stanzas, write_flat_repository
from app.packages.model import SourceKind, SourceSpec
from app.reporter import RecordingReporter
from tests.conftest import needs_root
from tests.support.debian import script_package
from tests.support.unprivileged import run_as_nobody

# --- suite, mirror, sources ------------------------------------------------------------


def test_the_host_suite_comes_from_os_release(tmp_path: Path) -> None:
    release = tmp_path / "os-release"
    release.write_text('NAME="Ubuntu"\nVERSION_CODENAME=noble\nID=ubuntu\n')
    assert debian.host_suite(release) == "noble"
    release.write_text("ID=debian\nVERSION_CODENAME='trixie'\n")
    assert debian.host_suite(release) == "trixie"
    release.write_text("ID=debian\n")
    assert debian.host_suite(release) == ""
    assert debian.host_suite(tmp_path / "missing") == ""


def test_host_sources_are_the_non_empty_source_files_in_apt_order(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text("# only a comment\n\n")
    parts = tmp_path / "sources.list.d"
    parts.mkdir()
    (parts / "b.list").write_text("deb http://example.org/debian bookworm main\n")
    (parts / "a.sources").write_text("Types: deb\nURIs: http://example.org/\n")
    (parts / "notes.txt").write_text("deb http://ignored/ x main\n")
    assert debian.host_sources(tmp_path) == [parts / "a.sources", parts / "b.list"]


def test_mirror_arguments_follow_the_profile_then_the_host(tmp_path: Path) -> None:
    own = DebianRoot("bookworm", ("bash",), mirror="http://mirror.example/debian")
    assert debian.mirror_args(own) == ["http://mirror.example/debian"]
    host = DebianRoot(debian.host_suite(), ("bash",))
    assert debian.mirror_args(host) == [str(p) for p in debian.host_sources()]
    other = DebianRoot("sid-but-not-the-host", ("bash",))
    assert debian.mirror_args(other) == []  # mmdebstrap's default for the suite
    local = debian.local_repository(tmp_path)
    assert local == f"deb [trusted=yes] copy://{tmp_path} ./"
    extra = DebianRoot("sid-but-not-the-host", ("bash",), extra_sources=(local,))
    assert debian.mirror_args(extra) == ["http://deb.debian.org/debian", local]


def test_validation_names_each_bad_value() -> None:
    root = DebianRoot("Bookworm;x", ("bash",), mirror="ftp://old.example", components=("Main!",))
    problems = {p.where: p.message for p in debian.validate(root)}
    assert "'Bookworm;x' is not a suite name" in problems["packages: suite"]
    assert "not an http(s):// or file:// URL" in problems["packages: mirror"]
    assert "'Main!' is not a component" in problems["packages: components"]
    assert debian.validate(DebianRoot("bookworm", ("bash",), components=("main",))) == []


# --- who may run package code ----------------------------------------------------------


def test_subuid_entries_by_name_or_number(tmp_path: Path) -> None:
    subuid = tmp_path / "subuid"
    subuid.write_text("ana:100000:65536\n1002:165536:65536\nbroken\nbob:1\n")
    assert debian.subuid_entry("ana", 1001, subuid)
    assert debian.subuid_entry("carl", 1002, subuid)
    assert not debian.subuid_entry("bob", 1003, subuid)  # malformed line
    assert not debian.subuid_entry("dora", 1004, subuid)
    assert not debian.subuid_entry("ana", 1001, tmp_path / "missing")


@needs_root
def test_a_user_without_subordinate_ids_is_told_the_one_line_fix() -> None:
    out = run_as_nobody(
        "from app.compose.install.debian import sandbox_problems\n"
        "for p in sandbox_problems(): print(p.message, '|', p.hint)"
    )
    assert out.returncode == 0, out.stderr.decode()
    text = out.stdout.decode()
    assert "user nobody has no subordinate user ids in /etc/subuid" in text
    assert "usermod --add-subuids 100000-165535 --add-subgids 100000-165535 nobody" in text


@needs_root
def test_as_root_the_install_pass_has_no_network_and_no_user_namespace() -> None:
    install = debian.sandbox_prefix(network=False)
    assert "--net" in install and "--user" not in install and install[-1] == "--"
    assert "--net" not in debian.sandbox_prefix(network=True)
    assert debian.sandbox_problems() == []


def test_a_dpkg_failure_is_said_in_the_users_terms() -> None:
    output = (
        "mmdebstrap failed with exit status 1:\n"
        "Setting up breaks (1.0) ...\n"
        "about to fail\n"
        "dpkg: error processing package breaks (--configure):\n"
        " installed breaks package post-installation script subprocess returned error "
        "exit status 3\n"
        "Errors were encountered while processing:\n breaks\n"
    )
    error = debian.failed_script_error(StageError(output, stage="assemble"))
    assert error.message.startswith("the postinst script of breaks failed with exit status 3")
    assert "about to fail" in error.message and error.where == "breaks"
    other = StageError("mmdebstrap failed with exit status 1:\nE: something else", stage="x")
    assert debian.failed_script_error(other) is other


# --- real runs -------------------------------------------------------------------------


def make_root(root: DebianRoot, tmp_path: Path, cache: Path) -> Path:
    """The root folder, extracted by us from mmdebstrap's output."""
    work = tmp_path / "work"
    target = work / "root"
    reporter = RecordingReporter()
    debian.download(root, cache, work / "lists", work / "archives", reporter, stage="gather")
    manifest = debian.install(
        root, work / "lists", work / "archives", target, reporter, epoch=1767225600,
        stage="assemble",
    )  # fmt: skip
    assert manifest.get("var/lib/dpkg/status") is not None
    assert not list(work.glob("*.tar"))  # streamed into the extraction, not written
    return target


@pytest.mark.slow
@needs_root
def test_a_failing_postinst_stops_the_build_naming_package_script_and_output(
    tmp_path: Path, package_cache: Path
) -> None:
    repo = tmp_path / "repo"
    script_package(
        repo, "breaks-on-configure", 'echo "disk quota of the unicorn exceeded"\nexit 3\n'
    )
    root = DebianRoot(
        debian.host_suite(),
        ("breaks-on-configure",),
        extra_sources=(debian.local_repository(repo),),
    )
    with pytest.raises(StageError) as caught:
        make_root(root, tmp_path, package_cache)
    message = caught.value.message
    assert "the postinst script of breaks-on-configure failed with exit status 3" in message
    assert "disk quota of the unicorn exceeded" in message
    target = tmp_path / "work" / "root"
    assert not target.exists() or not any(target.iterdir())  # nothing half-built


PROBE = """\
exec 2>/dev/null
mkdir -p /var/lib/probe
{
  if cat @SECRET@ >/dev/null; then echo "host file: read"; else echo "host file: unreadable"; fi
  if echo escaped > @ESCAPE@; then echo "write: done"; else echo "write: refused"; fi
  if exec 3<>/dev/tcp/127.0.0.1/@PORT@; then echo "network: connected"; else echo "network: none"; fi
} > /var/lib/probe/result
exit 0
"""


@pytest.mark.slow
@needs_root
def test_maintainer_scripts_reach_no_host_file_and_no_network(
    tmp_path: Path, package_cache: Path
) -> None:
    secret = Path("/tmp") / f"livesmith-host-secret-{os.getpid()}"
    escape = Path("/tmp") / f"livesmith-escape-{os.getpid()}"
    secret.write_text("only on the host\n")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0)
    port = listener.getsockname()[1]
    try:
        repo = tmp_path / "repo"
        script_package(
            repo,
            "probe",
            PROBE.replace("@SECRET@", str(secret))
            .replace("@ESCAPE@", str(escape))
            .replace("@PORT@", str(port)),
        )
        root = DebianRoot(
            debian.host_suite(), ("probe",), extra_sources=(debian.local_repository(repo),)
        )
        result = (make_root(root, tmp_path, package_cache) / "var/lib/probe/result").read_text()
        assert result.splitlines() == [
            "host file: unreadable",  # the chroot has no /tmp/livesmith-host-secret-*
            "write: done",  # ...into the chroot's own /tmp
            "network: none",
        ]
        assert not escape.exists()  # nothing reached the host's /tmp
        with pytest.raises(BlockingIOError):
            listener.accept()  # and no connection reached the host
    finally:
        listener.close()
        secret.unlink()
        escape.unlink(missing_ok=True)


@pytest.mark.slow
def test_an_unknown_suite_is_named(tmp_path: Path, package_cache: Path) -> None:
    root = DebianRoot("no-such-suite", ("bash",), mirror="http://deb.debian.org/debian")
    with pytest.raises(StageError) as caught:
        debian.download(
            root, package_cache, tmp_path / "l", tmp_path / "a", RecordingReporter(), stage="gather"
        )
    assert "the suite 'no-such-suite' is not in http://deb.debian.org/debian" in str(caught.value)


def test_a_folder_of_debs_becomes_a_flat_repository_apt_can_read(tmp_path: Path) -> None:
    folder = tmp_path / "debs"
    script_package(folder, "tool", "true\n", depends="libc6 (>= 2.17)", index=False)
    repo = tmp_path / "repo"
    assert write_flat_repository(sorted(folder.glob("*.deb")), repo) == ["tool"]
    ours = parse_stanzas((repo / "Packages").read_text())
    scanned = subprocess.run(
        ["dpkg-scanpackages", "."], cwd=folder, capture_output=True, check=True
    ).stdout.decode()
    theirs = parse_stanzas(scanned)
    for key in ("Package", "Version", "Depends", "Description", "Size", "SHA256"):
        assert ours[0][key] == theirs[0][key], key
    assert ours[0]["Filename"] == "./tool.deb" and (repo / "tool.deb").resolve() == (
        folder / "tool.deb"
    )


@pytest.mark.slow
@needs_root
def test_a_local_folder_sits_beside_the_suite_and_wins_over_it(
    tmp_path: Path, package_cache: Path
) -> None:
    folder = tmp_path / "debs"
    # hello 0.1 here, 2.10 in the suite: the folder's is installed, with its postinst, and
    # its dependency comes from the suite.
    script_package(
        folder,
        "hello",
        "echo from-the-folder > /var/lib/hello-postinst\n",
        version="0.1",
        depends="bsdextrautils",
        index=False,
    )
    repo = tmp_path / "local"
    write_flat_repository(sorted(folder.glob("*.deb")), repo)
    root = DebianRoot(debian.host_suite(), ("hello",), local_repo=str(repo))
    made = make_root(root, tmp_path, package_cache)
    assert (made / "var/lib/hello-postinst").read_text() == "from-the-folder\n"
    assert (made / "usr/bin/column").is_file()  # bsdextrautils, from the suite
    status = (made / "var/lib/dpkg/status").read_text()
    assert "Package: hello\nStatus: install ok installed" in status
    assert "Version: 0.1\n" in status
    apt = [made / "etc/apt/sources.list", *(made / "etc/apt/sources.list.d").iterdir()]
    sources = "".join(p.read_text() for p in apt if p.is_file() and not p.is_symlink())
    assert "copy://" not in sources and "deb.debian.org" in sources
    assert not (made / "etc/apt/sources.list.d/0001main.list").exists()  # emptied: removed
    assert not (made / debian.LOCAL_PREFERENCES.lstrip("/")).exists()
    shared = package_cache / "debian" / root.cache_key
    assert not list(shared.glob("hello_*")) and list(shared.glob("bsdextrautils_*"))


def test_validation_sees_the_profiles_archive_not_the_hosts(tmp_path: Path) -> None:
    root = DebianRoot(
        "bookworm",
        ("firmware-misc-nonfree",),
        mirror="http://deb.debian.org/debian",
        components=("main", "non-free-firmware"),
    )
    reporter = RecordingReporter()
    view = debian.archive_view(root, tmp_path, reporter)
    assert view.problems == ()
    firmware = AptSource(apt_options=view.apt_options).get("firmware-misc-nonfree")
    assert firmware is not None and firmware.kind is SourceKind.APT
    assert [m for _, m in reporter.logs] == ["reading the package lists of bookworm"]
    again = RecordingReporter()
    assert debian.archive_view(root, tmp_path, again) == view  # fresh lists: not fetched again
    assert again.logs == []


def test_an_unknown_suite_is_a_problem_before_building(tmp_path: Path) -> None:
    profile = Profile(
        "p",
        packages=PackageOptions(
            SourceSpec(SourceKind.APT),
            ("bash", "busybox-static", "linux-image-amd64"),
            install=InstallMethod.MMDEBSTRAP,
            suite="no-such-suite",
            mirror="http://deb.debian.org/debian",
        ),
    )
    ctx = make_context(profile, tmp_path / "o.iso", RecordingReporter(), cache_dir=tmp_path)
    problems = [str(p) for p in validate_build(ctx)]
    assert (
        "packages: suite: the suite 'no-such-suite' is not in http://deb.debian.org/debian "
        "(check the suite name (e.g. bookworm, trixie, noble) and the mirror)"
    ) in problems


def test_the_shared_cache_keeps_what_builds_use_and_drops_old_versions(tmp_path: Path) -> None:
    shared, archives = tmp_path / "shared", tmp_path / "archives"
    shared.mkdir()
    archives.mkdir()
    month_ago = time.time() - 31 * 86400
    for name in ("bash_5.1_amd64.deb", "bash_5.2_amd64.deb", "zsh_5.9_amd64.deb"):
        (shared / name).write_bytes(b"deb")
        os.utime(shared / name, (month_ago, month_ago))
    (archives / "bash_5.2_amd64.deb").write_bytes(b"deb")  # this build's
    (archives / "curl_8.0_amd64.deb").write_bytes(b"new")
    debian._publish(archives, shared, skip=set())
    assert sorted(p.name for p in shared.iterdir()) == [
        "bash_5.2_amd64.deb",  # used now: kept, and marked as used
        "curl_8.0_amd64.deb",  # new
    ]
    assert (shared / "bash_5.2_amd64.deb").stat().st_mtime > month_ago + 86400
    (shared / "old_1_all.deb").write_bytes(b"x")  # unused, but recent: kept
    assert debian.prune_cache(shared, keep=set()) == []


def test_this_machines_unshare_maps_subordinate_ids() -> None:
    assert debian.unshare_maps_ranges()  # util-linux 2.38 (Debian 12)


@pytest.mark.slow
def test_units_no_package_of_the_build_ships_are_problems_before_building(
    tmp_path: Path, package_cache: Path
) -> None:
    profile = Profile(
        "p",
        packages=PackageOptions(
            SourceSpec(SourceKind.APT),
            ("systemd-sysv", "bash", "busybox-static", "linux-image-amd64"),
            install=InstallMethod.MMDEBSTRAP,
            suite="bookworm",
            mirror="http://deb.debian.org/debian",
        ),
        system=SystemOptions(
            enable_units=("ssh.service", "getty@tty2.service", "nope.service"),
            # apt's and util-linux's: installed by mmdebstrap though not selected
            disable_units=("apt-daily.timer", "fstrim.timer"),
        ),
    )
    ctx = make_context(profile, tmp_path / "o.iso", RecordingReporter(), cache_dir=package_cache)
    problems = [str(p) for p in validate_build(ctx) if p.where == "services"]
    assert problems == [
        "services: the unit ssh.service comes with openssh-server, which is not among the "
        "packages (add openssh-server to the packages)",
        "services: no package in bookworm ships the unit nope.service",
    ]


def test_the_install_pass_sees_only_the_downloaded_packages_in_its_lists(tmp_path: Path) -> None:
    lists, archives = tmp_path / "lists", tmp_path / "archives"
    lists.mkdir()
    archives.mkdir()
    for name in ("bash_5.2.15-2+b2_amd64.deb", "bsdutils_1%3a2.38.1-5_amd64.deb"):
        (archives / name).write_bytes(b"")
    stanzas = [
        "Package: bash\nVersion: 5.2.15-2+b2\nArchitecture: amd64\nInstalled-Size: 7000\n"
        "Description: shell\n with a second line\n",
        "Package: bash\nVersion: 5.1-1\nArchitecture: amd64\nInstalled-Size: 6000\n",
        "Package: bsdutils\nVersion: 1:2.38.1-5\nArchitecture: amd64\nInstalled-Size: 300\n",
        "Package: zsh\nVersion: 5.9-4\nArchitecture: amd64\nInstalled-Size: 9000\n",
    ]
    index = lists / "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages"
    index.write_text("\n".join(stanzas))
    (lists / "x_InRelease").write_text("untouched\n")
    before, after, installed = debian.trim_lists(lists, archives)
    assert index.read_text() == stanzas[0] + "\n" + stanzas[2]
    assert before == len("\n".join(stanzas)) + 2 and after == len(index.read_bytes())
    assert installed == (7000 + 300) * 1024
    assert (lists / "x_InRelease").read_text() == "untouched\n"


def test_the_download_pass_unpacks_nothing_but_dpkg_deb_still_answers(tmp_path: Path) -> None:
    folder = tmp_path / "deb"
    script_package(folder, "tool", "true\n", index=False)
    deb = next(folder.glob("*.deb"))
    stand_in = debian.stand_in_dpkg_deb(tmp_path / "tools") / "dpkg-deb"
    tree = subprocess.run([stand_in, "--fsys-tarfile", deb], capture_output=True, check=True)
    listing = subprocess.run(["tar", "-t"], input=tree.stdout, capture_output=True, check=True)
    assert listing.stdout == b""  # an empty tree, and a valid tar
    real = subprocess.run(["dpkg-deb", "--fsys-tarfile", deb], capture_output=True, check=True)
    assert real.stdout != tree.stdout
    field = subprocess.run([stand_in, "-f", deb, "Package"], capture_output=True, check=True)
    assert field.stdout == b"tool\n"
