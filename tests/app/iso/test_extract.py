"""Extraction of files and directories out of real ISOs, compared byte for byte."""

from __future__ import annotations

import filecmp
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import EXIT_INPUT
from app.errors import Cancelled, InputError
from app.iso.extract import extract
from app.reporter import Level, NullReporter, RecordingReporter
from tests.app.iso.test_inspect import debian_iso, make_sample_tree, mkisofs, write
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("extract")
    tree = make_sample_tree(work / "tree")
    return tree, mkisofs(tree, work / "sample.iso", "-R", "-J", "-joliet-long")


def process_umask() -> int:
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def masked(mode: int) -> int:
    """A mode as extraction sets it: without set-user-ID / set-group-ID, under the umask."""
    return mode & 0o1777 & ~process_umask()


def expected_mode(source: Path) -> int:
    """What extraction keeps of a source mode."""
    return masked(stat.S_IMODE(source.lstat().st_mode))


def assert_same_tree(source: Path, extracted: Path, *, root_mode: bool = True) -> None:
    """Same names, types, contents, symlink targets and kept modes; special files skipped."""
    src_entries = {
        p.relative_to(source)
        for p in source.rglob("*")
        if p.is_symlink() or p.is_dir() or p.is_file()
    }
    out_entries = {p.relative_to(extracted) for p in extracted.rglob("*")}
    assert out_entries == src_entries
    for rel in [Path("."), *src_entries] if root_mode else src_entries:
        src, out = source / rel, extracted / rel
        if src.is_symlink():
            assert out.is_symlink() and os.readlink(out) == os.readlink(src), rel
            continue
        assert stat.S_IMODE(out.lstat().st_mode) == expected_mode(src), rel
        if src.is_file():
            assert out.is_file() and not out.is_symlink(), rel
            assert filecmp.cmp(src, out, shallow=False), rel
        else:
            assert out.is_dir() and not out.is_symlink(), rel


def test_extract_a_file(sample: tuple[Path, Path], tmp_path: Path) -> None:
    tree, iso = sample
    created = extract(iso, "/data/random.bin", tmp_path)
    assert created == [tmp_path / "random.bin"]
    assert (tmp_path / "random.bin").read_bytes() == (tree / "data/random.bin").read_bytes()
    assert stat.S_IMODE((tmp_path / "random.bin").stat().st_mode) == masked(0o644)


def test_extract_a_file_to_a_new_name_keeps_mode_but_not_setuid(
    sample: tuple[Path, Path], tmp_path: Path
) -> None:
    tree, iso = sample
    extract(iso, "bin/private", tmp_path / "copy")  # leading "/" optional
    assert (tmp_path / "copy").read_bytes() == b"secret"
    assert stat.S_IMODE((tmp_path / "copy").stat().st_mode) == masked(0o600)
    extract(iso, "/bin/setuid/", tmp_path / "setuid")
    assert filecmp.cmp(tree / "bin/setuid", tmp_path / "setuid", shallow=False)
    assert stat.S_IMODE((tmp_path / "setuid").stat().st_mode) == masked(0o755)  # 4755 in ISO


def test_extract_a_directory(sample: tuple[Path, Path], tmp_path: Path) -> None:
    tree, iso = sample
    created = extract(iso, "/boot", tmp_path)
    assert created[0] == tmp_path / "boot"
    assert set(created) == {
        tmp_path / "boot",
        tmp_path / "boot/grub",
        tmp_path / "boot/grub/grub.cfg",
        tmp_path / "boot/link-rel",
    }
    assert_same_tree(tree / "boot", tmp_path / "boot")


def test_extract_the_whole_image(sample: tuple[Path, Path], tmp_path: Path) -> None:
    tree, iso = sample
    reporter = RecordingReporter()
    extract(iso, "/", tmp_path / "all", reporter)
    assert_same_tree(tree, tmp_path / "all")
    assert (tmp_path / "all/locked").stat().st_mode & 0o777 == masked(0o555)  # after children
    skipped = [m for level, m in reporter.logs if level == Level.WARNING]
    assert any(m.startswith("skipped /fifo") for m in skipped)
    assert reporter.last_progress is not None
    done, total = reporter.last_progress
    assert (
        done
        == total
        == sum(p.stat().st_size for p in tree.rglob("*") if p.is_file() and not p.is_symlink())
    )


