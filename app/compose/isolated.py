"""Run a build in a separate process, so that the GUI process keeps its interpreter lock.

The build's per-file Python work (assembly, configure, the cpio planner) holds the
interpreter lock most of the time; on a worker thread of the GUI process it made the event
loop wait up to 50-70 ms at a time. In a child (`python -m app.compose.isolated`, see
app.childproc) it cannot. Cancelling is a message: the child's pipeline stops at its next
safe point and cleans up (no unfinished ISO, no scratch folder) exactly as in-process.
"""

from __future__ import annotations

import contextlib
import glob
import time
from pathlib import Path
from typing import Any

from app.childproc import ChildControl, ChildDied, FrameReader, PipeReporter, run_child, take_stdio
from app.compose.pipeline import BuildResult, checksum_file, run_build, work_folder
from app.compose.profile import Profile
from app.compose.scratch import is_marked, is_own_scratch, remove_tree
from app.errors import StageError
from app.reporter import Level, Reporter


def run_build_isolated(
    profile: Profile, output: Path, reporter: Reporter, **run_build_kwargs: Any
) -> BuildResult:
    """`run_build(profile, output, reporter, **run_build_kwargs)` in a child process.

    If the child dies (killed for memory, a crash), it could not clean up: its scratch
    folder, its unfinished ISO and an ISO it had not yet checked are removed here.
    """
    output = output.expanduser().absolute()
    work = work_folder(output, run_build_kwargs.get("work_dir"))
    own_work = is_own_scratch(work)
    before = {path: _identity(path) for path in (output, checksum_file(output))}
    started = time.time()
    try:
        result: BuildResult = run_child(
            "app.compose.isolated",
            [],
            reporter,
            what=f"build of {output.name}",
            stage="build",
            job=("build", profile, output, run_build_kwargs),
        )
    except ChildDied:
        keep_work = bool(run_build_kwargs.get("keep_work"))
        _clean_after_a_dead_child(
            output, None if keep_work else work, own_work, before, started, reporter
        )
        raise
    return result


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.lstat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _clean_after_a_dead_child(
    output: Path,
    work: Path | None,
    own_work: bool,
    before: dict[Path, tuple[int, int] | None],
    started: float,
    reporter: Reporter,
) -> None:
    if work is not None and is_marked(work):
        left = remove_tree(work, keep_top=not own_work)
        if left:
            reporter.log(
                Level.WARNING, f"could not remove all of the build folder {work}: {left[0]}"
            )
    # The ISO it was mastering (a .part file, named by master_iso), and an ISO it had put in
    # place (a new file: it is renamed there) with its checksum file, not yet checked.
    for part in output.parent.glob(f".{glob.escape(output.name)}.*.part"):
        with contextlib.suppress(OSError):
            if part.lstat().st_mtime >= started - 1:  # coarse file times
                part.unlink()
    replaced = {
        path for path, identity in before.items() if _identity(path) not in (None, identity)
    }
    if output in replaced:  # the checksum file then is this build's too (written in place)
        replaced.add(checksum_file(output))
    for path in replaced:
        with contextlib.suppress(OSError):
            path.unlink()


def child_main() -> int:
    control, messages = take_stdio()
    control_reader = FrameReader(control.fileno())
    job = control_reader.next()
    if job is None or job[0] != "build":
        PipeReporter(messages).fail(StageError("no build was asked for", stage="build"))
        return 1
    _, profile, output, kwargs = job
    reporter = PipeReporter(messages, ChildControl(control_reader))
    reporter.finish(lambda: run_build(profile, output, reporter, **kwargs))
    return 0


if __name__ == "__main__":
    raise SystemExit(child_main())
