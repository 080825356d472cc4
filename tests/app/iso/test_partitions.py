"""MBR/GPT parsing, checked against `sfdisk --json` and `sgdisk` on real disk images."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from app.errors import InputError
from app.iso.partitions import (
    GPT_ESP_GUID,
    Partition,
    read_partitions,
    read_system_area,
)
from tests.conftest import needs_root

MiB = 1024 * 1024


def run(*cmd: str, stdin: str | None = None) -> str:
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=True).stdout


def sfdisk_partitions(image: Path | str) -> tuple[str, list[dict], int]:
    """(label, partitions, sector size) as util-linux's sfdisk reports them."""
    table = json.loads(run("sfdisk", "--json", str(image)))["partitiontable"]
    return table["label"], table["partitions"], table.get("sectorsize", 512)


def make_gpt_disk(path: Path, size: int = 16 * MiB) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    run(
        "sgdisk",
        "-o",
        "-n",
        "1:2048:+1M",
        "-t",
        "1:ef00",
        "-c",
        "1:EFI system",
        "-n",
        "2:0:+3M",
        "-t",
        "2:8300",
        "-c",
        "2:Linux root ÄÖ",
        "-n",
        "4:0:+1M",
        "-t",
        "4:ef02",
        "-A",
        "4:set:2",
        str(path),
    )
    return path


@pytest.fixture(scope="module")
def gpt_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # sgdisk takes about a second per run; tests damage copies of one disk.
    return make_gpt_disk(tmp_path_factory.mktemp("gpt") / "template.img")


def copy_of(template: Path, path: Path) -> Path:
    shutil.copyfile(template, path)
    return path


def mbr_disk(path: Path, size: int = 32 * MiB) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    # Three primaries (one bootable), an extended partition holding two logical ones.
    script = (
        "label: dos\n"
        "start=2048, size=4M, type=c, bootable\n"
        "size=4M, type=83\n"
        "size=16M, type=5\n"
        "size=2M, type=83\n"
        "size=3M, type=82\n"
        "size=1M, type=83\n"
    )
    run("sfdisk", "--no-reread", str(path), stdin=script)
    return path


def assert_matches_sfdisk(parts: list[Partition], image: Path | str) -> None:
    label, expected, sector = sfdisk_partitions(image)
    ours = [p for p in parts if p.scheme == ("gpt" if label == "gpt" else "mbr")]
    assert len(ours) == len(expected)
    for part, exp in zip(ours, expected, strict=True):
        assert exp["node"].endswith(str(part.number))
        assert part.start == exp["start"] * sector
        assert part.size == exp["size"] * sector
        if label == "gpt":
            assert part.type_id == exp["type"].upper()
            assert part.name == exp.get("name", "")
            assert part.bootable == ("LegacyBIOSBootable" in exp.get("attrs", ""))
        else:
            assert part.type_id == f"0x{int(exp['type'], 16):02x}"
            assert part.bootable == bool(exp.get("bootable"))


def test_gpt_disk_matches_sfdisk(tmp_path: Path, gpt_template: Path) -> None:
    image = copy_of(gpt_template, tmp_path / "gpt.img")
    area = read_system_area(image)
    assert area.problems == ()
    assert area.gpt_found and area.gpt_valid and area.mbr_protective
    assert_matches_sfdisk(list(area.partitions), image)
    mbr = area.mbr_partitions
    assert [(p.number, p.type_id, p.type_name) for p in mbr] == [(1, "0xee", "GPT protective")]
    esp = [p for p in area.gpt_partitions if p.number == 1][0]
    assert (esp.type_id, esp.type_name, esp.name) == (GPT_ESP_GUID, "EFI System", "EFI system")
    assert [p.type_name for p in area.gpt_partitions] == [
        "EFI System",
        "Linux filesystem",
        "BIOS boot",
    ]
    assert area.efi_system_partitions == (esp,)


