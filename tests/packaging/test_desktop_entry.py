"""The desktop file and the AppStream metainfo: valid, and consistent with each other."""

from __future__ import annotations

import configparser
import re
import subprocess
import xml.etree.ElementTree as ET
from urllib.parse import urlparse

from app import __version__
from app.resources import APP_ID
from tests.conftest import ROOT
from tests.packaging.conftest import PACKAGING

DESKTOP = PACKAGING / f"{APP_ID}.desktop"
METAINFO = PACKAGING / f"{APP_ID}.metainfo.xml"


def desktop_entry() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive
    parser.read_string(DESKTOP.read_text(encoding="utf-8"))
    return parser["Desktop Entry"]


def test_desktop_file_passes_desktop_file_validate() -> None:
    out = subprocess.run(["desktop-file-validate", str(DESKTOP)], capture_output=True, text=True)
    # Errors and warnings fail; so do hints (e.g. two main categories), kept at zero.
    assert out.returncode == 0 and out.stdout == "" and out.stderr == "", out.stdout + out.stderr


def test_desktop_file_validate_rejects_a_broken_entry(tmp_path) -> None:
    # The check above can fail: the validator does reject a bad key in a copy of our file.
    bad = tmp_path / DESKTOP.name
    bad.write_text(DESKTOP.read_text().replace("Type=Application", "Type=Program"))
    out = subprocess.run(["desktop-file-validate", str(bad)], capture_output=True, text=True)
    assert out.returncode != 0 and "Type" in out.stdout


def test_desktop_entry_starts_the_command_with_our_icon() -> None:
    entry = desktop_entry()
    assert entry["Type"] == "Application" and entry["Name"] == "Livesmith"
    assert entry["Icon"] == APP_ID
    assert entry["Exec"] == "livesmith" and entry["TryExec"] == "livesmith"
    assert entry["Terminal"] == "false"


def test_metainfo_passes_appstreamcli_validate() -> None:
    out = subprocess.run(
        ["appstreamcli", "validate", "--no-net", "--no-color", str(METAINFO)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    # Only pedantic notes may remain (upper case in the reverse-DNS id is Flathub practice).
    findings = [line for line in out.stdout.splitlines() if re.match(r"^[EWI]: ", line)]
    assert findings == []


def test_metainfo_matches_the_desktop_file_and_the_app() -> None:
    root = ET.parse(METAINFO).getroot()
    assert root.get("type") == "desktop-application"
    assert root.findtext("id") == APP_ID
    assert root.findtext("launchable[@type='desktop-id']") == DESKTOP.name
    assert root.findtext("icon[@type='stock']") == APP_ID
    assert root.findtext("provides/binary") == "livesmith"
    assert root.findtext("project_license") == "GPL-3.0-or-later"
    assert root.find("content_rating[@type='oars-1.1']") is not None
    assert root.findtext("name") == desktop_entry()["Name"]
    categories = [c.text for c in root.findall("categories/category")]
    assert categories == [c for c in desktop_entry()["Categories"].split(";") if c]
    # The newest release is this version (first entry, as AppStream orders releases).
    releases = root.findall("releases/release")
    assert releases and releases[0].get("version") == __version__
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", releases[0].get("date") or "")


def test_screenshots_point_into_docs_screenshots() -> None:
    images = [
        i.text or "" for i in ET.parse(METAINFO).getroot().findall("screenshots/screenshot/image")
    ]
    assert images, "AppStream needs at least one screenshot"
    for url in images:
        parsed = urlparse(url)
        assert parsed.scheme == "https"
        # .../<branch>/docs/screenshots/<name>.png: the file the docs keep in this repository
        assert re.search(r"/docs/screenshots/[a-z0-9-]+\.png$", parsed.path), url
    names = {urlparse(u).path.rsplit("/", 1)[1] for u in images}
    assert "start.png" in names
    for name in names:  # each one is kept, up to date, in this repository
        assert (ROOT / "docs" / "screenshots" / name).is_file(), name


def test_debian_changelog_is_at_this_version() -> None:
    first = (PACKAGING / "debian" / "changelog").read_text().splitlines()[0]
    assert first.startswith(f"livesmith ({__version__})"), first


def test_only_one_app_id_is_used() -> None:
    # Any other reverse-DNS spelling of the id in packaging/ would break the desktop linkage.
    texts = [
        p.read_text(errors="replace")
        for p in PACKAGING.rglob("*")
        if p.is_file() and p.suffix in ("", ".xml", ".desktop", ".json", ".md", ".install")
    ]
    ids = set()
    for text in texts:
        ids |= set(re.findall(r"io\.github\.[A-Za-z]+\.[A-Za-z]+", text))
    assert ids == {APP_ID}
    assert (ROOT / "resources" / "icons" / "livesmith.svg").is_file()
