"""Images named by a CSV list: the one reader of such lists, for scanning and for training alike.

A list is a CSV file whose ``path`` column (else its first column) names one image per row; a relative
path is relative to the CSV's own folder, and Windows separators are read as ``/``. Other columns
(``label``, ``patient_id``, ``weight``) are kept for whoever needs them.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

from cleaner.io.errors import UserInputError
from cleaner.io.readonly import noatime_opener

#: a file with one of these suffixes given where images are expected is a list of them, not an image
LIST_SUFFIXES = (".csv",)


def is_path_list(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a CSV list of images (by its suffix) rather than an image or a folder."""
    return Path(path).suffix.lower() in LIST_SUFFIXES and not Path(path).is_dir()


@dataclass
class ListedPath:
    """One row of a list: the path as written (``/`` separators), where it points, and the row's other cells."""

    path: str
    absolute: Path
    line: int  # line of the CSV, for messages
    cells: dict = field(default_factory=dict)


def read_path_list(csv_path: str | os.PathLike, required: tuple[str, ...] = ()) -> list[ListedPath]:
    """Every non-empty row of the list at ``csv_path``; ``required`` columns must be there (a clear error if not)."""
    csv_path = Path(csv_path)
    try:
        with open(csv_path, newline="", encoding="utf-8-sig", opener=noatime_opener) as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserInputError(f"{csv_path}: cannot be read as a CSV list of images ({exc})") from None
    if not rows:
        return []
    header = [h.strip() for h in rows[0]]
    missing = [c for c in required if c not in header]
    if missing:
        raise UserInputError(f"{csv_path}: needs a {' and a '.join(repr(c) for c in missing)} column "
                             f"(found {', '.join(header) or 'none'})")
    col = header.index("path") if "path" in header else 0
    listed = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) <= col or not row[col].strip():
            continue
        written = row[col].strip().replace("\\", "/")
        target = Path(written)
        cells = {name: (row[i].strip() if i < len(row) else "") for i, name in enumerate(header) if i != col}
        listed.append(ListedPath(written, target if target.is_absolute() else csv_path.parent / target, line, cells))
    return listed
