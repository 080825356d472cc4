"""Inspect an ISO in a separate process, for callers whose own threads must stay responsive.

`inspect_iso` is pure-Python parsing that holds the interpreter lock for stretches of
100-450 ms on an image with 20,000 files, even on a worker thread; a GUI thread sharing the
process stalls meanwhile. The child is `python -m app.iso.isolated ISO` (see app.childproc
for how it talks to the parent); the report crosses in its `--json` form (`IsoReport.to_json`).
Cancelling terminates it: it writes nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

from app.childproc import PipeReporter, run_child
from app.iso.inspect import IsoReport, inspect_iso
from app.reporter import Reporter


def child_main(path: str) -> int:
    reporter = PipeReporter(sys.stdout.buffer)
    reporter.finish(lambda: inspect_iso(Path(path), reporter).to_json())
    return 0


def inspect_iso_isolated(path: Path, reporter: Reporter | None = None) -> IsoReport:
    """`inspect_iso(path)`, computed in a child process."""
    return run_child(
        "app.iso.isolated",
        [str(path)],
        reporter,
        what=f"inspection of {path}",
        stage="inspect",
        result=IsoReport.from_json,
    )


if __name__ == "__main__":
    raise SystemExit(child_main(sys.argv[1]))
