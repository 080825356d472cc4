"""Hostile images: crafted structures must end in a clear InputError, bounded and quickly.

Inspection and extraction of a hostile image run in a child process with a 1 GiB
address-space limit and a timeout, so a regression shows as a failed test (a
MemoryError traceback or a timeout), not as a test run that eats the machine.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pycdlib
import pytest

from app.errors import InputError
from app.iso import inspect
from app.iso.extract import extract
from app.iso.inspect import inspect_iso
from app.iso.partitions import read_system_area
from tests.conftest import ROOT, needs_root

BLOCK = 2048
PVD = 16 * BLOCK
MEMORY_LIMIT = 1 << 30
TIMEOUT = 60

# The child: apply the memory limit, run one operation, print the error as the user sees it.
CHILD = """
import resource, sys
from pathlib import Path
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
from app.errors import InputError
from app.iso.extract import extract
from app.iso.inspect import inspect_iso
try:
    if sys.argv[1] == "inspect":
        report = inspect_iso(Path(sys.argv[2]))
        print(f"ok: {{len(report.files)}} entries, {{len(report.eltorito)}} boot entries")
    else:
        extract(Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4]))
        print("ok")
except InputError as exc:
    print(f"InputError: {{exc}}")
    sys.exit(3)
"""


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str
    stderr: str


def run_limited(*args: str) -> Outcome:
    """inspect (args: "inspect", iso) or extract (args: "extract", iso, inner, dest)."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(
        [sys.executable, "-c", CHILD.format(limit=MEMORY_LIMIT), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        cwd=ROOT,
    )
    return Outcome(done.returncode, done.stdout.strip(), done.stderr.strip())


def assert_input_error(outcome: Outcome, message: str) -> None:
    assert outcome.returncode == 3, outcome
    assert outcome.stdout.startswith("InputError: ") and message in outcome.stdout, outcome
    assert "Traceback" not in outcome.stderr, outcome


# -- image surgery ---------------------------------------------------------------------------


def both_endian(value: int) -> bytes:
    return struct.pack("<I", value) + struct.pack(">I", value)


def directory_records(data: bytes | bytearray, extent: int) -> dict[bytes, int]:
    """ISO 9660 identifier -> extent, for the records of the directory's first block."""
    records = {}
    offset = extent * BLOCK
    while data[offset]:
        length, name_length = data[offset], data[offset + 32]
        records[bytes(data[offset + 33 : offset + 33 + name_length])] = struct.unpack_from(
            "<I", data, offset + 2
        )[0]
        offset += length
    return records


def root_extent(data: bytes | bytearray) -> int:
    return int(struct.unpack_from("<I", data, PVD + 156 + 2)[0])


def genisoimage_rr(tree: Path, out: Path) -> bytearray:
    subprocess.run(["genisoimage", "-quiet", "-R", "-o", str(out), str(tree)], check=True)
    return bytearray(out.read_bytes())


def deep_tree(root: Path) -> Path:
    """/a/b/.../j/f.txt and /z: deeper than ISO 9660's 8 levels, so genisoimage relocates."""
    deep = root.joinpath(*"abcdefghij")
    deep.mkdir(parents=True)
    (deep / "f.txt").write_text("deep\n")
    (root / "z").mkdir()
    (root / "z/z.txt").write_text("z\n")
    return root


def point_child_link(data: bytearray, extent: int) -> None:
    """Aim the image's only Rock Ridge CL (child link) entry at `extent`."""
    cl = data.find(b"CL\x0c\x01")
    assert cl > 0 and data.find(b"CL\x0c\x01", cl + 1) == -1
    data[cl + 4 : cl + 12] = both_endian(extent)


# -- 1. Rock Ridge relocation loops ----------------------------------------------------------


@pytest.fixture(scope="module")
def relocated_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("relocation")
    data = genisoimage_rr(deep_tree(work / "tree"), work / "deep.iso")
    top = directory_records(data, root_extent(data))
    images = {"good": work / "deep.iso"}
    for name, target in (("ancestor", top[b"A"]), ("elsewhere", top[b"Z"])):
        patched = bytearray(data)
        point_child_link(patched, target)
        images[name] = work / f"{name}.iso"
        images[name].write_bytes(patched)
    return images


