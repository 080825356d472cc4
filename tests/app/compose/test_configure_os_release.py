"""/etc/os-release carries the profile name; whatever punctuation it has, the file still
reads back as the same values in a shell and in a Python os-release parser."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

from app.compose.configure import BuildFacts, configure_root
from app.compose.manifest import FileMeta, Kind, RootManifest
from app.compose.profile import SystemOptions
from app.reporter import RecordingReporter
from tests.support.debian import busybox_static

NAMES = ['my "best" system', "costs $HOME and `id`", "C:\\live\\", "it's $(id) \\$x"]


def configured_root(tmp_path: Path, name: str) -> Path:
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    shutil.copy2(busybox_static(), root / "bin/busybox")
    manifest = RootManifest()
    manifest.add(FileMeta("bin/busybox", Kind.FILE, 0o755))
    facts = BuildFacts(name=name, label="LIVESMITH", build_id="0123456789abcdef", date="2026-11-22")
    configure_root(root, manifest, SystemOptions(), facts, RecordingReporter(), epoch=0)
    return root


def test_the_name_reads_back_in_a_shell(tmp_path: Path) -> None:
    for number, name in enumerate(NAMES):
        os_release = configured_root(tmp_path / str(number), name) / "etc/os-release"
        out = subprocess.run(
            [
                "sh",
                "-c",
                '. "$1" && printf "%s|%s|%s" "$PRETTY_NAME" "$ID" "$BUILD_ID"',
                "sh",
                str(os_release),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
        assert out.stdout == f"{name} (Livesmith live)|livesmith|0123456789abcdef", name


def test_quotes_and_backslashes_read_back_with_shlex(tmp_path: Path) -> None:
    # shlex keeps a backslash before $ and ` (unlike a shell), so only names without them.
    for number, name in enumerate(['my "best" system', 'C:\\live\\ "x"']):
        text = (configured_root(tmp_path / str(number), name) / "etc/os-release").read_text()
        values = dict(line.split("=", 1) for line in shlex.split(text, posix=True))
        assert values["PRETTY_NAME"] == f"{name} (Livesmith live)", name
        assert values["IMAGE_ID"] == "LIVESMITH" and values["IMAGE_VERSION"] == "2026-11-22"
        assert len(text.splitlines()) == 6
