"""What a scan writes: the column contract, atomic CSV/JSON writing and the review folders.

The column names here are a contract read by ``review apply`` and by users joining the CSVs
with their labels; change them only together with the README section that documents them.
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from cleaner.scan.orientation import TURN_COLUMN

SCORES_FILE = "scores.csv"
EXCLUSIONS_FILE = "exclusions.csv"
ERRORS_FILE = "errors.csv"
DETECTORS_FILE = "detectors.csv"
SUMMARY_FILE = "summary.json"
REVIEW_DIR = "review"
KEEP_DIR = "_keep"
#: Every file or folder a scan owns in ``--out``; ``--overwrite`` removes only these.
OWNED = (SCORES_FILE, EXCLUSIONS_FILE, ERRORS_FILE, DETECTORS_FILE, SUMMARY_FILE, REVIEW_DIR)

BASE_COLUMNS = [
    "path", "status", "error", "format", "photometric", "width", "height", "age_years", "age_source",
    "sex", "view_position", "body_part", "modality", "patient_id", "study_uid",
]
DETECTOR_COLUMNS = ["name", "kind", "version", "threshold", "threshold_source", "bundle_path", "input_size"]
ERROR_COLUMNS = ["path", "error"]
UNKNOWN_AGE_REASON = "age_unknown"


def score_columns(detector_names: Sequence[str], turn: bool = False) -> list[str]:
    """scores.csv columns, in contract order, for detectors given in name order; ``turn``: a rotation
    detector is among them, so the turn that makes a rotated film upright is reported."""
    cols = list(BASE_COLUMNS)
    for name in detector_names:
        cols += [f"{name}_score", f"{name}_flag"]
    return cols + ([TURN_COLUMN] if turn else []) + ["excluded", "reasons"]


def exclusion_columns(detector_names: Sequence[str], turn: bool = False) -> list[str]:
    return (["path", "reasons"] + [f"{name}_score" for name in detector_names] + ([TURN_COLUMN] if turn else [])
            + ["age_years"])


def age_reason(min_age: float) -> str:
    """The exclusion reason for a patient younger than ``min_age``: ``age<10``, ``age<2.5``."""
    return f"age<{min_age:g}"


def reason_folder(reason: str) -> str:
    """A reason as a folder name safe on every file system: ``age<10`` -> ``age_under_10``."""
    text = reason.replace("<=", "_at_most_").replace(">=", "_at_least_")
    text = text.replace("<", "_under_").replace(">", "_over_")
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", text)
    text = re.sub(r"_+", "_", text).strip("_.")
    return text or "unnamed"


def format_score(value: float) -> str:
    """Scores with 6 decimals: enough to audit a threshold, stable across batch compositions."""
    return f"{float(value):.6f}"


def format_age(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return f"{float(value):g}"


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and ``os.replace``: readers never see half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class AtomicCsv:
    """A CSV written to a temporary file and moved into place on ``commit()`` (streams rows, any size)."""

    def __init__(self, path: Path, columns: Sequence[str]):
        self.path = Path(path)
        self.columns = list(columns)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self.fh = os.fdopen(fd, "w", newline="", encoding="utf-8")
        self.writer = csv.DictWriter(self.fh, fieldnames=self.columns, extrasaction="ignore")
        self.writer.writeheader()
        self.rows = 0

    def write(self, row: dict) -> None:
        self.writer.writerow(row)
        self.rows += 1

    def commit(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if not self.fh.closed:
            self.fh.close()
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[dict]) -> int:
    out = AtomicCsv(path, columns)
    try:
        for row in rows:
            out.write(row)
    except BaseException:
        out.abort()
        raise
    out.commit()
    return out.rows


def write_summary(path: Path, summary: dict) -> None:
    atomic_write_text(path, json.dumps(summary, indent=2, sort_keys=False, default=str) + "\n")


def review_targets(out: Path, rel_path: str, reasons: Sequence[str]) -> list[Path]:
    """Where the review copies of ``rel_path`` go: one per reason, keeping the relative path."""
    rel = Path(*[p for p in Path(rel_path.replace("\\", "/")).parts if p not in ("/", "..", ".")]).as_posix()
    rel = rel.lstrip("/")
    return [Path(out) / REVIEW_DIR / reason_folder(r) / rel for r in reasons]


def copy_for_review(source: Path, out: Path, rel_path: str, reasons: Sequence[str], dicom: bool) -> list[Path]:
    """Copy ``source`` (read-only access, ``copy2`` keeps its times) into each reason's folder.

    DICOM copies get a ``<file name>.png`` preview beside them, rendered by the one reader, because a
    reviewer's file browser cannot open DICOM. Returns the copies written.
    """
    targets = review_targets(out, rel_path, reasons)
    preview = None
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        if dicom:
            if preview is None:
                preview = render_preview(source)
            if preview is not None:
                preview.save(target.with_name(target.name + ".png"))
    return targets


def render_preview(source: Path):
    """The display-ready image (MONOCHROME1 already inverted, LUTs applied) as an 8-bit PIL image."""
    from PIL import Image

    from cleaner.io.errors import ImageReadError
    from cleaner.io.images import read_image

    try:
        pixels = read_image(source).pixels
    except ImageReadError:
        return None
    return Image.fromarray(np.clip(np.round(pixels * 255.0), 0, 255).astype(np.uint8))
