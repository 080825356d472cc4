"""`livesmith inspect`: human-readable output, --json, and errors, run as a real process."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from app.cli import EXIT_INPUT
from tests.app.iso.test_inspect import (
    debian_iso,
    make_isohybrid_gpt_iso,
    make_sample_tree,
    mkisofs,
    write,
    xorriso_listing,
)
from tests.conftest import ROOT


def livesmith(cmd: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cmd, *args], cwd=ROOT, capture_output=True, text=True, errors="surrogateescape"
    )


@pytest.fixture(scope="module")
def hybrid_iso(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_isohybrid_gpt_iso(tmp_path_factory.mktemp("cli"))


def test_json_is_one_object_with_the_contract_keys(
    livesmith_cmd: list[str], hybrid_iso: Path
) -> None:
    out = livesmith(livesmith_cmd, "inspect", str(hybrid_iso), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)  # exactly one JSON document: json.loads rejects extra data
    assert isinstance(data, dict)
    for key in (
        "label",
        "files",
        "eltorito",
        "partitions",
        "hybrid",
        "hybrid_reason",
        "partition_problems",
        "created",
    ):
        assert key in data
    assert data["label"] == "HYBRID" and data["hybrid"] is True
    assert {f["path"] for f in data["files"]} == set(xorriso_listing(hybrid_iso))
    for entry in data["files"]:
        assert set(entry) == {"path", "type", "size", "mode", "uid", "gid", "target"}
    assert [e["platform_name"] for e in data["eltorito"]] == ["BIOS", "UEFI"]
    assert [(p["scheme"], p["type_id"]) for p in data["partitions"]][:2] == [
        ("mbr", "0x00"),
        ("mbr", "0xef"),
    ]


def test_human_output_of_ipxe(livesmith_cmd: list[str]) -> None:
    iso = debian_iso("ipxe", "ipxe.iso")
    out = livesmith(livesmith_cmd, "inspect", str(iso))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "Label:       ISOIMAGE" in text
    assert "Publisher:   HTTP://IPXE.ORG/" in text
    assert "Created:     2021-02-07" in text
    assert "1. BIOS   emulation none" in text and "/isolinux.bin" in text
    assert "2. UEFI" in text and "/efi.img" in text
    assert "MBR 1   0x17 Hidden HPFS/NTFS" in text
    assert "Bootable from USB as a disk (hybrid): yes" in text
    assert "boots from USB on BIOS only" in text
    assert "-r--r--r--     0     0 119524 /ldlinux.c32" in text
    tree_lines = text.split("Files (7):\n", 1)[1].splitlines()
    assert len(tree_lines) == 7 and tree_lines[0].endswith(" /")


def test_tree_only_and_no_files(livesmith_cmd: list[str], tmp_path: Path) -> None:
    tree = make_sample_tree(tmp_path / "tree")
    iso = mkisofs(tree, tmp_path / "s.iso", "-R", "-J")
    tree_only = livesmith(livesmith_cmd, "inspect", str(iso), "--tree-only").stdout.splitlines()
    assert len(tree_only) == len(xorriso_listing(iso))
    assert any(line.endswith("/boot/link-rel -> grub/grub.cfg") for line in tree_only)
    assert any(line.startswith("-rwsr-xr-x") and line.endswith("/bin/setuid") for line in tree_only)
    assert any(line.startswith("?rw-") and line.endswith("/fifo") for line in tree_only)
    summary = livesmith(livesmith_cmd, "inspect", str(iso), "--no-files").stdout
    assert "Bootable from USB as a disk (hybrid): no" in summary
    assert "/boot/grub/grub.cfg" not in summary
    assert "El Torito boot entries:\n  none" in summary


def test_errors_name_the_path_and_exit_with_input_status(
    livesmith_cmd: list[str], tmp_path: Path
) -> None:
    text_file = write(tmp_path / "notes.txt", "not an image\n" * 3000)
    out = livesmith(livesmith_cmd, "inspect", str(text_file))
    assert out.returncode == EXIT_INPUT
    assert out.stderr.strip() == (
        f"livesmith: error: {text_file}: not an ISO 9660 image: no "
        'volume descriptor ("CD001") at byte 32768'
    )
    assert out.stdout == ""
    missing = livesmith(livesmith_cmd, "inspect", str(tmp_path / "gone.iso"), "--json")
    assert missing.returncode == EXIT_INPUT
    assert f"{tmp_path / 'gone.iso'}: does not exist" in missing.stderr
    assert missing.stdout == ""
