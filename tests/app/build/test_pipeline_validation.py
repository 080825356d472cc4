"""validate_build on the live fixture set: problems the build would only meet late (in the
initramfs or root image stage) are reported before anything is built."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from app.build.pipeline import run_build
from app.build.profile import Compressor, ImageOptions, Profile, RootImageFormat
from app.errors import ValidationError
from app.reporter import RecordingReporter
from tests.support.live_fixtures import live_glaucus_repo, live_profile


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return live_glaucus_repo(tmp_path_factory.mktemp("repo"))


def refused_before_building(profile: Profile, tmp_path: Path) -> list[str]:
    """The problems run_build reports; asserts that no stage after Validate ran."""
    reporter = RecordingReporter()
    out = tmp_path / "out" / "live.iso"
    out.parent.mkdir()
    with pytest.raises(ValidationError) as info:
        run_build(profile, out, reporter, cache_dir=tmp_path / "cache")
    assert reporter.steps == ["Validate"]
    assert sorted(p.name for p in out.parent.iterdir()) == []
    return [str(p) for p in info.value.problems]


def test_a_ram_mode_zstd_level_the_initramfs_cannot_take_is_refused_up_front(
        repo: Path, tmp_path: Path) -> None:
    profile = replace(live_profile(repo, fmt=RootImageFormat.RAM),
                      image=ImageOptions(RootImageFormat.RAM, Compressor.ZSTD, 22))
    assert refused_before_building(profile, tmp_path) == [
        "compression level: level 22 is out of range for zstd in RAM mode (choose 1 to 19)"]
