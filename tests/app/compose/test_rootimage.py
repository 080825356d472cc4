from __future__ import annotations

import os
import pickle
import subprocess
from pathlib import Path

import pytest

from app.compose.manifest import FileMeta, Kind, RootManifest
from app.compose.profile import (
    COMPRESSION_LEVELS,
    Compressor,
    ImageOptions,
    RootImageFormat,
    validate_profile,
)
from app.compose.rootimage import make_root_image, squashfs_pseudo_definitions
from app.errors import InputError
from app.reporter import RecordingReporter
from tests.app.compose.test_profile import image_profile
from tests.conftest import ROOT, needs_root
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


def squashfs_listing(image: Path) -> dict[str, tuple[str, str]]:
    """path -> (mode string, owner) as the SquashFS image itself says."""
    out = subprocess.run(
        ["unsquashfs", "-lln", str(image)], capture_output=True, text=True, check=True
    ).stdout
    result = {}
    for line in out.splitlines():
        if not line.startswith(("-", "d", "l", "c", "b", "p", "s")):
            continue
        parts = line.split()
        path = line.split("squashfs-root", 1)[1].split(" -> ")[0] or "/"
        result[path] = (parts[0], parts[1])
    return result


@pytest.mark.parametrize("user", ["root", "nobody"])
def test_squashfs_carries_owners_modes_and_devices_from_the_manifest(
    tmp_path: Path, user: str
) -> None:
    root, manifest = staged_root(tmp_path)
    live = tmp_path / "live"
    live.mkdir()
    if user == "root":
        image = make_root_image(
            root,
            manifest,
            ImageOptions(),
            live,
            RecordingReporter(),
            epoch=1_700_000_000,
            work=tmp_path,
            uuid="",
        )
    else:
        # Rootless: the same call as an unprivileged user on a tree that user owns.
        subprocess.run(["chown", "-R", "nobody:nogroup", str(tmp_path)], check=True)
        tmp_path.chmod(0o755)
        script = (
            "import pickle,sys; from pathlib import Path\n"
            "from app.compose.rootimage import make_root_image\n"
            "from app.compose.profile import ImageOptions\n"
            "from app.reporter import NullReporter\n"
            "root, manifest, live, work = pickle.load(sys.stdin.buffer)\n"
            "make_root_image(root, manifest, ImageOptions(), live, NullReporter(),"
            " epoch=1700000000, work=work, uuid='')\n"
        )
        result = run_as_nobody(
            script, input=pickle.dumps((root, manifest, live, tmp_path)), extra_paths=(tmp_path,)
        )
        assert result.returncode == 0, result.stderr.decode()
        image = live / "rootfs.sfs"
        assert image.stat().st_uid == 65534  # really made by nobody
    files = squashfs_listing(image)
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
        image = make_root_image(
            root,
            manifest,
            ImageOptions(level=3),
            live,
            RecordingReporter(),
            epoch=1_700_000_000,
            work=tmp_path / run,
            uuid="",
        )
        digests.append(image.read_bytes())
    assert digests[0] == digests[1]


def erofs_image(tmp_path: Path) -> Path:
    """An EROFS root image of `staged_root`, made in `tmp_path`."""
    root, manifest = staged_root(tmp_path)
    live = tmp_path / "live"
    live.mkdir()
    image = make_root_image(
        root,
        manifest,
        ImageOptions(RootImageFormat.EROFS, Compressor.LZ4HC),
        live,
        RecordingReporter(),
        epoch=1_700_000_000,
        work=tmp_path,
        uuid="12345678-1234-1234-1234-123456789abc",
    )
    assert image is not None
    return image


@needs_root
def test_erofs_image_has_owners_from_the_manifest(tmp_path: Path) -> None:
    image = erofs_image(tmp_path)
    assert image.name == "rootfs.erofs"
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
        assert owner_mode("dev/null")[2] == 0o20666 and (
            mnt / "dev/null"
        ).stat().st_rdev == os.makedev(1, 3)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_ram_mode_makes_no_image(tmp_path: Path) -> None:
    root, manifest = staged_root(tmp_path)
    assert (
        make_root_image(
            root,
            manifest,
            ImageOptions(RootImageFormat.RAM),
            tmp_path,
            RecordingReporter(),
            epoch=0,
            work=tmp_path,
            uuid="",
        )
        is None
    )


def test_pseudo_definitions_escape_spaces() -> None:
    m = RootManifest()
    m.add(FileMeta('a b/c"d', Kind.FILE, 0o644, 1, 2))
    assert squashfs_pseudo_definitions(m) == '/a\\ b/c\\"d m 0644 1 2\n'


IMAGE_FORMATS = (RootImageFormat.SQUASHFS, RootImageFormat.EROFS)
WITH_LEVELS = [
    (fmt, c)
    for fmt in IMAGE_FORMATS
    for c, levels in COMPRESSION_LEVELS[fmt].items()
    if levels is not None
]
WITHOUT_LEVELS = [
    (fmt, c)
    for fmt in IMAGE_FORMATS
    for c, levels in COMPRESSION_LEVELS[fmt].items()
    if levels is None
]


