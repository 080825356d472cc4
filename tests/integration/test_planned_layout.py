"""The planned ISO tree the wizard shows is what a real build writes onto the ISO."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from app.compose.layout import planned_iso_tree
from app.compose.profile import RootImageFormat
from app.iso.inspect import inspect_iso
from app.packages.glaucus import GlaucusSource
from tests.app.packages.fixtures import text_package
from tests.integration.test_build_pipeline import build, glaucus_profile
from tests.support.live_fixtures import live_glaucus_repo


def test_planned_tree_matches_the_built_iso(tmp_path: Path) -> None:
    repo = live_glaucus_repo(tmp_path, text_package("docs"))
    profile = glaucus_profile(repo, "docs", fmt=RootImageFormat.SQUASHFS)
    profile = replace(profile, packages=replace(profile.packages, carry=True))
    (tmp_path / "out").mkdir()
    result = build(profile, tmp_path / "out" / "planned.iso")
    source = GlaucusSource(profile.packages.source)
    carried = [
        (pkg, pkg.file.name)
        for pkg in source.packages()
        if pkg.name in ("busybox", "linux", "docs") and pkg.file is not None
    ]
    planned = {
        f.path for f in planned_iso_tree(profile, build_id=result.build_id, packages=carried)
    }
    built = {f.path for f in inspect_iso(result.iso).files if f.type != "dir"}
    assert planned == built
