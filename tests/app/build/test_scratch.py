from __future__ import annotations

from pathlib import Path

from app.build.scratch import remove_tree
from tests.support.unprivileged import run_as_nobody


def test_removes_read_only_folders_even_without_root(tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "proc/sub").mkdir(parents=True)
    (work / "proc/sub/file").write_text("x")
    (work / "proc/sub").chmod(0o555)
    (work / "proc").chmod(0o555)
    import subprocess

    subprocess.run(["chown", "-R", "nobody:nogroup", str(tmp_path)], check=True)
    result = run_as_nobody(f"from app.build.scratch import remove_tree; from pathlib import "
                           f"Path; remove_tree(Path({str(work)!r}))", extra_paths=(tmp_path,))
    assert result.returncode == 0, result.stderr.decode()
    assert not work.exists()


def test_missing_folder_is_fine(tmp_path: Path) -> None:
    remove_tree(tmp_path / "nothing")
