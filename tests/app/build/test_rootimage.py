from __future__ import annotations

import os
import pickle
import subprocess
from pathlib import Path

import pytest

from app.build.manifest import FileMeta, Kind, RootManifest
from app.build.profile import Compressor, ImageOptions, RootImageFormat
from app.build.rootimage import make_root_image, squashfs_pseudo_definitions
from app.reporter import RecordingReporter
from tests.conftest import needs_root
from tests.support.unprivileged import run_as_nobody


def staged_root(tmp_path: Path) -> tuple[Path, RootManifest]:
    """A tree as an ordinary user can stage it: plain files; the manifest has the truth."""
    root = tmp_path / "root"
    for d in ("bin", "dev", "home/ana", "etc"):
        (root / d).mkdir(parents=True)
    (root / "bin/su").write_bytes(b"\x7fELF fake su")
    (root / "etc/shadow").write_text("root:x:::\n")
    (root / "etc/with space").write_text("x")
    (root / "bin/sh").symlink_to("busybox")
    m = RootManifest()
    for d in ("bin", "dev", "etc", "home"):
        m.add(FileMeta(d, Kind.DIR, 0o755))
    m.add(FileMeta("home/ana", Kind.DIR, 0o700, 1000, 1000))
    m.add(FileMeta("bin/su", Kind.FILE, 0o4755))
    m.add(FileMeta("bin/sh", Kind.SYMLINK, 0o777, target="busybox"))
    m.add(FileMeta("etc/shadow", Kind.FILE, 0o640, 0, 42))
    m.add(FileMeta("etc/with space", Kind.FILE, 0o600, 7, 7))
    m.add(FileMeta("dev/null", Kind.CHAR, 0o666, rdev_major=1, rdev_minor=3))
    m.add(FileMeta("dev/initctl", Kind.FIFO, 0o600))
    return root, m


def listing(image: Path, fmt: RootImageFormat, tmp_path: Path) -> dict[str, tuple[str, str]]:
    """path -> (mode string, owner) as the image itself says."""
    if fmt is RootImageFormat.SQUASHFS:
        out = subprocess.run(["unsquashfs", "-lln", str(image)], capture_output=True,
                             text=True, check=True).stdout
        result = {}
        for line in out.splitlines():
            if not line.startswith(("-", "d", "l", "c", "b", "p", "s")):
                continue
            parts = line.split()
            path = line.split("squashfs-root", 1)[1].split(" -> ")[0] or "/"
            result[path] = (parts[0], parts[1])
        return result
    # EROFS: extract with fsck.erofs if available; otherwise mount is not rootless -> dump
    pytest.skip("EROFS listing is checked through the booted system")


@pytest.mark.parametrize("user", ["root", "nobody"])
def test_squashfs_carries_owners_modes_and_devices_from_the_manifest(tmp_path: Path,
                                                                    user: str) -> None:
    root, manifest = staged_root(tmp_path)
    live = tmp_path / "live"
    live.mkdir()
    if user == "root":
        image = make_root_image(root, manifest, ImageOptions(), live, RecordingReporter(),
                                epoch=1_700_000_000, work=tmp_path, uuid="")
    else:
        # Rootless: the same call as an unprivileged user on a tree that user owns.
        subprocess.run(["chown", "-R", "nobody:nogroup", str(tmp_path)], check=True)
        tmp_path.chmod(0o755)
        script = (
            "import pickle,sys; from pathlib import Path\n"
            "from app.build.rootimage import make_root_image\n"
            "from app.build.profile import ImageOptions\n"
            "from app.reporter import NullReporter\n"
            "root, manifest, live, work = pickle.load(sys.stdin.buffer)\n"
            "make_root_image(root, manifest, ImageOptions(), live, NullReporter(),"
            " epoch=1700000000, work=work, uuid='')\n")
        result = run_as_nobody(script, input=pickle.dumps((root, manifest, live, tmp_path)),
                               extra_paths=(tmp_path,))
        assert result.returncode == 0, result.stderr.decode()
        image = live / "rootfs.sfs"
        assert image.stat().st_uid == 65534  # really made by nobody
    files = listing(image, RootImageFormat.SQUASHFS, tmp_path)
    assert files["/bin/su"] == ("-rwsr-xr-x", "0/0")
    assert files["/etc/shadow"] == ("-rw-r-----", "0/42")
    assert files["/etc/with space"] == ("-rw-------", "7/7")
    assert files["/home/ana"] == ("drwx------", "1000/1000")
    assert files["/dev/null"] == ("crw-rw-rw-", "0/0")
    assert files["/dev/initctl"][0] == "prw-------"
    assert files["/bin/sh"][0].startswith("l")


def test_same_inputs_give_identical_squashfs(tmp_path: Path) -> None:
    digests = []
    for run in ("a", "b"):
        root, manifest = staged_root(tmp_path / run)
        live = tmp_path / run / "live"
        live.mkdir()
        image = make_root_image(root, manifest, ImageOptions(level=3), live,
                                RecordingReporter(), epoch=1_700_000_000, work=tmp_path / run,
                                uuid="")
        digests.append(image.read_bytes())
    assert digests[0] == digests[1]


@needs_root
def test_erofs_image_has_owners_from_the_manifest(tmp_path: Path) -> None:
    root, manifest = staged_root(tmp_path)
    live = tmp_path / "live"
    live.mkdir()
    image = make_root_image(root, manifest, ImageOptions(RootImageFormat.EROFS,
                                                         Compressor.LZ4HC), live,
                            RecordingReporter(), epoch=1_700_000_000, work=tmp_path,
                            uuid="12345678-1234-1234-1234-123456789abc")
    assert image is not None and image.name == "rootfs.erofs"
    assert image.read_bytes()[1024:1028] == bytes.fromhex("e2e1f5e0")  # EROFS magic
    # dump.erofs 1.5 prints modes without setuid bits; the kernel's view is the truth.
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "erofs", "-o", "loop,ro", str(image), str(mnt)], check=True)
    try:
        def owner_mode(rel: str) -> tuple[int, int, int]:
            st = (mnt / rel).lstat()
            return st.st_uid, st.st_gid, st.st_mode
        assert owner_mode("bin/su") == (0, 0, 0o104755)
        assert owner_mode("etc/shadow") == (0, 42, 0o100640)
        assert owner_mode("etc/with space") == (7, 7, 0o100600)
        assert owner_mode("home/ana") == (1000, 1000, 0o40700)
        assert owner_mode("dev/null")[2] == 0o20666 and (mnt / "dev/null").stat().st_rdev == \
            os.makedev(1, 3)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_ram_mode_makes_no_image(tmp_path: Path) -> None:
    root, manifest = staged_root(tmp_path)
    assert make_root_image(root, manifest, ImageOptions(RootImageFormat.RAM), tmp_path,
                           RecordingReporter(), epoch=0, work=tmp_path, uuid="") is None


def test_pseudo_definitions_escape_spaces() -> None:
    m = RootManifest()
    m.add(FileMeta("a b/c\"d", Kind.FILE, 0o644, 1, 2))
    assert squashfs_pseudo_definitions(m) == '/a\\ b/c\\"d m 0644 1 2\n'
