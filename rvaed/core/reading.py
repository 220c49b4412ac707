"""Reading a user's file without letting it hang or flood the reader: regular files only.

A name in a file command or the inbox can be a FIFO (an open blocks until a writer comes, a
read until it writes: the event loop or the trainer would wait forever), a device (endless
bytes), or a folder nested thousands deep (a recursive walk ends in RecursionError on Python
3.11). `read_regular` opens without blocking (O_NONBLOCK), checks what was opened with
fstat — the file itself, not the name, so nothing can be swapped in between — and reads at
most the size limit; `walk` lists a folder tree iteratively, to a depth limit.
"""

import errno
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

MAX_DEPTH = 16  # folders below a dropped folder (a collection is drummer/session/file)
_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"),
          (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"))


class NotRegular(OSError):
    """What was opened is no regular file; ``strerror`` says what it is."""

    def __init__(self, mode: int) -> None:
        super().__init__(errno.EINVAL, f"not a regular file ({kind(mode)})")


class TooLarge(OSError):
    """The file holds more than the limit; ``size`` is how much (or the limit + 1 when it
    grew while being read)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(errno.EFBIG, f"{size} bytes, more than the limit of {limit}")
        self.size = size


def kind(mode: int) -> str:
    """What a file of ``mode`` is, in words."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def read_regular(path: str | Path, max_bytes: int) -> bytes:
    """The bytes of the regular file ``path``; NotRegular, TooLarge or another OSError."""
    fd = os.open(path, _FLAGS)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegular(info.st_mode)
        if info.st_size > max_bytes:
            raise TooLarge(info.st_size, max_bytes)
        return _read_at_most(fd, max_bytes)
    finally:
        os.close(fd)


def _read_at_most(fd: int, max_bytes: int) -> bytes:
    chunks, total = [], 0
    while chunk := os.read(fd, min(1 << 20, max_bytes + 1 - total)):
        chunks.append(chunk)
        total += len(chunk)
        if total > max_bytes:  # it grew after the fstat
            raise TooLarge(total, max_bytes)
    return b"".join(chunks)


def walk(top: str | Path, skip: Callable[[str, str], bool] = lambda parent, name: False,
         on_error: Callable[[str, str], None] = lambda path, reason: None,
         max_depth: int = MAX_DEPTH, follow_links: bool = False
         ) -> Iterator[tuple[str, list[str]]]:
    """(folder, names of what is not a folder in it) for ``top`` and every folder below,
    parents before children, in name order; symlinks are followed only with
    ``follow_links``, and then each real folder once (a link back up the tree ends there).
    A folder that ``skip(parent, name)`` names is left out; one that cannot be read, or lies
    deeper than ``max_depth`` below ``top``, is passed to ``on_error`` with the reason."""
    stack = [(str(top), 0)]
    seen: set[str] = set()
    while stack:
        folder, depth = stack.pop()
        if follow_links:
            real = os.path.realpath(folder)
            if real in seen:
                continue
            seen.add(real)
        try:
            folders, others = _entries(folder, follow_links)
        except OSError as exc:
            on_error(folder, f"unreadable folder: {exc.strerror or exc}")
            continue
        yield folder, others
        below = [os.path.join(folder, name) for name in folders if not skip(folder, name)]
        if below and depth >= max_depth:
            on_error(folder, f"folders nested deeper than {max_depth} are not read")
            continue
        stack.extend((path, depth + 1) for path in reversed(below))


def _entries(folder: str, follow_links: bool = False) -> tuple[list[str], list[str]]:
    folders: list[str] = []
    others: list[str] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            (folders if _is_folder(entry, follow_links) else others).append(entry.name)
    return sorted(folders), sorted(others)


def _is_folder(entry: os.DirEntry, follow_links: bool) -> bool:
    try:
        return entry.is_dir(follow_symlinks=follow_links)
    except OSError:  # a link to nowhere, or one that cannot be looked at: not a folder
        return False
