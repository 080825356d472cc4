from __future__ import annotations

from pathlib import Path

import pytest

from app.build.profile import (
    BootOptions,
    Compressor,
    ImageOptions,
    PackageOptions,
    Profile,
    RootImageFormat,
    SystemOptions,
    builtin_profile,
    builtin_profiles,
    load_profile,
    save_profile,
)
from app.errors import InputError, ValidationError
from app.packages.model import SourceKind, SourceSpec


def test_minimal_is_built_in_and_uses_host_apt() -> None:
    minimal = builtin_profile("minimal")
    assert "minimal" in builtin_profiles()
    assert minimal.packages.source.kind is SourceKind.APT
    assert set(minimal.packages.packages) == {"busybox-static", "linux-image-amd64"}
    assert minimal.packages.follow_dependencies is False


def test_unknown_builtin_lists_the_available_ones() -> None:
    with pytest.raises(InputError, match="available: .*minimal"):
        builtin_profile("nope")


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    profile = Profile(
        name="custom", description="all options changed",
        packages=PackageOptions(SourceSpec(SourceKind.GLAUCUS, "/srv/glaucus"),
                                ("busybox", "linux"), True, True),
        boot=BootOptions(bios=False, uefi=True, timeout=2, cmdline="quiet"),
        system=SystemOptions(hostname="h", root_password="r", user="u", user_password="p",
                             issue="hi {user}", overlay="/tmp/o"),
        image=ImageOptions(RootImageFormat.EROFS, Compressor.LZ4HC, 9),
    )
    path = tmp_path / "p.toml"
    save_profile(profile, path)
    assert load_profile(path) == profile
    assert 'kind = "glaucus"' in path.read_text()


def test_every_problem_in_a_profile_file_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('version = 1\nname = "x"\n[image]\nformat = "zip"\nlevel = "high"\n'
                    '[boot]\nbios = "yes"\ncolour = 1\n[packages.source]\nkind = "rpm"\n'
                    '[mystery]\n')
    with pytest.raises(ValidationError) as info:
        load_profile(path)
    text = str(info.value)
    for expected in ("image.format: unknown value 'zip'", "image.level: must be int",
                     "boot.bios: must be bool", "boot.colour: unknown setting",
                     "unknown source kind 'rpm'", "mystery: unknown section"):
        assert expected in text
    assert len(info.value.problems) == 6


def test_unreadable_and_invalid_toml_say_where(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read the profile"):
        load_profile(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("name = \n")
    with pytest.raises(InputError, match="not a valid TOML file") as info:
        load_profile(broken)
    assert info.value.where == str(broken)
