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
        lo, hi = np.percentile(x, [spec.low_pct, spec.high_pct])
        if hi - lo > 1e-6:
            x = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
        else:
            x = np.zeros_like(x)
    return x[..., None].astype(np.float32)
