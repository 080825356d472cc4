from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.compose.configure import BuildFacts, configure_root, render_issue, validate_issue
from app.compose.crypt import sha512_crypt
from app.compose.manifest import FileMeta, Kind, RootManifest
from app.compose.profile import SystemOptions
from app.errors import InputError, StageError
from app.reporter import RecordingReporter
from tests.support.debian import busybox_static

FACTS = BuildFacts(
    name="minimal", label="LIVESMITH", build_id="0123456789abcdef", date="2026-11-22"
)


def busybox_root(tmp_path: Path) -> tuple[Path, RootManifest]:
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    shutil.copy2(busybox_static(), root / "bin/busybox")
    manifest = RootManifest()
    manifest.add(FileMeta("bin", Kind.DIR, 0o755))
    manifest.add(FileMeta("bin/busybox", Kind.FILE, 0o755, owner="busybox-static"))
    return root, manifest


def test_a_busybox_root_gets_init_accounts_and_issue(tmp_path: Path) -> None:
    root, manifest = busybox_root(tmp_path)
    options = SystemOptions(hostname="box", root_password="secret", user="ana", user_password="pw")
    configure_root(root, manifest, options, FACTS, RecordingReporter(), epoch=1_700_000_000)

    assert (root / "etc/hostname").read_text() == "box\n"
    assert (root / "sbin/init").is_symlink() and (root / "bin/sh").is_symlink()
    assert "ttyS0::respawn:/sbin/getty -L 115200 ttyS0" in (root / "etc/inittab").read_text()
    shadow = {
        line.split(":")[0]: line.split(":")[1]
        for line in (root / "etc/shadow").read_text().splitlines()
    }
    salt = shadow["root"].split("$")[2]
    assert shadow["root"] == sha512_crypt("secret", salt)
    assert shadow["ana"] == sha512_crypt("pw", shadow["ana"].split("$")[2])
    assert "ana:x:1000:1000:ana:/home/ana:/bin/sh" in (root / "etc/passwd").read_text()
    issue = (root / "etc/issue").read_text()
    assert "built 2026-11-22" in issue and "password: secret" in issue and "ana" in issue

    # the manifest says what the image must carry, whatever the host files say
    assert manifest.get("etc/shadow") == FileMeta("etc/shadow", Kind.FILE, 0o600)
    assert manifest.get("tmp").mode == 0o1777
    assert manifest.get("home/ana").uid == 1000
    assert manifest.get("sbin/init").kind is Kind.SYMLINK
    assert manifest.get("bin/busybox").owner == "busybox-static"  # package entry kept
    assert manifest.get("etc/init.d/rcS").mode == 0o755


def test_same_inputs_give_the_same_password_hashes(tmp_path: Path) -> None:
    hashes = []
    for run in ("a", "b"):
        root, manifest = busybox_root(tmp_path / run)
        configure_root(root, manifest, SystemOptions(), FACTS, RecordingReporter(), epoch=0)
        hashes.append((root / "etc/shadow").read_text())
    assert hashes[0] == hashes[1]


def test_a_hostile_etc_symlink_never_reaches_the_host(tmp_path: Path) -> None:
    root, manifest = busybox_root(tmp_path)
    (root / "etc").symlink_to("/etc")
    before = Path("/etc/hostname").read_bytes() if Path("/etc/hostname").exists() else None
    with pytest.raises(InputError):
        configure_root(
            root, manifest, SystemOptions(hostname="pwned"), FACTS, RecordingReporter(), epoch=0
        )
    after = Path("/etc/hostname").read_bytes() if Path("/etc/hostname").exists() else None
    assert before == after


def test_a_usr_merged_root_gets_links_through_its_own_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "bin").symlink_to("usr/bin")
    (root / "sbin").symlink_to("usr/bin")
    shutil.copy2(busybox_static(), root / "usr/bin/busybox")
    manifest = RootManifest()
    configure_root(root, manifest, SystemOptions(), FACTS, RecordingReporter(), epoch=0)
    assert (root / "usr/bin/init").is_symlink()
    assert (root / "bin").is_symlink()


