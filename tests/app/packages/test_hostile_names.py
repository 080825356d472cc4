"""A package's name and version become file names: hostile ones must not place files
outside the build folder (a version such as `1/../../outside/pwned`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from app.errors import InputError
from app.packages.glaucus import GlaucusSource
from app.packages.model import SourceKind, SourceSpec, check_file_name_part
from app.packages.repository import write_repository
from app.reporter import RecordingReporter
from tests.app.packages.fixtures import make_glaucus_repo, text_package

ESCAPE = "1/" + "../" * 6 + "outside/pwned"


def everything_under(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*")) if folder.exists() else []


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ver", ESCAPE),
        ("ver", "1/2"),
        ("ver", ".."),
        ("ver", "1\x01"),
        ("nom", "../hello"),
        ("nom", ".hidden"),
        ("nom", "a/b"),
    ],
)
def test_glaucus_info_with_a_path_in_its_name_or_version_is_refused(
    tmp_path: Path, key: str, value: str
) -> None:
    repo = make_glaucus_repo(tmp_path, [text_package("hello", "2.10")])
    info = repo / "hello" / "info"
    info.write_text(f"{key}={value!r}\n".replace("\\x01", "\x01"))
    with pytest.raises(InputError) as error:
        GlaucusSource(SourceSpec(SourceKind.GLAUCUS, str(repo))).packages()
    assert error.value.where == str(info)
    assert repr(value) in error.value.message
    assert "file name" in error.value.message


def test_ordinary_names_and_versions_pass() -> None:
    for value in ("busybox", "1.37.0", "2:1.0~rc1+dfsg-3", "libstdc++6", "gtk+3.0", ""):
        assert check_file_name_part(value, "version", "here") == value


def test_carrying_a_package_whose_version_escapes_writes_nothing_outside(tmp_path: Path) -> None:
    repo = make_glaucus_repo(tmp_path / "src", [text_package("hello", "2.10")])
    real = GlaucusSource(SourceSpec(SourceKind.GLAUCUS, str(repo))).get("hello")
    assert real is not None and real.file is not None
    # The package as a reader that did not check would have returned it.
    hostile = dataclasses.replace(real, version=ESCAPE)
    build = tmp_path / "a" / "b" / "c" / "build"
    stage = build / "stage" / "packages"
    stage.mkdir(parents=True)
    before = {p for p in everything_under(tmp_path) if not p.is_relative_to(build)}
    with pytest.raises(InputError) as error:
        write_repository(SourceKind.GLAUCUS, [(hostile, real.file)], stage, RecordingReporter())
    assert "outside" in error.value.message and error.value.where == str(real.file)
    after = {p for p in everything_under(tmp_path) if not p.is_relative_to(build)}
    assert after == before
    assert not list(tmp_path.rglob("pwned*"))
