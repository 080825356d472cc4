"""Run a package reader in a child process, so a hang or a memory blow-up in the code
under test fails the test (timeout, address-space limit) instead of stalling the suite."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]

_WRAPPER = """
import json, resource, sys
limit = {limit}
if limit:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from app.errors import InputError
try:
{body}
    result = {{"ok": True}}
except InputError as exc:
    result = {{"ok": False, "message": exc.message, "where": exc.where}}
except MemoryError:
    result = {{"ok": False, "memory": True}}
# Peak resident memory of this program alone (ru_maxrss would include the parent's,
# which Linux carries across exec).
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        result["peak_rss_kib"] = int(line.split()[1])
print(json.dumps(result))
"""


def run_isolated(
    body: str, *, memory_limit: int | None = None, timeout: float = 60
) -> dict[str, Any]:
    """Run `body` (Python statements) in a fresh interpreter; its InputError comes back as
    {"ok": False, "message", "where"}, success as {"ok": True}, plus "peak_rss_kib".
    A hang beyond `timeout` seconds raises subprocess.TimeoutExpired."""
    code = _WRAPPER.format(
        limit=memory_limit or 0, body=textwrap.indent(textwrap.dedent(body), "    ")
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
