"""The one preprocessing path from a decoded image to a model input, shared by training and scanning.

A detector bundle stores its ``InputSpec``; scanning rebuilds the same spec from the bundle,
so what a model sees when scanning is exactly what it saw in training.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

NORMALISATIONS = ("percentile", "none")
#: ``InputSpec.borders``: "trim" cuts uniform bars off the film's edges before the resize, "keep" does not (the
#: reading of bundles written before borders were trimmed: their ``input`` has no ``borders``)
BORDERS = ("trim", "keep")
#: a bar is a run of edge rows (columns) in which at least BAR_FILL of the pixels lie within BAR_TOLERANCE of the
#: edge's own median value; trimmed when at least BAR_MIN of the side, never beyond BAR_MAX of it, and never when
#: less than CONTENT_MIN of the side would be left (a blank or nearly blank image stays as it is)
BAR_TOLERANCE, BAR_FILL, BAR_MIN, BAR_MAX, CONTENT_MIN = 0.04, 0.98, 0.02, 0.4, 0.3


@dataclass(frozen=True)
class InputSpec:
    """How an image becomes a model input: a square greyscale array, shape (size, size, 1).

    The image is resized to a square (no padding, so the position of black bars cannot give a
    rotation away) and, with ``percentile``, its 0.5th-99.5th percentiles are stretched to
    [0, 1] so that exposure differences between hospitals matter less. The stretch is symmetric
    under inversion, so an inverted film stays exactly ``1 - x`` after it. With ``borders="trim"``
    uniform bars at the edges (a letterboxed export, a scanner's frame) are cut off first
    (``content_box``): stretched into the square they made a frontal film look like something else,
    and they shift the percentiles (docs/decisions/0011-trim-uniform-borders.md).
    """

    size: int = 256
    normalisation: str = "percentile"
    low_pct: float = 0.5
    high_pct: float = 99.5
    borders: str = "trim"

    def __post_init__(self):
        if self.size < 16:
            raise ValueError(f"input size {self.size} is below 16 pixels")
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {NORMALISATIONS}, not {self.normalisation!r}")
        if not 0 <= self.low_pct < self.high_pct <= 100:
            raise ValueError(f"percentiles must be 0 <= low < high <= 100, not {self.low_pct}, {self.high_pct}")
        if self.borders not in BORDERS:
            raise ValueError(f"borders must be one of {BORDERS}, not {self.borders!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "InputSpec":
        fields = {k: data[k] for k in ("size", "normalisation", "low_pct", "high_pct") if k in data}
        return cls(**fields, borders=data.get("borders", "keep"))


def resize_square(pixels: np.ndarray, size: int) -> np.ndarray:
    """Antialiased bilinear resize of a float image to size x size."""
    im = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.float32))
    return np.asarray(im.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)


def preprocess(pixels: np.ndarray, spec: InputSpec) -> np.ndarray:
    """A decoded [0, 1] greyscale image to the model input for ``spec``: float32 (size, size, 1)."""
    return preprocess_all(pixels, [spec])[0]


def preprocess_all(pixels: np.ndarray, specs, box: tuple[int, int, int, int] | None = None) -> list[np.ndarray]:
    """``preprocess`` for each of ``specs``, trimming once and resizing once per distinct size and borders: specs
    that differ only in their stretch (inversion's 5-95 beside rotation's 0.5-99.5, both at 128 px) share the
    costly resize. ``box``: ``content_box(pixels)`` when the caller needs it too (review overlays)."""
    framed = {"keep": pixels}
    resized: dict[tuple, np.ndarray] = {}
    out = []
    for spec in specs:
        if spec.borders not in framed:
            framed[spec.borders] = crop(pixels, content_box(pixels) if box is None else box)
        key = (spec.size, spec.borders)
        if key not in resized:
            resized[key] = resize_square(framed[spec.borders], spec.size)
        out.append(_normalise(resized[key], spec))
    return out


def crop(pixels: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    top, bottom, left, right = box
    return pixels[top:bottom, left:right]


def content_box(pixels: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of ``pixels`` inside the uniform bars at its edges, the whole image when
    there are none. Read on every ``step``-th pixel (at most ~512 per side, ~0.3 ms) and kept conservative: a
    row between the last bar row read and the first content row stays. Rows first, then the columns of the
    rows kept, then the rows again within the kept columns, so bars on all four sides go; each side's bar is
    measured against that edge's own value, so black and white bars alike and the box of an inverted or
    mirrored film is the inverted or mirrored box."""
    h, w = pixels.shape
    step = max(1, max(h, w) // 512)
    small = pixels[::step, ::step]
    sh, sw = small.shape
    top, bottom = _bars(small, 0, sh)
    left, right = _bars(small[top:bottom].T, 0, sw)
    top, bottom = _bars(small[:, left:right], top, bottom)
    full_top = (top - 1) * step + 1 if top else 0
    full_left = (left - 1) * step + 1 if left else 0
    full_bottom = bottom * step if bottom < sh else h
    full_right = right * step if right < sw else w
    return full_top, full_bottom, full_left, full_right


def _bars(rows: np.ndarray, start: int, stop: int) -> tuple[int, int]:
    """``(start, stop)`` moved past the uniform bars at either end of the rows ``rows[start:stop]``."""
    n = len(rows)
    limit = int(BAR_MAX * n)
    lead = _bar_length(rows[start : start + limit])
    trail = _bar_length(rows[max(stop - limit, start) : stop][::-1])
    lead, trail = (lead if lead >= BAR_MIN * n else 0), (trail if trail >= BAR_MIN * n else 0)
    if (stop - trail) - (start + lead) < CONTENT_MIN * n:
        return start, stop
    return start + lead, stop - trail


def _bar_length(edge: np.ndarray) -> int:
    """How many leading rows of ``edge`` are uniform at the value of its first row."""
    if not len(edge) or not edge.shape[1]:
        return 0
    value = np.median(edge[0])
    need = BAR_FILL * edge.shape[1]
    if np.count_nonzero(np.abs(edge[0] - value) <= BAR_TOLERANCE) < need:
        return 0  # most films: the edge row itself is not uniform, nothing more to read
    uniform = np.count_nonzero(np.abs(edge - value) <= BAR_TOLERANCE, axis=1) >= need
    return len(uniform) if uniform.all() else int(np.argmin(uniform))


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
