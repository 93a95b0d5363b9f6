"""The one preprocessing path from a decoded image to a model input, shared by training and scanning.

A detector bundle stores its ``InputSpec``; scanning rebuilds the same spec from the bundle,
so what a model sees when scanning is exactly what it saw in training.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

NORMALISATIONS = ("percentile", "none")


@dataclass(frozen=True)
class InputSpec:
    """How an image becomes a model input: a square greyscale array, shape (size, size, 1).

    The image is resized to a square (no padding, so the position of black bars cannot give a
    rotation away) and, with ``percentile``, its 0.5th-99.5th percentiles are stretched to
    [0, 1] so that exposure differences between hospitals matter less. The stretch is symmetric
    under inversion, so an inverted film stays exactly ``1 - x`` after it.
    """

    size: int = 256
    normalisation: str = "percentile"
    low_pct: float = 0.5
    high_pct: float = 99.5

    def __post_init__(self):
        if self.size < 16:
            raise ValueError(f"input size {self.size} is below 16 pixels")
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {NORMALISATIONS}, not {self.normalisation!r}")
        if not 0 <= self.low_pct < self.high_pct <= 100:
            raise ValueError(f"percentiles must be 0 <= low < high <= 100, not {self.low_pct}, {self.high_pct}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "InputSpec":
        return cls(**{k: data[k] for k in ("size", "normalisation", "low_pct", "high_pct") if k in data})


def resize_square(pixels: np.ndarray, size: int) -> np.ndarray:
    """Antialiased bilinear resize of a float image to size x size."""
    im = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.float32))
    return np.asarray(im.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)


def preprocess(pixels: np.ndarray, spec: InputSpec) -> np.ndarray:
    """A decoded [0, 1] greyscale image to the model input for ``spec``: float32 (size, size, 1)."""
    return _normalise(resize_square(pixels, spec.size), spec)


def preprocess_all(pixels: np.ndarray, specs) -> list[np.ndarray]:
    """``preprocess`` for each of ``specs``, resizing the image once per distinct size: specs that differ only
    in their stretch (inversion's 5-95 beside rotation's 0.5-99.5, both at 128 px) share the costly resize."""
    resized: dict[int, np.ndarray] = {}
    out = []
    for spec in specs:
        if spec.size not in resized:
            resized[spec.size] = resize_square(pixels, spec.size)
        out.append(_normalise(resized[spec.size], spec))
    return out


def _normalise(x: np.ndarray, spec: InputSpec) -> np.ndarray:
    if spec.normalisation == "percentile":
        lo, hi = percentiles(x, spec.low_pct, spec.high_pct)
        if hi - lo > 1e-6:  # float64, in place: the same numbers as np.clip((x - lo) / (hi - lo), 0, 1), fewer copies
            y = np.subtract(x, lo, dtype=np.float64)
            y /= hi - lo
            x = np.clip(y, 0.0, 1.0, out=y)
        else:
            x = np.zeros_like(x)
    return x[..., None].astype(np.float32)


def percentiles(x: np.ndarray, low: float, high: float) -> tuple[float, float]:
    """``np.percentile(x, [low, high])`` (its default 'linear' method), bit for bit, from the four order statistics
    it interpolates, found without partitioning the whole image (``order_statistics``): the stretch of a 512-px
    input cost more than its resize (docs/decisions/0007-compiled-inference.md)."""
    flat = np.ravel(x)
    n = flat.size
    virtual = (n - 1) * (np.asarray([low, high], dtype=np.float64) / 100)
    below = np.floor(virtual).astype(np.intp)
    above = np.minimum(below + 1, n - 1)
    ranks = np.unique(np.concatenate([below, above]))
    values = dict(zip(ranks.tolist(), order_statistics(flat, ranks)))
    a = np.array([values[k] for k in below.tolist()], dtype=flat.dtype)
    b = np.array([values[k] for k in above.tolist()], dtype=flat.dtype)
    t = virtual - below
    diff = b - a  # numpy's _lerp: from below for t < 0.5, from above otherwise
    out = np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)
    return float(out[0]), float(out[1])


def order_statistics(flat: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """``np.sort(flat)[ranks]`` for ranks near either end (percentile stretches), exactly: each end is partitioned
    among the values beyond a threshold read from every 16th value, checked by counting; the whole array only when
    that falls short (never for the default stretches)."""
    n = flat.size
    if n < 1 << 14:
        return np.partition(flat, ranks)[ranks]
    sample = np.sort(flat[::16])
    out = np.empty(len(ranks), dtype=flat.dtype)
    for low in (True, False):
        end = ranks < n // 2 if low else ranks >= n // 2
        if not end.any():
            continue
        need = int(ranks[end].max()) + 1 if low else n - int(ranks[end].min())  # values the part must hold
        step = 2 * need // 16 + 8  # twice the sample's share, and a margin
        part = flat[flat <= sample[min(step, len(sample) - 1)]] if low else flat[flat >= sample[max(len(sample) - 1 - step, 0)]]
        if len(part) < need:
            return np.partition(flat, ranks)[ranks]
        own = ranks[end] - (0 if low else n - len(part))
        out[end] = np.partition(part, own)[own]
    return out