def compressible_root(tmp_path: Path) -> tuple[Path, RootManifest]:
    """The staged root plus real text (this repository's sources), on which levels matter."""
    root, manifest = staged_root(tmp_path)
    (root / "usr/share/doc").mkdir(parents=True)
    sources = b"".join(p.read_bytes() for p in sorted((ROOT / "app").rglob("*.py")))
    (root / "usr/share/doc/sources").write_bytes(sources)
    for d in ("usr", "usr/share", "usr/share/doc"):
        manifest.add(FileMeta(d, Kind.DIR, 0o755))
    manifest.add(FileMeta("usr/share/doc/sources", Kind.FILE, 0o644))
    return root, manifest


def image_at(tmp_path: Path, name: str, options: ImageOptions) -> Path:
    root, manifest = compressible_root(tmp_path / name)
    live = tmp_path / name / "live"
    live.mkdir()
    image = make_root_image(
        root,
        manifest,
        options,
        live,
        RecordingReporter(),
        epoch=1_700_000_000,
        work=tmp_path / name,
        uuid="12345678-1234-1234-1234-123456789abc",
    )
    assert image is not None
    return image


@pytest.mark.parametrize(
    ("fmt", "compressor"), WITH_LEVELS, ids=[f"{f.value}-{c.value}" for f, c in WITH_LEVELS]
)
def test_every_level_the_table_offers_reaches_the_real_tool(
    tmp_path: Path, fmt: RootImageFormat, compressor: Compressor
) -> None:
    levels = COMPRESSION_LEVELS[fmt][compressor]
    assert levels is not None
    low = image_at(tmp_path, "low", ImageOptions(fmt, compressor, levels.low))
    high = image_at(tmp_path, "high", ImageOptions(fmt, compressor, levels.high))
    # Both ends are accepted, and a level that reaches the tool changes the image.
    assert low.read_bytes() != high.read_bytes()
    assert high.stat().st_size < low.stat().st_size


@pytest.mark.parametrize(
    ("fmt", "compressor"), WITHOUT_LEVELS, ids=[f"{f.value}-{c.value}" for f, c in WITHOUT_LEVELS]
)
def test_a_level_is_refused_where_the_real_tool_has_none(
    tmp_path: Path, fmt: RootImageFormat, compressor: Compressor
) -> None:
    problems = validate_profile(image_profile(fmt, compressor, 6))
    assert [(p.where, p.message) for p in problems] == [
        (
            "compression level",
            f"{compressor.value} in "
            f"{'a SquashFS' if fmt is RootImageFormat.SQUASHFS else 'an EROFS'} image takes no "
            "level (got 6)",
        )
    ]
    assert problems[0].hint is not None and "leave the level at the default" in problems[0].hint
    # The stage refuses it as well, instead of building without it.
    with pytest.raises(InputError, match="takes no level"):
        image_at(tmp_path, "refused", ImageOptions(fmt, compressor, 6))
    assert not list((tmp_path / "refused" / "live").iterdir())
    # Without a level the real tool builds the image.
    assert image_at(tmp_path, "default", ImageOptions(fmt, compressor)).stat().st_size > 0


def test_squashfs_xz_has_no_level_but_the_x86_filter(tmp_path: Path) -> None:
    problems = validate_profile(image_profile(RootImageFormat.SQUASHFS, Compressor.XZ, 9))
    assert [str(p) for p in problems] == [
        "compression level: xz in a SquashFS image takes no level (got 9) "
        "(mksquashfs has no xz level; leave the level at the default)"
    ]
    image = image_at(tmp_path, "xz", ImageOptions(RootImageFormat.SQUASHFS, Compressor.XZ))
    stats = subprocess.run(
        ["unsquashfs", "-s", str(image)], capture_output=True, text=True, check=True
    ).stdout
    assert "Compression xz" in stats and "Filters selected: x86" in stats


# The audit's proof of concept: this name, written unchecked into the pseudo file, became a
# second definition whose `f` type ran `touch PWNED_BY_PACKAGE` on the build host.
PSEUDO_INJECTION = "x\vm\v0644\v0\v0\npwn\vf\v0644\v0\v0\vtouch${IFS}PWNED_BY_PACKAGE;#"


@pytest.mark.parametrize(
    "name",
    [PSEUDO_INJECTION, "a\rb", "a\x85b", "a\u2028b", "a\fb"],
    ids=["poc", "cr", "nel", "line-sep", "ff"],
)
def test_pseudo_writer_refuses_names_that_could_start_a_definition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # Defence in depth: a manifest made by anything but extraction reaches the writer as is.
    root, manifest = staged_root(tmp_path)
    (root / name).write_text("hi")
    manifest.add(FileMeta(name, Kind.FILE, 0o644, owner="evil"))
    live, cwd = tmp_path / "live", tmp_path / "cwd"
    live.mkdir()
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    error: InputError | None = None
    try:
        make_root_image(
            root,
            manifest,
            ImageOptions(),
            live,
            RecordingReporter(),
            epoch=1_700_000_000,
            work=tmp_path,
            uuid="",
        )
    except InputError as exc:
        error = exc
    assert list(tmp_path.rglob("PWNED_BY_PACKAGE")) == []  # no command ran
    assert error is not None, "the name reached mksquashfs"
    message = str(error)
    assert "package evil" in message and repr(name)[1:-1] in message
    assert "control character" in message
    assert list(live.iterdir()) == []
