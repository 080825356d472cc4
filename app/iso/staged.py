"""Reading a staged directory tree for mastering: what is in it, and what cannot go in.

One `lstat` per entry, children sorted by their real name (as bytes), so the order
never depends on the file system. Everything the ISO needs from the host is read
here once: type, mode, owner, group, size, modification time, symlink target.
"""

from __future__ import annotations

import enum
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from app.display import printable
from app.errors import Problem


class NodeKind(enum.Enum):
    DIR = "dir"
    FILE = "file"
    SYMLINK = "symlink"


@dataclass(eq=False, slots=True)
class Node:
    """One entry of the staged tree; `rel` is root-relative POSIX ('' for the root)."""

    rel: str
    name: str
    kind: NodeKind
    mode: int  # full st_mode, type bits included
    uid: int
    gid: int
    size: int
    mtime: int
    target: str = ""  # symlink target as stored
    depth: int = 0  # number of path components (root = 0)
    children: list[Node] = field(default_factory=list)

    @property
    def is_dir(self) -> bool:
        return self.kind is NodeKind.DIR

    def walk(self) -> Iterator[Node]:
        """This node and every node below it, parents before children."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def find(self, rel: str) -> Node | None:
        node: Node | None = self
        for part in PurePosixPath(rel).parts:
            if node is None or not node.is_dir:
                return None
            node = next((c for c in node.children if c.name == part), None)
        return node


_SPECIAL = {
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
}


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _node(
    rel: str, name: str, st: os.stat_result, depth: int, kind: NodeKind, target: str = ""
) -> Node:
    return Node(
        rel=rel,
        name=name,
        kind=kind,
        mode=st.st_mode,
        uid=st.st_uid,
        gid=st.st_gid,
        size=st.st_size if kind is NodeKind.FILE else 0,
        mtime=int(st.st_mtime),
        target=target,
        depth=depth,
    )


def scan_tree(root: Path) -> tuple[Node, list[Problem]]:
    """The tree below `root` and every problem that keeps an entry out of an ISO."""
    problems: list[Problem] = []
    top = _node("", "", os.stat(root), 0, NodeKind.DIR)
    stack = [(top, str(root))]
    while stack:
        parent, path = stack.pop()
        try:
            with os.scandir(path) as it:
                dir_entries = sorted(it, key=lambda e: os.fsencode(e.name))
        except OSError as exc:
            problems.append(Problem(printable(path), f"cannot read this directory: {exc.strerror}"))
            continue
        for entry in dir_entries:
            rel = f"{parent.rel}/{entry.name}" if parent.rel else entry.name
            where = f"{root}/{printable(rel)}"
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                problems.append(Problem(where, f"cannot read it: {exc.strerror}"))
                continue
            if not _is_utf8(entry.name):
                problems.append(
                    Problem(
                        where,
                        "the name is not valid UTF-8; Rock Ridge names are stored as UTF-8",
                        hint="rename it",
                    )
                )
                continue
            kind_bits = stat.S_IFMT(st.st_mode)
            depth = parent.depth + 1
            if kind_bits == stat.S_IFDIR:
                node = _node(rel, entry.name, st, depth, NodeKind.DIR)
                stack.append((node, entry.path))
            elif kind_bits == stat.S_IFREG:
                node = _node(rel, entry.name, st, depth, NodeKind.FILE)
                if not os.access(entry.path, os.R_OK):
                    problems.append(Problem(where, "cannot read this file: permission denied"))
                    continue
            elif kind_bits == stat.S_IFLNK:
                target = os.readlink(entry.path)
                if not _is_utf8(target):
                    problems.append(Problem(where, "the symlink target is not valid UTF-8"))
                    continue
                node = _node(rel, entry.name, st, depth, NodeKind.SYMLINK, target)
            else:
                what = _SPECIAL.get(kind_bits, "a special file")
                problems.append(
                    Problem(
                        where,
                        f"is {what}; an ISO image can only hold files, directories and symlinks",
                        hint="remove it from the tree",
                    )
                )
                continue
            parent.children.append(node)
    return top, problems
