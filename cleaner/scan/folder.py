"""The scan-folder contract: every file, folder and column a scan writes, how they are written, and the
one reader of a scan folder that every later step (review, apply, reports, evaluation) goes through.

The names and columns here are a contract read by ``review apply`` and by users joining the CSVs with
their labels; change them only together with the README section that documents them.
"""
from __future__ import annotations

import csv
import glob
import io
import json
import math
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from cleaner.io.errors import CxcleanError
from cleaner.io.readonly import open_quietly
from cleaner.scan.orientation import TURN_COLUMN

# --------------------------------------------------------------------------- names

SCORES_FILE = "scores.csv"
EXCLUSIONS_FILE = "exclusions.csv"
ERRORS_FILE = "errors.csv"
DETECTORS_FILE = "detectors.csv"
SUMMARY_FILE = "summary.json"
#: the scan's journal while it runs (rows so far) and the settings it runs with (what ``--resume`` checks)
JOURNAL_FILE = "scores.partial.jsonl"
CONFIG_FILE = "scan.config.json"
#: the journal of scans started before it was JSON Lines (removed by ``--overwrite``)
OLD_JOURNAL_FILE = "scores.partial.csv"
#: one folder per exclusion reason (``reason_folder``) with a copy of each flagged file
REVIEW_DIR = "review"
#: a reviewer moves a false positive into ``review/<reason>/_keep/``
KEEP_DIR = "_keep"
#: the review page and the images it shows, inside ``review/``
REVIEW_PAGE = "index.html"
THUMBS_DIR, OVERLAYS_DIR, FULL_DIR = "_thumbs", "_overlays", "_full"
#: what ``review build`` prepared for each flagged film (and each contact sheet), inside ``review/``: the next
#: build prepares only what is new or changed
REVIEW_ASSETS_FILE = "_assets.json"
#: written by ``review apply``
EXCLUSIONS_FINAL_FILE = "exclusions_final.csv"
LABELS_FILE = "labels.csv"
LABELS_DIR = "labels"
REVIEW_APPLY_FILE = "review_apply.json"
#: written by ``report``
REPORT_PAGE = "report.html"
REPORT_DIR = "report"
STUDIES_FILE = "studies.csv"
#: Every file or folder a scan owns in ``--out``; ``--overwrite`` removes only these.
OWNED = (SCORES_FILE, EXCLUSIONS_FILE, ERRORS_FILE, DETECTORS_FILE, SUMMARY_FILE, REVIEW_DIR, JOURNAL_FILE, CONFIG_FILE,
         OLD_JOURNAL_FILE)

# --------------------------------------------------------------------------- columns

BASE_COLUMNS = [
    "path", "status", "error", "format", "photometric", "width", "height", "age_years", "age_source",
    "sex", "view_position", "body_part", "modality", "patient_id", "study_uid", "notes",
]
DETECTOR_COLUMNS = ["name", "kind", "version", "threshold", "threshold_source", "bundle_path", "input_size", "input_borders",
                    "gate"]
ERROR_COLUMNS = ["path", "error"]
LABEL_COLUMNS = ["path", "label"]
#: exclusions_final.csv adds these to exclusions.csv's columns
DECISION_COLUMNS = ["decision", "reason_decisions"]
UNKNOWN_AGE_REASON = "age_unknown"
#: the exclusion reason of a film whose pixels are all the same value (its scores mean nothing)
BLANK_REASON = "blank"


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


def text_path(path: str) -> str:
    """A path as the scan's CSVs hold it: UTF-8 text. The bytes of a file name that are not UTF-8 (read by
    Python as surrogate escapes, which no UTF-8 file can hold) are written as ``\\xNN``, so the file is still
    a row; every other name is kept as it is."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


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


#: temporary files of the atomic writers: ``.<name>.<random>.tmp`` beside the file they become
TMP_SUFFIX = ".tmp"


def _temporary(path: Path):
    """A new, exclusive temporary file beside ``path`` as (binary file, its path). Made with mode 0666 less the
    umask, as ``open`` makes files, so a CSV moved into place has the permissions of any file this user
    writes (``mkstemp``'s 0600 would make scan outputs private while review apply's were not)."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TMP_SUFFIX}")
        try:
            return os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb"), str(tmp)
        except FileExistsError:
            continue
    raise FileExistsError(f"{path}: cannot make a temporary file beside it")


