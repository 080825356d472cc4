"""The write goes to the disk the user confirmed, or nowhere: real loop devices, re-plugged.

A loop device detached and attached again to another file is what the kernel does for a
stick pulled out and another plugged in that gets the freed name: same path, often the same
device number, a new diskseq.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from app.reporter import RecordingReporter
from app.usb.engine import open_target, write_image
from app.usb.errors import DeviceChanged, DeviceNotFound
from app.usb.helper import helper_main, run_helper
from app.usb.identity import (
    BlockIdentity,
    check_descriptor,
    differences,
    identity_at,
    identity_of_fd,
)
from app.usb.preflight import Preflight, check_target, read_image_facts, write_task
from app.usb.source import open_image
from app.usb.target import Target, resolve_target
from tests.app.usb.test_target import mounted, partitioned_loop
from tests.app.usb.writer_support import (
    MiB,
    cmp_prefix,
    devno_of,
    loop_device,
    make_image,
    raw_block_target,
    replugging_loop,
    sha256_of_device,
    sparse_file,
)
from tests.conftest import ROOT, needs_root

pytestmark = [needs_root, pytest.mark.root]


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "live.iso"
    make_image(path, 8 * MiB + 512)
    return path


def filled(path: Path, size: int = 16 * MiB) -> tuple[Path, bytes]:
    """A backing file with random contents (so any write to it shows)."""
    data = os.urandom(size)
    path.write_bytes(data)
    return path, data


def test_the_identity_names_the_disk_by_path_and_by_descriptor(tmp_path: Path) -> None:
    backing, _ = filled(tmp_path / "a.img")
    with loop_device(backing) as node:
        identity = identity_at(node)
        name = Path(node).name
        assert identity.devno == devno_of(node)
        assert identity.size == 16 * MiB and identity.serial == ""
        assert identity.diskseq == int(Path(f"/sys/block/{name}/diskseq").read_text())
        fd = os.open(node, os.O_RDONLY | os.O_CLOEXEC)
        try:
            assert identity_of_fd(fd) == identity
            check_descriptor(fd, identity, node)
        finally:
            os.close(fd)
        assert BlockIdentity.from_json(json.loads(json.dumps(identity.to_json()))) == identity
        assert resolve_target(node).identity == identity
        preflight = check_target(node, None)
        assert preflight.identity == identity
    with pytest.raises(DeviceNotFound):
        identity_at(tmp_path / "none")


def test_a_replugged_name_is_refused_and_the_new_disk_keeps_its_bytes(
    tmp_path: Path, image: Path
) -> None:
    first, _ = filled(tmp_path / "chosen.img")
    second, data = filled(tmp_path / "other.img")
    with replugging_loop(first) as slot:
        node = slot.node
        confirmed = identity_at(node)
        assert confirmed.diskseq is not None
        slot.replug(second)
        # Device number, size and serial agree; only the kernel's diskseq tells them apart.
        now = identity_at(node)
        assert differences(confirmed, now) == [
            f"disk sequence number {now.diskseq}, not {confirmed.diskseq}"
        ]
        with pytest.raises(DeviceChanged) as caught:
            write_image(open_image(image), resolve_target(node), expect=confirmed)
        text = str(caught.value)
        assert "the drive you chose is gone" in text
        assert f"{node} is now a different drive" in text and "nothing was written" in text

        # The same through the helper process, as the GUI and the CLI run it.
        reporter = RecordingReporter()
        with pytest.raises(DeviceChanged) as caught:
            run_helper("write", image, node, reporter=reporter, expect=confirmed)
        assert caught.value.where == node and "is now a different drive" in str(caught.value)
        assert "write" not in reporter.steps
        assert sha256_of_device(node) == hashlib.sha256(data).hexdigest()
    assert second.read_bytes() == data


def test_the_helper_refuses_a_path_that_names_another_disk(tmp_path: Path, image: Path) -> None:
    a, a_data = filled(tmp_path / "a.img")
    b, b_data = filled(tmp_path / "b.img")
    with loop_device(a) as node_a, loop_device(b) as node_b:
        confirmed_a = identity_at(node_a)
        with pytest.raises(DeviceChanged) as caught:
            run_helper("write", image, node_b, expect=confirmed_a)
        assert "device number" in str(caught.value)
        # The right disk is written, with the same request.
        done = run_helper("write", image, node_a, expect=confirmed_a)
        assert done["verified"]
        cmp_prefix(image, node_a, image.stat().st_size)
    assert b.read_bytes() == b_data
    assert a.read_bytes() != a_data


def test_a_disk_replugged_after_it_was_resolved_is_refused_when_opened(
    tmp_path: Path, image: Path
) -> None:
    # The identity stored at resolve time still matches `expect`; only the descriptor's
    # fresh read can tell that the name now belongs to another disk.
    first, _ = filled(tmp_path / "chosen.img")
    second, data = filled(tmp_path / "other.img")
    with replugging_loop(first) as slot:
        target = resolve_target(slot.node)
        assert target.identity is not None and target.identity.diskseq is not None
        slot.replug(second)
        reporter = RecordingReporter()
        with pytest.raises(DeviceChanged) as caught:
            write_image(open_image(image), target, reporter=reporter, expect=target.identity)
        now = identity_at(slot.node)
        assert caught.value.where == slot.node
        assert f"disk sequence number {now.diskseq}, not {target.identity.diskseq}" in str(
            caught.value
        )
        assert "nothing was written" in str(caught.value) and reporter.steps == []
        assert sha256_of_device(slot.node) == hashlib.sha256(data).hexdigest()


def test_a_target_made_without_the_gate_has_its_path_read_before_opening(
    tmp_path: Path, image: Path
) -> None:
    a, _ = filled(tmp_path / "a.img")
    b, b_data = filled(tmp_path / "b.img")
    with loop_device(a) as node_a, loop_device(b) as node_b:
        unresolved = raw_block_target(node_b)
        assert unresolved.identity is None
        opened: list[str] = []

        def recording_opener(target: Target, write: bool) -> int:
            opened.append(str(target.path))
            return open_target(target, write)

        with pytest.raises(DeviceChanged, match="device number"):
            write_image(
                open_image(image), unresolved, opener=recording_opener, expect=identity_at(node_a)
            )
        assert opened == []  # refused by path, before UDisks could unmount anything
    assert b.read_bytes() == b_data


def test_a_confirmed_disk_whose_path_is_gone_or_a_file_is_refused_by_the_gate(
    tmp_path: Path,
) -> None:
    confirmed = BlockIdentity((7, 0), 16 * MiB, "", 1)
    with pytest.raises(DeviceChanged, match="the drive you chose is gone"):
        resolve_target(tmp_path / "gone", expect=confirmed)
    assert not (tmp_path / "gone").exists()
    plain = sparse_file(tmp_path / "plain.img", MiB)
    with pytest.raises(DeviceChanged, match="not a block device now"):
        resolve_target(plain, expect=confirmed)


def test_the_descriptor_is_checked_not_only_the_path(tmp_path: Path, image: Path) -> None:
    # The path passes the check and then names another disk when it is opened (the race a
    # check by path leaves open): the descriptor's own device decides.
    a, a_data = filled(tmp_path / "a.img")
    b, b_data = filled(tmp_path / "b.img")
    with loop_device(a) as node_a, loop_device(b) as node_b:
        opened: list[str] = []

        def open_b_instead(target: Target, write: bool) -> int:
            opened.append(str(target.path))
            return os.open(node_b, (os.O_RDWR | os.O_EXCL if write else os.O_RDONLY) | os.O_CLOEXEC)

        with pytest.raises(DeviceChanged) as caught:
            write_image(
                open_image(image),
                resolve_target(node_a),
                opener=open_b_instead,
                expect=identity_at(node_a),
            )
        assert opened == [node_a]
        assert "nothing was written" in str(caught.value)
    assert b.read_bytes() == b_data and a.read_bytes() == a_data


def test_a_disk_swapped_after_writing_is_neither_read_nor_wiped(
    tmp_path: Path, image: Path
) -> None:
    a, _ = filled(tmp_path / "a.img")
    b, b_data = filled(tmp_path / "b.img")
    with loop_device(a) as node_a, loop_device(b) as node_b:

        def b_after_writing(target: Target, write: bool) -> int:
            if write and not os.path.exists(tmp_path / "written"):
                (tmp_path / "written").touch()
                return os.open(node_a, os.O_RDWR | os.O_EXCL | os.O_CLOEXEC)
            return os.open(node_b, (os.O_RDWR if write else os.O_RDONLY) | os.O_CLOEXEC)

        reporter = RecordingReporter()
        with pytest.raises(DeviceChanged) as caught:
            write_image(
                open_image(image),
                resolve_target(node_a),
                reporter=reporter,
                opener=b_after_writing,
                expect=identity_at(node_a),
            )
        assert "left alone" in str(caught.value)
        assert reporter.steps == ["write", "verify"]  # no wipe of the disk now there
        cmp_prefix(image, node_a, image.stat().st_size)
    assert b.read_bytes() == b_data


def test_a_swapped_disk_has_nothing_unmounted_and_nothing_written(
    tmp_path: Path, image: Path
) -> None:
    facts = read_image_facts(image, RecordingReporter())
    other, _ = filled(tmp_path / "other.img")
    with (
        loop_device(other) as other_node,
        partitioned_loop(tmp_path) as (node, p1, _p2),
        mounted(p1, tmp_path / "mnt") as mnt,
    ):
        checked = check_target(node, facts.source)
        assert checked.mounted == ((p1, str(mnt)),) and checked.identity is not None
        before = sha256_of_device(node)
        # Confirmed for another disk than the one the path names now.
        other = dataclasses.replace(checked.target, identity=identity_at(other_node))
        swapped = Preflight(other, checked.mounted)
        reporter = RecordingReporter()
        with pytest.raises(DeviceChanged):
            write_task(facts.source, swapped, verify=True, force=False)(reporter)
        assert reporter.steps == [] and os.path.ismount(mnt)
        # The helper on its own names the swap first, not the mounts of the disk now there.
        with pytest.raises(DeviceChanged):
            run_helper("write", image, node, expect=swapped.identity)
        assert sha256_of_device(node) == before


def test_a_malformed_identity_is_a_usage_error(
    image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        helper_main(["write", str(image), str(tmp_path / "out.raw"), "--expect", "{}"])
    assert exited.value.code == 2 and "not a disk identity" in capsys.readouterr().err
    assert not (tmp_path / "out.raw").exists()


def test_a_serial_udev_fills_in_later_is_the_same_disk_when_diskseq_says_so() -> None:
    listed = BlockIdentity((8, 16), 16 * MiB, "", 42)  # listed before udev knew the serial
    assert differences(listed, BlockIdentity((8, 16), 16 * MiB, "0123ABC", 42)) == []
    # Without a diskseq to vouch for it, or with another one, a new serial is a new disk;
    # two serials that differ always are.
    assert differences(
        BlockIdentity((8, 16), 16 * MiB, "", None),
        BlockIdentity((8, 16), 16 * MiB, "0123ABC", None),
    ) == ["serial 0123ABC, not none"]
    assert differences(listed, BlockIdentity((8, 16), 16 * MiB, "0123ABC", 43)) == [
        "disk sequence number 43, not 42",
        "serial 0123ABC, not none",
    ]
    assert differences(
        BlockIdentity((8, 16), 16 * MiB, "OLD", 42), BlockIdentity((8, 16), 16 * MiB, "NEW", 42)
    ) == ["serial NEW, not OLD"]


# Installed (through PYTHONPATH) in every Python process of one write: counts the reads of
# a disk's identity, `disk_identity_at`, and appends the count to a file when it exits.
COUNTING_SITECUSTOMIZE = """
import atexit
import os

