"""Eject a written stick: power it off through UDisks2, as the desktop's "Safely remove" does.

The write has synced everything already, so the stick is safe to unplug either way; eject
failing is a note for the user, never a failed write.
"""

from __future__ import annotations

from app.errors import LivesmithError
from app.usb.target import Target, TargetKind


def eject(target: Target) -> str:
    """Power off (or eject) the stick; a sentence saying what happened, also on failure."""
    if target.kind is not TargetKind.BLOCK or target.devno is None:
        return f"{target.path} is a file: nothing to eject"
    from app.usb import udisks

    try:
        done = udisks.power_off(target.devno, str(target.path))
    except LivesmithError as exc:
        return f"not ejected: {exc}; it was synced, so it is safe to unplug"
    return f"{target.path} {done}"