@pytest.fixture(params=[0o077, 0o022], ids=["umask077", "umask022"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def test_modes_from_the_image_are_limited_by_the_umask(umask: int, tmp_path: Path) -> None:
    # An image may carry world-writable files and folders; like tar for a normal user,
    # the umask decides what the user gets, not the image.
    tree = tmp_path / "tree"
    write(tree / "open/anyone.txt", "w", 0o666)
    write(tree / "open/run.sh", "x", 0o777)
    write(tree / "open/mine", "m", 0o600)
    (tree / "shared").mkdir()
    (tree / "shared").chmod(0o1777)
    (tree / "open").chmod(0o777)
    iso = mkisofs(tree, tmp_path / "modes.iso", "-R")
    extract(iso, "/", tmp_path / "out")
    modes = {
        str(p.relative_to(tmp_path / "out")): stat.S_IMODE(p.lstat().st_mode)
        for p in (tmp_path / "out").rglob("*")
    }
    assert modes == {
        "open": 0o777 & ~umask,
        "open/anyone.txt": 0o666 & ~umask,
        "open/run.sh": 0o777 & ~umask,
        "open/mine": 0o600,
        "shared": 0o1777 & ~umask,
    }


def test_extract_into_an_existing_directory(sample: tuple[Path, Path], tmp_path: Path) -> None:
    tree, iso = sample
    tmp_path.chmod(0o700)
    extract(iso, "/", tmp_path)
    assert_same_tree(tree, tmp_path, root_mode=False)
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o700  # an existing folder stays as it was


def test_extract_matches_xorriso_on_ipxe(tmp_path: Path) -> None:
    iso = debian_iso("ipxe", "ipxe.iso")
    extract(iso, "/", tmp_path / "ours")
    subprocess.run(
        [
            "xorriso",
            "-osirrox",
            "on",
            "-indev",
            str(iso),
            "-extract",
            "/",
            str(tmp_path / "theirs"),
        ],
        capture_output=True,
        check=True,
    )
    names = sorted(p.name for p in (tmp_path / "theirs").iterdir())
    assert sorted(p.name for p in (tmp_path / "ours").iterdir()) == names
    for name in names:
        assert filecmp.cmp(tmp_path / "ours" / name, tmp_path / "theirs" / name, shallow=False)


def test_extract_from_a_joliet_only_image_uses_default_modes(
    sample: tuple[Path, Path], tmp_path: Path
) -> None:
    tree, _ = sample
    iso = mkisofs(tree, tmp_path / "joliet.iso", "--norock", "-J")
    extract(iso, "/bin", tmp_path / "bin")
    assert (tmp_path / "bin/tool").read_bytes() == (tree / "bin/tool").read_bytes()
    assert stat.S_IMODE((tmp_path / "bin/tool").stat().st_mode) == masked(0o644)
    assert stat.S_IMODE((tmp_path / "bin").stat().st_mode) == masked(0o755)


def test_refuses_to_overwrite(sample: tuple[Path, Path], tmp_path: Path) -> None:
    _, iso = sample
    (tmp_path / "grub.cfg").write_text("mine")
    with pytest.raises(InputError, match="already exists; refusing to overwrite it"):
        extract(iso, "/boot/grub/grub.cfg", tmp_path)
    assert (tmp_path / "grub.cfg").read_text() == "mine"
    with pytest.raises(InputError, match="the destination folder does not exist"):
        extract(iso, "/boot/grub/grub.cfg", tmp_path / "no/such/dir/x")


def test_missing_and_dotdot_inner_paths(sample: tuple[Path, Path], tmp_path: Path) -> None:
    _, iso = sample
    with pytest.raises(InputError, match="no such file or directory in the ISO: /boot/nope"):
        extract(iso, "/boot/nope", tmp_path)
    with pytest.raises(InputError, match=r"must not contain '\.' or '\.\.'"):
        extract(iso, "/boot/../etc", tmp_path)
    assert list(tmp_path.iterdir()) == []


def rename_in_rock_ridge(iso: Path, old: str, new: str) -> None:
    """Rewrite a Rock Ridge NM entry in place: how a hostile image would name things."""
    assert len(old) == len(new)
    data = bytearray(iso.read_bytes())
    needle = b"NM" + bytes([5 + len(old), 1, 0]) + old.encode()
    start = data.find(needle)
    assert start > 0 and data.find(needle, start + 1) == -1, f"NM entry {old!r} not unique"
    data[start + 5 : start + 5 + len(old)] = new.encode()
    iso.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("qq", "..", "the name '..' is not a valid file name"),
        ("aXb", "a/b", "the name 'a/b' contains '/'"),
    ],
)
def test_refuses_unsafe_names_before_writing(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    tree = tmp_path / "tree"
    write(tree / "dir" / old / "payload", "escaped?")
    write(tree / "dir/ok", "fine")
    iso = mkisofs(tree, tmp_path / "hostile.iso", "-R")
    rename_in_rock_ridge(iso, old, new)
    with pytest.raises(InputError, match="unsafe names in the ISO") as info:
        extract(iso, "/", tmp_path / "out")
    assert message in str(info.value) and "nothing was extracted" in str(info.value)
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "payload").exists()
    # The safe part of the image is still reachable.
    extract(iso, "/dir/ok", tmp_path / "ok")
    assert (tmp_path / "ok").read_text() == "fine"