from app.usb import sysfs

reads = 0
read = sysfs.disk_identity_at


def counted(disk_sys_path):
    global reads
    reads += 1
    return read(disk_sys_path)


sysfs.disk_identity_at = counted
atexit.register(lambda: open(os.environ["READS_FILE"], "a").write(f"{reads}\\n"))
"""

# The GUI's path to a write, as the writer page takes it (the helper in its own process).
PREFLIGHT_WRITE = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from app.reporter import NullReporter
    from app.usb.preflight import check_target, read_image_facts, write_task

    facts = read_image_facts(Path(sys.argv[1]), NullReporter())
    checked = check_target(sys.argv[2], facts.source)
    assert write_task(facts.source, checked, verify=True, force=False)(NullReporter()).verified
    """
)


@pytest.mark.parametrize(
    "front_end",
    [["-m", "app", "write", "--yes"], ["-c", PREFLIGHT_WRITE]],
    ids=["cli", "preflight"],
)
def test_one_write_reads_the_identity_once_and_once_per_descriptor(
    tmp_path: Path, image: Path, front_end: list[str]
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(COUNTING_SITECUSTOMIZE)
    reads = tmp_path / "reads"
    with loop_device(sparse_file(tmp_path / "stick.img", 16 * MiB)) as node:
        out = subprocess.run(
            [sys.executable, *front_end, str(image), node],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{site}", "READS_FILE": str(reads)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        cmp_prefix(image, node, image.stat().st_size)
    # The helper exits first: its gate, then the descriptors to write and to read back.
    # The front end reads it once, when it resolves the target. (Before, 4 and 1 for the
    # CLI, 4 and 2 for the preflight: the path was read again at every step.)
    assert reads.read_text().split() == ["3", "1"]
