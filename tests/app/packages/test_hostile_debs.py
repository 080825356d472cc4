"""Hostile or broken Debian packages end in a clear InputError naming the file, quickly."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.errors import InputError
from app.packages.deb import read_package
from tests.app.packages.fixtures import MTIME, build_deb, text_package
from tests.app.packages.isolated import run_isolated


def ar_header(name: str, size: str) -> bytes:
    return f"{name:<16}{MTIME:<12}{0:<6}{0:<6}{'100644':<8}{size:<10}`\n".encode()


def test_a_negative_ar_member_size_does_not_hang(tmp_path: Path) -> None:
    deb = tmp_path / "loop_1.0_all.deb"
    deb.write_bytes(b"!<arch>\n" + ar_header("debian-binary", "-60"))
    assert deb.stat().st_size == 68
    result = run_isolated(
        f"""
        from pathlib import Path
        from app.packages.deb import read_package
        read_package(Path({str(deb)!r}))
    """,
        timeout=30,
    )
    assert result["ok"] is False
    assert result["where"] == str(deb)
    assert "corrupt ar member size" in result["message"]


@pytest.mark.parametrize("size", ["+4", "4_0", "0x10", " 4", "", "-0"])
def test_ar_member_sizes_must_be_decimal_digits(tmp_path: Path, size: str) -> None:
    good = build_deb(tmp_path, text_package("hello"))
    data = good.read_bytes()
    # The first member is debian-binary ("2.0\n", 4 bytes): rewrite its size field.
    header = data[8:68]
    assert header[48:58].strip() == b"4"
    deb = tmp_path / "odd_1.0_all.deb"
    deb.write_bytes(data[:8] + header[:48] + f"{size:<10}".encode() + header[58:] + data[68:])
    with pytest.raises(InputError, match="corrupt ar member size") as error:
        read_package(deb)
    assert error.value.where == str(deb)
