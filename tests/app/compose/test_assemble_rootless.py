"""Assembly as an ordinary user keeps root ownership, setuid bits and device nodes.

The suite runs as root here, so the test forks a child that drops to `nobody` (no
capabilities, cannot chown or mknod) and assembles a package holding a setuid-root file,
a root-owned directory, a file of another user and /dev/null; the child sends the
manifest back through a pipe.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import pytest

from app.compose.assemble import assemble_root
from app.packages.model import SourceKind, SourceSpec
from app.packages.sources import open_source
from app.reporter import NullReporter
from tests.app.packages.fixtures import (
    FixturePackage,
    busybox_package,
    device,
    directory,
    file,
    make_arch_folder,
    make_deb_folder,
)

NOBODY = 65534


def _assemble_as_nobody(packages, root: Path) -> dict:  # type: ignore[no-untyped-def]
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop every privilege, then assemble
        status = 1
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            result: dict = {"euid": os.geteuid()}
            try:
                os.mknod(str(root.parent / "probe"), 0o600 | 0o020000, os.makedev(1, 3))
                result["can_mknod"] = True
            except PermissionError:
                result["can_mknod"] = False
            manifest = assemble_root(packages, root, NullReporter())
            result["entries"] = {m.path: {**asdict(m), "kind": m.kind.value} for m in manifest}
            with os.fdopen(write_fd, "w") as out:
                json.dump(result, out)
            status = 0
        except BaseException as exc:  # report anything to the parent, never run its code
            with os.fdopen(write_fd, "w") as out:
                json.dump({"error": repr(exc)}, out)
        finally:
            os._exit(status)
    os.close(write_fd)
    with os.fdopen(read_fd) as f:
        data = json.loads(f.read() or "{}")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, data
    return data


@pytest.mark.skipif(
    os.geteuid() != 0,
    reason="needs root to switch to the nobody user; as an "
    "ordinary user every other assembly test already runs rootless",
)
@pytest.mark.parametrize("fmt", ["deb", "arch"])
def test_assembly_as_nobody_keeps_owners_setuid_and_devices(fmt: str) -> None:
    # Not under pytest's tmp_path: that is private to root (0700) and nobody cannot enter it.
    work = Path(tempfile.mkdtemp(prefix="livesmith-rootless-"))
    try:
        pkg = FixturePackage(
            "base",
            entries=(
                directory("root", 0o700),
                file("usr/bin/passwd", b"#!/bin/sh\necho passwd\n", 0o4755),
                directory("home/alice", 0o750, uid=1000, gid=1000),
                file("home/alice/notes", b"hi\n", 0o600, uid=1000, gid=1000),
                device("dev/null", "c", 1, 3, 0o666),
            ),
        )
        src = work / "src"
        if fmt == "deb":
            folder = make_deb_folder(src, [pkg, busybox_package()], builder="python")
            source = open_source(SourceSpec(SourceKind.DEB, str(folder)))
        else:
            folder = make_arch_folder(src, [pkg, busybox_package()])
            source = open_source(SourceSpec(SourceKind.ARCH, str(folder)))
        packages = [(p, p.file) for p in source.packages()]
        build = work / "build"
        build.mkdir()
        for path in [work, *work.rglob("*")]:
            os.chown(path, NOBODY, NOBODY, follow_symlinks=False)

        result = _assemble_as_nobody(packages, build / "root")

        assert result["euid"] == NOBODY and result["can_mknod"] is False
        entries = result["entries"]
        passwd = entries["usr/bin/passwd"]
        assert (passwd["mode"], passwd["uid"], passwd["gid"]) == (0o4755, 0, 0)
        assert (entries["root"]["mode"], entries["root"]["uid"]) == (0o700, 0)
        assert (entries["home/alice"]["uid"], entries["home/alice"]["gid"]) == (1000, 1000)
        assert entries["home/alice/notes"]["mode"] == 0o600
        null = entries["dev/null"]
        assert (null["kind"], null["rdev_major"], null["rdev_minor"], null["mode"]) == (
            "char",
            1,
            3,
            0o666,
        )
        assert entries["bin/busybox"]["mode"] == 0o755 and entries["bin/sh"]["kind"] == "symlink"
        # on disk: the build user's files, no device node, no setuid bit
        root = build / "root"
        assert (root / "usr/bin/passwd").stat().st_uid == NOBODY
        assert not (root / "usr/bin/passwd").stat().st_mode & 0o6000
        assert not (root / "dev/null").exists()
        assert (root / "bin/busybox").stat().st_size > 1_000_000
    finally:
        shutil.rmtree(work)
