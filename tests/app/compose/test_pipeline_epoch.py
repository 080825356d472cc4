"""The build reads SOURCE_DATE_EPOCH once (make_context), refuses a bad value up front with
every other problem, and hands ctx.epoch to the stages."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.compose import pipeline
from app.compose.bootloader import EFI_IMAGE, install_grub_efi
from app.compose.pipeline import boot_menu, make_context
from app.reporter import NullReporter, RecordingReporter
from tests.support.live_fixtures import live_glaucus_repo, live_profile, refused_before_building

EPOCH = 1_700_000_000
HINT = "(seconds since 1970-01-01 00:00:00 UTC, as `date +%s` prints them)"


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return live_glaucus_repo(tmp_path_factory.mktemp("repo"))


def test_the_context_carries_source_date_epoch(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
    ctx = make_context(live_profile(repo), tmp_path / "live.iso", RecordingReporter())
    assert (ctx.epoch, ctx.date, ctx.epoch_problem) == (EPOCH, "2023-11-14", None)


def test_without_source_date_epoch_the_build_is_dated_now(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    before = int(time.time())
    ctx = make_context(live_profile(repo), tmp_path / "live.iso", RecordingReporter())
    assert before <= ctx.epoch <= time.time() and ctx.epoch_problem is None


@pytest.mark.parametrize("value", ["yesterday", "-1", "1700000000.5", str(10**20)])
def test_a_bad_source_date_epoch_is_refused_before_building(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", value)
    assert refused_before_building(live_profile(repo), tmp_path) == [
        f"SOURCE_DATE_EPOCH: {value!r} is not a whole number of seconds from 0 to 4294967295 "
        + HINT
    ]


def test_a_bad_source_date_epoch_is_reported_with_the_other_problems(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    problems = refused_before_building(live_profile(repo, hostname="bad host!"), tmp_path)
    assert problems[0].startswith("SOURCE_DATE_EPOCH: 'yesterday' is not")
    assert any("'bad host!' is not a valid host name" in p for p in problems[1:]), problems


def test_the_bootloaders_stage_dates_the_efi_image_from_the_context(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)  # only ctx.epoch may date it
    ctx = make_context(live_profile(repo), tmp_path / "live.iso", NullReporter(), epoch=EPOCH)
    pipeline.bootloaders_stage(ctx)
    expected = tmp_path / "expected"
    install_grub_efi(expected, boot_menu(ctx), NullReporter(), epoch=EPOCH)
    assert (ctx.stage_dir / EFI_IMAGE).read_bytes() == (expected / EFI_IMAGE).read_bytes()
