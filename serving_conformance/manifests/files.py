"""What a path under a manifests directory is, and its text, read within bounds.

A walk over a user's directory meets symlink loops, links out of the tree, FIFOs (reading one
blocks forever), devices, unreadable entries, huge and non-UTF-8 files. Each becomes one sentence
for a LoadProblem; nothing here raises on them.

Symlinks are followed while they stay inside the manifests directories. A link pointing outside
every manifests directory is refused, not followed: a walk must not wander off into `/` or a home
directory because of one link; pass its target as another `--manifests-dir` to include it.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from serving_conformance.base.limits import MAX_MANIFEST_BYTES

_SPECIAL = {
    stat.S_IFIFO: "a FIFO (reading it could block forever)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


LOOP = "is a symlink loop"


@dataclass(frozen=True)
class Inspected:
    """`kind` is "file", "dir", "outside" (a symlink out of the manifests directories) or
    "problem"; for the last two `message` says why it is not read."""

    kind: str
    real: Path | None = None
    message: str = ""


def _problem(message: str) -> Inspected:
    return Inspected("problem", None, message)


def real_path(path: Path) -> Path | str:
    """The path with every symlink resolved, or why it cannot be."""
    try:
        return path.resolve(strict=True)
    except RuntimeError:  # Python 3.11-3.12 raise this for a loop
        return LOOP
    except FileNotFoundError:
        target = os.readlink(path) if path.is_symlink() else None
        return f"is a broken symlink (to {target})" if target is not None else "does not exist"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return LOOP
        return f"unreadable: {exc.strerror or exc}"


def repository_top(path: Path) -> Path | None:
    """The top of the git repository (a `.git` directory or file) holding `path`, if any."""
    for directory in [path, *path.parents]:
        if (directory / ".git").exists():
            return directory
    return None


def within(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def inspect(path: Path, real_roots: tuple[Path, ...]) -> Inspected:
    """What `path` is; symlinks leading outside `real_roots` (resolved roots) are refused."""
    real = real_path(path)
    if isinstance(real, str):
        return _problem(real)
    if real_roots and path.is_symlink() and not within(real, real_roots):
        return Inspected("outside", real, f"is a symlink to {real}, outside the manifests directories: not "
                         "followed (pass it as another --manifests-dir to include it)")
    try:
        mode = os.stat(real).st_mode
    except OSError as exc:
        return _problem(f"unreadable: {exc.strerror or exc}")
    if stat.S_ISDIR(mode):
        return Inspected("dir", real)
    if stat.S_ISREG(mode):
        return Inspected("file", real)
    return _problem(f"is {_SPECIAL.get(stat.S_IFMT(mode), 'not a regular file')}: not read")


def read_text(path: Path, limit: int = MAX_MANIFEST_BYTES) -> str:
    """The UTF-8 text of a regular file of at most `limit` bytes; ValueError saying why not."""
    try:
        # O_NONBLOCK: should the file have become a FIFO since it was inspected, opening it
        # does not wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ValueError(f"unreadable: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"is {_SPECIAL.get(stat.S_IFMT(info.st_mode), 'not a regular file')}: not read")
        if info.st_size > limit:
            raise ValueError(f"is {info.st_size:,} bytes, more than the {limit:,}-byte limit for one manifest file")
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise ValueError(f"unreadable: {exc.strerror or exc}") from exc
    if len(data) > limit:  # grew while being read
        raise ValueError(f"is more than the {limit:,}-byte limit for one manifest file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ValueError(f"is not UTF-8 text: byte 0x{data[exc.start]:02x} at line {line} (offset {exc.start})") from None
