"""Saliency overlays for the review page: why each detector flagged each film, drawn on its thumbnail.

The detectors are the bundles the scan used (``detectors.csv``), loaded once; films are sent through
them in batches per detector."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from cleaner.scan.folder import OVERLAYS_DIR, ScanOutput, reason_folder

#: films per saliency batch
BATCH = 32


def load_detectors(scan: ScanOutput, reasons: list[str], warn) -> dict:
    """Detector bundles for the reasons that came from a detector: reason -> Detector. A bundle that is gone,
    does not load or is not the version the scan used gets a warning and no overlays."""
    from detectors.bundle import load

    loaded = {}
    for reason in reasons:
        row = scan.detector_for(reason)
        if row is None:
            continue
        bundle = Path(row.get("bundle_path") or "")
        if not row.get("bundle_path") or not bundle.exists():
            warn(f"no saliency overlays for {reason}: bundle {bundle} not found")
            continue
        try:
            det = load(bundle)
        except Exception as exc:
            warn(f"no saliency overlays for {reason}: bundle {bundle} does not load ({exc})")
            continue
        if row.get("version") and det.version != row["version"]:
            warn(f"no saliency overlays for {reason}: bundle {bundle} is {det.version}, the scan used {row['version']}")
            continue
        loaded[reason] = det
    return loaded


class OverlayWriter:
    """Collects (film, detector) pairs and writes their overlays a batch at a time; ``images[rel]`` gets the
    overlay's link and the method used per reason."""

    def __init__(self, detectors: dict, review: Path, images: dict, method: str, warn):
        self.detectors, self.review, self.images, self.method, self.warn = detectors, review, images, method, warn
        self.pending: dict[str, list] = {r: [] for r in detectors}
        self.written = 0

    def add(self, reason: str, rel: str, x: np.ndarray, thumb: np.ndarray, turn: int) -> None:
        """``x`` is the model input as the scan scored it (turned ``turn`` quarter turns); ``thumb`` the film as it lies."""
        self.pending[reason].append((rel, x, thumb, turn))
        if len(self.pending[reason]) >= BATCH:
            self.flush(reason)

    def flush_all(self) -> None:
        for reason in list(self.pending):
            self.flush(reason)

    def flush(self, reason: str) -> None:
        from detectors.saliency import detector_saliency, overlay

        batch, self.pending[reason] = self.pending[reason], []
        if not batch:
            return
        try:
            result = detector_saliency(self.detectors[reason], np.stack([b[1] for b in batch]), method=self.method)
        except Exception as exc:
            self.warn(f"saliency failed for {reason} on {len(batch)} image(s): {exc}")
            return
        folder = self.review / OVERLAYS_DIR / reason_folder(reason)
        folder.mkdir(parents=True, exist_ok=True)
        for i, ((rel, _x, thumb, k), heat) in enumerate(zip(batch, result.maps)):
            heat = np.rot90(heat, -k) if k else heat  # back onto the film as the thumbnail shows it
            entry = self.images[rel]
            Image.fromarray(overlay(thumb, heat)).save(folder / f"{entry['id']}.jpg", quality=85)
            entry.setdefault("overlays", {})[reason] = f"{OVERLAYS_DIR}/{reason_folder(reason)}/{entry['id']}.jpg"
            method = "occlusion" if i in result.occlusion_fallback else result.method
            entry.setdefault("saliency_method", {})[reason] = method
            self.written += 1
