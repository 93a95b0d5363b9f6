"""``cxclean review build``: the page (and contact sheets) a person uses to check what a scan flagged.

Reads a scan output folder through the scan-folder contract (``cleaner.scan.folder``); never re-scores.
Three stages, each with its own progress bar: *images* (worker processes read each flagged file once and
write its thumbnail, and a full-size preview where no review copy can be shown, and return the model inputs
its overlays need), *overlays* (per detector, compiled saliency batches in this process, while the workers
go on reading), *page* (contact sheets and ``review/index.html``, a single offline file: ``page.py``).

The build is incremental (``manifest.py``): what the last build prepared is reused while the film, the
detector and the saliency method are unchanged, so re-running after a ``--resume``d or extended scan
prepares only the new flagged films (docs/decisions/0006).

Decisions made on the page are exported as ``decisions.csv`` (``path,reason,decision`` where decision
is ``keep`` = false positive, or ``exclude`` = confirmed); ``cxclean review apply`` reads them back
(``apply.py``).
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cleaner.io.parallel import bounded_ordered_map, default_workers, ordered_map, preload
from cleaner.review.images import asset_id, prepare_image
from cleaner.review.manifest import (ASSET_DIRS, file_signature, load_manifest, remove_orphans, reusable,
                                     reusable_overlay, save_manifest, view_record)
from cleaner.review.overlays import OverlayWriter, draw_overlay, load_detectors
from cleaner.review.page import render_page, section
from cleaner.review.sheets import draw_sheet, plan_contact_sheets
from cleaner.scan.folder import (FULL_DIR, REVIEW_PAGE, THUMBS_DIR, ScanOutput, atomic_write_text, find_review_copy,
                                 load_scan_output, reason_folder)
from cleaner.scan.orientation import TURN_COLUMN, quarter_turns, scored_input, scored_view


@dataclass
class BuildResult:
    page: Path
    sections: dict  # reason -> number of images
    images: int
    overlays: int  # (film, detector) overlays on the page, made now or reused
    contact_sheets: list
    warnings: list = field(default_factory=list)
    seconds: float = 0.0
    stage_seconds: dict = field(default_factory=dict)  # images, overlays, page: wall time of each stage
    prepared: int = 0  # films read by this build (the others' assets were reused)
    overlays_made: int = 0  # overlays computed by this build


def build_review(scan_out: str | os.PathLike, workers: int | None = None, saliency: bool = True,
                 contact_sheets: bool = True, progress: bool = True, saliency_method: str = "auto",
                 rebuild: bool = False, loaded=()) -> BuildResult:
    """Write ``SCAN_OUT/review/index.html`` with thumbnails, overlays and contact sheets; ``rebuild``
    prepares every film again instead of reusing the last build's assets. ``loaded``: ``Detector`` objects
    already in memory (the scan's), used for the overlays where they are the version the scan recorded."""
    t0 = time.perf_counter()
    # the pools of all stages start their workers at once
    preload(prepare_image.__module__, draw_overlay.__module__, draw_sheet.__module__)
    scan = load_scan_output(scan_out)
    review = scan.review_dir
    for d in ASSET_DIRS:
        (review / d).mkdir(parents=True, exist_ok=True)
    notes: list[str] = []

    def warn(msg):
        notes.append(msg)
        print(f"warning: {msg}", file=sys.stderr)

    reasons = scan.reasons()
    t_load = time.perf_counter()
    detectors = load_detectors(scan, reasons, warn, loaded) if saliency else {}
    t_load = time.perf_counter() - t_load  # loading the bundles is charged to the overlays stage
    images = flagged_images(scan, reasons)
    manifest = {"images": {}, "sheets": {}} if rebuild else load_manifest(review)
    todo = plan_images(scan, images, detectors, review, saliency_method, manifest["images"], warn)
    workers = workers or default_workers()
    overlays = OverlayWriter(detectors, review, images, saliency_method, warn, draw_workers=1 if workers > 1 else 0)
    _prepare(todo, images, overlays, workers, progress, warn)
    _record_overlays(images, detectors, saliency_method)
    t2 = time.perf_counter()
    page, sections, sheets = _write_page(scan, reasons, images, review, manifest["sheets"], contact_sheets, notes,
                                         progress, workers)
    t3 = time.perf_counter()
    stages = {"images": (t2 - t0) - overlays.seconds - t_load, "overlays": overlays.seconds + t_load, "page": t3 - t2}
    n_overlays = sum(len(e.get("overlays", {})) for e in images.values())
    return BuildResult(page, {s["reason"]: len(s["items"]) for s in sections}, len(images), n_overlays, sheets,
                       notes, t3 - t0, stages, len(todo), overlays.written)


def flagged_images(scan: ScanOutput, reasons: list[str]) -> dict[str, dict]:
    """One entry per flagged image (an image flagged for two reasons is read once): its reasons and row."""
    images: dict[str, dict] = {}
    for reason in reasons:
        for row in scan.flagged(reason).to_dict("records"):
            entry = images.setdefault(row["path"], {"reasons": [], "row": row, "id": asset_id(row["path"])})
            entry["reasons"].append(reason)
    return images


def scored_as(entry: dict, detector) -> tuple[int, bool]:
    """(quarter turns, un-inverted): how the scan showed the film to ``detector`` (``orientation.scored_view``):
    rotated films are scored upright by every detector but rotation, films the inversion detector flagged
    un-inverted by every detector but inversion (docs/decisions/0004, 0014)."""
    return scored_view(detector.kind, entry["turn"], entry.get("uninverted", False))


def uninverted_films(scan: ScanOutput) -> set:
    """Paths the scan's inversion detector (the first, as the scan picks it) flagged, from scores.csv's flag."""
    det = scan.detectors
    if not len(det) or "kind" not in det:
        return set()
    names = list(det["name"][det["kind"] == "inversion"])
    column = f"{names[0]}_flag" if names else None
    if column is None or column not in scan.scores:
        return set()
    return set(scan.scores["path"][scan.scores[column] == "True"])


def plan_images(scan: ScanOutput, images: dict, detectors: dict, review: Path, method: str, cached: dict,
                warn) -> list[tuple[str, tuple]]:
    """The films this build must read, each with ``prepare_image``'s task: the archive file, its review copy
    as a fallback, where its thumbnail (and, where no review copy is viewable, its full-size preview) goes, and
    the model inputs of the overlays it lacks. Films whose assets the last build left valid are filled in
    from ``cached`` and not read."""
    specs = {name: det.info["input"] for name, det in detectors.items()}
    uninverted = uninverted_films(scan)
    todo = []
    for rel, entry in images.items():
        aid = entry["id"]
        src = scan.source(rel) if scan.summary.get("archive") else None  # else only review copies
        copy = None
        for reason in entry["reasons"]:
            copy = copy or find_review_copy(review, reason_folder(reason), rel)
        full = None if copy is not None else f"{FULL_DIR}/{aid}.jpg"
        entry["full"] = copy.relative_to(review).as_posix() if copy is not None else full
        try:
            entry["turn"] = quarter_turns(entry["row"].get(TURN_COLUMN)) if TURN_COLUMN in entry["row"] else 0
        except ValueError as exc:
            warn(f"{rel}: overlays drawn on the film as it lies ({exc})")
            entry["turn"] = 0
        entry["uninverted"] = rel in uninverted
        source = file_signature(src, copy)
        old = cached.get(rel)
        base_ok = reusable(old, source, review, full is not None)
        kept, carried, stale = {}, {}, []
        for reason in entry["reasons"]:
            old_ov = (old.get("overlays") or {}).get(reason) if base_ok else None
            if reason not in detectors:  # --no-saliency, or its bundle is gone: kept for a later build, not shown
                if old_ov:
                    carried[reason] = old_ov
                continue
            ov = reusable_overlay(old_ov, detectors[reason].version, method, scored_as(entry, detectors[reason]), review)
            if ov:
                kept[reason] = ov
            else:
                stale.append(reason)
        entry["asset"] = {"id": aid, "source": source, "thumb": f"{THUMBS_DIR}/{aid}.jpg", "full": full,
                          "overlays": {**carried, **kept}}
        entry["overlays"] = {r: ov["file"] for r, ov in kept.items()}
        entry["saliency_method"] = {r: ov["method"] for r, ov in kept.items()}
        if base_ok:
            entry["thumb"] = entry["asset"]["thumb"]
        if not base_ok or stale:
            task = (str(src) if src else None, str(copy) if copy else None, str(review / THUMBS_DIR / f"{aid}.jpg"),
                    str(review / full) if full else None, {r: specs[r] for r in stale})
            todo.append((rel, task))
    return todo


def _prepare(todo: list, images: dict, overlays: OverlayWriter, workers: int, progress: bool, warn) -> None:
    """The images and overlays stages: every film of ``todo`` read once (in parallel); its overlays queued as
    the scan scored it (``scored_as``: turned upright, un-inverted) and computed a batch at a time."""
    from tqdm import tqdm

    n_pairs = sum(len(task[4]) for _, task in todo)
    opts = {"disable": not progress, "file": sys.stderr, "dynamic_ncols": True}
    bar = tqdm(total=len(todo), desc="images", unit="film", position=0, **opts)
    overlays.bar = tqdm(total=n_pairs, desc="overlays", unit="overlay", position=1, **opts)
    results = bounded_ordered_map(prepare_image, (task for _, task in todo), workers=workers, chunksize=2, ahead=64)
    try:
        for (rel, task), res in zip(todo, results):
            bar.update(1)
            entry = images[rel]
            if not res["ok"]:
                entry["error"], entry["asset"] = res["error"], None
                entry["overlays"], entry["saliency_method"] = {}, {}
                overlays.bar.total -= len(task[4])
                overlays.bar.refresh()
                warn(f"{rel}: no thumbnail ({res['error']})")
                continue
            entry["thumb"] = entry["asset"]["thumb"]
            for reason, x in res["inputs"].items():
                k, uninvert = scored_as(entry, overlays.detectors[reason])
                overlays.add(reason, rel, scored_input(x, k, uninvert), res["frames"][reason], k)
        overlays.flush_all()
        overlays.finish()
    finally:
        overlays.close()
        bar.close()
        overlays.bar.close()


def _record_overlays(images: dict, detectors: dict, method: str) -> None:
    """Put the overlays made now into each film's record, with what makes them reusable."""
    for entry in images.values():
        for reason, made in entry.pop("fresh_overlays", {}).items():
            if entry.get("asset") is not None:
                det = detectors[reason]
                entry["asset"]["overlays"][reason] = {**made, "version": det.version, "asked": method,
                                                      **view_record(scored_as(entry, det))}


def _write_page(scan: ScanOutput, reasons: list, images: dict, review: Path, old_sheets: dict, contact_sheets: bool,
                notes: list, progress: bool, workers: int):
    """The page stage: sections, contact sheets (those whose tiles changed, drawn in worker processes),
    index.html, the build record, and the removal of assets no flagged film uses."""
    from tqdm import tqdm

    bar = tqdm(total=len(reasons) + 1, desc="page", unit="step", disable=not progress, file=sys.stderr, position=2)
    scores_by_path = {r["path"]: r for r in scan.scores.to_dict("records")}
    sections, sheet_record, jobs = [], {}, []
    for reason in reasons:
        sec = section(scan, reason, images, review, scores_by_path)
        sections.append(sec)
        if contact_sheets:
            record, todo = plan_contact_sheets(review, reason, sec["items"], old_sheets)
            sheet_record.update(record)
            jobs += todo
        bar.update(1)
    bar.total += len(jobs)
    for _ in ordered_map(draw_sheet, jobs, workers=min(workers, len(jobs)), chunksize=1):
        bar.update(1)
    page = review / REVIEW_PAGE
    atomic_write_text(page, render_page(scan, sections, notes))
    save_manifest(review, images, {p.relative_to(review).as_posix(): sig for p, sig in sheet_record.items()}
                  if contact_sheets else old_sheets)
    used = set()
    for e in images.values():
        if e.get("asset"):
            used.add(e["asset"]["thumb"])
            used.update(ov["file"] for ov in e["asset"]["overlays"].values())
            if e["asset"]["full"]:
                used.add(e["asset"]["full"])
    remove_orphans(review, used)
    bar.update(1)
    bar.close()
    return page, sections, list(sheet_record)
