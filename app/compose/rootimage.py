"""Stage 6, root image: SquashFS or EROFS from the staged root, owners from the manifest.

The build user cannot chown or mknod, so the on-disk tree has the contents and the
RootManifest has the truth. mksquashfs takes the truth as pseudo-file definitions; mkfs.erofs
has no such input, so it runs under fakeroot after the manifest was applied under fakeroot.
RAM mode makes no image: the initramfs stage packs the whole root.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from app.compose.fakeroot_apply import ListingError, encode_record
from app.compose.manifest import FileMeta, Kind, RootManifest
from app.compose.profile import (
    Compressor,
    ImageOptions,
    RootImageFormat,
    compression_level,
    level_problem,
)
from app.display import control_character
from app.errors import InputError
from app.procs import run_tool
from app.reporter import Reporter

STAGE = "root image"
IMAGE_NAMES = {RootImageFormat.SQUASHFS: "rootfs.sfs", RootImageFormat.EROFS: "rootfs.erofs"}


def _pseudo_name(meta: FileMeta) -> str:
    # One definition per line; spaces and quotes in names are backslash-escaped. A line
    # break cannot be escaped, and would start a definition of the package's choosing (an
    # `f` definition runs a shell command): extraction refuses such names already, and this
    # writer refuses every control character again, whoever made the manifest.
    path = meta.path
    ch = control_character(path)
    if ch is not None:
        raise InputError(
            f"package {meta.owner or '(generated)'}: path {path!r} has the "
            f"control character {ch!r} in its name; it cannot go into a SquashFS "
            "pseudo file",
            where=STAGE,
        )
    out = []
    for ch in path:
        if ch in ' "\\\t':
            out.append("\\")
        out.append(ch)
    return "/" + "".join(out)


def squashfs_pseudo_definitions(manifest: RootManifest) -> str:
    lines = []
    for meta in manifest.sorted():
        name = _pseudo_name(meta)
        mode = f"{meta.mode & 0o7777:04o}"
        if meta.kind in (Kind.CHAR, Kind.BLOCK):
            code = "c" if meta.kind is Kind.CHAR else "b"
            lines.append(
                f"{name} {code} {mode} {meta.uid} {meta.gid} {meta.rdev_major} {meta.rdev_minor}"
            )
        elif meta.kind in (Kind.FIFO, Kind.SOCKET):
            kind = "f" if meta.kind is Kind.FIFO else "s"
            lines.append(f"{name} i {mode} {meta.uid} {meta.gid} {kind}")
        else:
            lines.append(f"{name} m {mode} {meta.uid} {meta.gid}")
    return "\n".join(lines) + "\n"


def _checked_level(options: ImageOptions) -> int | None:
    """The level to pass to the tool. A level the tool cannot take is refused here too, so a
    build that skipped validation cannot lose it silently."""
    problem = level_problem(options)
    if problem is not None:
        raise InputError(problem.message, where=problem.where, hint=problem.hint)
    return compression_level(options)


SQUASHFS_MEMORY = "128M"


def make_squashfs(
    root: Path,
    manifest: RootManifest,
    options: ImageOptions,
    out: Path,
    reporter: Reporter,
    *,
    epoch: int,
    work: Path,
) -> Path:
    level = _checked_level(options)
    pseudo = work / "squashfs.pseudo"
    # Names are bytes to the kernel and to mksquashfs: write them back as the bytes they
    # came from (a Latin-1 name is valid, just not UTF-8).
    pseudo.write_bytes(os.fsencode(squashfs_pseudo_definitions(manifest)))
    args = [
        "mksquashfs",
        str(root),
        str(out),
        "-noappend",
        "-no-xattrs",
        "-pf",
        str(pseudo),
        "-comp",
        options.compressor.value,
        "-b",
        "1M",
        "-mkfs-time",
        str(epoch),
        "-all-time",
        str(epoch),
        "-no-progress",
        "-processors",
        str(os.cpu_count() or 1),
        # Its caches otherwise take a quarter of the machine's memory (964 MB of RSS for
        # rescue here); 128 MiB gave the same image in the same time.
        "-mem",
        SQUASHFS_MEMORY,
    ]
    if level is not None:  # zstd and gzip, the compressors that have a level here
        args += ["-Xcompression-level", str(level)]
    if options.compressor is Compressor.XZ:
        # xz has no level in mksquashfs; the x86 filter shrinks the executables instead.
        args += ["-Xbcj", "x86"]
    if out.exists():
        out.unlink()
    # mksquashfs refuses SOURCE_DATE_EPOCH together with explicit times; ours are explicit.
    run_tool(args, reporter, stage=STAGE, unset_env=("SOURCE_DATE_EPOCH",))
    return out


def manifest_records(manifest: RootManifest) -> bytes:
    """NUL-separated records for the fakeroot helper (`python -m app.compose.fakeroot_apply`);
    names are raw bytes, so any name a package may hold (even non-UTF-8) arrives intact and
    none can forge a record. A path that is not relative and normalised is refused."""
    out = []
    for m in manifest.sorted():
        try:
            out.append(
                encode_record(
                    m.kind.value, m.mode, m.uid, m.gid, m.rdev_major, m.rdev_minor, m.path
                )
            )
        except ListingError as exc:
            raise InputError(f"package {m.owner or '(generated)'}: {exc}", where=STAGE) from exc
    return b"".join(out)


def make_erofs(
    root: Path,
    manifest: RootManifest,
    options: ImageOptions,
    out: Path,
    reporter: Reporter,
    *,
    epoch: int,
    work: Path,
    uuid: str,
) -> Path:
    level = _checked_level(options)
    listing = work / "manifest.records"
    listing.write_bytes(manifest_records(manifest))
    state = work / "fakeroot.state"
    # -P: an "app" folder in the current directory must not stand in for ours.
    run_tool(
        [
            "fakeroot",
            "-s",
            str(state),
            "--",
            sys.executable,
            "-P",
            "-m",
            "app.compose.fakeroot_apply",
            str(root),
            str(listing),
        ],
        reporter,
        stage=STAGE,
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    args = ["fakeroot", "-i", str(state), "--", "mkfs.erofs", f"-T{epoch}", f"-U{uuid}", "-x-1"]
    if options.compressor is not Compressor.NONE:
        comp = options.compressor.value + (f",{level}" if level is not None else "")
        args.append(f"-z{comp}")
    if out.exists():
        out.unlink()
    run_tool([*args, str(out), str(root)], reporter, stage=STAGE)
    return out


def make_root_image(
    root: Path,
    manifest: RootManifest,
    options: ImageOptions,
    live_dir: Path,
    reporter: Reporter,
    *,
    epoch: int,
    work: Path,
    uuid: str,
) -> Path | None:
    if options.format is RootImageFormat.RAM:
        return None
    out = live_dir / IMAGE_NAMES[options.format]
    if options.format is RootImageFormat.SQUASHFS:
        return make_squashfs(root, manifest, options, out, reporter, epoch=epoch, work=work)
    return make_erofs(root, manifest, options, out, reporter, epoch=epoch, work=work, uuid=uuid)
