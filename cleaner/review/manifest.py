"""What a review build prepared (``review/_assets.json``), so that the next build, after a ``--resume``d or
extended scan, prepares only the flagged films that are new or changed.

A film's thumbnail (and full-size preview) is reused while its file is unchanged (size and modification
time); an overlay while, in addition, the detector version, the saliency method asked for and the turn the
film was scored at are the same. Failures are never recorded: a film that could not be read is tried again.
Files under ``_thumbs/``, ``_full/`` and ``_overlays/`` that no flagged film uses any more are removed.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from cleaner.scan.folder import FULL_DIR, OVERLAYS_DIR, REVIEW_ASSETS_FILE, THUMBS_DIR, atomic_write_text

#: bumped whenever what a thumbnail or overlay looks like changes, so that old ones are made again
ASSET_FORMAT = 3
ASSET_DIRS = (THUMBS_DIR, OVERLAYS_DIR, FULL_DIR)


def load_manifest(review: Path) -> dict:
    """The previous build's record, or an empty one (none, unreadable, or of another asset format)."""
    empty = {"format": ASSET_FORMAT, "images": {}, "sheets": {}}
    try:
        data = json.loads((review / REVIEW_ASSETS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return empty
    if not isinstance(data, dict) or data.get("format") != ASSET_FORMAT:
        return empty
    return {"format": ASSET_FORMAT, "images": dict(data.get("images") or {}), "sheets": dict(data.get("sheets") or {})}


def save_manifest(review: Path, images: dict, sheets: dict) -> None:
    """Record every film whose assets this build left in place (``images[rel]["asset"]``) and the contact sheets."""
    record = {rel: e["asset"] for rel, e in images.items() if e.get("asset")}
    atomic_write_text(review / REVIEW_ASSETS_FILE, json.dumps(
        {"format": ASSET_FORMAT, "images": record, "sheets": sheets}, separators=(",", ":")) + "\n")


def file_signature(*candidates) -> list | None:
    """[size, mtime in ns] of the first of ``candidates`` that exists (the file a worker will read)."""
    for path in candidates:
        if path is None:
            continue
        try:
            st = os.stat(path)
        except OSError:
            continue
        return [st.st_size, st.st_mtime_ns]
    return None


def reusable(cached: dict | None, source: list | None, review: Path, full_needed: bool) -> bool:
    """Whether a film's thumbnail (and preview) from the last build still stand."""
    if not cached or source is None or cached.get("source") != source:
        return False
    if not cached.get("thumb") or not (review / cached["thumb"]).is_file():
        return False
    return not full_needed or (bool(cached.get("full")) and (review / cached["full"]).is_file())


def view_record(view: tuple[int, bool]) -> dict:
    """How the scan showed the film to the overlay's detector, as an overlay's record keeps it."""
    turn, uninverted = view
    return {"turn": int(turn), "uninverted": bool(uninverted)}


def reusable_overlay(cached: dict | None, version: str, asked: str, view: tuple[int, bool], review: Path) -> dict | None:
    """The last build's overlay of one (film, reason) if it was made the same way (``view``: the turn and
    un-inversion the scan scored the film with); else None. Records from before un-inversion have none."""
    if not cached:
        return None
    made = {"turn": cached.get("turn"), "uninverted": bool(cached.get("uninverted", False))}
    same = cached.get("version") == version and cached.get("asked") == asked and made == view_record(view)
    return cached if same and cached.get("file") and (review / cached["file"]).is_file() else None


def remove_orphans(review: Path, used: set) -> int:
    """Delete asset files no flagged film uses (films no longer flagged, overlays of another version)."""
    removed = 0
    for d in ASSET_DIRS:
        root = review / d
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*"), reverse=True):
            rel = path.relative_to(review).as_posix()
            if path.is_file() and rel not in used:
                path.unlink()
                removed += 1
            elif path.is_dir() and path != root and not any(path.iterdir()):
                path.rmdir()
    return removed
