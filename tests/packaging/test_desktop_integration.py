"""Icon renders and `make install-desktop` / `make uninstall-desktop` for a checkout."""

from __future__ import annotations

import configparser
import os
import subprocess
from pathlib import Path

import pytest

from app.resources import APP_ID
from tests.conftest import ROOT
from tests.packaging.conftest import PACKAGING, load_script

integration = load_script("desktop-integration")
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def test_icons_render_at_every_theme_size(tmp_path: Path) -> None:
    written = integration.render_icons(tmp_path)
    theme = tmp_path / "hicolor"
    assert (theme / "scalable" / "apps" / f"{APP_ID}.svg").read_bytes() == (
        ROOT / "resources" / "icons" / "livesmith.svg"
    ).read_bytes()
    assert integration.ICON_SIZES == SIZES
    for size in SIZES:
        png = theme / f"{size}x{size}" / "apps" / f"{APP_ID}.png"
        assert png in written
        assert integration.png_size(png) == (size, size)
    # Bigger renders carry more detail: a blank or failed render would not grow like this.
    sizes = [(theme / f"{n}x{n}" / "apps" / f"{APP_ID}.png").stat().st_size for n in SIZES]
    assert sizes == sorted(sizes) and sizes[-1] > 10 * sizes[0]


def test_png_size_refuses_a_file_that_is_not_png(tmp_path: Path) -> None:
    fake = tmp_path / "x.png"
    fake.write_bytes(b"GIF89a" + bytes(30))
    with pytest.raises(SystemExit, match="not a PNG"):
        integration.png_size(fake)


def read_entry(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are case-sensitive
    parser.read(path, encoding="utf-8")
    return parser["Desktop Entry"]


def make(target: str, home: Path) -> subprocess.CompletedProcess[str]:
    # -o setup: the checkout's venv is set up by `make test` already; the test must not
    # reinstall it (or touch apt) from inside the suite.
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_DATA_HOME", "MAKEFLAGS")}
    env["HOME"] = str(home)
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "-o", "setup", target],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )


def test_make_install_desktop_then_uninstall_desktop(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    make("install-desktop", home)
    data = home / ".local" / "share"
    desktop = data / "applications" / f"{APP_ID}.desktop"
    entry = read_entry(desktop)
    program = str(ROOT / ".venv" / "bin" / "livesmith")
    assert entry["Exec"] == program and entry["TryExec"] == program
    assert entry["Icon"] == APP_ID
    out = subprocess.run(["desktop-file-validate", str(desktop)], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout == "", out.stdout
    assert (data / "metainfo" / f"{APP_ID}.metainfo.xml").read_bytes() == (
        PACKAGING / f"{APP_ID}.metainfo.xml"
    ).read_bytes()
    for size in SIZES:
        assert (data / "icons" / "hicolor" / f"{size}x{size}" / "apps" / f"{APP_ID}.png").is_file()
    assert (data / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg").is_file()

    # Someone else's files in the same folders survive the uninstall.
    other = data / "applications" / "other.desktop"
    other.write_text("[Desktop Entry]\nType=Application\nName=Other\nExec=other\n")
    make("uninstall-desktop", home)
    left = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())
    assert left == [".local/share/applications/other.desktop"]
    assert not (data / "icons" / "hicolor" / "16x16").exists()  # emptied folders removed


def test_install_quotes_an_exec_path_with_spaces_and_specials(tmp_path: Path) -> None:
    program = '/opt/my apps/a"b$c%d/.venv/bin/livesmith'
    integration.install(program, tmp_path)
    desktop = tmp_path / "applications" / f"{APP_ID}.desktop"
    out = subprocess.run(["desktop-file-validate", str(desktop)], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout == "", out.stdout
    # The Desktop Entry spec: string escapes first (\\ -> \), then the quoted argument's
    # escapes (\" \$ \\), and %% for a literal percent sign.
    raw = read_entry(desktop)["Exec"]
    assert raw == '"/opt/my apps/a\\\\"b\\\\$c%%d/.venv/bin/livesmith"'
    unescaped = raw.replace("\\\\", "\\")[1:-1].replace('\\"', '"').replace("\\$", "$")
    assert unescaped.replace("%%", "%") == program


def test_install_refuses_a_relative_program(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="absolute"):
        integration.install(".venv/bin/livesmith", tmp_path)
    assert not any(tmp_path.iterdir())
