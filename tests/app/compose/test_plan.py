"""Build plans from real fixture packages: problems all at once, sizes and the planned tree."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from app.compose.plan import NO_OUTPUT, plan_build
from app.compose.profile import IsoOptions, PackageOptions, Profile
from app.packages.model import SourceKind, SourceSpec
from tests.app.packages.fixtures import text_package
from tests.support.live_fixtures import live_glaucus_repo


def fixture_profile(repo: Path, *names: str) -> Profile:
    return Profile(
        "plan",
        packages=PackageOptions(SourceSpec(SourceKind.GLAUCUS, str(repo)), names, carry=True),
        iso=IsoOptions(label="PLAN"),
    )


def test_a_good_profile_plans_without_problems(tmp_path: Path) -> None:
    repo = live_glaucus_repo(tmp_path, text_package("docs"))
    plan = plan_build(fixture_profile(repo, "busybox", "linux", "docs"), tmp_path / "a.iso")
    assert plan.ok and plan.problems == ()
    assert [f.split("-")[0] for f in plan.package_files] == ["busybox", "docs", "linux"]
    assert all(f.endswith(".tar.zst") for f in plan.package_files)
    packed = sum(f.stat().st_size for f in repo.glob("*/*.tar.zst"))
    assert plan.iso_bytes >= packed and plan.scratch_bytes > plan.iso_bytes
    paths = {f.path for f in plan.tree}
    assert "/packages/docs/docs-1.0.tar.zst" in paths and "/live/vmlinuz" in paths
    assert {"/packages/docs/info", "/packages/docs/sum"} <= set(paths)  # the glaucus tree
    assert not (tmp_path / "a.iso").exists()  # planning writes nothing


def test_every_problem_is_listed_together(tmp_path: Path) -> None:
    repo = live_glaucus_repo(tmp_path)
    profile = fixture_profile(repo, "busybox", "missing")
    profile = replace(profile, iso=IsoOptions(label="bad label!"))
    plan = plan_build(profile, tmp_path)  # a folder, not an ISO file
    where = [p.where for p in plan.problems]
    assert {"label", "kernel", "output"} <= set(where)
    assert any("missing" in p.message for p in plan.problems)
    assert not plan.ok


def test_without_an_output_the_profile_is_still_checked(tmp_path: Path) -> None:
    plan = plan_build(Profile("p", iso=IsoOptions(label="")), None)
    assert NO_OUTPUT in plan.problems
    assert any(p.where == "label" for p in plan.problems)
    assert plan.iso_bytes == 0 and plan.tree


APT_CACHE_COUNTER = """#!/bin/sh
echo "$*" >> "{log}"
exec /usr/bin/apt-cache "$@"
"""


def test_a_plan_asks_the_source_the_last_plan_opened_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The Review page re-checks at every edit; with apt each fresh source costs about ten
    # apt-cache runs (seconds). The source the first plan opened answers the second plan
    # from what it has already looked up: apt-cache (counted by a wrapper on PATH) runs for
    # the new package only.
    bin_dir, log = tmp_path / "bin", tmp_path / "apt-cache.log"
    bin_dir.mkdir()
    wrapper = bin_dir / "apt-cache"
    wrapper.write_text(APT_CACHE_COUNTER.format(log=log))
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    apt = SourceSpec(SourceKind.APT)
    profile = Profile(
        "plan", packages=PackageOptions(apt, ("busybox-static",)), iso=IsoOptions(label="PLAN")
    )
    first = plan_build(profile, tmp_path / "a.iso")
    assert first.source is not None and first.iso_bytes > 0  # busybox-static resolved
    first_runs = log.read_text().splitlines()
    assert first_runs

    log.write_text("")
    again = plan_build(profile, tmp_path / "b.iso", source=first.source)
    assert log.read_text() == ""  # nothing new to ask
    assert again.iso_bytes == first.iso_bytes and again.source is first.source

    more = replace(profile, packages=PackageOptions(apt, ("busybox-static", "zstd")))
    plan = plan_build(more, tmp_path / "c.iso", source=first.source)
    runs = log.read_text().splitlines()
    assert runs and all("busybox-static" not in run for run in runs)
    assert plan.iso_bytes > first.iso_bytes  # zstd (and what it needs) resolved too

    # Another source in the profile: the one passed in is not used.
    repo = live_glaucus_repo(tmp_path / "repo")
    other = plan_build(
        fixture_profile(repo, "busybox", "linux"), tmp_path / "d.iso", source=first.source
    )
    assert other.ok and other.source is not first.source
