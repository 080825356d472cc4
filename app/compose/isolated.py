"""Run a build in a separate process, so that the GUI process keeps its interpreter lock.

The build's per-file Python work (assembly, configure, the cpio planner) holds the
interpreter lock most of the time; on a worker thread of the GUI process it made the event
loop wait up to 50-70 ms at a time. In a child (`python -m app.compose.isolated`, see
app.childproc) it cannot. Cancelling is a message: the child's pipeline stops at its next
safe point and cleans up (no unfinished ISO, no scratch folder) exactly as in-process.

The job is `build_job` (the profile in its TOML form, the output and run_build's options) and
the result `build_result_to_json`: JSON, as everything crossing app.frames.
"""

from __future__ import annotations

import contextlib
import glob
import time
from pathlib import Path
from typing import Any

from app.childproc import ChildControl, ChildDied, PipeReporter, run_child, take_stdio
from app.compose.pipeline import BuildResult, checksum_file, run_build, work_folder
from app.compose.profile import Profile, profile_from_dict, profile_to_dict
from app.compose.scratch import is_marked, is_own_scratch, remove_tree
from app.errors import StageError
from app.frames import FrameReader, Message, ProtocolError
from app.reporter import Level, Reporter


def run_build_isolated(
    profile: Profile,
    output: Path,
    reporter: Reporter,
    *,
    work_dir: Path | None = None,
    cache_dir: Path | None = None,
    keep_work: bool = False,
) -> BuildResult:
    """`run_build(profile, output, reporter, ...)` in a child process.

    If the child dies (killed for memory, a crash), it could not clean up: its scratch
    folder, its unfinished ISO and an ISO it had not yet checked are removed here.
    """
    output = output.expanduser().absolute()
    work = work_folder(output, work_dir)
    own_work = is_own_scratch(work)
    before = {path: _identity(path) for path in (output, checksum_file(output))}
    started = time.time()
    try:
        return run_child(
            "app.compose.isolated",
            [],
            reporter,
            what=f"build of {output.name}",
            stage="build",
            result=build_result_from_json,
            job=build_job(
                profile, output, work_dir=work_dir, cache_dir=cache_dir, keep_work=keep_work
            ),
        )
    except ChildDied:
        _clean_after_a_dead_child(
            output, None if keep_work else work, own_work, before, started, reporter
        )
        raise


def build_job(
    profile: Profile,
    output: Path,
    *,
    work_dir: Path | None = None,
    cache_dir: Path | None = None,
    keep_work: bool = False,
) -> Message:
    """The message that asks the child for a build (`run_build`'s arguments)."""
    return {
        "kind": "build",
        "profile": profile_to_dict(profile),
        "output": str(output),
        "work_dir": _path_text(work_dir),
        "cache_dir": _path_text(cache_dir),
        "keep_work": keep_work,
    }


def _run_job(job: Message, reporter: PipeReporter) -> dict[str, Any]:
    """Run the build `build_job` describes; its result as JSON."""
    result = run_build(
        profile_from_dict(job["profile"], where="the build job's profile"),
        Path(job["output"]),
        reporter,
        work_dir=_optional_path(job["work_dir"]),
        cache_dir=_optional_path(job["cache_dir"]),
        keep_work=bool(job["keep_work"]),
    )
    return build_result_to_json(result)


def build_result_to_json(result: BuildResult) -> dict[str, Any]:
    return {
        "iso": str(result.iso),
        "sha256": result.sha256,
        "size": result.size,
        "build_id": result.build_id,
        "seconds": result.seconds,
        "stage_seconds": [[name, seconds] for name, seconds in result.stage_seconds],
    }


def build_result_from_json(data: dict[str, Any]) -> BuildResult:
    return BuildResult(
        iso=Path(data["iso"]),
        sha256=str(data["sha256"]),
        size=int(data["size"]),
        build_id=str(data["build_id"]),
        seconds=float(data["seconds"]),
        stage_seconds=tuple((str(name), float(secs)) for name, secs in data["stage_seconds"]),
    )


def _path_text(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _optional_path(text: str | None) -> Path | None:
    return None if text is None else Path(text)


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
    try:
        job = control_reader.next()
    except ProtocolError as exc:
        PipeReporter(messages).fail(StageError(f"the build job is broken: {exc}", stage="build"))
        return 1
    if job is None or job["kind"] != "build":
        PipeReporter(messages).fail(StageError("no build was asked for", stage="build"))
        return 1
    reporter = PipeReporter(messages, ChildControl(control_reader))
    reporter.finish(lambda: _run_job(job, reporter))
    return 0


if __name__ == "__main__":
    raise SystemExit(child_main())
