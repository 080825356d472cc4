"""The built-in `minimal` profile end to end with a warm package cache. Goal: <= 20 s.

Run with `make bench`. Prints the median of 3 builds and the median time of every stage, so
the slowest stage is obvious.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from app.build.pipeline import run_build
from app.build.profile import builtin_profile
from app.reporter import NullReporter

pytestmark = pytest.mark.benchmark
RUNS = 3
GOAL_SECONDS = 20.0


def test_minimal_profile_with_a_warm_cache(tmp_path: Path) -> None:
    cache = Path.home() / ".cache" / "livesmith-tests" / "package-cache"
    profile = builtin_profile("minimal")
    run_build(profile, tmp_path / "warm.iso", NullReporter(), cache_dir=cache)  # warm the cache
    totals: list[float] = []
    stages: dict[str, list[float]] = {}
    for run in range(RUNS):
        result = run_build(profile, tmp_path / f"run{run}.iso", NullReporter(), cache_dir=cache)
        totals.append(result.seconds)
        for key, seconds in result.stage_seconds:
            stages.setdefault(key, []).append(seconds)
        (tmp_path / f"run{run}.iso").unlink()
    median = statistics.median(totals)
    print(f"\nminimal profile, warm cache: median {median:.1f} s of {RUNS} "
          f"({', '.join(f'{t:.1f}' for t in totals)}); goal <= {GOAL_SECONDS:.0f} s")
    for key, values in stages.items():
        print(f"  {key:12} {statistics.median(values):6.2f} s")
    assert median > 0
