"""The init script's search for the medium, run by busybox sh with the hardware stubbed.

The boots in tests/integration cover the real devices; here the order of events is fixed, so
the race where a stick shows up during a search round is shown every time, not now and then.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from app.compose.initramfs import init_script
from tests.support.debian import busybox_static

BUILD_ID = "5eed0fcafe15dead"


def script_function(name: str) -> str:
    """The text of one shell function of the real init script."""
    text = init_script().decode()
    match = re.search(rf"^{name}\(\) {{\n.*?^}}\n", text, re.MULTILINE | re.DOTALL)
    assert match, f"{name}() is not in the init script"
    return match.group(0)


# The medium's contents are made by the mount stub: the ID file only when the test says so.
STUBS = r"""
msg() { echo "MSG $*"; }
uptime_s() { echo 0; }
sleep() { ROUNDS=$((ROUNDS + 1)); }
block_devices() { echo sr0; [ -e "$T/stick-listed" ] && echo sda; }
probe_device() {
    if [ "$1" = sda ] && [ "$STICK_HAS_ID" = yes ]; then NOTE="sda: has it"; return 0; fi
    NOTE="$1: nothing"; return 1
}
findfs() {
    # The stick appears while the round runs: too late for its list, in time for findfs.
    touch "$T/stick-listed"; echo /dev/sda
}
mount() {
    case "$1" in
        -r) mkdir -p "$5/live"; : > "$5/live/rootfs.sfs"
            [ "$STICK_HAS_ID" = yes ] && : > "$5/live/$LIVESMITH_ID.id"
            return 0 ;;
        --move) echo "MOVED $2" ;;
    esac
}
umount() { rm -rf "$1"/*; }
"""


def find_medium(tmp_path: Path, *, stick_has_id: bool) -> list[str]:
    program = "\n".join(
        [
            f"T={tmp_path}",
            f"RUN={tmp_path}/run",
            f"LIVESMITH_ID={BUILD_ID}",
            "LIVESMITH_LABEL=LIVETEST",
            "LIVESMITH_IMAGE=/live/rootfs.sfs",
            "LIVESMITH_TIMEOUT=5",
            f"STICK_HAS_ID={'yes' if stick_has_id else 'no'}",
            "ROUNDS=0",
            STUBS,
            script_function("find_by_label"),
            script_function("find_medium"),
            'find_medium; echo "RESULT $? $FOUND rounds=$ROUNDS"',
        ]
    )
    run = subprocess.run(
        [str(busybox_static()), "sh", "-c", program], capture_output=True, text=True, timeout=30
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.splitlines()


def test_a_stick_that_appears_during_a_round_is_found_by_its_id_file(tmp_path: Path) -> None:
    lines = find_medium(tmp_path, stick_has_id=True)
    assert "MSG found the live medium on /dev/sda by its ID file" in lines
    assert not any("warning" in line for line in lines)
    assert lines[-1] == "RESULT 0 /dev/sda rounds=0"  # no wait for a second round


def test_a_labelled_stick_without_the_id_file_is_used_with_a_warning(tmp_path: Path) -> None:
    lines = find_medium(tmp_path, stick_has_id=False)
    assert (
        f"MSG warning: no device holds /live/{BUILD_ID}.id; using /dev/sda, found by "
        "its label 'LIVETEST'"
    ) in lines
    assert lines[-1] == "RESULT 0 /dev/sda rounds=0"
