from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from app.errors import LivesmithError
from app.resources import APP_ICON, app_icon_path, read_resource_bytes, resource_path
from tests.conftest import ROOT


def test_the_app_icon_is_found_in_the_checkout_and_is_a_square_svg() -> None:
    path = app_icon_path()
    assert path == ROOT / "resources" / APP_ICON
    root = ET.fromstring(read_resource_bytes(APP_ICON))
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("viewBox") == "0 0 128 128"  # square: icon themes need square icons
    # Icons must be self-contained: no external images or fonts.
    assert b'xlink:href="http' not in path.read_bytes() and b"<image" not in path.read_bytes()


def test_a_missing_resource_names_the_file_and_the_folder() -> None:
    with pytest.raises(LivesmithError) as info:
        resource_path("icons/no-such-icon.svg")
    text = str(info.value)
    assert "icons/no-such-icon.svg" in text and str(ROOT / "resources") in text
    assert "reinstall" in text


@pytest.mark.parametrize(
    "bad", ["", "/etc/passwd", "../pyproject.toml", "icons/../../x", "icons\\livesmith.svg"]
)
def test_names_outside_the_resources_package_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        resource_path(bad)


def test_a_directory_is_not_a_resource_file() -> None:
    with pytest.raises(LivesmithError, match="missing"):
        resource_path("icons")


def test_resources_load_without_qt() -> None:
    script = (
        "import sys; from app.resources import app_icon_path; app_icon_path(); "
        "print(any(m.startswith(('PySide6', 'shiboken6')) for m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
