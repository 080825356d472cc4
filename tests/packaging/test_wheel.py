"""`python -m build` from a copy of the checkout: the sdist and wheel carry every resource, and
the wheel installed into a fresh venv runs the command line (without Qt: the core is Qt-free)."""

from __future__ import annotations

import email.parser
import os
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from app import __version__
from tests.conftest import ROOT
from tests.packaging.conftest import command_names, load_script, make_iso

pytestmark = pytest.mark.slow

build_deb = load_script("build-deb")
GUI_ONLY = {"pyside6-essentials"}


def source_files(package: str) -> set[str]:
    return {
        str(p.relative_to(ROOT))
        for p in (ROOT / package).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


@dataclass
class Dist:
    sdist: Path
    wheel: Path
    venv: Path


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return env | {"PYTHONDONTWRITEBYTECODE": "1"} | extra


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Dist:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    build_deb.copy_source(ROOT, source)
    # A checkout that has been run holds byte code; it must not reach the packages.
    (source / "resources" / "__pycache__").mkdir(exist_ok=True)
    (source / "resources" / "__pycache__" / "stale.cpython-311.pyc").write_bytes(b"stale")
    out = work / "dist"
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        env=clean_env(),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (sdist,) = out.glob("livesmith-*.tar.gz")
    (wheel,) = out.glob("livesmith-*.whl")

    # A fresh venv (no pip inside; the test venv's pip installs into it), with the wheel and
    # the core's dependencies; PySide6 is left out, so the CLI must not need Qt.
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    requirements = [
        r
        for r in wheel_requirements(wheel)
        if canonicalize_name(Requirement(r).name) not in GUI_ONLY
    ]
    pip = [
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(venv / "bin" / "python"),
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]
    subprocess.run([*pip, "--no-deps", str(wheel)], check=True, env=clean_env())
    subprocess.run([*pip, *requirements], check=True, env=clean_env())
    return Dist(sdist, wheel, venv)


def wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as zf:
        return email.parser.Parser().parsestr(
            zf.read(f"livesmith-{__version__}.dist-info/METADATA").decode()
        )


def wheel_requirements(wheel: Path) -> list[str]:
    return [r for r in wheel_metadata(wheel).get_all("Requires-Dist") or [] if "extra ==" not in r]


def run(dist: Dist, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(dist.venv / "bin" / "livesmith"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=clean_env(QT_QPA_PLATFORM="offscreen"),
    )


def test_wheel_holds_every_module_and_resource_and_no_byte_code(dist: Dist) -> None:
    with zipfile.ZipFile(dist.wheel) as zf:
        names = set(zf.namelist())
    for package in ("app", "ui", "resources"):
        missing = source_files(package) - names
        assert not missing, sorted(missing)
    assert "resources/icons/livesmith.svg" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    entry_points = (
        zipfile.ZipFile(dist.wheel)
        .read(f"livesmith-{__version__}.dist-info/entry_points.txt")
        .decode()
    )
    assert "livesmith = app.cli:main" in entry_points


def test_wheel_requires_what_pyproject_declares(dist: Dist) -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert sorted(map(str, map(Requirement, wheel_requirements(dist.wheel)))) == sorted(
        map(str, map(Requirement, declared))
    )
    assert wheel_metadata(dist.wheel)["Version"] == __version__


def test_sdist_holds_every_resource(dist: Dist) -> None:
    import tarfile

    with tarfile.open(dist.sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert source_files("resources") <= names
    assert not [n for n in names if n.endswith(".pyc")]


def test_installed_wheel_runs_the_command_line(dist: Dist, tmp_path: Path) -> None:
    version = run(dist, "--version", cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"livesmith {__version__}"
    help_text = run(dist, "--help", cwd=tmp_path).stdout
    for name in command_names():
        assert name in help_text
    # The modules and resources come from the venv, not from this checkout.
    where = subprocess.run(
        [
            str(dist.venv / "bin" / "python"),
            "-c",
            "import app, app.resources; print(app.__file__); print(app.resources.app_icon_path())",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env=clean_env(),
    ).stdout.split()
    site = dist.venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    assert all(Path(p).is_relative_to(site / "site-packages") for p in where), where
    assert where[1].endswith("resources/icons/livesmith.svg")


def test_installed_wheel_without_qt_explains_that_the_gui_cannot_start(
    dist: Dist, tmp_path: Path
) -> None:
    out = run(dist, cwd=tmp_path)
    assert out.returncode == 1
    assert "the graphical app cannot start" in out.stderr and "PySide6" in out.stderr


def test_installed_wheel_inspects_an_iso(dist: Dist, tmp_path: Path) -> None:
    iso = make_iso(tmp_path, "WHEEL_INSPECT")
    out = run(dist, "inspect", str(iso), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "WHEEL_INSPECT" in out.stdout and "/boot/hello.txt" in out.stdout
