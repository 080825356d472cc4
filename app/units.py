"""Sizes in words, one way for the whole app.

Binary units (KiB, MiB) for files and images, as `ls -lh` and file managers count; decimal
units (kB, MB, GB) for drives, as printed on a USB stick's packaging (16 GB = 16 * 10**9).
"""

from __future__ import annotations


def _scaled(size: int, base: int, units: tuple[str, ...], byte_word: str) -> str:
    value = float(size)
    for unit in units:
        if value < base or unit == units[-1]:
            return f"{size} {byte_word}" if unit == units[0] else f"{value:.1f} {unit}"
        value /= base
    raise AssertionError("unreachable")


def binary_size(size: int, *, byte_word: str = "B") -> str:
    """1536 -> "1.5 KiB"; 512 -> "512 B" (or "512 bytes" with byte_word="bytes")."""
    return _scaled(size, 1024, (byte_word, "KiB", "MiB", "GiB", "TiB"), byte_word)


def decimal_size(size: int) -> str:
    """16_000_000_000 -> "16.0 GB": the size a drive is sold as."""
    return _scaled(size, 1000, ("B", "kB", "MB", "GB", "TB"), "B")
