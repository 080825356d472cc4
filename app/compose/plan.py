"""A build plan: what a build of this profile would find wrong, need and write, before it runs.

`plan_build` runs the pipeline's own validation (`validate_build`: every problem at once,
from the profile, the package source and resolution, tools, boot loaders, free space and
the output path) and adds the size estimate and the planned ISO tree. It opens the package
source (apt-cache for apt), so callers with a user interface run it off their GUI thread.
A caller that checks again and again (the wizard's Review page) passes the source the last
plan opened: its answers are kept, so apt-cache runs only for names it has not seen yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from app.compose.layout import PlannedFile, planned_iso_tree
from app.compose.pipeline import estimated_bytes, make_context, validate_build
from app.compose.profile import Profile, validate_profile
from app.errors import Problem
from app.packages.model import PackageInfo, PackageSource
from app.reporter import NullReporter, Reporter

NO_OUTPUT = Problem("output", "choose where to write the ISO")


@dataclass(frozen=True)
class BuildPlan:
    profile: Profile
    output: Path | None
    problems: tuple[Problem, ...]
    tree: tuple[PlannedFile, ...]
    scratch_bytes: int = 0  # 0: unknown (the packages did not resolve)
    iso_bytes: int = 0
    package_files: tuple[str, ...] = ()  # file names of the resolved packages
    # The package source the checks opened (None if it could not be); for the next plan.
    source: PackageSource | None = field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return not self.problems


def plan_build(
    profile: Profile,
    output: Path | None,
    reporter: Reporter | None = None,
    *,
    source: PackageSource | None = None,
) -> BuildPlan:
    """Check a build of `profile` into `output` (None: not chosen yet) without building.

    `source`: an opened package source to ask again, if it is the profile's (not shared
    with another thread meanwhile)."""
    if output is None:
        problems = (*validate_profile(profile), NO_OUTPUT)
        return BuildPlan(profile, None, problems, tuple(planned_iso_tree(profile)), source=source)
    ctx = make_context(profile, output, reporter or NullReporter())
    ctx.source = source
    problems = tuple(validate_build(ctx))
    files: tuple[str, ...] = ()
    known: list[tuple[PackageInfo, str]] = []
    scratch = iso = 0
    if ctx.resolution is not None:
        known = sorted(
            ((p, p.file.name) for p in ctx.resolution.packages if p.file is not None),
            key=lambda pair: pair[1],
        )
        files = tuple(name for _, name in known)
        scratch, iso = estimated_bytes(ctx)
    tree = planned_iso_tree(profile, packages=known)
    return BuildPlan(profile, output, problems, tuple(tree), scratch, iso, files, ctx.source)
