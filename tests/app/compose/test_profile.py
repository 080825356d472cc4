from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from app.compose.compress import Compression, open_compressed_writer
from app.compose.profile import (
    COMPRESSION_LEVELS,
    BootOptions,
    Compressor,
    ImageOptions,
    InstallMethod,
    KernelOptions,
    PackageOptions,
    Profile,
    RootImageFormat,
    SystemOptions,
    bad_package_names,
    builtin_profile,
    builtin_profiles,
    compression_level,
    load_profile,
    save_profile,
    validate_profile,
    with_settings,
)
from app.errors import InputError, ValidationError
from app.packages.model import SourceKind, SourceSpec


def test_minimal_is_built_in_and_uses_host_apt() -> None:
    minimal = builtin_profile("minimal")
    assert "minimal" in builtin_profiles()
    assert minimal.packages.source.kind is SourceKind.APT
    assert set(minimal.packages.packages) == {"busybox-static", "linux-image-amd64"}
    assert minimal.packages.follow_dependencies is False


def test_minimal_unpacks_and_rescue_is_made_by_mmdebstrap() -> None:
    assert not builtin_profile("minimal").packages.uses_mmdebstrap  # hand-picked, no scripts
    rescue = builtin_profile("rescue").packages
    assert rescue.uses_mmdebstrap and rescue.install is InstallMethod.MMDEBSTRAP
    assert {"systemd-sysv", "bash", "e2fsprogs", "busybox-static"} <= set(rescue.packages)
    assert validate_profile(builtin_profile("rescue")) == []


def test_the_install_method_follows_the_source_unless_the_profile_names_one() -> None:
    apt = SourceSpec(SourceKind.APT)
    assert PackageOptions(apt, ("bash",)).uses_mmdebstrap
    assert not PackageOptions(apt, ("bash",), follow_dependencies=False).uses_mmdebstrap
    assert not PackageOptions(apt, ("bash",), install=InstallMethod.UNPACK).uses_mmdebstrap
    glaucus = PackageOptions(SourceSpec(SourceKind.GLAUCUS, "/g"), ("busybox",))
    assert not glaucus.uses_mmdebstrap
    forced = Profile("p", packages=replace(glaucus, install=InstallMethod.MMDEBSTRAP))
    problems = {p.where: p.message for p in validate_profile(forced)}
    assert "Debian packages only" in problems["packages: install"]
    debs = PackageOptions(SourceSpec(SourceKind.DEB, "/debs"), ("tool",))
    assert not debs.uses_mmdebstrap  # a folder of .deb files is unpacked unless asked
    beside = Profile("p", packages=replace(debs, install=InstallMethod.MMDEBSTRAP))
    assert "packages: install" not in {p.where for p in validate_profile(beside)}


def test_arch_style_packages_install_with_pacman_when_dependencies_are_followed(
    tmp_path: Path,
) -> None:
    arch = PackageOptions(SourceSpec(SourceKind.ARCH, "/a"), ("busybox",))
    assert arch.uses_pacman and not arch.uses_mmdebstrap
    assert not replace(arch, follow_dependencies=False).uses_pacman  # hand-picked: unpacked
    assert not replace(arch, install=InstallMethod.UNPACK).uses_pacman
    assert replace(arch, follow_dependencies=False, install=InstallMethod.PACMAN).uses_pacman
    assert not PackageOptions(SourceSpec(SourceKind.APT), ("bash",)).uses_pacman
    glaucus = PackageOptions(SourceSpec(SourceKind.GLAUCUS, "/g"), ("busybox",))
    assert not glaucus.uses_pacman
    forced = Profile("p", packages=replace(glaucus, install=InstallMethod.PACMAN))
    problems = {p.where: p.message for p in validate_profile(forced)}
    assert "pacman installs Arch-style packages" in problems["packages: install"]
    path = tmp_path / "p.toml"
    save_profile(Profile("a", packages=replace(arch, install=InstallMethod.PACMAN)), path)
    assert 'install = "pacman"' in path.read_text()
    assert load_profile(path).packages.install is InstallMethod.PACMAN


def test_suite_mirror_and_install_method_round_trip(tmp_path: Path) -> None:
    options = PackageOptions(
        SourceSpec(SourceKind.APT),
        ("bash",),
        install=InstallMethod.MMDEBSTRAP,
        suite="trixie",
        mirror="http://mirror.example/debian",
        components=("main", "non-free-firmware"),
    )
    path = tmp_path / "p.toml"
    save_profile(Profile("d", packages=options), path)
    assert load_profile(path).packages == options
    text = path.read_text()
    assert 'install = "mmdebstrap"' in text and 'suite = "trixie"' in text
    # a profile saved before these settings existed loads with their defaults
    old = text.replace('install = "mmdebstrap"\n', "").replace('suite = "trixie"\n', "")
    path.write_text(old)
    loaded = load_profile(path).packages
    assert loaded.install is InstallMethod.AUTO and loaded.suite == ""


