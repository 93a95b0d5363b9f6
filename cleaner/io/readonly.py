"""Reading an archive without re-timestamping it.

Reading a file or listing a folder updates its access time (with Linux's default ``relatime``: the first read
after a change, and once a day). Archive owners audit by these times, so every archive file and folder cxclean
opens is opened with ``O_NOATIME`` where the system allows it (Linux, for the file's owner or a process with
``CAP_FOWNER``, e.g. root); elsewhere it is a plain read, and the access time may change as with any reader.
"""
from __future__ import annotations

import os
from typing import BinaryIO

_NOATIME = getattr(os, "O_NOATIME", 0)


def noatime_opener(path, flags: int) -> int:
    """An ``opener`` for ``open()``: ``os.open`` with ``O_NOATIME``, or without it where that is refused
    (a file of another user: EPERM)."""
    if _NOATIME:
        try:
            return os.open(path, flags | _NOATIME)
        except PermissionError:
            pass
    return os.open(path, flags)


def open_quietly(path: str | os.PathLike) -> BinaryIO:
    """``open(path, "rb")`` that leaves the file's access time alone where it can (``noatime_opener``)."""
    return open(path, "rb", opener=noatime_opener)


def list_folder(folder: str | os.PathLike) -> list[tuple[str, bool, bool]]:
    """``(name, is a folder (links followed), is a link)`` for each entry of ``folder``, sorted by name, listed
    without touching its access time where allowed. Everything is asked while the folder is open: a
    ``DirEntry`` of a listing by descriptor would need it later."""
    fd = noatime_opener(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        with os.scandir(fd) as it:
            return sorted((e.name, _is_dir(e), e.is_symlink()) for e in it)
    finally:
        os.close(fd)


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=True)
    except OSError:  # a link loop or a vanished target: not a folder; the reader names it
        return False


def within(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether the real location of ``path`` (links followed) is ``folder`` or below it."""
    real, base = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([real, base]) == base
