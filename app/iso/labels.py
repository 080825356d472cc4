"""Volume labels: what ISO 9660 allows, and a valid suggestion for anything else.

The volume identifier is d-characters (ECMA-119 7.4.1: A-Z, 0-9, _) and at most 32 of
them. Tools are lenient, but boot loaders and init scripts find the medium by this
label (`/dev/disk/by-label/...`), so lower case or a dash would make the same label
look different to different readers. The build pipeline, the wizard and the mastering
step all check labels here.
"""

from __future__ import annotations

import re
import unicodedata

from app.errors import Problem

MAX_LABEL_LENGTH = 32
FALLBACK_LABEL = "LIVESMITH"

_VALID = re.compile(r"[A-Z0-9_]+")
_INVALID_RUN = re.compile(r"[^A-Z0-9_]+")


def validate_label(label: str, *, where: str = "label") -> list[Problem]:
    """Every problem with `label` as an ISO 9660 volume identifier (empty list: valid)."""
    problems: list[Problem] = []
    if not label:
        problems.append(
            Problem(
                where,
                "the volume label is empty; it needs 1 to "
                f"{MAX_LABEL_LENGTH} characters of A-Z, 0-9 and _",
                hint=f"for example '{FALLBACK_LABEL}'",
            )
        )
        return problems
    suggestion = suggest_label(label)
    if len(label) > MAX_LABEL_LENGTH:
        problems.append(
            Problem(
                where,
                f"the volume label '{label}' has {len(label)} characters; at most "
                f"{MAX_LABEL_LENGTH} are allowed",
                hint=f"use '{suggestion}'",
            )
        )
    if not _VALID.fullmatch(label):
        bad = sorted({ch for ch in label if not _VALID.fullmatch(ch)})
        shown = " ".join(repr(ch) for ch in bad)
        problems.append(
            Problem(
                where,
                f"the volume label '{label}' may only contain upper-case A-Z, digits "
                f"0-9 and _ (not {shown})",
                hint=f"use '{suggestion}'",
            )
        )
    return problems


def suggest_label(text: str) -> str:
    """A valid label close to `text`: upper case, accents dropped, other runs become `_`."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    label = _INVALID_RUN.sub("_", ascii_text.upper()).strip("_")
    label = label[:MAX_LABEL_LENGTH].rstrip("_")
    return label or FALLBACK_LABEL
