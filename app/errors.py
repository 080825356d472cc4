"""One root exception for the whole core, with a few meaningful subclasses.

Every error says *what* went wrong and *where* (a path, a device, a stage, an
offset), and, where we know it, what the user can do about it (`hint`).
The UI and the CLI show all of them through one function each.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class LivesmithError(Exception):
    """Root of every error raised on purpose by the core."""

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


@dataclass(frozen=True)
class Problem:
    """One validation finding; validation collects all of them before anything is built."""

    where: str
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


class InputError(LivesmithError):
    """The user's input is wrong: a bad label, a corrupt or malicious package, a missing file."""


class ValidationError(InputError):
    """Validation found one or more problems; all of them are listed together."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = list(problems)
        count = len(self.problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} found:\n{lines}")


class MissingToolError(LivesmithError):
    """An external program we need is not installed; says which Debian package provides it."""

    def __init__(self, tool: str, package: str | None):
        hint = f"install it with: sudo apt-get install {package}" if package else None
        super().__init__(f"the program '{tool}' is not installed", hint=hint)
        self.tool = tool
        self.package = package


class StageError(LivesmithError):
    """A build or mastering stage failed for a reason other than bad input."""

    def __init__(
        self,
        message: str,
        *,
        stage: str | None = None,
        where: str | None = None,
        hint: str | None = None,
    ):
        super().__init__(message, where=where or stage, hint=hint)
        self.stage = stage


class DeviceError(LivesmithError):
    """A target device cannot be used or failed while in use."""


class VerificationError(LivesmithError):
    """What was written (or an image) does not match what it should be."""

    def __init__(
        self,
        message: str,
        *,
        where: str | None = None,
        offset: int | None = None,
        hint: str | None = None,
    ):
        super().__init__(message, where=where, hint=hint)
        self.offset = offset


class Cancelled(LivesmithError):
    """The user cancelled; work stopped cleanly and partial output was removed."""

    def __init__(self, message: str = "cancelled by the user", *, where: str | None = None):
        super().__init__(message, where=where)
