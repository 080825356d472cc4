"""Real ISO images whose names and ids are hostile: terminal escapes, NUL, line feeds, HTML.

pycdlib refuses such Rock Ridge names, so the image is mastered with placeholder names of
the same length and the NM entries are overwritten in the written bytes (as an attacker
would). The GPT partition name of a real xorriso hybrid is rewritten the same way, with its
CRCs recomputed so the table stays valid.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pycdlib

# Rock Ridge names (what the files are called) and the text shown for them.
TITLE_ESCAPE = "\x1b]0;pwned\x07"  # sets the terminal's window title
CLEAR_SCREEN = "\x1b[2J\x1b[31mEVIL\x1b[0m"
FORGED_LINE = "a\x00b\n-rw-r--r--     0     0 9 /FORGED"  # a NUL, and a line that is not one
HTML_NAME = "<b>bold<img src=x>"
SLASH_NAME = "<a href=x>y</a>"  # a Rock Ridge name may hold '/'; a path cannot show it
FILE_NAMES = (TITLE_ESCAPE, CLEAR_SCREEN, FORGED_LINE, HTML_NAME)
DIR_NAME = "dd"
LINK_NAME = "link"
LINK_TARGET = "\x1b[2Jtarget"  # a symlink target with an escape (no '/': pycdlib checks it)

PUBLISHER = "<h1><font color=red>X</font></h1>"
APPLICATION = "<img src=/etc/hostname>\x1b]0;app\x07"
LABEL = "<b>L</b>"
GPT_NAME = "\x1b]0;gpt\x07\n<b>G</b>"


def _placeholder(index: int, length: int) -> bytes:
    text = f"Q{index}".ljust(length, "q")
    assert len(text) == length
    return text.encode()


def _rename(data: bytearray, old: bytes, new: bytes) -> None:
    """Overwrite the one Rock Ridge NM entry that holds `old` with `new` (same length)."""
    assert len(old) == len(new)
    needle = b"NM" + bytes([5 + len(old), 1, 0]) + old
    start = data.find(needle)
    assert start > 0 and data.find(needle, start + 1) == -1, old
    data[start + 5 : start + 5 + len(old)] = new


def make_hostile_iso(path: Path) -> Path:
    """Rock Ridge image: /FILE_NAMES..., /dd/SLASH_NAME, /dd/plain.txt, /link -> LINK_TARGET;
    publisher, application and label hold HTML and escapes."""
    iso = pycdlib.PyCdlib()
    iso.new(
        interchange_level=4,
        rock_ridge="1.09",
        vol_ident=LABEL,
        pub_ident_str=PUBLISHER,
        app_ident_str=APPLICATION,
    )
    renames: list[tuple[bytes, bytes]] = []
    for index, name in enumerate(FILE_NAMES):
        raw = name.encode()
        placeholder = _placeholder(index, len(raw))
        data = f"file {index}\n".encode()
        iso.add_fp(io.BytesIO(data), len(data), f"/F{index};1", rr_name=placeholder.decode())
        renames.append((placeholder, raw))
    iso.add_directory("/DD", rr_name=DIR_NAME)
    raw = SLASH_NAME.encode()
    placeholder = _placeholder(9, len(raw))
    iso.add_fp(io.BytesIO(b"slash\n"), 6, "/DD/S;1", rr_name=placeholder.decode())
    renames.append((placeholder, raw))
    iso.add_fp(io.BytesIO(b"plain\n"), 6, "/DD/PLAIN.TXT;1", rr_name="plain.txt")
    iso.add_symlink(symlink_path="/LINK;1", rr_symlink_name=LINK_NAME, rr_path=LINK_TARGET)
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    data = bytearray(out.getvalue())
    for old, new in renames:
        _rename(data, old, new)
    path.write_bytes(bytes(data))
    return path


def rename_gpt_partition(iso: Path, number: int, name: str) -> None:
    """Give GPT partition `number` (1-based) the name `name`, in the primary and the backup
    table, with the CRCs recomputed (the table stays valid)."""
    data = bytearray(iso.read_bytes())
    encoded = name.encode("utf-16-le").ljust(72, b"\0")
    assert len(encoded) == 72
    primary = 512
    assert data[primary : primary + 8] == b"EFI PART"
    backup = struct.unpack_from("<Q", data, primary + 32)[0] * 512
    for header in (primary, backup):
        if data[header : header + 8] != b"EFI PART":
            continue
        (size,) = struct.unpack_from("<I", data, header + 12)
        entries_lba, count, entry_size = struct.unpack_from("<QII", data, header + 72)
        entries = entries_lba * 512
        slot = entries + (number - 1) * entry_size
        data[slot + 56 : slot + 128] = encoded
        struct.pack_into(
            "<I", data, header + 88, zlib.crc32(data[entries : entries + count * entry_size])
        )
        struct.pack_into("<I", data, header + 16, 0)
        struct.pack_into("<I", data, header + 16, zlib.crc32(data[header : header + size]))
    iso.write_bytes(bytes(data))
