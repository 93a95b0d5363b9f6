"""Saliency overlays for the review page: why each detector flagged each film, drawn on its thumbnail.

The detectors are the bundles the scan used (``detectors.csv``), each model loaded when first needed, with
one compiled ``detectors.saliency.Explainer``; films are sent through it in batches per detector as the workers deliver
them. A glyph-reading detector's overlay also boxes the side markers its reader saw, each labelled with
what it says (an R on the image's left: upright)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cleaner.io.parallel import process_pool, submit
from cleaner.scan.folder import OVERLAYS_DIR, ScanOutput, reason_folder

#: colours of a side marker's box: it says the film is mirrored / upright
MARK_COLOURS = {"mirrored": (255, 70, 70), "upright": (70, 225, 110)}


class BundleRef:
    """A detector bundle as the review needs it: its record (``detector.json``) read now, its model loaded (and
    its sha256 checked) only when a film needs an overlay, so a build with nothing new loads no model."""

    def __init__(self, path: Path, info: dict, model=None):
        self.path, self.info, self._model = path, info, model

    @property
    def version(self) -> str:
        return self.info.get("version", "unversioned")

    @property
    def kind(self) -> str:
        return self.info.get("kind", "")

    @property
    def model(self):
        if self._model is None:
            from detectors.bundle import load

            self._model = load(self.path).model
        return self._model


def load_detectors(scan: ScanOutput, reasons: list[str], warn, in_memory=()) -> dict:
    """Detector bundles for the reasons that came from a detector: reason -> BundleRef. A bundle that is gone,
    cannot be read or is not the version the scan used gets a warning and no overlays. ``in_memory``: loaded
    ``Detector`` objects, used as they are where name and version match the scan's record."""
    from detectors.bundle import INFO_FILE

    loaded = {}
    for reason in reasons:
        row = scan.detector_for(reason)
        if row is None:
            continue
        same = [d for d in in_memory if d.name == reason and d.version == row.get("version")]
        if same:
            loaded[reason] = BundleRef(Path(same[0].path or ""), same[0].info, same[0].model)
            continue
        bundle = Path(row.get("bundle_path") or "")
        if not row.get("bundle_path") or not (bundle / INFO_FILE).is_file():
            warn(f"no saliency overlays for {reason}: bundle {bundle} not found")
            continue
        try:
            info = json.loads((bundle / INFO_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            warn(f"no saliency overlays for {reason}: {bundle / INFO_FILE} cannot be read ({exc})")
            continue
        if not isinstance(info, dict) or not isinstance(info.get("input"), dict):
            warn(f"no saliency overlays for {reason}: {bundle / INFO_FILE} has no input spec")
            continue
        ref = BundleRef(bundle, info)
        if row.get("version") and ref.version != row["version"]:
            warn(f"no saliency overlays for {reason}: bundle {bundle} is {ref.version}, the scan used {row['version']}")
            continue
        loaded[reason] = ref
    return loaded


def overlay_link(reason: str, aid: str) -> str:
    return f"{OVERLAYS_DIR}/{reason_folder(reason)}/{aid}.jpg"


class OverlayWriter:
    """Collects (film, detector) pairs and writes their overlays a compiled batch at a time; ``images[rel]``
    gets the overlay's link and the method used per reason. ``seconds`` is the time spent here. With
    ``draw_workers``, the pictures are drawn and written in that many processes (``draw_overlay``) while this
    one goes on with the next batch's saliency: drawing is a fifth of the overlays' work, and the main process
    is the build's bottleneck; ``finish`` waits for them."""

    def __init__(self, detectors: dict, review: Path, images: dict, method: str, warn, bar=None, draw_workers=0):
        self.detectors, self.review, self.images, self.method, self.warn = detectors, review, images, method, warn
        self.bar = bar
        self.pending: dict[str, list] = {r: [] for r in detectors}
        self.explainers: dict = {}
        self.failed: set = set()
        self.written = 0
        self.seconds = 0.0
        self.draw_workers = draw_workers
        self.pool = None
        self.drawing: list = []  # (future, job, record) of pictures handed to the pool

    def add(self, reason: str, rel: str, x: np.ndarray, thumb: np.ndarray, turn: int) -> None:
        """``x`` is the model input as the scan scored it (turned ``turn`` quarter turns); ``thumb`` the film as it lies."""
        from detectors.saliency import compiled_batch

        self.pending[reason].append((rel, x, thumb, turn))
        if len(self.pending[reason]) >= max(8, compiled_batch(*x.shape[:2])):
            self.flush(reason)

    def flush_all(self) -> None:
        for reason in list(self.pending):
            self.flush(reason)

    def flush(self, reason: str) -> None:
        batch, self.pending[reason] = self.pending[reason], []
        if not batch:
            return
        started = time.perf_counter()
        try:
            self._write(reason, batch)
        finally:
            self.seconds += time.perf_counter() - started

    def finish(self) -> None:
        """Wait for the pictures still being drawn and record them; draw here any the pool could not."""
        started = time.perf_counter()
        try:
            for future, job, record in self.drawing:
                try:
                    error = future.result()
                except Exception:  # the pool broke: this picture is drawn here instead
                    error = draw_overlay(job)
                self._record(record, error)
        finally:
            self.drawing = []
            self.close()
            self.seconds += time.perf_counter() - started

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def _explain(self, reason: str, batch: list):
        """The batch's saliency, or None (warned once per detector whose model cannot be used)."""
        from detectors.saliency import Explainer

        if reason in self.failed:
            return None
        try:
            if reason not in self.explainers:
                self.explainers[reason] = Explainer(self.detectors[reason].model, self.method)
        except Exception as exc:
            self.failed.add(reason)
            self.warn(f"no saliency overlays for {reason}: {type(exc).__name__}: {exc}")
            return None
        try:
            return self.explainers[reason].explain(np.stack([b[1] for b in batch]))
        except Exception as exc:
            self.warn(f"saliency failed for {reason} on {len(batch)} image(s): {type(exc).__name__}: {exc}")
            return None

    def _write(self, reason: str, batch: list) -> None:
        result = self._explain(reason, batch)
        if result is None:
            if self.bar is not None:
                self.bar.update(len(batch))
            return
        (self.review / OVERLAYS_DIR / reason_folder(reason)).mkdir(parents=True, exist_ok=True)
        size = batch[0][1].shape[0]
        if self.pool is None and self.draw_workers > 0:
            self.pool = process_pool(self.draw_workers)
        for i, ((rel, _x, thumb, k), heat) in enumerate(zip(batch, result.maps)):
            link = overlay_link(reason, self.images[rel]["id"])
            marks = [m.turned_back(k) for m in result.marks[i]] if result.marks is not None else []
            # heat turned back onto the film as the thumbnail shows it
            job = (thumb, np.rot90(heat, -k) if k else heat, marks, size, str(self.review / link))
            record = (rel, reason, link, result.image_method(i), result.layer)
            if self.pool is None:
                self._record(record, draw_overlay(job))
            else:
                self.drawing.append((submit(self.pool, draw_overlay, job), job, record))

    def _record(self, record: tuple, error: str | None) -> None:
        rel, reason, link, method, layer = record
        if self.bar is not None:
            self.bar.update(1)
        if error:
            self.warn(f"{rel}: no {reason} overlay ({error})")
            return
        entry = self.images[rel]
        entry.setdefault("overlays", {})[reason] = link
        entry.setdefault("saliency_method", {})[reason] = method
        entry.setdefault("fresh_overlays", {})[reason] = {"file": link, "method": method, "layer": layer}
        self.written += 1


def draw_overlay(job: tuple) -> str | None:
    """Draw one overlay and write it (in a worker process, or here): the heat map blended on the thumbnail,
    the side markers boxed. Returns None, or why it could not be written (never raises)."""
    from detectors.saliency import overlay

    thumb, heat, marks, input_size, path = job
    try:
        picture = Image.fromarray(overlay(thumb, heat))
        if marks:
            draw_marks(picture, marks, input_size)
        picture.save(path, quality=85)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def draw_marks(picture: Image.Image, marks: list, input_size: int) -> None:
    """Box each side marker on ``picture`` (the film as it lies) where the reader saw it, labelled with the
    letter read, what it says and its logit (what it adds to the film's log-odds, up to the clip); the box is
    the reader's patch (``glyphs.PATCH`` px of the model input)."""
    from detectors.glyph_saliency import PATCH

    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default()
    w, h = picture.size
    half = max(4, round(PATCH / input_size * max(w, h) / 2))
    for m in marks:
        cx, cy = m.x * w, m.y * h
        colour = MARK_COLOURS.get(m.says, (255, 255, 255))
        draw.rectangle([cx - half, cy - half, cx + half, cy + half], outline=colour, width=2)
        label = f"{m.letter}: {m.says} {m.logit:.1f}"
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        tx = min(max(0, cx - (right - left) / 2), w - (right - left) - 2)
        ty = cy + half + 2 if cy + half + (bottom - top) + 4 < h else cy - half - (bottom - top) - 4
        draw.rectangle([tx - 1, ty - 1, tx + right - left + 1, ty + bottom - top + 2], fill=(0, 0, 0))
        draw.text((tx - left, ty - top), label, fill=colour, font=font)
