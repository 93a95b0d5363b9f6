"""What a scan reads: a folder (walked), a single image, or a CSV list of paths, as (relative path, file) pairs."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from cleaner.io.pathlists import is_path_list, read_path_list
from cleaner.io.walker import WalkStats, walk_archive
from cleaner.scan.config import ScanError
from cleaner.scan.folder import text_path

#: how a path listed again in a CSV list is counted (it is scanned once, one row)
REPEATED = "repeated in the list (scanned once)"


@dataclass
class ScanTarget:
    """A folder (walked), a single image, or a CSV listing paths; ``root`` is what output paths are relative to."""

    root: Path
    kind: str  # folder, file, list
    target: Path

    @classmethod
    def from_arg(cls, archive) -> "ScanTarget":
        target = Path(archive).expanduser()
        if not target.exists():
            raise ScanError(f"{target}: archive not found")
        target = target.resolve()
        if target.is_dir():
            return cls(root=target, kind="folder", target=target)
        if is_path_list(target):
            return cls(root=target.parent, kind="list", target=target)
        return cls(root=target.parent, kind="file", target=target)

    def iter_files(self, stats: WalkStats) -> Iterator[tuple[str, Path]]:
        """(relative path with '/' separators, absolute path) for every candidate, in a fixed order."""
        if self.kind == "folder":
            for path in walk_archive(self.target, stats):
                yield text_path(path.relative_to(self.target).as_posix()), path
        elif self.kind == "file":
            stats.candidates += 1
            yield text_path(self.target.name), self.target
        else:
            seen = set()
            for item in read_path_list(self.target):
                if item.path in seen:  # one row per path: counted, so the merge is not silent
                    stats.skipped[REPEATED] += 1
                    continue
                seen.add(item.path)
                stats.candidates += 1
                yield item.path, item.absolute


def count_candidates(target: ScanTarget) -> int:
    """A first cheap pass (names only, nothing opened) so the progress bar can show an ETA."""
    return sum(1 for _ in target.iter_files(WalkStats()))


def plan(archive) -> tuple[Iterator[str], WalkStats]:
    """What a scan of ``archive`` would read (relative paths, lazily) and the walk statistics (for --dry-run)."""
    target = ScanTarget.from_arg(archive)
    stats = WalkStats()
    return (rel for rel, _ in target.iter_files(stats)), stats