def test_mbr_disk_with_logical_partitions_matches_sfdisk(tmp_path: Path) -> None:
    image = mbr_disk(tmp_path / "mbr.img")
    parts, problems = read_partitions(image)
    assert problems == []
    assert_matches_sfdisk(parts, image)
    assert [p.number for p in parts] == [1, 2, 3, 4, 5, 6]
    assert [p.type_name for p in parts] == [
        "W95 FAT32 (LBA)",
        "Linux",
        "Extended",
        "Linux",
        "Linux swap",
        "Linux",
    ]
    assert [p.start // 512 for p in parts if p.number >= 5] == [20480, 28672]
    assert [p.bootable for p in parts] == [True] + [False] * 5


def test_reads_an_open_binary_file(tmp_path: Path, gpt_template: Path) -> None:
    image = copy_of(gpt_template, tmp_path / "gpt.img")
    with open(image, "rb") as f:
        assert read_partitions(f) == read_partitions(image)


def test_primary_entry_array_damage_is_reported_like_sgdisk(
    tmp_path: Path, gpt_template: Path
) -> None:
    image = copy_of(gpt_template, tmp_path / "gpt.img")
    with open(image, "r+b") as f:  # rename partition 1 in the primary array only
        f.seek(2 * 512 + 56)
        f.write("X".encode("utf-16-le"))
    verify = subprocess.run(["sgdisk", "-v", str(image)], capture_output=True, text=True)
    assert "CRC for the main partition table is invalid" in verify.stdout
    area = read_system_area(image)
    text = "\n".join(area.problems)
    assert "GPT entry array CRC wrong" in text
    assert "backup GPT: entries differ from the primary's for partition 1" in text
    assert "backup GPT is intact" in text
    assert area.gpt_valid  # firmware falls back to the intact backup


def test_damaged_primary_header_and_missing_backup(tmp_path: Path, gpt_template: Path) -> None:
    image = copy_of(gpt_template, tmp_path / "gpt.img")
    with open(image, "r+b") as f:
        f.seek(512 + 40)  # first usable LBA: covered by the header CRC
        f.write(b"\x99")
    assert "primary GPT header CRC wrong" in "\n".join(read_system_area(image).problems)

    image = copy_of(gpt_template, tmp_path / "gpt2.img")
    size = image.stat().st_size
    with open(image, "r+b") as f:
        f.seek(size - 512)
        f.write(bytes(512))
    problems = read_system_area(image).problems
    assert any(p.startswith("no backup GPT header at sector") for p in problems), problems


def test_backup_not_at_the_end_after_growing_the_disk(tmp_path: Path) -> None:
    image = make_gpt_disk(tmp_path / "gpt.img", size=8 * MiB)
    with open(image, "r+b") as f:
        f.truncate(12 * MiB)  # like an image written to a larger stick
    problems = read_system_area(image).problems
    assert any("not at the last sector" in p for p in problems), problems


def test_no_partition_table(tmp_path: Path) -> None:
    blank = tmp_path / "blank.img"
    blank.write_bytes(bytes(MiB))
    area = read_system_area(blank)
    assert area.partitions == () and area.problems == ()
    assert not (area.mbr_signature or area.gpt_found or area.has_partition_table)


def test_gpt_without_protective_mbr_is_a_problem(tmp_path: Path, gpt_template: Path) -> None:
    image = copy_of(gpt_template, tmp_path / "gpt.img")
    with open(image, "r+b") as f:
        f.seek(446)
        f.write(bytes(16))  # drop the 0xEE entry
    area = read_system_area(image)
    assert not area.mbr_protective
    assert any("no protective 0xEE entry" in p for p in area.problems)


def test_missing_and_directory_paths(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_partitions(tmp_path / "nope.img")
    with pytest.raises(InputError, match="is a directory"):
        read_partitions(tmp_path)


@contextmanager
def loop_device(image: Path, sector_size: int = 512) -> Iterator[str]:
    device = run(
        "losetup", "--find", "--show", "--sector-size", str(sector_size), str(image)
    ).strip()
    try:
        yield device
    finally:
        subprocess.run(["losetup", "-d", device], check=False)


@pytest.mark.root
@needs_root
def test_block_device_with_4k_sectors(tmp_path: Path) -> None:
    """A real block device, whose LBAs count the kernel's logical sector size (4096 here)."""
    image = tmp_path / "disk4k.img"
    with open(image, "wb") as f:
        f.truncate(16 * MiB)
    with loop_device(image, 4096) as device:
        run(
            "sgdisk", "-o", "-n", "1:0:+2M", "-t", "1:ef00", "-n", "2:0:+4M", "-t", "2:8300", device
        )
        area = read_system_area(device)
        assert area.sector_size == 4096
        assert area.problems == ()
        assert_matches_sfdisk(list(area.partitions), device)
        assert [p.type_name for p in area.gpt_partitions] == ["EFI System", "Linux filesystem"]


@pytest.mark.root
@needs_root
def test_block_device_matches_its_image(tmp_path: Path) -> None:
    image = mbr_disk(tmp_path / "mbr.img")
    with loop_device(image) as device:
        assert read_partitions(device) == read_partitions(image)


def test_guid_is_read_mixed_endian() -> None:
    # The ESP type GUID as stored on disk, from the UEFI specification.
    on_disk = bytes.fromhex("28732ac11ff8d211ba4b00a0c93ec93b")
    assert str(uuid.UUID(bytes_le=on_disk)).upper() == GPT_ESP_GUID


def test_problems_for_a_table_pointing_past_the_end(tmp_path: Path) -> None:
    image = mbr_disk(tmp_path / "mbr.img")
    os.truncate(image, 8 * MiB)  # cut inside partition 2 and the extended partition
    parts, problems = read_partitions(image)
    assert any(p.startswith("MBR partition 2 ends at byte") for p in problems), problems
    assert any("extended boot record" in p for p in problems), problems
    assert [p.number for p in parts][:4] == [1, 2, 3, 4]
