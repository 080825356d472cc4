"""A job child for tests of app.childproc: `python -m tests.support.tool_child MODE`.

tool: announces the step "tool", then runs `sleep 300` through app.procs.run_tool, as a
      build runs mksquashfs (in its own session);
odd-error: fails with an exception that is no LivesmithError (its class lives in this
      child's __main__, which the parent could not import anyway);
chatty: announces "tool", waits for a cancel, then logs 4 MiB while it "cleans up";
garbage: sends a frame that is not JSON, then waits for the end of its stdin.
"""

from __future__ import annotations

import sys
import time

from app.childproc import ChildControl, PipeReporter, take_stdio
from app.frames import FrameReader
from app.procs import run_tool
from app.reporter import Level


class OddError(Exception):
    pass


def main(mode: str) -> int:
    control, messages = take_stdio()
    reader = FrameReader(control.fileno())
    reader.next()  # the job
    reporter = PipeReporter(messages, ChildControl(reader))

    def job() -> None:
        if mode == "garbage":
            messages.write(b"\x05\x00\x00\x00hello")
            messages.flush()
            while not reporter.cancelled():
                time.sleep(0.01)
            return
        if mode == "odd-error":
            raise OddError("a very odd failure")
        if mode == "chatty":
            reporter.step("tool")
            while not reporter.cancelled():
                time.sleep(0.01)
            for n in range(4096):
                reporter.log(Level.INFO, f"cleaning up {n} " + "." * 1000)
            return
        reporter.step("tool")
        run_tool(["sleep", "300"], reporter, stage="test")

    reporter.finish(job)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