def test_unknown_builtin_lists_the_available_ones() -> None:
    with pytest.raises(InputError, match="available: .*minimal"):
        builtin_profile("nope")


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    profile = Profile(
        name="custom",
        description="all options changed",
        packages=PackageOptions(
            SourceSpec(SourceKind.GLAUCUS, "/srv/glaucus"), ("busybox", "linux"), True, True
        ),
        boot=BootOptions(bios=False, uefi=True, timeout=2, cmdline="quiet"),
        system=SystemOptions(
            hostname="h",
            root_password="r",
            user="u",
            user_password="p",
            issue="hi {user}",
            overlay="/tmp/o",
        ),
        image=ImageOptions(RootImageFormat.EROFS, Compressor.LZ4HC, 9),
    )
    path = tmp_path / "p.toml"
    save_profile(profile, path)
    assert load_profile(path) == profile
    assert 'kind = "glaucus"' in path.read_text()


def test_every_problem_in_a_profile_file_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        'version = 1\nname = "x"\n[image]\nformat = "zip"\nlevel = "high"\n'
        '[boot]\nbios = "yes"\ncolour = 1\n[packages.source]\nkind = "rpm"\n'
        "[mystery]\n"
    )
    with pytest.raises(ValidationError) as info:
        load_profile(path)
    text = str(info.value)
    for expected in (
        "image.format: unknown value 'zip'",
        "image.level: must be int",
        "boot.bios: must be bool",
        "boot.colour: unknown setting",
        "unknown source kind 'rpm'",
        "mystery: unknown section",
    ):
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


def image_profile(fmt: RootImageFormat, compressor: Compressor, level: int | None) -> Profile:
    """A profile whose only possible problems are in its image options."""
    return Profile(
        name="image",
        packages=PackageOptions(packages=("busybox-static",)),
        image=ImageOptions(fmt, compressor, level),
    )


def test_ram_mode_zstd_levels_stop_where_the_initramfs_writer_stops() -> None:
    for level in (20, 21, 22):
        problems = validate_profile(image_profile(RootImageFormat.RAM, Compressor.ZSTD, level))
        assert [str(p) for p in problems] == [
            f"compression level: level {level} is out of range for zstd in RAM mode "
            "(choose 1 to 19)"
        ]
    assert validate_profile(image_profile(RootImageFormat.RAM, Compressor.ZSTD, 19)) == []
    # mksquashfs takes zstd's --ultra levels, so a SquashFS image still may.
    assert validate_profile(image_profile(RootImageFormat.SQUASHFS, Compressor.ZSTD, 22)) == []


@pytest.mark.parametrize(
    "compressor",
    [c for c, levels in COMPRESSION_LEVELS[RootImageFormat.RAM].items() if levels is not None],
)
def test_ram_mode_levels_are_exactly_what_the_initramfs_writer_takes(
    tmp_path: Path, compressor: Compressor
) -> None:
    levels = COMPRESSION_LEVELS[RootImageFormat.RAM][compressor]
    assert levels is not None
    compression = Compression(compressor.value)
    for level in (levels.low, levels.high):
        target = tmp_path / f"{level}.img"
        with open_compressed_writer(target, compression, level) as out:
            out.write(b"live root " * 1000)
        assert target.stat().st_size > 0
        assert validate_profile(image_profile(RootImageFormat.RAM, compressor, level)) == []
    for level in (levels.low - 1, levels.high + 1):
        with pytest.raises(InputError, match="out of range"):
            with open_compressed_writer(tmp_path / "refused.img", compression, level):
                pass
        assert validate_profile(image_profile(RootImageFormat.RAM, compressor, level))


def test_levels_are_checked_against_the_format_and_compressor() -> None:
    def problems(fmt: RootImageFormat, compressor: Compressor, level: int | None) -> list[str]:
        return [str(p) for p in validate_profile(image_profile(fmt, compressor, level))]

    assert problems(RootImageFormat.EROFS, Compressor.LZ4, 3) == [
        "compression level: lz4 in an EROFS image takes no level (got 3) "
        "(mkfs.erofs has no lz4 level; leave the level at the default)"
    ]
    assert problems(RootImageFormat.EROFS, Compressor.LZ4HC, 13) == [
        "compression level: level 13 is out of range for lz4hc in an EROFS image (choose 1 to 12)"
    ]
    # A compressor the format cannot use is one problem, not a second one about its level.
    assert problems(RootImageFormat.EROFS, Compressor.ZSTD, 30) == [
        "compressor: erofs cannot use zstd; choose lz4hc, lz4, none"
    ]
    assert problems(RootImageFormat.SQUASHFS, Compressor.GZIP, None) == []


def test_the_default_level_depends_on_the_format() -> None:
    assert compression_level(ImageOptions(RootImageFormat.SQUASHFS, Compressor.ZSTD)) == 15
    assert compression_level(ImageOptions(RootImageFormat.RAM, Compressor.ZSTD)) == 15
    assert compression_level(ImageOptions(RootImageFormat.RAM, Compressor.ZSTD, 4)) == 4
    assert compression_level(ImageOptions(RootImageFormat.EROFS, Compressor.LZ4HC)) == 9
    assert compression_level(ImageOptions(RootImageFormat.EROFS, Compressor.LZ4)) is None
    assert compression_level(ImageOptions(RootImageFormat.RAM, Compressor.NONE)) is None


