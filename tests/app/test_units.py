from __future__ import annotations

import pytest

from app.units import binary_size, decimal_size


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (512, "512 B"),
        (1536, "1.5 KiB"),
        (23_730_176, "22.6 MiB"),
        (5 << 40, "5.0 TiB"),
        (3 << 50, "3072.0 TiB"),
    ],
)
def test_binary_sizes(size: int, text: str) -> None:
    assert binary_size(size) == text


def test_binary_sizes_may_spell_out_bytes() -> None:
    assert binary_size(153, byte_word="bytes") == "153 bytes"
    assert binary_size(2048, byte_word="bytes") == "2.0 KiB"


@pytest.mark.parametrize(
    ("size", "text"),
    [(999, "999 B"), (16_008_609_792, "16.0 GB"), (64 * 10**9, "64.0 GB"), (2 * 10**12, "2.0 TB")],
)
def test_decimal_sizes_as_drives_are_sold(size: int, text: str) -> None:
    assert decimal_size(size) == text