def stale_temporaries(out: Path) -> list[Path]:
    """Temporary files a scan killed while writing its final files left in ``out``: they are the scan's own,
    removed by ``--overwrite`` and ``--resume``."""
    return sorted(p for name in OWNED for p in Path(out).glob(f".{glob.escape(name)}.*{TMP_SUFFIX}") if p.is_file())


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and ``os.replace``: readers never see half a file."""
    path = Path(path)
    fh, tmp = _temporary(path)
    try:
        with fh:
            fh.write(text.encode("utf-8"))
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
        raw, self.tmp = _temporary(self.path)
        self.fh = io.TextIOWrapper(raw, encoding="utf-8", newline="")
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


_UNSAFE_CHARS = re.compile(r"[%\\\x00-\x1f\x7f]")
#: path parts that cannot stand as a folder or file name below a reason folder, and what stands for them
_SPECIAL_PARTS = {"": "%2F", ".": "%2E", "..": "%2E%2E", KEEP_DIR: "%5F" + KEEP_DIR[1:]}


def review_relpath(rel: str) -> str:
    """Where the copies of the scanned file ``rel`` sit below each reason folder: its scan path, one folder per
    ``/``, with ``%``, ``\\`` and control characters percent-escaped in every name, and the parts that cannot be
    names there escaped whole: ``..`` and ``.``, the empty part before an absolute path from a list (``%2F``),
    and ``_keep`` (which would read as a reviewer's decision). Ordinary names are kept as they are; no two
    scan paths share a result, and none leaves the folder."""
    parts = rel.split("/")
    return "/".join(_SPECIAL_PARTS.get(part) or _UNSAFE_CHARS.sub(lambda m: f"%{ord(m.group()):02X}", part)
                    for part in parts)


def review_targets(out: Path, rel_path: str, reasons: Sequence[str]) -> list[Path]:
    """Where the review copies of ``rel_path`` go: one per reason, at ``review_relpath``."""
    rel = review_relpath(rel_path)
    return [Path(out) / REVIEW_DIR / reason_folder(r) / rel for r in reasons]


def copy_for_review(source: Path, out: Path, rel_path: str, reasons: Sequence[str], dicom: bool) -> list[Path]:
    """Copy ``source`` into each reason's folder: read without touching its access time where allowed
    (``readonly``), the copy given the source's times and permissions as ``shutil.copy2`` would.

    DICOM copies get a ``<file name>.png`` preview beside them, rendered by the one reader, because a
    reviewer's file browser cannot open DICOM. Returns the copies written.
    """
    targets = review_targets(out, rel_path, reasons)
    preview = None
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open_quietly(source) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        shutil.copystat(source, target)
        if dicom:
            if preview is None:
                preview = render_preview(source)
            if preview is not None:
                preview.save(target.with_name(target.name + ".png"))
    return targets


def render_preview(source: Path):
    """The display-ready image (MONOCHROME1 already inverted, LUTs applied) as an 8-bit PIL image, or None."""
    from PIL import Image

    from cleaner.io.images import read_or_error

    loaded, _ = read_or_error(source)
    if loaded is None:
        return None
    return Image.fromarray(np.clip(np.round(loaded.pixels * 255.0), 0, 255).astype(np.uint8))


def write_frame(path: Path, frame) -> None:
    """A pandas table as CSV, atomically (review apply, reports): readers never see half a file. Lines end in
    ``\r\n`` as the scan's own CSVs do, which also makes pandas quote a ``\r`` inside a name (with ``\n`` alone
    it would not, and the name would read back as two lines)."""
    atomic_write_text(Path(path), frame.to_csv(index=False, lineterminator="\r\n"))


# --------------------------------------------------------------------------- reading a scan folder back


class ScanOutputError(CxcleanError):
    """A scan output folder that cannot be read: names the folder and what is missing or wrong."""


def split_reasons(value) -> list[str]:
    """The ``reasons`` cell (``rotation;age<10``) as a list."""
    return [r for r in str(value or "").split(";") if r]


def as_float(value) -> float | None:
    """A cell as a finite float, or None (empty, text, NaN)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