def package_profile(kind: SourceKind, *names: str, kernel: str = "") -> Profile:
    location = "" if kind is SourceKind.APT else "/srv/packages"
    return Profile(
        name="names",
        packages=PackageOptions(SourceSpec(kind, location), names),
        kernel=KernelOptions(package=kernel),
    )


# Names a command line would misread (an option, a path, a second argument) or that no
# package can have; the same for every kind of source.
NEVER_NAMES = (
    "-oAPT::Architecture=foo",
    "--help",
    ".hidden",
    "pkg/evil",
    "/bin/sh",
    "two words",
    "tab\there",
    "line\nbreak",
    "esc\x1b[31m",
    "",
)


@pytest.mark.parametrize("kind", list(SourceKind))
def test_every_bad_package_name_is_reported_in_one_problem(kind: SourceKind) -> None:
    problems = validate_profile(package_profile(kind, "busybox", *NEVER_NAMES, kernel="-linux"))
    assert len(problems) == 1
    problem = problems[0]
    assert problem.where == "packages" and problem.hint
    assert problem.message == "not valid package names: " + ", ".join(
        repr(n) for n in (*NEVER_NAMES, "-linux")
    )


def test_debian_names_follow_debian_policy() -> None:
    good = ("busybox-static", "linux-image-amd64", "g++", "libstdc++6", "python3.11", "0ad")
    assert validate_profile(package_profile(SourceKind.APT, *good)) == []
    bad = ("Busybox", "x", "lib_foo", "pkg@1")
    problems = validate_profile(package_profile(SourceKind.DEB, *good, *bad))
    assert [p.message for p in problems] == [
        "not valid package names: 'Busybox', 'x', 'lib_foo', 'pkg@1'"
    ]
    assert "Debian package names" in str(problems[0].hint)


def test_every_name_the_hosts_apt_knows_is_a_valid_debian_name() -> None:
    names = subprocess.run(
        ["apt-cache", "pkgnames"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert len(names) > 1000, "apt has no package lists: run apt-get update"
    assert bad_package_names(SourceKind.APT, names) == []


@pytest.mark.parametrize("kind", [SourceKind.GLAUCUS, SourceKind.ARCH, SourceKind.TARBALLS])
def test_arch_glaucus_and_tarball_names(kind: SourceKind) -> None:
    # Real Arch and glaucus names (python-typing_extensions has an '_', which Debian's
    # rule refuses), and what makepkg allows beyond them: upper case, '@', one character.
    real = (
        "gtk-update-icon-cache",
        "libxml2",
        "python-pip",
        "c++utilities",
        "0ad",
        "lib32-glibc",
        "xorg-server",
        "python-typing_extensions",
        "libsigc++",
        "r",
        "gcc-libs",
        "s6-linux-init",
        "skalibs",
        "musl",
    )
    allowed = ("Foo", "pkg@2", "x", "_private")
    assert validate_profile(package_profile(kind, *real, *allowed)) == []
    assert bad_package_names(kind, ("-x", ".x", "a/b", "a b")) == ["-x", ".x", "a/b", "a b"]


def test_settings_from_the_command_line_are_checked_like_a_profile_file() -> None:
    rescue = builtin_profile("rescue")
    changed = with_settings(
        rescue,
        [
            "system.user=live",
            "system.autologin=true",
            "system.timezone=Europe/Berlin",
            'system.disable_units=["apt-daily.timer"]',
            "iso.label=MY_RESCUE",
        ],
    )
    assert (changed.system.user, changed.system.autologin) == ("live", True)
    assert changed.system.timezone == "Europe/Berlin"
    assert changed.system.disable_units == ("apt-daily.timer",)
    assert changed.iso.label == "MY_RESCUE" and changed.packages == rescue.packages
    with pytest.raises(ValidationError) as caught:
        with_settings(rescue, ["system.autologin=maybe", "system.colour=blue", "nope", "x.y=1"])
    problems = [str(p) for p in caught.value.problems]
    assert "nope: write SECTION.KEY=VALUE, e.g. system.user=live" in problems
    assert "x.y: unknown section 'x'" in problems
    with pytest.raises(ValidationError) as caught:
        with_settings(rescue, ["system.autologin=maybe", "system.colour=blue"])
    problems = [str(p) for p in caught.value.problems]
    assert "--set: system.autologin: must be bool, not str" in problems
    assert "--set: system.colour: unknown setting" in problems


def test_a_profile_saved_by_an_earlier_version_still_loads(tmp_path: Path) -> None:
    old = load_profile(Path(__file__).parent / "data" / "profile-2026-11.toml")
    assert old.packages.install is InstallMethod.AUTO and old.packages.suite == ""
    assert (old.system.user, old.system.user_password) == ("ana", "pw")
    assert not old.system.autologin and not old.system.sudo and old.system.timezone == ""
    assert old.system.enable_units == () and old.system.first_boot == ""
    assert validate_profile(old) == []
    save_profile(old, tmp_path / "again.toml")
    assert load_profile(tmp_path / "again.toml") == old
