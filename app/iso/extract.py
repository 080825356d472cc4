"""Copy a file or a whole directory out of an ISO image.

Safety first: the image decides the names, so every name below the requested path
is checked before anything is written ("..", ".", empty, or containing "/" or NUL
is refused), and everything is created relative to directory file descriptors with
O_NOFOLLOW/O_EXCL, so nothing in the image (a symlink, a duplicate name) can make
us write outside the destination or over an existing file.

Symlinks are recreated as symlinks, never followed. Permission bits from Rock Ridge
are kept, except set-user-ID and set-group-ID (the extracted files belong to the
user running the extraction, not to the image's owners) and the bits the process
umask removes (the image must not make files world-writable behind the user's back). Devices and FIFOs are
skipped with a warning. Runs of zero bytes become holes (like `cp --sparse`).
On any error or a cancel, everything created so far is removed.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from app.display import printable
from app.errors import InputError
from app.iso.inspect import ElToritoEntry, IsoImage, TreeItem
from app.iso.partitions import read_system_area
from app.reporter import Level, NullReporter, Reporter, check_cancelled

CHUNK = 4 * 1024 * 1024
ZERO_CHUNK = bytes(CHUNK)
DEFAULT_FILE_MODE = 0o644  # images without Rock Ridge carry no permissions
DEFAULT_DIR_MODE = 0o755
KEPT_MODE_BITS = 0o1777  # drop set-user-ID / set-group-ID


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (/proc), so other
    threads never create a file under a temporary umask of 0."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8) & 0o777
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _inner_parts(inner_path: str) -> tuple[str, ...]:
    parts = tuple(p for p in inner_path.split("/") if p)
    if any(p in (".", "..") for p in parts):
        raise InputError(
            "a path inside the ISO must not contain '.' or '..' components", where=inner_path
        )
    return parts


def _unsafe_reason(name: str) -> str | None:
    if name in ("", ".", ".."):
        return f"the name {name!r} is not a valid file name"
    if "/" in name:
        return f"the name {name!r} contains '/'"
    if "\0" in name:
        return f"the name {name!r} contains a NUL byte"
    return None


def _select(image: IsoImage, parts: tuple[str, ...], reporter: Reporter) -> list[TreeItem]:
    """The entry at `parts` and everything below it (contiguous in the pre-order walk)."""
    selected: list[TreeItem] = []
    depth = len(parts)
    for item in image.walk(reporter):
        if item.names[:depth] == parts:
            selected.append(item)
        elif selected:
            break
    return selected


def _check_names(items: list[TreeItem], depth: int, iso: Path) -> None:
    """The names below the requested entry come from the image: refuse unsafe ones up front."""
    problems = []
    for item in items:
        for name in item.names[depth:]:
            reason = _unsafe_reason(name)
            if reason:
                problems.append(f"{printable(item.entry.path)}: {reason}")
                break
    if problems:
        shown = "; ".join(problems[:5]) + (
            f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        )
        raise InputError(
            f"unsafe names in the ISO would write outside the destination: {shown}; "
            "nothing was extracted",
            where=str(iso),
        )


def _target(parts: tuple[str, ...], dest: Path) -> tuple[Path, bool]:
    """(path of the extracted top entry, whether it is an existing directory we fill)."""
    if not parts:  # the whole image: into dest, which may already exist as a directory
        if dest.is_dir():
            return dest, True
        if dest.exists() or dest.is_symlink():
            raise InputError("already exists and is not a directory", where=str(dest))
        return dest, False
    target = dest / parts[-1] if dest.is_dir() else dest
    if target.exists() or target.is_symlink():
        raise InputError("already exists; refusing to overwrite it", where=str(target))
    if not target.parent.is_dir():
        raise InputError("the destination folder does not exist", where=str(target.parent))
    return target, False


def _check_clashes(items: list[TreeItem], depth: int, target: Path) -> None:
    """Filling an existing folder: refuse, before writing, names that are already taken."""
    taken = sorted(
        {
            printable(str(target / item.names[depth]))
            for item in items
            if len(item.names) == depth + 1  # the top-level entries only
            and os.path.lexists(target / item.names[depth])
        }
    )
    if taken:
        shown = ", ".join(taken[:5]) + (f" and {len(taken) - 5} more" if len(taken) > 5 else "")
        raise InputError(
            f"already exist{'s' if len(taken) == 1 else ''}; refusing to overwrite: {shown}",
            where=str(target),
            hint="extract into an empty folder",
        )


class _Writer:
    def __init__(self, image: IsoImage, reporter: Reporter, total: int) -> None:
        self.image = image
        self.kept_bits = KEPT_MODE_BITS & ~current_umask()
        self.reporter = reporter
        self.total = total
        self.done = 0
        self.created: list[Path] = []

    def copy_file(self, item: TreeItem, dir_fd: int, name: str, path: Path) -> None:
        fd = os.open(
            name,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=dir_fd,
        )
        # Only now is it ours: a name that was taken must never be removed by the undo.
        self.created.append(path)
        try:
            position = 0
            for block, length in item.extents:
                offset = block * self.image.block_size
                remaining = length
                while remaining:
                    check_cancelled(self.reporter)
                    want = min(CHUNK, remaining)
                    data = self.image.read_at(offset, want)
                    if len(data) < want:
                        raise InputError(
                            f"the image ends inside the data of {item.entry.path} "
                            f"(byte {offset + len(data)})",
                            where=str(self.image.path),
                        )
                    if data == ZERO_CHUNK[:want]:
                        pass  # leave a hole; ftruncate below sets the size
                    else:
                        os.pwrite(fd, data, position)
                    position += want
                    offset += want
                    remaining -= want
                    self.done += want
                    self.reporter.progress(self.done, self.total)
            os.ftruncate(fd, position)
            mode = item.entry.mode if item.entry.mode is not None else DEFAULT_FILE_MODE
            os.fchmod(fd, mode & self.kept_bits)
        finally:
            os.close(fd)


def extract(iso: Path, inner_path: str, dest: Path, reporter: Reporter | None = None) -> list[Path]:
    """Extract `inner_path` (a file, symlink or directory) from `iso` to `dest`.

    Like `cp -r`: if `dest` is an existing directory the entry is created inside it
    under its own name, otherwise `dest` is the new entry's path. Extracting "/"
    puts the image's top-level entries into `dest`. Returns every path created
    (directories, files, symlinks), in tree order.
    """
    reporter = reporter or NullReporter()
    iso, dest = Path(iso), Path(dest)
    parts = _inner_parts(inner_path)
    shown_path = "/" + "/".join(parts)
    reporter.step(f"Extracting {shown_path} from {iso.name}")
    with IsoImage(iso) as image:
        items = _select(image, parts, reporter)
        if not items:
            raise InputError(f"no such file or directory in the ISO: {shown_path}", where=str(iso))
        _check_names(items, len(parts), iso)
        target, into_existing = _target(parts, dest)
        if into_existing:
            _check_clashes(items, len(parts), target)
        writer = _Writer(image, reporter, sum(i.entry.size for i in items))
        try:
            _write_all(writer, items, len(parts), target, into_existing)
        except BaseException as exc:
            _remove(writer.created, target, into_existing)
            if isinstance(exc, OSError):
                where = exc.filename if isinstance(exc.filename, str) else str(target)
                raise InputError(f"cannot extract: {exc.strerror or exc}", where=where) from exc
            raise
        return writer.created


def _write_all(
    writer: _Writer, items: list[TreeItem], depth: int, target: Path, into_existing: bool
) -> None:
    # Only the folders on the current path stay open (items come depth first): a folder
    # gets its mode once everything below it is written (a read-only folder must first
    # receive its children), and an image with thousands of folders does not run out of
    # file descriptors.
    open_dirs: list[tuple[tuple[str, ...], int, int]] = []  # (rel, fd, final mode)
    parent_fd = os.open(
        target if into_existing else target.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    )

    def holds(folder: tuple[str, ...], rel: tuple[str, ...] | None) -> bool:
        return rel is not None and len(folder) < len(rel) and rel[: len(folder)] == folder

    def finish_dirs_outside(rel: tuple[str, ...] | None) -> None:
        """Give their modes to the open folders that do not hold `rel` (None: to all)."""
        while open_dirs and not holds(open_dirs[-1][0], rel):
            _, fd, mode = open_dirs.pop()
            try:
                os.fchmod(fd, mode)
            finally:
                os.close(fd)

    try:
        for item in items:
            rel = item.names[depth:]
            finish_dirs_outside(rel)
            if not rel:
                if into_existing:
                    continue
                where_fd, name, path = parent_fd, target.name, target
            else:
                where_fd = open_dirs[-1][1] if open_dirs else parent_fd
                if (open_dirs[-1][0] if open_dirs else ()) != rel[:-1]:
                    # The walk lists every folder before what it holds; a path whose
                    # folder was not listed (or failed) cannot be placed.
                    raise InputError(
                        f"the image lists {printable(item.entry.path)} without its folder",
                        where=str(writer.image.path),
                    )
                name, path = rel[-1], target.joinpath(*rel)
            entry = item.entry
            if entry.type == "dir":
                os.mkdir(name, 0o700, dir_fd=where_fd)
                writer.created.append(path)
                fd = os.open(
                    name,
                    os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                    dir_fd=where_fd,
                )
                mode = entry.mode if entry.mode is not None else DEFAULT_DIR_MODE
                open_dirs.append((rel, fd, mode & writer.kept_bits))
            elif entry.type == "file":
                writer.copy_file(item, where_fd, name, path)
            elif entry.type == "symlink":
                os.symlink(entry.target or "", name, dir_fd=where_fd)
                writer.created.append(path)
            else:
                writer.reporter.log(
                    Level.WARNING,
                    f"skipped {printable(entry.path)}: devices, FIFOs and "
                    "sockets are not extracted",
                )
            check_cancelled(writer.reporter)
        finish_dirs_outside(None)
    finally:
        for _, fd, _ in open_dirs:
            os.close(fd)
        os.close(parent_fd)


def _remove(created: list[Path], target: Path, into_existing: bool) -> None:
    """Undo a failed or cancelled extraction: remove the top-level entries we created."""
    tops = [p for p in created if p.parent == target] if into_existing else created[:1]
    for path in tops:
        try:
            if path.is_dir() and not path.is_symlink():
                for root, dirs, _files in os.walk(path):
                    for d in dirs:
                        full = os.path.join(root, d)
                        if not os.path.islink(full):
                            os.chmod(full, stat.S_IRWXU)
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            pass


# --------------------------------------------------------------------------- boot images

FLOPPY_BYTES = {"floppy 1.2": 1228800, "floppy 1.44": 1474560, "floppy 2.88": 2949120}
_PLATFORM_SLUG = {0: "bios", 0xEF: "uefi", 1: "ppc", 2: "mac"}
_EMULATION_SLUG = {"none": "noemul", "hard disk": "hd"}


def _boot_image_size(image: IsoImage, entry: ElToritoEntry, sizes: dict[int, int]) -> int:
    """How many bytes make the boot image: the file's size when it is a file; a floppy's
    size; a hard disk image's extent from its MBR; an appended partition's size; else
    the load size of the catalog entry."""
    start = entry.load_rba * image.block_size
    if entry.boot_file is not None and entry.load_rba in sizes:
        return sizes[entry.load_rba]
    if entry.emulation in FLOPPY_BYTES:
        return FLOPPY_BYTES[entry.emulation]
    if entry.emulation == "hard disk":
        mbr = image.read_at(start, 512)
        ends = [
            int.from_bytes(mbr[454 + 16 * i : 458 + 16 * i], "little")
            + int.from_bytes(mbr[458 + 16 * i : 462 + 16 * i], "little")
            for i in range(4)
            if len(mbr) == 512 and mbr[450 + 16 * i]
        ]
        if ends:
            return max(ends) * 512
    for part in read_system_area(image.path).partitions:
        if part.start == start and part.type_id != "0xee":
            return part.size
    return max(entry.load_size, 1) * 512


def extract_boot_images(iso: Path, dest: Path, reporter: Reporter | None = None) -> list[Path]:
    """Write every El Torito boot image of `iso` into the directory `dest` (created if
    missing) as `boot<N>-<platform>-<emulation>.img`, including floppy and hard disk
    images and images outside the ISO tree (hidden, or in an appended partition)."""
    reporter = reporter or NullReporter()
    iso, dest = Path(iso), Path(dest)
    reporter.step(f"Extracting the boot images of {iso.name}")
    with IsoImage(iso) as image:
        sizes: dict[int, int] = {}
        paths: dict[int, str] = {}
        for item in image.walk(reporter):
            if item.extents and item.entry.size:
                sizes.setdefault(item.extents[0][0], item.entry.size)
                paths.setdefault(item.extents[0][0], item.entry.path)
        entries = image.eltorito(paths)
        if not entries:
            raise InputError("the image has no El Torito boot entries", where=str(iso))
        plan = []
        for entry in entries:
            platform = _PLATFORM_SLUG.get(entry.platform, f"0x{entry.platform:02x}")
            emulation = _EMULATION_SLUG.get(entry.emulation, entry.emulation.replace(" ", ""))
            name = f"boot{entry.index}-{platform}-{emulation}.img"
            start = entry.load_rba * image.block_size
            size = min(_boot_image_size(image, entry, sizes), max(image.size - start, 0))
            plan.append((dest / name, start, size, entry))
        clashes = [str(p) for p, *_ in plan if os.path.lexists(p)]
        if clashes:
            raise InputError("would overwrite an existing file", where=clashes[0])
        dest.mkdir(parents=True, exist_ok=True)
        created: list[Path] = []
        try:
            for path, start, size, entry in plan:
                check_cancelled(reporter)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
                created.append(path)
                with os.fdopen(fd, "wb") as out:
                    done = 0
                    while done < size:
                        chunk = image.read_at(start + done, min(CHUNK, size - done))
                        if not chunk:
                            break
                        out.write(chunk)
                        done += len(chunk)
                where = entry.boot_file or f"block {entry.load_rba}"
                reporter.log(Level.INFO, f"{path.name}: {size} bytes from {where}")
        except BaseException:
            for path in created:
                path.unlink(missing_ok=True)
            raise
        return created
