"""One cxclean process at a time in an output folder.

Two scans writing one ``--out`` (two ``--resume`` runs, or two fresh runs racing past the "folder not empty"
check) would interleave their journals and review copies, and one would crash. The lock is an advisory
``flock`` on ``<folder>/.cxclean.lock``, which the kernel releases when its process ends however it ends
(SIGKILL, OOM, power loss), so a lock left by a dead process never blocks: the next run takes it over and
rewrites who holds it. The file tells whoever finds the folder busy which process holds it.
"""
from __future__ import annotations

import datetime as _dt
import errno
import json
import os
import socket
import sys
from pathlib import Path

from cleaner.io.errors import CxcleanError

LOCK_FILE = ".cxclean.lock"


class FolderBusyError(CxcleanError):
    """Another cxclean process holds the folder's lock; the message names it (pid, host, start time)."""


def _describe(holder: dict) -> str:
    if not holder:
        return "a process that has not yet written who it is"
    text = f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}"
    return text + (f": {holder['command']}" if holder.get("command") else "")


class FolderLock:
    """``with FolderLock(out, "scan"):`` holds ``out`` for this process (creating ``out`` if needed); a second
    holder gets ``FolderBusyError``. Where the file system has no locks (some network shares) it warns and
    goes on unlocked."""

    def __init__(self, folder: str | os.PathLike, purpose: str):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.purpose = purpose
        self.fd: int | None = None
        self.created = False

    def __enter__(self) -> "FolderLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        import fcntl

        self.created = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _read_holder(fd)
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise FolderBusyError(
                        f"{self.folder}: another cxclean is using this folder ({_describe(holder)}); wait for it "
                        f"to finish or stop it, then run again") from None
                print(f"warning: {self.folder}: cannot lock ({exc.strerror}); make sure no other cxclean writes "
                      "here at the same time", file=sys.stderr)
                return
            try:  # a holder that ended may have removed the file after we opened it: lock the one at the path
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self.fd = fd
        record = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": self.purpose,
                  "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                  "command": " ".join(sys.argv)}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode("utf-8", "replace"), 0)

    def release(self) -> None:
        if self.fd is not None:
            try:
                os.unlink(self.path)  # while still locked: no one can be holding the file we remove
            except FileNotFoundError:
                pass
            os.close(self.fd)
            self.fd = None
        if self.created:
            try:
                self.folder.rmdir()  # made only to hold the lock, and nothing was written: leave no trace
            except OSError:
                pass


def _read_holder(fd: int) -> dict:
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace") or "{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}
