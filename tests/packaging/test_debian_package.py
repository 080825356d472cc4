"""The Debian package: built with dpkg-buildpackage from a copy of the checkout, then inspected,
resolved against the Debian archive with apt, unpacked and run with Debian's own Python."""

from __future__ import annotations

import gzip
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from app import __version__
from app.resources import APP_ID
from tests.conftest import ROOT
from tests.packaging.conftest import DEBIAN_PYTHON, PACKAGING, command_names, make_iso

pytestmark = pytest.mark.slow

DEBIAN_PYTHON_LIBS = [
    "python3-jeepney",
    "python3-pycdlib",
    "python3-pyudev",
    "python3-tomli-w",
    "python3-xxhash",
    "python3-zstandard",
]
CHECKOUT_ONLY = {"python3-venv", "librsvg2-bin"}  # as in packaging/debian/rules


def checkout_state() -> list[str]:
    out = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--ignored", "--untracked-files=all"],
        capture_output=True,
        text=True,
        check=True,
    )
    return sorted(line for line in out.stdout.splitlines() if "__pycache__" not in line)


@dataclass
class Built:
    deb: Path
    root: Path  # the package unpacked with dpkg -x
    before: list[str]
    after: list[str]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    out = tmp_path_factory.mktemp("deb")
    before = checkout_state()
    proc = subprocess.run(
        [sys.executable, str(PACKAGING / "build-deb"), str(out)], capture_output=True, text=True
    )
    after = checkout_state()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    deb = Path(proc.stdout.strip().splitlines()[-1])
    assert deb.name == f"livesmith_{__version__}_all.deb" and deb.is_file()
    root = out / "root"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return Built(deb, root, before, after)


def run_packaged(
    built: Built, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The unpacked /usr/bin/livesmith with Debian's python3 and a minimal environment."""
    base = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "LIVESMITH_PYSIDE6_DIR": "/nonexistent",
    }
    return subprocess.run(
        [DEBIAN_PYTHON, str(built.root / "usr/bin/livesmith"), *args],
        capture_output=True,
        text=True,
        env=base | (env or {}),
        cwd=cwd or built.root,
    )


def test_building_leaves_the_checkout_untouched(built: Built) -> None:
    assert built.after == built.before
    assert not (ROOT / "debian").exists()


def test_package_holds_the_desktop_integration_and_the_command(built: Built) -> None:
    listing = subprocess.run(
        ["dpkg-deb", "-c", str(built.deb)], capture_output=True, text=True, check=True
    ).stdout
    paths = {line.split()[5].removeprefix(".") for line in listing.splitlines()}
    expected = {
        "/usr/bin/livesmith",
        f"/usr/share/applications/{APP_ID}.desktop",
        f"/usr/share/metainfo/{APP_ID}.metainfo.xml",
        f"/usr/share/icons/hicolor/scalable/apps/{APP_ID}.svg",
        *(
            f"/usr/share/icons/hicolor/{n}x{n}/apps/{APP_ID}.png"
            for n in (16, 24, 32, 48, 64, 128, 256, 512)
        ),
        "/usr/share/man/man1/livesmith.1.gz",
        "/usr/share/doc/livesmith/copyright",
        "/usr/share/doc/livesmith/README.Debian",
    }
    assert expected <= paths, sorted(expected - paths)
    assert [line for line in listing.splitlines() if line.split()[5] == "./usr/bin/livesmith"][
        0
    ].startswith("-rwxr-xr-x")
    # Every module and every resource of the checkout, and no byte code.
    for package in ("app", "ui", "resources"):
        for source in (ROOT / package).rglob("*"):
            if source.is_file() and "__pycache__" not in source.parts:
                assert f"/usr/share/livesmith/{source.relative_to(ROOT)}" in paths, source
    assert not [p for p in paths if "__pycache__" in p or p.endswith(".pyc")]
    assert not [p for p in paths if p.startswith("/usr/lib/python3")]  # private, not dist-packages


