"""One build's Gather stage in a process of its own, for tests that run several at once.

    python -m tests.app.packages.gather_child SOURCE CACHE READY GO NAME...

Resolves NAME... (with what they depend on) in SOURCE ('apt' or a folder), creates the file
READY, waits until the file GO exists (so that all the children gather at the same moment),
gathers into the cache folder CACHE and prints one JSON list of [name, cached file] pairs.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from app.packages.gather import gather
from app.packages.resolve import resolve
from app.packages.sources import detect_source, open_source
from app.reporter import NullReporter


def main() -> None:
    location, cache, ready, go, *names = sys.argv[1:]
    source = open_source(detect_source(location))
    resolution = resolve(source, names)
    Path(ready).touch()
    while not Path(go).exists():
        time.sleep(0.001)
    got = gather(source, resolution, Path(cache), NullReporter())
    print(json.dumps([[pkg.name, str(path)] for pkg, path in got]))


if __name__ == "__main__":
    main()
