"""Inspect an ISO in a separate process, for callers whose own threads must stay responsive.

`inspect_iso` is pure-Python parsing (pycdlib) that holds the interpreter lock for stretches of
100-450 ms on an image with 20,000 files, even on a worker thread; a GUI thread sharing the
process stalls meanwhile. The child is `python -m app.iso.isolated ISO` (see app.childproc
for how it talks to the parent). Cancelling terminates it: it writes nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

from app.childproc import FrameReader, PipeReporter, frame, run_child
from app.iso.inspect import IsoReport, inspect_iso
from app.reporter import Reporter

__all__ = ["FrameReader", "frame", "inspect_iso_isolated"]


def child_main(path: str) -> int:
    reporter = PipeReporter(sys.stdout.buffer)
    reporter.finish(lambda: inspect_iso(Path(path), reporter))
    return 0


def inspect_iso_isolated(path: Path, reporter: Reporter | None = None) -> IsoReport:
    """`inspect_iso(path)`, computed in a child process."""
    report: IsoReport = run_child(
        "app.iso.isolated", [str(path)], reporter, what=f"inspection of {path}", stage="inspect"
    )
    return report


if __name__ == "__main__":
    raise SystemExit(child_main(sys.argv[1]))