@dataclass
class ScanOutput:
    """A scan output folder read back: the tables as strings (empty = unknown), as the scan wrote them."""

    root: Path
    scores: object  # pandas DataFrames of strings
    exclusions: object
    detectors: object
    summary: dict
    errors: object = None

    @property
    def archive(self) -> Path:
        return Path(self.summary.get("archive", ""))

    @property
    def root_of_paths(self) -> Path:
        """The folder the scan's paths are relative to: the archive folder, or the folder of the scanned list
        or image (``root`` in summary.json; guessed from ``archive`` for scans made before it was recorded)."""
        if self.summary.get("root"):
            return Path(self.summary["root"])
        archive = self.archive
        return archive.parent if archive.is_file() or (not archive.is_dir() and archive.suffix) else archive

    def source(self, rel: str) -> Path:
        """The scanned file of the scan path ``rel`` (an absolute path from a list stays itself)."""
        return self.root_of_paths / rel

    @property
    def review_dir(self) -> Path:
        return self.root / REVIEW_DIR

    def reasons(self) -> list[str]:
        """Every exclusion reason, detector reasons first (detectors.csv order), then the rest sorted."""
        found = []
        for r in self.exclusions["reasons"]:
            for reason in split_reasons(r):
                if reason not in found:
                    found.append(reason)
        names = list(self.detectors["name"]) if len(self.detectors) else []
        return [n for n in names if n in found] + sorted(r for r in found if r not in names)

    def flagged(self, reason: str):
        mask = self.exclusions["reasons"].map(lambda r: reason in split_reasons(r))
        return self.exclusions[mask]

    def detector_for(self, reason: str) -> dict | None:
        """The detectors.csv row whose name (or, failing that, kind) is the reason; None for rules like age<10."""
        for key in ("name", "kind"):
            if key in self.detectors:
                hit = self.detectors[self.detectors[key] == reason]
                if len(hit):
                    return hit.iloc[0].to_dict()
        return None


def _read_csv(path: Path, required: list[str]):
    import pandas as pd

    if not path.is_file():
        raise ScanOutputError(f"{path}: missing (is {path.parent} a cxclean scan output folder?)")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ScanOutputError(f"{path}: cannot be read as CSV ({exc})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ScanOutputError(f"{path}: lacks column(s) {', '.join(missing)}")
    return df


def load_scan_output(root: str | os.PathLike) -> ScanOutput:
    """Read the scan output folder ``root``; ``ScanOutputError`` names what is missing."""
    root = Path(root)
    if not root.is_dir():
        raise ScanOutputError(f"{root}: not a folder")
    summary_path = root / SUMMARY_FILE
    if not summary_path.is_file():
        raise ScanOutputError(f"{summary_path}: missing (is {root} a cxclean scan output folder?)")
    try:
        summary = json.loads(summary_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ScanOutputError(f"{summary_path}: not valid JSON ({exc})") from None
    scores = _read_csv(root / SCORES_FILE, ["path", "status", "excluded", "reasons"])
    exclusions = _read_csv(root / EXCLUSIONS_FILE, ["path", "reasons"])
    detectors = _read_csv(root / DETECTORS_FILE, ["name", "threshold"])
    errors = _read_csv(root / ERRORS_FILE, ERROR_COLUMNS) if (root / ERRORS_FILE).is_file() else None
    return ScanOutput(root, scores, exclusions, detectors, summary, errors)


def find_review_copy(review_dir: Path, folder: str, rel: str) -> Path | None:
    """The browser-viewable copy of ``rel`` in ``review/<folder>/`` (for DICOM its PNG preview),
    also when a reviewer moved it to ``_keep/``; None if it is gone."""
    from cleaner.io.images import sniff_format

    name = review_relpath(rel)
    for base in (review_dir / folder, review_dir / folder / KEEP_DIR):
        preview = base / (name + ".png")
        if preview.is_file():
            return preview
        copy = base / name
        if copy.is_file():
            try:
                if sniff_format(copy) in ("PNG", "JPEG", "BMP"):
                    return copy
            except OSError:
                pass
    return None
