"""Small but real package sets that build bootable live systems in seconds.

`kernel_package()` repacks the real Debian kernel with only the modules a live initramfs
needs (the closure of LIVE_MODULES), so pipeline tests skip the 400 MB module tree.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from app.compose.kmod import LIVE_MODULES, resolve_modules
from app.compose.profile import (
    Compressor,
    ImageOptions,
    IsoOptions,
    KernelOptions,
    PackageOptions,
    Profile,
    RootImageFormat,
    SystemOptions,
)
from app.packages.model import SourceKind, SourceSpec
from tests.app.packages.fixtures import (
    Entry,
    FixturePackage,
    busybox_package,
    file,
    make_glaucus_repo,
)
from tests.support.debian import kernel_tree

MODULE_INDEX_FILES = ("modules.builtin", "modules.builtin.modinfo", "modules.order")


@cache
def kernel_package(name: str = "linux") -> FixturePackage:
    vmlinuz, mod_dir, version = kernel_tree()
    entries: list[Entry] = [file(f"boot/vmlinuz-{version}", vmlinuz.read_bytes(), 0o644)]
    for module in resolve_modules(mod_dir, LIVE_MODULES):
        entries.append(file(f"lib/modules/{version}/{module.relpath}", module.path.read_bytes()))
    for index in MODULE_INDEX_FILES:
        if (mod_dir / index).is_file():
            entries.append(file(f"lib/modules/{version}/{index}", (mod_dir / index).read_bytes()))
    return FixturePackage(
        name,
        version.split("-")[0],
        tuple(entries),
        description="The Linux kernel (live modules only)",
    )


def live_packages(*extra: FixturePackage) -> list[FixturePackage]:
    return [busybox_package(applets=("sh",)), kernel_package(), *extra]


def live_glaucus_repo(tmp: Path, *extra: FixturePackage, name: str = "glaucus") -> Path:
    return make_glaucus_repo(tmp, live_packages(*extra), name=name)


def live_profile(
    repo: Path,
    *extra: str,
    fmt: RootImageFormat = RootImageFormat.SQUASHFS,
    name: str = "fixture",
    label: str = "FIXTURE",
    **system: str,
) -> Profile:
    """A profile that builds the live fixture set (busybox, the kernel, `extra`) from the
    glaucus tree `repo`; zstd level 3 (lz4hc for EROFS) keeps builds quick."""
    erofs = fmt is RootImageFormat.EROFS
    return Profile(
        name=name,
        packages=PackageOptions(
            SourceSpec(SourceKind.GLAUCUS, str(repo)), ("busybox", "linux", *extra)
        ),
        kernel=KernelOptions(package="linux"),
        system=SystemOptions(**system),
        image=ImageOptions(
            fmt, Compressor.LZ4HC if erofs else Compressor.ZSTD, None if erofs else 3
        ),
        iso=IsoOptions(label=label),
    )


def refused_before_building(profile: Profile, tmp_path: Path) -> list[str]:
    """The problems run_build reports; asserts that no stage after Validate ran."""
    # Imported here: the screenshot scripts use this module without pytest or the pipeline.
    import pytest

    from app.compose.pipeline import run_build
    from app.errors import ValidationError
    from app.reporter import RecordingReporter

    reporter = RecordingReporter()
    out = tmp_path / "out" / "live.iso"
    out.parent.mkdir()
    with pytest.raises(ValidationError) as info:
        run_build(profile, out, reporter, cache_dir=tmp_path / "cache")
    assert reporter.steps == ["Validate"]
    assert sorted(p.name for p in out.parent.iterdir()) == []
    return [str(p) for p in info.value.problems]
