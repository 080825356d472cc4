"""The least time mastering a tree with pycdlib can take: what it cannot do without.

    python -m tests.benchmarks.pycdlib_floor TREE OUTPUT

For a tree of directories holding files (as the benchmark makes), only this: scan the
tree (one `scandir` per directory), create the directories through pycdlib's API, then
for every file one ISO 9660 record with Rock Ridge and one Joliet record
(`DirectoryRecord.new_file`), each added to its parent, serialize every record once
(`record()`, as writing does) and copy every file's data into OUTPUT, block-aligned.
No validation, no names to work out, no path lookups, no pinning, no volume
descriptors, no fsync. Run under GNU time, its wall time is a lower bound for mastering
that tree with pycdlib: interpreter start, import, scan, records and data.
"""

from __future__ import annotations

import os
import sys
import time
from typing import cast

import pycdlib
from pycdlib import dr, headervd

BLOCK = 2048


def floor(tree: str, output: str) -> None:
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, rock_ridge="1.09", joliet=3)
    pvd, block = iso.pvd, iso.logical_block_size
    joliet = cast(headervd.PrimaryOrSupplementaryVD, iso.joliet_vd)
    sequence = pvd.sequence_number()
    directories = sorted((e.name, e.path) for e in os.scandir(tree) if e.is_dir())
    for n, (name, _) in enumerate(directories):
        iso.add_directory(f"/D{n:06d}", rr_name=name, joliet_path=f"/{name}")
    records: list[dr.DirectoryRecord] = []
    sources: list[tuple[str, int]] = []
    for n, (name, path) in enumerate(directories):
        parent = cast(dr.DirectoryRecord, iso.get_record(iso_path=f"/D{n:06d}"))
        joliet_parent = cast(dr.DirectoryRecord, iso.get_record(joliet_path=f"/{name}"))
        files = sorted(os.scandir(path), key=lambda e: e.name)
        for f, entry in enumerate(files):
            size = entry.stat(follow_symlinks=False).st_size
            record = dr.DirectoryRecord()
            record.new_file(
                pvd,
                size,
                f"F{f:06d}.;1".encode(),
                parent,
                sequence,
                "1.09",
                entry.name.encode(),
                False,
                0o100644,
                time.time(),
            )
            parent.add_child(record, block)
            joliet_record = dr.DirectoryRecord()
            joliet_record.new_file(
                joliet,
                size,
                entry.name.encode("utf-16-be"),
                joliet_parent,
                sequence,
                "",
                b"",
                False,
                0o100644,
                time.time(),
            )
            joliet_parent.add_child(joliet_record, block)
            records += (record, joliet_record)
            sources.append((entry.path, size))
    out = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        image = bytearray()
        for extent, record in enumerate(records, 1000):
            record.set_data_location(extent, 0)
            image += record.record()
        for path, size in sources:
            fd = os.open(path, os.O_RDONLY)
            image += os.read(fd, size)
            os.close(fd)
            image += bytes(-len(image) % BLOCK)
            if len(image) >= 1024 * 1024:
                os.write(out, image)
                image.clear()
        os.write(out, image)
    finally:
        os.close(out)


if __name__ == "__main__":
    floor(sys.argv[1], sys.argv[2])
