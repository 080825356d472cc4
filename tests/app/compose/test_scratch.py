"""The scratch folder: only a new, empty or marked folder is used, and only ours is removed."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from app.compose.scratch import MARKER, remove_tree, scratch_problem, take_scratch
from tests.support.unprivileged import run_as_nobody


def test_removes_read_only_folders_even_without_root(tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "proc/sub").mkdir(parents=True)
    (work / "proc/sub/file").write_text("x")
    (work / "proc/sub").chmod(0o555)
    (work / "proc").chmod(0o555)
    subprocess.run(["chown", "-R", "nobody:nogroup", str(tmp_path)], check=True)
    result = run_as_nobody(
        f"from app.compose.scratch import remove_tree; from pathlib import "
        f"Path; print(remove_tree(Path({str(work)!r})))",
        extra_paths=(tmp_path,),
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().strip() == "[]"
    assert not work.exists()


def test_never_changes_permissions_outside_the_tree(tmp_path: Path) -> None:
    # The folder holding the scratch folder is read-only: the scratch folder itself cannot
    # be removed, and that folder (perhaps the user's output folder) must stay as it is.
    outer = tmp_path / "outer"
    (outer / "work/inside").mkdir(parents=True)
    subprocess.run(["chown", "-R", "nobody:nogroup", str(tmp_path)], check=True)
    outer.chmod(0o555)
    result = run_as_nobody(
        f"from app.compose.scratch import remove_tree; from pathlib import "
        f"Path; print(remove_tree(Path({str(outer / 'work')!r})))",
        extra_paths=(tmp_path,),
    )
    assert result.returncode == 0, result.stderr.decode()
    assert "Permission denied" in result.stdout.decode()  # reported, not swallowed
    assert stat.S_IMODE(outer.stat().st_mode) == 0o555
    assert (outer / "work").is_dir() and not (outer / "work/inside").exists()


def test_missing_folder_is_fine(tmp_path: Path) -> None:
    assert remove_tree(tmp_path / "nothing") == []


def test_a_folder_with_other_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    problem = scratch_problem(tmp_path)
    assert problem is not None and problem.where == str(tmp_path)
    assert "did not put there" in problem.message
    (tmp_path / "file").write_text("x")
    taken = scratch_problem(tmp_path / "file")
    assert taken is not None and "not a folder" in taken.message


def test_new_empty_and_marked_folders_are_accepted(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "stale").mkdir()
    (tmp_path / "stale" / MARKER).write_text("")
    (tmp_path / "stale/root").mkdir()
    for name in ("new", "empty", "stale"):
        assert scratch_problem(tmp_path / name) is None


def test_taking_a_folder_marks_it_and_says_whether_it_is_ours(tmp_path: Path) -> None:
    assert take_scratch(tmp_path / "new") is True
    assert (tmp_path / "new" / MARKER).is_file()
    (tmp_path / "empty").mkdir()
    assert take_scratch(tmp_path / "empty") is False  # the user's: emptied, never removed
    (tmp_path / "new/root").mkdir()
    (tmp_path / "new/root/file").write_text("from an earlier build")
    assert take_scratch(tmp_path / "new") is True  # marked by an earlier build
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == [MARKER]


def test_keep_top_empties_a_folder_but_keeps_it(tmp_path: Path) -> None:
    (tmp_path / "a/b").mkdir(parents=True)
    (tmp_path / "a/b").chmod(0o555)
    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to("/etc")
    assert remove_tree(tmp_path, keep_top=True) == []
    assert tmp_path.is_dir() and not any(tmp_path.iterdir())
    assert Path("/etc/hostname").exists()


def test_leftovers_that_cannot_be_removed_stop_the_build(tmp_path: Path) -> None:
    import pytest

    from app.errors import StageError

    work = tmp_path / "work"
    work.mkdir()
    (work / MARKER).write_text("")
    stuck = work / "stuck"
    stuck.mkdir()
    # A mount point cannot be removed, not even by root (and works on any file system).
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(stuck)], check=True)
    try:
        with pytest.raises(StageError, match="cannot empty the build folder") as error:
            take_scratch(work)
        assert str(stuck) in str(error.value)
    finally:
        subprocess.run(["umount", str(stuck)], check=True)
