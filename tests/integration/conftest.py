"""Builds shared by the integration tests: each profile variant is built once per session."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from app.compose.pipeline import BuildResult, run_build
from app.compose.profile import Profile, RootImageFormat, builtin_profile
from app.reporter import RecordingReporter

EPOCH = "1767225600"  # 2026-01-01: every integration build is reproducible


@pytest.fixture(scope="session")
def build_iso(
    tmp_path_factory: pytest.TempPathFactory, package_cache: Path
) -> Callable[[Profile, str], BuildResult]:
    built: dict[str, BuildResult] = {}

    def build(profile: Profile, key: str) -> BuildResult:
        if key not in built:
            out = tmp_path_factory.mktemp(f"iso-{key}") / f"{key}.iso"
            os.environ["SOURCE_DATE_EPOCH"] = EPOCH
            try:
                built[key] = run_build(profile, out, RecordingReporter(), cache_dir=package_cache)
            finally:
                del os.environ["SOURCE_DATE_EPOCH"]
        return built[key]

    return build


@pytest.fixture(scope="session")
def minimal_profile() -> Profile:
    return builtin_profile("minimal")


@pytest.fixture(scope="session")
def minimal_iso(build_iso, minimal_profile: Profile) -> BuildResult:
    return build_iso(minimal_profile, "minimal")


def with_format(profile: Profile, fmt: RootImageFormat, compressor) -> Profile:
    return replace(
        profile, image=replace(profile.image, format=fmt, compressor=compressor, level=None)
    )
