from __future__ import annotations

from pathlib import Path

import pytest

from app.compose.rootpath import resolve_in_root
from app.errors import InputError


def test_absolute_symlinks_resolve_inside_the_root(tmp_path: Path) -> None:
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "bin").symlink_to("/usr/bin")
    assert resolve_in_root(tmp_path, "bin/sh") == tmp_path / "usr/bin/sh"


def test_dotdot_and_escaping_links_are_clamped_to_the_root(tmp_path: Path) -> None:
    (tmp_path / "x").symlink_to("../../../../..")
    assert resolve_in_root(tmp_path, "x/etc/passwd") == tmp_path / "etc/passwd"
    assert resolve_in_root(tmp_path, "../../etc/passwd") == tmp_path / "etc/passwd"


def test_self_referencing_link_is_an_error_not_the_host(tmp_path: Path) -> None:
    (tmp_path / "etc").symlink_to("/etc")
    with pytest.raises(InputError, match="too many levels"):
        resolve_in_root(tmp_path, "etc/hostname")


def test_result_never_passes_through_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("/c")
    (tmp_path / "c").mkdir()
    host = resolve_in_root(tmp_path, "a/file")
    assert host == tmp_path / "c/file"
    assert not any(p.is_symlink() for p in host.parents if tmp_path in p.parents)
