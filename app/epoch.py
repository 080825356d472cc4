"""SOURCE_DATE_EPOCH, the reproducible-builds time stamp: the one place it is read.

https://reproducible-builds.org/specs/source-date-epoch/: whole seconds since
1970-01-01 00:00:00 UTC, as `date +%s` prints them. The build (`make_context`) and
`livesmith master` read it here once and hand the number on; a bad value is a validation
problem, reported with every other problem before anything is written.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from app.errors import Problem

VARIABLE = "SOURCE_DATE_EPOCH"
# The latest time every format we write can hold: cpio and squashfs keep 32-bit times.
LATEST = 0xFFFFFFFF  # 2106-02-07 06:28:15 UTC
_SECONDS = re.compile(r"[0-9]+")  # ASCII digits only: int() would also take "٣" or "1_0"
_SHOWN = 40  # characters of a bad value quoted in the problem


def source_date_epoch(environ: Mapping[str, str] = os.environ) -> int | Problem | None:
    """The environment's SOURCE_DATE_EPOCH: None if unset or empty, the seconds if they
    are valid, else a Problem that names the variable and says what is expected."""
    value = environ.get(VARIABLE, "").strip()
    if not value:
        return None
    if _SECONDS.fullmatch(value):
        # Leading zeros are harmless; the length check keeps int() off huge strings.
        digits = value.lstrip("0") or "0"
        if len(digits) <= len(str(LATEST)) and int(digits) <= LATEST:
            return int(digits)
    shown = value if len(value) <= _SHOWN else value[:_SHOWN] + "..."
    return Problem(
        VARIABLE,
        f"{shown!r} is not a whole number of seconds from 0 to {LATEST}",
        hint="seconds since 1970-01-01 00:00:00 UTC, as `date +%s` prints them",
    )