def test_an_intact_relocated_tree_still_reads_and_extracts(
    relocated_images: dict[str, Path], tmp_path: Path
) -> None:
    assert (
        run_limited("inspect", str(relocated_images["good"])).stdout
        == "ok: 15 entries, 0 boot entries"
    )
    assert (
        run_limited("extract", str(relocated_images["good"]), "/", str(tmp_path / "out")).stdout
        == "ok"
    )
    assert (tmp_path / "out").joinpath(*"abcdefghij", "f.txt").read_text() == "deep\n"


@pytest.mark.parametrize("operation", ["inspect", "extract"])
def test_a_child_link_to_an_ancestor_is_a_loop(
    relocated_images: dict[str, Path], tmp_path: Path, operation: str
) -> None:
    iso = str(relocated_images["ancestor"])
    args = (
        ("inspect", iso)
        if operation == "inspect"
        else ("extract", iso, "/a", str(tmp_path / "out"))
    )
    outcome = run_limited(*args)
    assert_input_error(outcome, f"{iso}: Rock Ridge relocation loops at /a/b/c/d/e/f/g/h")
    assert not (tmp_path / "out").exists()


def test_a_child_link_to_a_folder_elsewhere_is_refused(relocated_images: dict[str, Path]) -> None:
    # /z would appear twice: a chain of such links would multiply the tree exponentially.
    outcome = run_limited("inspect", str(relocated_images["elsewhere"]))
    assert_input_error(outcome, "Rock Ridge relocation loops at ")
    assert "which is already in the tree" in outcome.stdout


def test_the_tree_depth_is_capped(
    relocated_images: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inspect, "MAX_TREE_DEPTH", 5)
    with pytest.raises(
        InputError, match="the folder tree is more than 5 levels deep at /a/b/c/d/e/f$"
    ):
        inspect_iso(relocated_images["good"])


# -- 2. El Torito catalogs with endless entries ----------------------------------------------


def validation_entry() -> bytes:
    rec = bytearray(struct.pack("<BBH24sHBB", 1, 0, 0, b"hostile".ljust(24), 0, 0x55, 0xAA))
    struct.pack_into("<H", rec, 28, -sum(struct.unpack("<16H", rec)) & 0xFFFF)
    return bytes(rec)


def boot_entry(load_rba: int) -> bytes:
    """A bootable no-emulation entry loading 4 sectors from `load_rba`."""
    return struct.pack("<BBHBBHIB19s", 0x88, 0, 0, 0, 0, 4, load_rba, 0, bytes(19))