def test_a_symlink_and_a_directory_with_one_name_cannot_escape(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "s1").symlink_to(outside)
    write(tree / "s2" / "planted", "must not land outside")
    iso = mkisofs(tree, tmp_path / "hostile.iso", "-R")
    rename_in_rock_ridge(iso, "s2", "s1")  # now "s1" is both a symlink and a directory
    with pytest.raises(InputError, match="cannot extract: File exists"):
        extract(iso, "/", tmp_path / "out")
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "out").exists()  # partial output removed


class CancelAfter(NullReporter):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.asked = 0
        self.n = n

    def cancelled(self) -> bool:
        self.asked += 1
        return self.asked >= self.n


@pytest.mark.parametrize("into_existing", [False, True])
def test_cancel_removes_partial_output(
    sample: tuple[Path, Path], tmp_path: Path, into_existing: bool
) -> None:
    _, iso = sample
    dest = tmp_path / "dest"
    if into_existing:
        dest.mkdir()
        (dest / "keep-me").write_text("mine")
    with pytest.raises(Cancelled):
        extract(iso, "/", dest, CancelAfter(12))
    if into_existing:
        assert [p.name for p in dest.iterdir()] == ["keep-me"]
    else:
        assert not dest.exists()


def test_cli_extract(livesmith_cmd: list[str], sample: tuple[Path, Path], tmp_path: Path) -> None:
    tree, iso = sample
    out = subprocess.run(
        [*livesmith_cmd, "extract", str(iso), "/boot/grub", "-o", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"extracted 2 entries to {tmp_path / 'grub'}"
    assert_same_tree(tree / "boot/grub", tmp_path / "grub")
    again = subprocess.run(
        [*livesmith_cmd, "extract", str(iso), "/boot/grub", "-o", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert again.returncode == EXIT_INPUT
    assert f"livesmith: error: {tmp_path / 'grub'}: already exists" in again.stderr


def test_a_name_clash_in_an_existing_folder_is_refused_and_loses_nothing(
    sample: tuple[Path, Path], tmp_path: Path
) -> None:
    _, iso = sample
    # The image has a directory /bin and a file /data/random.bin; here both names are taken.
    (tmp_path / "bin").write_text("mine")
    (tmp_path / "data").mkdir()
    (tmp_path / "data/precious").write_text("keep me")
    with pytest.raises(InputError, match="refusing to overwrite") as error:
        extract(iso, "/", tmp_path)
    assert str(tmp_path / "bin") in str(error.value) and str(tmp_path / "data") in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "data"]  # nothing written
    assert (tmp_path / "bin").read_text() == "mine"
    assert (tmp_path / "data/precious").read_text() == "keep me"


def test_a_file_that_appears_during_extraction_is_never_removed(
    sample: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A name taken after the up-front check (another program racing us): the exclusive
    # create fails, the undo removes what we made and leaves that file alone.
    _, iso = sample
    from app.iso import extract as extract_module

    check = extract_module._check_clashes

    def check_then_race(items: list, depth: int, target: Path) -> None:
        check(items, depth, target)
        (target / ("n" * 200)).write_text("theirs")  # a top-level file of the image

    monkeypatch.setattr(extract_module, "_check_clashes", check_then_race)
    with pytest.raises(InputError, match="File exists"):
        extract(iso, "/", tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["n" * 200]  # ours undone, theirs kept
    assert (tmp_path / ("n" * 200)).read_text() == "theirs"


def test_an_image_with_more_folders_than_open_files_allowed_extracts(tmp_path: Path) -> None:
    # Desktop sessions allow 1024 open files by default; the folders of a large image
    # must not each hold one until the end.
    tree = tmp_path / "tree"
    for n in range(600):
        (tree / f"top{n // 30:02d}" / f"dir{n:03d}").mkdir(parents=True)
        (tree / f"top{n // 30:02d}" / f"dir{n:03d}" / "f").write_text(str(n))
    (tree / "top00").chmod(0o555)  # a read-only folder still gets its children first
    iso = mkisofs(tree, tmp_path / "many-folders.iso", "-R")
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))\n"
        "from pathlib import Path\n"
        "from app.iso.extract import extract\n"
        "extract(Path(sys.argv[1]), '/', Path(sys.argv[2]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(iso), str(tmp_path / "out")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert sum(1 for p in (tmp_path / "out").rglob("f")) == 600
    assert (tmp_path / "out/top19/dir599/f").read_text() == "599"
    assert stat.S_IMODE((tmp_path / "out/top00").stat().st_mode) == 0o555
