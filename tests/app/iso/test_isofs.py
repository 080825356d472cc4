"""The streaming directory reader (app.iso.isofs) against xorriso's own listing, and hostile input.

Trees with deep nesting, long Rock Ridge names, non-ASCII names and symlinks (short, long
enough to continue over SL entries, absolute, relative) are mastered by xorriso and by
pycdlib; `inspect_iso` must list them exactly as `xorriso -find / -exec lsdl` does.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import struct
import subprocess
from pathlib import Path

import pycdlib
import pytest

from app.errors import InputError
from app.iso.inspect import inspect_iso
from tests.app.iso.test_hostile import BLOCK, PVD, both_endian, root_extent
from tests.app.iso.test_inspect import assert_tree_matches_xorriso

LONG = "n" * 240 + "-long-name.txt"
LONG_TARGET = "/usr/share/" + "/".join(["t" * 200] * 3) + "/end"  # several SL entries


def make_tree(root: Path) -> Path:
    deep = root.joinpath(*(f"level{i}" for i in range(12)))
    deep.mkdir(parents=True)
    (deep / "bottom.txt").write_text("deep\n")
    (root / LONG).write_bytes(b"x" * 700)
    (root / "ünïcødé name.txt").write_bytes(b"")
    (root / "empty").mkdir()
    os.symlink("bottom.txt", deep / "rel-link")
    os.symlink(LONG_TARGET, root / "long-link")
    os.symlink("../level0/./x", root / "dots-link")
    os.chmod(root / LONG, 0o640)
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tree(tmp_path_factory.mktemp("isofs") / "tree")


@pytest.mark.parametrize("options", [["-R"], ["-R", "-J"], ["-rational-rock", "-J"]])
def test_xorriso_images_list_as_xorriso_does(
    tree: Path, tmp_path: Path, options: list[str]
) -> None:
    iso = tmp_path / "x.iso"
    subprocess.run(
        ["xorriso", "-as", "mkisofs", *options, "-o", str(iso), str(tree)],
        capture_output=True,
        check=True,
    )
    report = inspect_iso(iso)
    assert report.name_source == "rock_ridge"
    assert_tree_matches_xorriso(report, iso, rock_ridge=True)
    paths = {f.path: f for f in report.files}
    assert paths["/long-link"].target == LONG_TARGET
    assert paths["/" + LONG].size == 700
    assert paths["/" + LONG].mode == (0o444 if "-rational-rock" in options else 0o640)


def test_pycdlib_images_list_as_xorriso_does(tmp_path: Path) -> None:
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, rock_ridge="1.09", joliet=3)
    path = ""
    for i in range(10):  # deeper than 8 levels: pycdlib relocates into RR_MOVED
        path += f"/D{i}"
        iso.add_directory(path, rr_name=f"dir{i}", joliet_path=path.replace("D", "d"))
    iso.add_fp(io.BytesIO(b"abc"), 3, path + "/F.;1", rr_name=LONG, joliet_path=None)
    iso.add_symlink("/L.;1", "L", "some/where/" + "z" * 280)
    out = tmp_path / "p.iso"
    iso.write(str(out))
    iso.close()
    report = inspect_iso(out)
    assert_tree_matches_xorriso(report, out, rock_ridge=True)
    names = [f.path for f in report.files]
    assert "/" + "/".join(f"dir{i}" for i in range(10)) + "/" + LONG in names


def test_a_file_over_4_gib_is_one_entry(tmp_path: Path) -> None:
    big = tmp_path / "tree" / "big.bin"
    big.parent.mkdir()
    with big.open("wb") as f:
        f.truncate(4 * 1024**3 + 4096)  # sparse; xorriso writes it in two extents
    iso = tmp_path / "big.iso"
    subprocess.run(
        ["xorriso", "-as", "mkisofs", "-R", "-iso-level", "3", "-o", str(iso), str(big.parent)],
        capture_output=True,
        check=True,
    )
    report = inspect_iso(iso)
    assert [(f.path, f.size) for f in report.files] == [("/", 0), ("/big.bin", 4 * 1024**3 + 4096)]
    assert_tree_matches_xorriso(report, iso, rock_ridge=True)


# -- hostile ----------------------------------------------------------------------------------


def small_iso(tmp_path: Path) -> bytearray:
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, rock_ridge="1.09")
    iso.add_fp(io.BytesIO(b"abc"), 3, "/F.;1", rr_name="f")
    out = tmp_path / "small.iso"
    iso.write(str(out))
    iso.close()
    return bytearray(out.read_bytes())


def test_a_root_of_absurd_size_is_refused(tmp_path: Path) -> None:
    data = small_iso(tmp_path)
    data[PVD + 156 + 10 : PVD + 156 + 18] = both_endian(0xFFFFF000)
    (tmp_path / "h.iso").write_bytes(data)
    with pytest.raises(InputError, match="where the image has no such directory"):
        inspect_iso(tmp_path / "h.iso")


def test_a_record_pointing_past_the_image_is_refused(tmp_path: Path) -> None:
    data = small_iso(tmp_path)
    data[PVD + 156 + 2 : PVD + 156 + 10] = both_endian(len(data) // BLOCK + 10)
    (tmp_path / "h.iso").write_bytes(data)
    with pytest.raises(InputError, match="not a valid ISO 9660 image: damaged directory"):
        inspect_iso(tmp_path / "h.iso")


def test_a_continuation_area_that_continues_into_itself_ends(tmp_path: Path) -> None:
    data = small_iso(tmp_path)
    root = root_extent(data) * BLOCK
    offset = root
    while data[offset + 33 : offset + 33 + data[offset + 32]] != b"F.;1":
        offset += data[offset]
    length, name_length = data[offset], data[offset + 32]
    su = offset + 33 + name_length + (1 - name_length % 2)
    area = len(data)  # a continuation area at the end that points at itself
    ce = b"CE\x1c\x01" + both_endian(area // BLOCK) + both_endian(0) + both_endian(28)
    data += ce + bytes(BLOCK - len(ce))
    data[su : su + 28] = ce
    data[offset + length - 0 : offset + length] = b""
    struct.pack_into("<I", data, PVD + 80, len(data) // BLOCK)
    struct.pack_into(">I", data, PVD + 84, len(data) // BLOCK)
    (tmp_path / "h.iso").write_bytes(data)
    with pytest.raises(InputError, match="more than 32 continuation areas"):
        inspect_iso(tmp_path / "h.iso")


def test_records_that_overrun_their_directory_are_refused(tmp_path: Path) -> None:
    data = small_iso(tmp_path)
    root = root_extent(data) * BLOCK
    second = root + data[root]
    third = second + data[second]
    data[third] = 250  # the file's record claims to run past the directory's 2048 bytes?
    size = struct.unpack_from("<I", data, PVD + 156 + 10)[0]
    data[PVD + 156 + 10 : PVD + 156 + 18] = both_endian(third - root + 40)
    (tmp_path / "h.iso").write_bytes(data)
    assert size >= third - root + 40
    with pytest.raises(InputError, match="cut short or points outside the image"):
        inspect_iso(tmp_path / "h.iso")


def test_streamed_json_is_the_report_as_json(tree: Path, tmp_path: Path) -> None:
    iso = tmp_path / "x.iso"
    subprocess.run(
        ["xorriso", "-as", "mkisofs", "-R", "-o", str(iso), str(tree)],
        capture_output=True,
        check=True,
    )
    report = inspect_iso(iso)
    for shown in (report, dataclasses.replace(report, files=[])):
        out = io.StringIO()
        shown.write_json(out, chunk=3)
        assert json.loads(out.getvalue()) == json.loads(json.dumps(shown.to_json()))