def field(deb: Path, name: str) -> list[str]:
    value = subprocess.run(
        ["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True, check=True
    ).stdout
    return [part.strip() for part in value.replace("\n", " ").split(",") if part.strip()]


def test_depends_on_debian_libraries_and_every_run_time_tool(built: Built) -> None:
    depends = field(built.deb, "Depends")
    names = {d.split()[0] for d in depends}
    assert set(DEBIAN_PYTHON_LIBS) <= names
    assert any(d.startswith("python3:any (>= 3.11") for d in depends)
    run_time = set()
    for line in (ROOT / "packaging/deps/apt-run.txt").read_text().splitlines():
        run_time |= set(line.split("#", 1)[0].split())
    assert run_time - CHECKOUT_ONLY <= names
    assert not names & CHECKOUT_ONLY
    assert "python3-pyside6.qtwidgets | python3-pip" in field(built.deb, "Recommends")


def test_apt_resolves_every_dependency_in_the_debian_archive(built: Built) -> None:
    # A simulated install computes the full dependency closure against the archive.
    out = subprocess.run(
        ["apt-get", "install", "--simulate", "--no-install-recommends", str(built.deb)],
        capture_output=True,
        text=True,
        env=dict(os.environ, LC_ALL="C"),
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert f"Inst livesmith ({__version__}" in out.stdout


def test_unpacked_command_runs_with_debian_python_alone(built: Built) -> None:
    version = run_packaged(built, "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"livesmith {__version__}"
    help_text = run_packaged(built, "--help").stdout
    for name in command_names():
        assert name in help_text
    where = subprocess.run(
        [
            DEBIAN_PYTHON,
            "-c",
            "import sys; sys.argv=['x','--version']; "
            f"sys.path.insert(0, {str(built.root / 'usr/share/livesmith')!r}); "
            "import app.resources, pycdlib; print(app.resources.app_icon_path()); "
            "print(pycdlib.__file__)",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=built.root,
        env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
    ).stdout.split()
    assert where[0] == str(built.root / "usr/share/livesmith/resources/icons/livesmith.svg")
    assert where[1].startswith("/usr/lib/python3/dist-packages/")  # Debian's, not pip's


def test_unpacked_command_inspects_an_iso_with_debian_libraries(
    built: Built, tmp_path: Path
) -> None:
    iso = make_iso(tmp_path, "DEB_INSPECT")
    out = run_packaged(built, "inspect", str(iso))
    assert out.returncode == 0, out.stderr
    assert "DEB_INSPECT" in out.stdout and "/boot/hello.txt" in out.stdout


def test_gui_without_pyside6_says_how_to_get_it(built: Built) -> None:
    out = run_packaged(built)
    assert out.returncode == 1
    assert "needs PySide6" in out.stderr
    assert "python3-pyside6.qtwidgets" in out.stderr
    launcher = (PACKAGING / "livesmith-launcher").read_text()
    (requirement,) = re.findall(r'PYSIDE6_REQUIREMENT = "(.*)"', launcher)
    assert f"pip install --target /nonexistent '{requirement}'" in out.stderr


def test_launcher_asks_for_the_pyside6_that_pyproject_requires() -> None:
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    launcher = (PACKAGING / "livesmith-launcher").read_text()
    (pyside,) = [d for d in deps if d.startswith("PySide6")]
    assert f'PYSIDE6_REQUIREMENT = "{pyside}"' in launcher
    assert f"'{pyside}'" in (PACKAGING / "debian" / "README.Debian").read_text().replace(
        "\\\n           ", ""
    )


def test_gui_starts_with_a_pip_installed_pyside6(built: Built, tmp_path: Path) -> None:
    # As after `pip install --target DIR PySide6-Essentials` on Debian 12: point the launcher
    # at a folder holding PySide6 (this test venv's), and the window must come up.
    import PySide6

    pyside_dir = Path(PySide6.__file__).resolve().parent.parent
    env = {
        "PATH": "/usr/bin:/bin",
        "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "LIVESMITH_PYSIDE6_DIR": str(pyside_dir),
        "QT_QPA_PLATFORM": "offscreen",
        "HOME": str(tmp_path),
    }
    proc = subprocess.Popen(
        [DEBIAN_PYTHON, str(built.root / "usr/bin/livesmith")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        maps = Path(f"/proc/{proc.pid}/maps")
        widgets = str(pyside_dir / "PySide6")
        deadline = time.monotonic() + 60
        loaded = False
        while not loaded and proc.poll() is None and time.monotonic() < deadline:
            mapped = maps.read_text()
            loaded = widgets in mapped and "QtWidgets" in mapped
            time.sleep(0.2)
        time.sleep(2)  # past the main window's construction
        assert proc.poll() is None, proc.communicate()[1]
        assert loaded, f"PySide6's QtWidgets from {widgets} was never loaded"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert "Traceback" not in err, err


def test_packaged_man_page_documents_every_command(built: Built, tmp_path: Path) -> None:
    page = tmp_path / "livesmith.1"
    page.write_bytes(
        gzip.decompress((built.root / "usr/share/man/man1/livesmith.1.gz").read_bytes())
    )
    groff = subprocess.run(
        ["groff", "-man", "-Tutf8", "-ww", "-z", str(page)], capture_output=True, text=True
    )
    assert groff.returncode == 0 and groff.stderr == ""
    text = page.read_text()
    for name in command_names():
        assert f'.SS "{name.replace("-", chr(92) + "-")}' in text


def test_installed_tree_passes_appstream_and_desktop_validation(built: Built) -> None:
    desktop = built.root / f"usr/share/applications/{APP_ID}.desktop"
    out = subprocess.run(["desktop-file-validate", str(desktop)], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout == "", out.stdout
    # validate-tree checks metainfo, desktop file and icon together, as software centres do.
    tree = subprocess.run(
        ["appstreamcli", "validate-tree", "--no-net", "--no-color", str(built.root)],
        capture_output=True,
        text=True,
    )
    assert tree.returncode == 0, tree.stdout + tree.stderr
    assert f"{APP_ID}.metainfo.xml" in tree.stdout  # it found our component...
    assert not [line for line in tree.stdout.splitlines() if line.strip()[:2] in ("E:", "W:", "I:")]
