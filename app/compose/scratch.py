"""The build's scratch folder: made, marked, emptied and removed without touching other files.

A build empties its scratch folder before it starts and after it ends, so that folder must
never be one that holds the user's files (`--work-dir ~/Documents`). A folder counts as the
build's own when it carries the marker file written when the build took it; an existing
folder without the marker is used only if it is empty, and then only emptied, not removed.
Removal works even where the build made folders read-only.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path
from typing import Any

from app.errors import Problem, StageError

MARKER = ".livesmith-scratch"


def is_marked(work: Path) -> bool:
    """`work` carries the marker a build leaves in its scratch folder."""
    return (work / MARKER).is_file()


def is_own_scratch(work: Path) -> bool:
    """A build may remove `work` afterwards: it does not exist yet, or a build marked it."""
    return not work.exists() or is_marked(work)


def scratch_problem(work: Path) -> Problem | None:
    """Why `work` cannot be the scratch folder, or None."""
    if work.is_symlink() or (work.exists() and not work.is_dir()):
        return Problem(
            str(work),
            "the build folder path is taken by something that is not a folder",
            hint="choose another build folder (--work-dir)",
        )
    if is_own_scratch(work):
        return None
    try:
        with os.scandir(work) as entries:
            empty = next(entries, None) is None
    except OSError as exc:
        return Problem(str(work), f"cannot read the build folder: {exc.strerror}")
    if empty:
        return None
    return Problem(
        str(work),
        "this folder holds files that Livesmith did not put there; a "
        "build empties its build folder",
        hint="choose a new or empty build folder (--work-dir)",
    )


def take_scratch(work: Path) -> bool:
    """Make `work` ready and marked, emptied of an earlier build; True if it is the build's
    own (made here, or left marked by an earlier build) and may be removed afterwards.

    Call only when `scratch_problem(work)` is None.
    """
    own = is_own_scratch(work)
    if work.exists():
        left = remove_tree(work, keep_top=True)
        if left:
            # Building on top of an earlier build's leftovers would mix the two.
            raise StageError(
                f"cannot empty the build folder of an earlier build: {left[0]}",
                stage="validate",
                where=str(work),
                hint="remove the folder, or choose another one (--work-dir)",
            )
    work.mkdir(parents=True, exist_ok=True)
    (work / MARKER).write_text("Livesmith's scratch folder: emptied and removed by builds.\n")
    return own


def remove_tree(path: Path, *, keep_top: bool = False) -> list[str]:
    """Remove `path` (or only what is in it); returns what could not be removed, and why.

    Read-only folders inside the tree are made writable first; nothing outside it is
    changed.
    """
    if not path.exists() and not path.is_symlink():
        return []
    failures: list[str] = []
    top = os.path.abspath(path)

    def make_writable_and_retry(func: Any, target: str, exc: Any) -> None:
        parent = os.path.dirname(os.path.abspath(target))
        try:
            if parent == top or parent.startswith(top + os.sep):
                os.chmod(parent, stat.S_IRWXU)
            if os.path.isdir(target) and not os.path.islink(target):
                os.chmod(target, stat.S_IRWXU)
            func(target)
        except FileNotFoundError:
            pass
        except OSError as again:
            failures.append(f"{target}: {again.strerror or again}")

    def rmtree(folder: str) -> None:
        if sys.version_info >= (3, 12):
            shutil.rmtree(folder, onexc=make_writable_and_retry)
        else:
            shutil.rmtree(folder, onerror=make_writable_and_retry)

    if path.is_symlink() or not path.is_dir():
        path.unlink()
    elif keep_top:
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    rmtree(entry.path)
                else:
                    try:
                        os.unlink(entry.path)
                    except OSError as exc:
                        failures.append(f"{entry.path}: {exc.strerror or exc}")
    else:
        rmtree(str(path))
    return failures
