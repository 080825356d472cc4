"""The child-process plumbing shared by inspection and builds (app.childproc)."""

from __future__ import annotations

import os
import subprocess
import sys

from app.childproc import FrameReader, child_env, frame

CHATTY_CHILD = """
import os, subprocess, sys
from app.childproc import FrameReader, frame, take_stdio
control, messages = take_stdio()
print("stray print")                      # Python's own stdout
subprocess.run(["echo", "stray tool output"])  # a tool that inherits fd 1
eaten = subprocess.run(["cat"], capture_output=True).stdout  # a tool that reads fd 0
job = FrameReader(control.fileno()).next()
messages.write(frame(("done", job, eaten)))
messages.flush()
"""


def test_a_job_child_keeps_its_message_pipes_from_the_tools_it_runs() -> None:
    child = subprocess.run([sys.executable, "-c", CHATTY_CHILD],
                           input=frame(("job", "the arguments")), capture_output=True,
                           env=child_env(), timeout=60)
    assert child.returncode == 0, child.stderr
    assert b"stray print" in child.stderr and b"stray tool output" in child.stderr
    read, write = os.pipe()
    os.write(write, child.stdout)
    os.close(write)
    reader = FrameReader(read)
    assert reader.next() == ("done", ("job", "the arguments"), b"")
    assert reader.next() is None
