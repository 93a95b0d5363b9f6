"""The image work of a review page, in worker processes: each flagged file read once, its thumbnail (and
full-size preview where needed) written, and the model inputs its overlays need returned."""
from __future__ import annotations

import hashlib

import numpy as np
from PIL import Image

from cleaner.io.images import read_or_error
from cleaner.io.preprocess import InputSpec, content_box, preprocess_all

#: longest side of a page thumbnail / overlay, pixels
THUMB_SIZE = 256
#: longest side of the preview written for a flagged file that has no viewable review copy (a --no-review
#: scan, TIFF, DICOM gone), and its JPEG quality: a PNG of that size cost more to write than reading the film
#: (benchmarks/review_build.py); the preview is for looking, the archive keeps the original
FULL_SIZE, FULL_QUALITY = 2048, 92


def asset_id(rel_path: str) -> str:
    """A stable, file-name-safe id for an archive path (thumbnail and overlay file names)."""
    return hashlib.sha1(rel_path.encode("utf-8")).hexdigest()[:16]


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    return (np.clip(pixels, 0, 1) * 255).round().astype(np.uint8)


def thumb_array(pixels: np.ndarray, size: int) -> np.ndarray:
    """``pixels`` shrunk so that the longest side is at most ``size`` (never enlarged), aspect kept. For
    looking at only (model inputs go through ``preprocess``): a box reduction first (``reducing_gap``)
    makes a large shrink cheaper, visually the same."""
    im = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.float32))
    h, w = pixels.shape
    scale = size / max(h, w)
    if scale < 1:
        im = im.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR,
                       reducing_gap=2.0)
    return np.clip(np.asarray(im, dtype=np.float32), 0, 1)


def prepare_image(task: tuple) -> dict:
    """Read one flagged image once: write its thumbnail (and a full-size JPEG preview when no review copy
    can be linked) and return the thumbnail plus the model inputs its overlays need (``specs``: reason -> InputSpec
    dict). Never raises: a failure is this image's error."""
    source, fallback, thumb_path, full_path, specs = task
    pixels, error = None, None
    for cand in (source, fallback):
        if cand is None:
            continue
        loaded, error = read_or_error(cand)
        if loaded is not None:
            pixels = loaded.pixels
            break
    if pixels is None:
        return {"ok": False, "error": error or "no readable copy"}
    try:  # ordered_map's workers must not raise: a failure here is reported for this image only
        shown = pixels
        if full_path is not None:
            shown = thumb_array(pixels, FULL_SIZE)  # the thumbnail is shrunk from it: cheaper than from the film
            Image.fromarray(to_uint8(shown)).save(full_path, quality=FULL_QUALITY)
        thumb = thumb_array(shown, THUMB_SIZE)
        Image.fromarray(to_uint8(thumb)).save(thumb_path, quality=85)
        parsed = {reason: InputSpec.from_dict(spec) for reason, spec in specs.items()}
        box = content_box(pixels) if any(s.borders == "trim" for s in parsed.values()) else None
        inputs = dict(zip(parsed, preprocess_all(pixels, list(parsed.values()), box)))
        frames = {reason: framed(thumb, pixels.shape, box if s.borders == "trim" else None)
                  for reason, s in parsed.items()}
    except Exception as exc:
        return {"ok": False, "error": f"thumbnail or model input failed: {type(exc).__name__}: {exc}"}
    return {"ok": True, "thumb": thumb, "inputs": inputs, "frames": frames}


def framed(thumb: np.ndarray, shape: tuple, box: tuple | None) -> np.ndarray:
    """The part of ``thumb`` that a model input trimmed to ``box`` (of a film of ``shape``) shows: an overlay
    drawn on it puts the heat map and the marks where the model saw them."""
    if box is None:
        return thumb
    th, tw = thumb.shape
    h, w = shape
    top, bottom = round(box[0] * th / h), max(round(box[1] * th / h), round(box[0] * th / h) + 1)
    left, right = round(box[2] * tw / w), max(round(box[3] * tw / w), round(box[2] * tw / w) + 1)
    return thumb[top:bottom, left:right]
