"""Run a build in a separate process, so that the GUI process keeps its interpreter lock.

The build's per-file Python work (assembly, configure, the cpio planner) holds the
interpreter lock most of the time; on a worker thread of the GUI process it made the event
loop wait up to 50-70 ms at a time. In a child (`python -m app.build.isolated`, see
app.childproc) it cannot. Cancelling is a message: the child's pipeline stops at its next
safe point and cleans up (no unfinished ISO, no scratch folder) exactly as in-process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.build.pipeline import BuildResult, run_build
from app.build.profile import Profile
from app.childproc import ChildControl, FrameReader, PipeReporter, run_child, take_stdio
from app.errors import StageError
from app.reporter import Reporter


def run_build_isolated(profile: Profile, output: Path, reporter: Reporter,
                       **run_build_kwargs: Any) -> BuildResult:
    """`run_build(profile, output, reporter, **run_build_kwargs)` in a child process."""
    result: BuildResult = run_child(
        "app.build.isolated", [], reporter, what=f"build of {output.name}", stage="build",
        job=("build", profile, output, run_build_kwargs))
    return result


def child_main() -> int:
    control, messages = take_stdio()
    control_reader = FrameReader(control.fileno())
    job = control_reader.next()
    if job is None or job[0] != "build":
        PipeReporter(messages).send(("failed", StageError("no build was asked for",
                                                          stage="build")))
        return 1
    _, profile, output, kwargs = job
    reporter = PipeReporter(messages, ChildControl(control_reader))
    reporter.finish(lambda: run_build(profile, output, reporter, **kwargs))
    return 0


if __name__ == "__main__":
    raise SystemExit(child_main())
