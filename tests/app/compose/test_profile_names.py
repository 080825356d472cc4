"""Host and user names go into /etc/hostname, /etc/passwd, /etc/shadow and the manifest
line by line: validation refuses anything but the name itself, a final newline included."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.compose.profile import (
    PackageOptions,
    Profile,
    SystemOptions,
    load_profile,
    validate_profile,
)


def system_profile(**system: str) -> Profile:
    return Profile(
        name="names",
        packages=PackageOptions(packages=("busybox-static",)),
        system=SystemOptions(**{"user_password": "pw", **system}),
    )


def problem_places(profile: Profile) -> list[str]:
    return [p.where for p in validate_profile(profile)]


@pytest.mark.parametrize("hostname", ["box\n", "box.example\n", "box\n.example"])
def test_a_host_name_with_a_newline_is_refused(hostname: str) -> None:
    assert problem_places(system_profile(hostname=hostname)) == ["hostname"]


def test_a_user_name_with_a_final_newline_is_refused() -> None:
    assert problem_places(system_profile(hostname="box.example", user="ana")) == []
    problems = validate_profile(system_profile(user="ana\n"))
    assert [p.where for p in problems] == ["user"]
    assert repr("ana\n") in problems[0].message


def test_a_saved_profile_with_newline_names_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(
        'name = "n"\n[packages]\npackages = ["busybox-static"]\n'
        '[system]\nhostname = "box\\n"\nuser = "ana\\n"\nuser_password = "pw"\n'
    )
    assert sorted(problem_places(load_profile(path))) == ["hostname", "user"]