def catalog_iso(out: Path, boot_entries: int, *, extra: bytes = b"") -> Path:
    """An image whose El Torito boot record points at a crafted catalog.

    The catalog is the validation entry, the initial entry and standalone entries
    (`boot_entries` in all), then `extra`, then an empty entry that ends it.
    """
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3)
    iso.add_fp(io.BytesIO(b"B" * BLOCK), BLOCK, "/BOOT.IMG;1")
    iso.add_eltorito("/BOOT.IMG;1", bootcatfile="/BOOT.CAT;1")
    iso.add_fp(io.BytesIO(bytes(BLOCK)), BLOCK, "/PLACE.BIN;1")
    iso.write(str(out))
    iso.close()
    data = bytearray(out.read_bytes())
    top = directory_records(data, root_extent(data))
    boot, place = top[b"BOOT.IMG;1"], top[b"PLACE.BIN;1"]
    catalog = validation_entry() + boot_entry(boot) * boot_entries + extra + bytes(32)
    if len(catalog) > BLOCK:  # the catalog outgrows the placeholder: append it at the end
        place = len(data) // BLOCK
        data += catalog + bytes(-len(catalog) % BLOCK)
        struct.pack_into("<I", data, PVD + 80, len(data) // BLOCK)
        struct.pack_into(">I", data, PVD + 84, len(data) // BLOCK)
    else:
        data[place * BLOCK : place * BLOCK + len(catalog)] = catalog
    struct.pack_into("<I", data, 17 * BLOCK + 71, place)  # the boot record's catalog pointer
    out.write_bytes(data)
    return out


def test_a_catalog_with_64_boot_entries_is_read(tmp_path: Path) -> None:
    report = inspect_iso(catalog_iso(tmp_path / "cat64.iso", 64))
    assert len(report.eltorito) == 64
    assert {e.boot_file for e in report.eltorito} == {"/BOOT.IMG"}


@pytest.mark.parametrize("boot_entries", [65, 200_000])
def test_a_catalog_with_more_boot_entries_is_refused(tmp_path: Path, boot_entries: int) -> None:
    iso = catalog_iso(tmp_path / "cat.iso", boot_entries)
    outcome = run_limited("inspect", str(iso))
    assert_input_error(outcome, f"{iso}: the El Torito boot catalog at block ")
    assert "has more than 64 boot entries; real images have a handful" in outcome.stdout


def test_a_catalog_that_does_not_end_is_refused(tmp_path: Path) -> None:
    # Section headers announcing no entries, four sectors of them: no boot entries at all.
    header = struct.pack("<BBH28s", 0x90, 0, 0, bytes(28))
    iso = catalog_iso(tmp_path / "cat.iso", 1, extra=header * (4 * BLOCK // 32))
    with pytest.raises(
        InputError,
        match=r"the El Torito boot catalog at block \d+ does not "
        "end within 4 sectors; real catalogs fit in one",
    ):
        inspect_iso(iso)


# -- 3. paths that are not images: FIFOs, character devices ----------------------------------


@pytest.mark.parametrize("operation", ["inspect", "extract"])
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path, operation: str) -> None:
    fifo = tmp_path / "image.iso"
    os.mkfifo(fifo)
    args = (
        ("inspect", str(fifo))
        if operation == "inspect"
        else ("extract", str(fifo), "/", str(tmp_path / "out"))
    )
    outcome = run_limited(*args)  # the timeout guards against the old endless wait
    assert_input_error(outcome, f"{fifo}: is a FIFO, not an ISO image")


def test_the_partition_reader_refuses_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "disk.img"
    os.mkfifo(fifo)
    code = f"from app.iso.partitions import read_system_area\nread_system_area({str(fifo)!r})"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        cwd=ROOT,
    )
    assert f"InputError: {fifo}: is a FIFO, not an image or a device" in done.stderr


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_a_character_device_is_refused(device: str, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=f"^{device}: is a character device, not an ISO image$"):
        inspect_iso(Path(device))
    with pytest.raises(InputError, match=f"^{device}: is a character device, not an ISO image$"):
        extract(Path(device), "/", tmp_path / "out")
    with pytest.raises(
        InputError, match=f"^{device}: is a character device, not an image or a device$"
    ):
        read_system_area(device)


@pytest.mark.root
@needs_root
def test_an_iso_on_a_loop_device_is_still_read_and_extracted(
    relocated_images: dict[str, Path], tmp_path: Path
) -> None:
    iso = relocated_images["good"]
    device = subprocess.run(
        ["losetup", "--find", "--show", "--read-only", str(iso)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    try:
        on_device = inspect_iso(Path(device))
        extract(Path(device), "/a", tmp_path)
        area = read_system_area(device)
    finally:
        subprocess.run(["losetup", "-d", device], check=False)
    assert on_device.files == inspect_iso(iso).files
    assert (tmp_path / "a").joinpath(*"bcdefghij", "f.txt").read_text() == "deep\n"
    assert area.partitions == ()


# -- 5. damaged directories: words, not a bare number ----------------------------------------


@pytest.mark.parametrize("extent", [5, 2_147_483_632])
def test_a_directory_record_pointing_nowhere_is_explained(
    relocated_images: dict[str, Path], tmp_path: Path, extent: int
) -> None:
    data = bytearray(relocated_images["good"].read_bytes())
    offset = root_extent(data) * BLOCK
    while data[offset + 33 : offset + 33 + data[offset + 32]] != b"A":
        offset += data[offset]
    data[offset + 2 : offset + 10] = both_endian(extent)  # /a's extent: no directory there
    damaged = tmp_path / "damaged.iso"
    damaged.write_bytes(data)
    with pytest.raises(InputError) as caught:
        inspect_iso(damaged)
    assert str(caught.value) == (
        f"{damaged}: not a valid ISO 9660 image: damaged directory structure: a record points "
        f"at block {extent}, where the image has no such directory"
    )