def test_without_init_or_busybox_the_error_says_what_to_add(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(StageError, match="add busybox"):
        configure_root(root, RootManifest(), SystemOptions(), FACTS, RecordingReporter(), epoch=0)


def test_overlay_is_copied_on_top_as_root(tmp_path: Path) -> None:
    root, manifest = busybox_root(tmp_path)
    overlay = tmp_path / "overlay"
    (overlay / "etc/motd.d").mkdir(parents=True)
    (overlay / "etc/motd.d/hello").write_text("hi\n")
    (overlay / "usr/local/bin").mkdir(parents=True)
    (overlay / "usr/local/bin/tool").write_text("#!/bin/sh\n")
    (overlay / "usr/local/bin/tool").chmod(0o750)
    configure_root(
        root, manifest, SystemOptions(overlay=str(overlay)), FACTS, RecordingReporter(), epoch=0
    )
    assert (root / "etc/motd.d/hello").read_text() == "hi\n"
    assert manifest.get("usr/local/bin/tool") == FileMeta("usr/local/bin/tool", Kind.FILE, 0o750)


def test_issue_template_placeholders() -> None:
    assert validate_issue("{name} {nope}")[0].message.startswith("bad placeholder 'nope'")
    assert validate_issue("Welcome to {hostname}") == []
    text = render_issue(SystemOptions(issue="C:\\ {hostname}", hostname="h"), FACTS)
    assert text == "C:\\\\ h\n\n"


def test_root_and_the_live_user_log_in_to_bash_when_the_packages_bring_it(
    tmp_path: Path,
) -> None:
    root, manifest = busybox_root(tmp_path)
    (root / "usr/bin").mkdir(parents=True)
    shutil.copy2("/bin/bash", root / "usr/bin/bash")
    (root / "bin/bash").symlink_to("/usr/bin/bash")  # absolute: resolved inside the root
    (root / "etc").mkdir()
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\nbin:x:2:2::/bin:/bin/false\n")
    options = SystemOptions(hostname="box", root_password="pw", user="ana", user_password="pw")
    configure_root(root, manifest, options, FACTS, RecordingReporter(), epoch=1_700_000_000)
    passwd = (root / "etc/passwd").read_text().splitlines()
    assert "root:x:0:0:root:/root:/bin/bash" in passwd
    assert "ana:x:1000:1000:ana:/home/ana:/bin/bash" in passwd
    assert "bin:x:2:2::/bin:/bin/false" in passwd  # system accounts keep theirs


def test_a_busybox_root_gets_the_hardware_and_network_layer(tmp_path: Path) -> None:
    root, manifest = busybox_root(tmp_path)
    configure_root(root, manifest, SystemOptions(), FACTS, RecordingReporter(), epoch=0)
    assert "mdev -d" in (root / "etc/init.d/rcS").read_text()
    assert "@modprobe" in (root / "etc/mdev.conf").read_text()
    assert manifest.get("etc/livesmith/udhcpc.script").mode == 0o755
    assert manifest.get("etc/livesmith").kind is Kind.DIR
    assert "root:x:0:0:root:/root:/bin/sh" in (root / "etc/passwd").read_text()  # no bash


def test_a_packaged_shadow_keeps_its_group_but_never_more_than_0640(tmp_path: Path) -> None:
    root, manifest = busybox_root(tmp_path)
    (root / "etc").mkdir()
    (root / "etc/shadow").write_text("root:*:19000:0:99999:7:::\n")
    manifest.add(FileMeta("etc/shadow", Kind.FILE, 0o666, 0, 42, owner="passwd"))
    configure_root(root, manifest, SystemOptions(), FACTS, RecordingReporter(), epoch=0)
    shadow = manifest.get("etc/shadow")
    assert (shadow.mode, shadow.uid, shadow.gid) == (0o640, 0, 42)


def test_a_shadow_of_our_own_is_root_only(tmp_path: Path) -> None:
    root, manifest = busybox_root(tmp_path)
    configure_root(root, manifest, SystemOptions(), FACTS, RecordingReporter(), epoch=0)
    shadow = manifest.get("etc/shadow")
    assert (shadow.mode, shadow.uid, shadow.gid) == (0o600, 0, 0)
