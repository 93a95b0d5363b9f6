"""``cxclean inspect``: how each file was read, or why it could not be."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from cleaner.io.images import read_or_error
from cleaner.io.parallel import bounded_ordered_map
from cleaner.io.walker import WalkStats, walk_archive

COLUMNS = [
    "path", "status", "error", "format", "transfer_syntax", "photometric", "bits", "width", "height",
    "frames", "decoder", "age_years", "sex", "patient_id", "study_uid", "modality", "view_position",
    "body_part", "notes",
]


@dataclass
class InspectResult:
    rows: list[dict]
    stats: WalkStats

    @property
    def failed(self) -> int:
        return sum(r["status"] == "error" for r in self.rows)


def inspect_file(path: str | os.PathLike) -> dict:
    """One row describing how ``path`` reads; never raises for a bad image."""
    loaded, error = read_or_error(path)
    if loaded is None:
        return {"path": str(path), "status": "error", "error": error}
    row = loaded.meta.as_row()
    row.update(status="ok", error="")
    return row


def _crashed(path, why: str) -> dict:
    return {"path": str(path), "status": "error", "error": f"decoder crashed: {why}"}


def iter_candidates(paths: Iterable[str | os.PathLike], stats: WalkStats) -> Iterator[Path]:
    for root in paths:
        yield from walk_archive(root, stats)


def inspect_paths(paths: Iterable[str | os.PathLike], workers: int = 1, on_row=None) -> InspectResult:
    stats = WalkStats()
    rows = []
    for row in bounded_ordered_map(inspect_file, iter_candidates(paths, stats), workers, chunksize=4, ahead=64,
                                   on_crash=_crashed, isolate=True):
        rows.append({c: row.get(c) for c in COLUMNS})
        if on_row:
            on_row(rows[-1])
    for folder, reason in stats.folder_errors:
        row = {c: None for c in COLUMNS}
        row.update(path=folder, status="error", error=reason)
        rows.append(row)
        if on_row:
            on_row(row)
    return InspectResult(rows, stats)


def format_row(row: dict) -> str:
    if row["status"] != "ok":
        return f"FAIL  {row['path']}: {row['error']}"
    parts = [row["format"]]
    if row.get("transfer_syntax"):
        parts.append(row["transfer_syntax"])
    parts += [str(row["photometric"]), f"{row['bits']}-bit", f"{row['width']}x{row['height']}"]
    if row.get("frames") and row["frames"] > 1:
        parts.append(f"{row['frames']} frames")
    if row.get("decoder"):
        parts.append(f"via {row['decoder']}")
    age = row.get("age_years")
    parts.append(f"age {round(age, 1):g}" if age is not None else "age ?")
    parts.append(f"view {row.get('view_position') or '?'}")
    if row.get("modality"):
        parts.append(row["modality"])
    if row.get("notes"):
        parts.append(f"[{row['notes']}]")
    return f"ok    {row['path']}: " + ", ".join(parts)
