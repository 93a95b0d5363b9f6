"""Walks an archive: every candidate file exactly once, in a deterministic order.

Hidden and system files and obvious non-images are skipped *with a count*; folders that
cannot be listed are reported as errors, so nothing disappears without a trace.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from cleaner.io.readonly import list_folder, within

SYSTEM_FILES = {".ds_store", "thumbs.db", "desktop.ini", "ehthumbs.db", "icon\r", "dicomdir"}
SYSTEM_DIRS = {"__macosx", "$recycle.bin", "system volume information", "@eadir", ".trashes", ".spotlight-v100"}
NON_IMAGE_SUFFIXES = {
    ".txt", ".csv", ".tsv", ".json", ".xml", ".html", ".htm", ".md", ".pdf", ".log", ".ini", ".yaml",
    ".yml", ".py", ".sh", ".bat", ".zip", ".gz", ".tgz", ".tar", ".7z", ".rar", ".doc", ".docx", ".xls",
    ".xlsx", ".rtf", ".db", ".sqlite", ".mp4", ".avi", ".mov", ".exe", ".dll", ".lnk", ".url",
}


@dataclass
class WalkStats:
    """Filled while walking: what was passed over and why, and folders that could not be read."""

    candidates: int = 0
    skipped: Counter = field(default_factory=Counter)
    folder_errors: list[tuple[str, str]] = field(default_factory=list)

    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def describe(self) -> str:
        parts = [f"{n} {reason}" for reason, n in sorted(self.skipped.items())]
        return ", ".join(parts) if parts else "none"


def skip_reason(name: str) -> str | None:
    lower = name.lower()
    if lower in SYSTEM_FILES:
        return "system file"
    if name.startswith("."):
        return "hidden file"
    suffix = os.path.splitext(lower)[1]
    if suffix in NON_IMAGE_SUFFIXES:
        return f"non-image ({suffix})"
    return None


#: how a symlinked folder that leads out of the archive is counted (it is not followed)
OUTSIDE_LINK = "symlinked folder outside the archive (not followed)"


def walk_archive(root: str | os.PathLike, stats: WalkStats | None = None) -> Iterator[Path]:
    """Yield candidate files below ``root`` (or ``root`` itself if it is a file), sorted by path.

    Symlinked folders inside the archive are followed once: a folder reached twice (a loop, or a second link
    to it) is skipped and counted. A symlinked folder that leads out of ``root`` is not followed (counted): it
    could reach anything, the scan's own live output folder included. A symlink to a file is a candidate in
    its own right; a broken one is yielded too, so the reader reports it. Folders are listed without
    touching their access times where the system allows (``readonly``).
    """
    stats = stats if stats is not None else WalkStats()
    root = Path(root)
    if not root.is_dir():
        if not root.exists() and not root.is_symlink():
            stats.folder_errors.append((str(root), "path not found"))
            return
        stats.candidates += 1
        yield root
        return
    seen: set[tuple[int, int]] = set()
    yield from _walk_dir(root, stats, seen, root)


def _walk_dir(folder: Path, stats: WalkStats, seen: set, root: Path) -> Iterator[Path]:
    try:
        st = folder.stat()
    except OSError as exc:
        stats.folder_errors.append((str(folder), f"cannot open folder: {exc.strerror or exc}"))
        return
    key = (st.st_dev, st.st_ino)
    if key in seen:
        stats.skipped["folder already walked (symlink loop or second link)"] += 1
        return
    seen.add(key)
    try:
        entries = list_folder(folder)
    except OSError as exc:
        stats.folder_errors.append((str(folder), f"cannot list folder: {exc.strerror or exc}"))
        return
    for name, is_dir, is_link in entries:
        path = folder / name
        if is_dir:
            if name.startswith(".") or name.lower() in SYSTEM_DIRS:
                stats.skipped["hidden or system folder"] += 1
            elif is_link and not within(path, root):
                stats.skipped[OUTSIDE_LINK] += 1
            else:
                yield from _walk_dir(path, stats, seen, root)
            continue
        reason = skip_reason(name)
        if reason:
            stats.skipped[reason] += 1
            continue
        stats.candidates += 1
        yield path
