"""``cxclean review build``: the page (and contact sheets) a person uses to check what a scan flagged.

Reads a scan output folder through the scan-folder contract (``cleaner.scan.folder``); never re-scores.
For each flagged image it writes a thumbnail and, with the detector that flagged it, a saliency overlay,
so the reviewer sees *why*. The page ``review/index.html`` is a single offline file (``page.py``).

Decisions made on the page are exported as ``decisions.csv`` (``path,reason,decision`` where decision
is ``keep`` = false positive, or ``exclude`` = confirmed); ``cxclean review apply`` reads them back
(``apply.py``).
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cleaner.io.parallel import ordered_map
from cleaner.review.images import asset_id, prepare_image
from cleaner.review.overlays import OverlayWriter, load_detectors
from cleaner.review.page import render_page, section
from cleaner.review.sheets import write_contact_sheets
from cleaner.scan.folder import (FULL_DIR, OVERLAYS_DIR, REVIEW_PAGE, THUMBS_DIR, ScanOutput, find_review_copy,
                                 load_scan_output, reason_folder)
from cleaner.scan.orientation import TURN_COLUMN, quarter_turns

ASSET_DIRS = (THUMBS_DIR, OVERLAYS_DIR, FULL_DIR)


@dataclass
class BuildResult:
    page: Path
    sections: dict  # reason -> number of images
    images: int
    overlays: int
    contact_sheets: list
    warnings: list = field(default_factory=list)
    seconds: float = 0.0


def build_review(scan_out: str | os.PathLike, workers: int = 1, saliency: bool = True,
                 contact_sheets: bool = True, progress: bool = True, saliency_method: str = "auto") -> BuildResult:
    """Write ``SCAN_OUT/review/index.html`` with thumbnails, overlays and contact sheets."""
    t0 = time.perf_counter()
    scan = load_scan_output(scan_out)
    review = scan.review_dir
    review.mkdir(exist_ok=True)
    for d in ASSET_DIRS:
        if (review / d).is_dir():
            shutil.rmtree(review / d)
        (review / d).mkdir()
    notes: list[str] = []

    def warn(msg):
        notes.append(msg)
        print(f"warning: {msg}", file=sys.stderr)

    reasons = scan.reasons()
    detectors = load_detectors(scan, reasons, warn) if saliency else {}
    images = flagged_images(scan, reasons)
    tasks = image_tasks(scan, images, detectors, review)
    overlays = OverlayWriter(detectors, review, images, saliency_method, warn)
    _read_images(tasks, images, overlays, workers, progress, warn)
    scores_by_path = {r["path"]: r for r in scan.scores.to_dict("records")}
    sections = [section(scan, reason, images, review, scores_by_path) for reason in reasons]
    sheets = [p for sec in sections for p in write_contact_sheets(review, sec["reason"], sec["items"])] \
        if contact_sheets else []
    page = review / REVIEW_PAGE
    page.write_text(render_page(scan, sections, notes), encoding="utf-8")
    return BuildResult(page, {s["reason"]: len(s["items"]) for s in sections}, len(images), overlays.written, sheets,
                       notes, time.perf_counter() - t0)


def flagged_images(scan: ScanOutput, reasons: list[str]) -> dict[str, dict]:
    """One entry per flagged image (an image flagged for two reasons is read once): its reasons and row."""
    images: dict[str, dict] = {}
    for reason in reasons:
        for _, row in scan.flagged(reason).iterrows():
            entry = images.setdefault(row["path"], {"reasons": [], "row": row, "id": asset_id(row["path"])})
            entry["reasons"].append(reason)
    return images


def image_tasks(scan: ScanOutput, images: dict, detectors: dict, review: Path) -> list[tuple]:
    """``prepare_image``'s task per image: the archive file, its review copy as a fallback, where its thumbnail
    (and, where no review copy is viewable, its full-size PNG) goes, and the model inputs its overlays need."""
    specs = {name: det.info["input"] for name, det in detectors.items()}
    tasks = []
    for rel, entry in images.items():
        aid = entry["id"]
        src = scan.source(rel) if scan.summary.get("archive") else None  # else only review copies
        copy = None
        for reason in entry["reasons"]:
            copy = copy or find_review_copy(review, reason_folder(reason), rel)
        needed = {r: specs[r] for r in entry["reasons"] if r in specs}
        full = review / FULL_DIR / f"{aid}.png" if copy is None else None
        entry["full"] = copy.relative_to(review).as_posix() if copy is not None else f"{FULL_DIR}/{aid}.png"
        tasks.append((str(src) if src else None, str(copy) if copy else None, str(review / THUMBS_DIR / f"{aid}.jpg"),
                      str(full) if full else None, needed))
    return tasks


def _read_images(tasks: list, images: dict, overlays: OverlayWriter, workers: int, progress: bool, warn) -> None:
    """Read every image once (in parallel); queue its overlays as the scan scored it (turned upright for every
    detector but rotation)."""
    from tqdm import tqdm

    results = ordered_map(prepare_image, tasks, workers=workers, chunksize=4)
    bar = tqdm(total=len(tasks), desc="review page", unit="img", disable=not progress, file=sys.stderr)
    for rel, res in zip(images, results):
        bar.update(1)
        entry = images[rel]
        if not res["ok"]:
            entry["error"] = res["error"]
            warn(f"{rel}: no thumbnail ({res['error']})")
            continue
        entry["thumb"] = f"{THUMBS_DIR}/{entry['id']}.jpg"
        try:
            turn = quarter_turns(entry["row"].get(TURN_COLUMN)) if TURN_COLUMN in entry["row"] else 0
        except ValueError as exc:
            warn(f"{rel}: overlays drawn on the film as it lies ({exc})")
            turn = 0
        for reason, x in res["inputs"].items():
            k = turn if overlays.detectors[reason].kind != "rotation" else 0
            overlays.add(reason, rel, np.rot90(x, k).copy() if k else x, res["thumb"], k)
    overlays.flush_all()
    bar.close()
