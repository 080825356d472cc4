"""ISO 9660 and Joliet names: deterministic, valid, never colliding, accepted by pycdlib."""

from __future__ import annotations

import io
import random
import re

import pycdlib

from app.iso.names import ISO_DIR_MAX, ISO_FILE_MAX, iso9660_names, joliet_names

AWKWARD = [
    "README",
    "readme",
    "ReadMe",
    "read.me",
    "READ_ME",
    "read_me.",
    ".bashrc",
    "vmlinuz-6.1.0-13-amd64",
    "initramfs.img",
    "a.b.c.tar.gz",
    "Grüße 世界.txt",
    "x" * 200,
    "x" * 199 + "y",
    "y" * 80 + ".longextension",
    "日本語",
    "-",
    "é",
]


def test_names_depend_only_on_the_set_of_names_not_their_order() -> None:
    entries = [(name, i % 3 == 0) for i, name in enumerate(AWKWARD)]
    reference = dict(zip(AWKWARD, iso9660_names(entries), strict=True))
    jol_reference = dict(zip(AWKWARD, joliet_names(AWKWARD), strict=True))
    rng = random.Random(7)
    for _ in range(5):
        shuffled = entries[:]
        rng.shuffle(shuffled)
        names = [n for n, _ in shuffled]
        assert dict(zip(names, iso9660_names(shuffled), strict=True)) == reference
        assert dict(zip(names, joliet_names(names), strict=True)) == jol_reference


def test_iso_names_are_d_characters_within_the_length_limits_and_unique() -> None:
    entries = [(name, False) for name in AWKWARD] + [(f"DIR.{n}", True) for n in AWKWARD]
    names = iso9660_names(entries)
    keys = [n.rstrip(".") for n in names]
    assert len(set(keys)) == len(keys)
    for (_, is_dir), name in zip(entries, names, strict=True):
        if is_dir:
            assert re.fullmatch(rf"[A-Z0-9_]{{1,{ISO_DIR_MAX}}}", name), name
        else:
            stem, dot, ext = name.partition(".")
            assert dot and re.fullmatch(r"[A-Z0-9_]*", stem + ext), name
            assert 0 < len(stem) + len(ext) <= ISO_FILE_MAX, name


def test_natural_names_go_to_the_first_real_name_and_numbers_to_the_rest() -> None:
    names = iso9660_names([("readme", False), ("README", False), ("ReadMe", False)])
    # Sorted by bytes: README < ReadMe < readme.
    assert names == ["README_2.", "README.", "README_1."]
    assert iso9660_names(
        [
            ("vmlinuz-6.1.0-13-amd64", False),
            (".bashrc", False),
            ("initramfs.img", False),
            ("Grüße.txt", False),
        ]
    ) == ["VMLINUZ_6_1_0_13_AMD64.", "_BASHRC.", "INITRAMFS.IMG", "GRU_E.TXT"]


def test_a_directory_and_a_file_with_the_same_stem_do_not_collide() -> None:
    # "BOOT" sorts before "boot", so the file keeps the natural name.
    assert iso9660_names([("boot", True), ("BOOT", False)]) == ["BOOT_1", "BOOT."]


def test_reserved_names_are_never_handed_out() -> None:
    assert iso9660_names([("rr_moved", True)], reserved=["RR_MOVED"]) == ["RR_MOVED_1"]


def test_joliet_names_fit_64_bytes_keep_extensions_and_stay_unique() -> None:
    names = joliet_names(AWKWARD + ["a:b?c*d", "emoji 😀.png"])
    assert len(set(names)) == len(names)
    assert all(len(n.encode()) <= 64 for n in names)
    by_real = dict(zip(AWKWARD + ["a:b?c*d", "emoji 😀.png"], names, strict=True))
    assert by_real["x" * 200] == "x" * 64
    assert by_real["x" * 199 + "y"] == "x" * 62 + "_1"
    assert by_real["y" * 80 + ".longextension"] == "y" * 50 + ".longextension"
    assert by_real["a:b?c*d"] == "a_b_c_d"
    assert by_real["emoji 😀.png"] == "emoji _.png"
    assert by_real["Grüße 世界.txt"] == "Grüße 世界.txt"


def test_pycdlib_accepts_every_generated_name() -> None:
    files = AWKWARD + [f"collision-{'z' * 40}-{i}.txt" for i in range(30)]
    iso_names = iso9660_names([(n, False) for n in files])
    jol_names = joliet_names(files)
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, rock_ridge="1.09", joliet=3)
    for real, iso_name, jol_name in zip(files, iso_names, jol_names, strict=True):
        iso.add_fp(io.BytesIO(b"x"), 1, f"/{iso_name};1", rr_name=real, joliet_path=f"/{jol_name}")
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    reader = pycdlib.PyCdlib()
    reader.open_fp(out)
    stored = [
        c.rock_ridge.name().decode()
        for c in reader.list_children(rr_path="/")
        if not (c.is_dot() or c.is_dotdot())
    ]
    assert sorted(stored) == sorted(files)
    reader.close()
