"""Synthesising training examples: artefact on the decoded image, then the one preprocessing path.

Order for every example, positive or negative alike:
``augment(decoded) -> [artefact if positive] -> cleaner.io.preprocess.preprocess(., spec)``.
The augmentation parameters are drawn independently of the label, so augmentation can never
tell the classes apart; and ``preprocess`` is the very call scanning makes, so padding, aspect
ratio, file format or exposure offer no shortcut.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from cleaner.io.preprocess import InputSpec, preprocess

from .kinds import Kind


#: recorded in every bundle's detector.json
AUGMENTATION = (
    "crop zoom 1-1.25 with shift and aspect change up to 25%, tilt +-7 deg, 0-2 edge bars, 0-4 wires, "
    "haze up to Kind.haze (rotation 50%, others 25%), blur sigma 0-1.5 px at 256, 0-3 erased patches, gamma 0.7-1.4, gaussian noise sigma 0-0.02 "
    "(label-independent); kinds with plates=True (rotation, inversion): 0-2 annotation plates after the artefact, p=0.3, "
    "half of them panel labels (wide box flush with a corner)"
)
#: recorded in a bundle trained with ``Kind.made_positives``
MADE_POSITIVES = ("a frontal film cut to a part of itself: one side's 35-60 % strip (one lung field, the spine at an "
                  "edge) or a window of 25-50 % of each side (a coned detail), labelled not frontal")
#: recorded in a bundle trained with ``Kind.turned_positives``
TURNED_POSITIVES = "every positive turned 0, 90, 180 or 270 degrees at random and mirrored half the time; negatives not"
#: the variant a labelled kind's plan gives a positive made from a negative (``unframe``)
MADE = 1
#: how often an example gets annotation plates (``_plates``)
PLATE_PROBABILITY = 0.3
#: what annotation plates say: figure panel letters, burned-in labels and side markers
PLATE_TEXTS = ("(A)", "(B)", "(C)", "(D)", "(E)", "A", "B", "C", "D", "E", "F", "1", "2", "3", "4", "AP", "PA",
               "R", "L", "PORTABLE", "SUPINE")


def augment(pixels: np.ndarray, rng: np.random.Generator, haze: float = 0.25) -> np.ndarray:
    """What another hospital's films differ by, drawn at random: framing, acquisition and clutter.

    A crop (zoom 1-1.25, shift, and an aspect-ratio change of up to 25 %, which the square resize
    turns into a stretch as landscape or portrait cassettes do), a tilt of up to 7 degrees, bars
    at the edges (collimation), tubes and wires, low-frequency exposure haze, blur, gamma and
    noise, and a few erased patches. The draws do not depend on the label and the artefact is
    applied afterwards, so both classes get the same and augmentation can never tell them apart.
    Erased patches keep a detector from leaning on one small cue (a side marker, a label) that
    another hospital places differently: the portable AP films of another hospital (stretched, wired,
    hazy) were where NIH-trained detectors failed.
    """
    h, w = pixels.shape
    zoom = rng.uniform(1.0, 1.25)
    aspect = float(np.exp(rng.uniform(-0.25, 0.25)))
    ch = int(np.clip(round(h / zoom * np.sqrt(aspect)), 8, h))
    cw = int(np.clip(round(w / zoom / np.sqrt(aspect)), 8, w))
    top = int(rng.integers(0, h - ch + 1))
    left = int(rng.integers(0, w - cw + 1))
    x = pixels[top : top + ch, left : left + cw]
    fill = float(np.median(x[::4, ::4]))
    tilt = rng.uniform(-7.0, 7.0)  # films are rarely square to the detector
    if abs(tilt) > 0.5:
        im = Image.fromarray(np.ascontiguousarray(x, dtype=np.float32))
        x = np.array(im.rotate(tilt, Image.Resampling.BILINEAR, fillcolor=fill), dtype=np.float32)
    else:
        x = x.copy()
    _edge_bars(x, rng)
    _wires(x, rng)
    _haze(x, rng, haze)
    blur = rng.uniform(0.0, 1.5)
    if blur > 0.3:
        from scipy.ndimage import gaussian_filter

        x = gaussian_filter(x, blur * max(ch, cw) / 256.0).astype(np.float32)
    for _ in range(int(rng.integers(0, 4))):
        eh, ew = int(ch * rng.uniform(0.05, 0.15)), int(cw * rng.uniform(0.05, 0.15))
        ey, ex = int(rng.integers(0, ch - eh + 1)), int(rng.integers(0, cw - ew + 1))
        x[ey : ey + eh, ex : ex + ew] = fill
    x = np.power(np.clip(x, 0.0, 1.0), rng.uniform(0.7, 1.4), dtype=np.float32)
    sigma = rng.uniform(0.0, 0.02)
    if sigma > 0:
        x = x + np.float32(sigma) * rng.standard_normal(x.shape, dtype=np.float32)
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def _edge_bars(x: np.ndarray, rng: np.random.Generator) -> None:
    """Up to two black or white bars along random edges, in place (collimator shutters, scanner borders)."""
    h, w = x.shape
    for _ in range(int(rng.choice([0, 0, 1, 2]))):
        edge, depth = int(rng.integers(0, 4)), rng.uniform(0.01, 0.08)
        value = np.float32(0.0 if rng.random() < 0.5 else 1.0)
        n = max(1, int(depth * (h if edge < 2 else w)))
        if edge == 0:
            x[:n] = value
        elif edge == 1:
            x[-n:] = value
        elif edge == 2:
            x[:, :n] = value
        else:
            x[:, -n:] = value


def _wires(x: np.ndarray, rng: np.random.Generator) -> None:
    """0-4 bright curved lines, in place: ECG leads, lines and tubes of portable ICU films."""
    from PIL import ImageDraw

    count = int(rng.choice([0, 0, 1, 2, 3, 4]))
    if not count:
        return
    h, w = x.shape
    im = Image.fromarray(x)
    draw = ImageDraw.Draw(im)
    bright = float(np.percentile(x[::4, ::4], 99))
    for _ in range(count):
        ctrl = rng.uniform(0, 1, size=(4, 2)) * np.array([w, h], dtype=np.float64)
        t = np.linspace(0.0, 1.0, 48)[:, None]  # a cubic Bezier: wires bend smoothly
        curve = ((1 - t) ** 3 * ctrl[0] + 3 * (1 - t) ** 2 * t * ctrl[1] + 3 * (1 - t) * t**2 * ctrl[2]
                 + t**3 * ctrl[3])
        points = [(float(px), float(py)) for px, py in curve]
        width = max(1, int(round(rng.uniform(0.004, 0.012) * max(h, w))))
        draw.line(points, fill=float(bright * rng.uniform(0.85, 1.0)), width=width, joint="curve")
    x[:] = np.asarray(im, dtype=np.float32)


def _haze(x: np.ndarray, rng: np.random.Generator, haze: float) -> None:
    """Low-frequency exposure variation, in place: a smooth random field mixed in (up to ``haze``, the
    kind's ``Kind.haze``)."""
    strength = rng.uniform(0.0, haze)
    if strength < 0.05:
        return
    h, w = x.shape
    field = Image.fromarray(rng.random((4, 4), dtype=np.float32)).resize((w, h), Image.Resampling.BICUBIC)
    x[:] = (1 - strength) * x + strength * np.clip(np.asarray(field, dtype=np.float32), 0, 1)


def make_example(
    pixels: np.ndarray,
    kind: Kind,
    positive: bool,
    variant: int,
    spec: InputSpec,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """One model input. ``positive`` applies the kind's artefact (synthetic kinds only); ``rng`` = augment."""
    if rng is not None:
        x = augment(pixels, rng, kind.haze)
        x = kind.add_nuisances(x, rng)
    else:
        x = np.asarray(pixels, dtype=np.float32)
    if positive and kind.synthetic:
        x = kind.positive(x, variant)
    elif positive and variant == MADE:
        x = unframe(x, np.random.default_rng(0) if rng is None else rng)
    if positive and kind.turned_positives and rng is not None:
        x = any_orientation(x, rng)
    if rng is not None and kind.plates:
        x = _plates(x, rng)
    return preprocess(x, spec)


def any_orientation(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``x`` turned a random quarter turn and mirrored half the time: a non-frontal film means the same whichever
    way it lies, and a scan shows the gate a film turned by rotation's verdict, arbitrary on a leg or a knee."""
    x = np.rot90(x, k=int(rng.integers(0, 4)))
    return np.ascontiguousarray(x[:, ::-1] if rng.random() < 0.5 else x)


def unframe(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A part of a frontal film that is not a whole frontal chest: one side's strip or a coned window.

    Positives made this way teach a gate detector the frontal chest's whole layout (both lung fields, the spine
    between them) instead of the look of the few kinds of non-frontal film it was given (decision 0012)."""
    h, w = x.shape
    if rng.random() < 0.5:
        cw = max(8, int(w * rng.uniform(0.35, 0.6)))
        left = 0 if rng.random() < 0.5 else w - cw
        return np.ascontiguousarray(x[:, left : left + cw])
    ch, cw = max(8, int(h * rng.uniform(0.25, 0.5))), max(8, int(w * rng.uniform(0.25, 0.5)))
    top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return np.ascontiguousarray(x[top : top + ch, left : left + cw])


def _plates(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """0-2 annotation plates (text in a white or black box) near the corners, added *after* the artefact.

    A figure panel's "(D)" or a burned-in label looks the same on both classes, so a detector learns to
    ignore it. Half the plates are published-figure panel labels: a box with a wide margin around the
    text, flush with a corner, which otherwise reads as the white collimation of an inverted film
    (docs/decisions/0002). Only for kinds registered with ``plates=True``."""
    from .glyphs import burn_in, find_fonts, glyph_mask

    if rng.random() >= PLATE_PROBABILITY:
        return x
    x = np.array(x, dtype=np.float32, copy=True)
    h, w = x.shape
    fonts = find_fonts()
    for _ in range(int(rng.integers(1, 3))):
        text = str(rng.choice(PLATE_TEXTS))
        mask, box = glyph_mask(text, rng.uniform(0.03, 0.12) * h, fonts[int(rng.integers(len(fonts)))], rng)
        flush = rng.random() < 0.5
        if flush:  # a panel label: the text in a wide axis-aligned box
            margin = int(rng.uniform(0.1, 1.2) * mask.shape[0])
            mask = np.pad(mask, margin)
            box = np.ones_like(mask)
        mh, mw = min(mask.shape[0], h), min(mask.shape[1], w)
        mask, box = mask[:mh, :mw], box[:mh, :mw]
        inset = 0.0 if flush else 0.06
        top = int(rng.uniform(0, inset) * h) if rng.random() < 0.5 else h - mh - int(rng.uniform(0, inset) * (h - mh))
        left = int(rng.uniform(0, inset) * w) if rng.random() < 0.5 else w - mw - int(rng.uniform(0, inset) * (w - mw))
        top, left = min(top, h - mh), min(left, w - mw)  # a plate as wide as the film starts at its edge
        plate = rng.uniform(0.85, 1.0) if rng.random() < 0.6 else rng.uniform(0.0, 0.15)
        burn_in(x[top : top + mh, left : left + mw], mask, box, 1 - plate, plate)
    return x


def example_plan(labels: list[int | None], kind: Kind, rng: np.random.Generator | None) -> list[tuple[int, int, int]]:
    """(source index, label, variant) for one pass.

    Synthetic kinds: every normal gives one negative and one positive, the positive's variant
    (e.g. rotation angle) cycling so the variants stay balanced. Labelled kinds: every image once,
    the smaller class repeated (seeded) until the classes balance.
    """
    plan: list[tuple[int, int, int]] = []
    if kind.synthetic:
        n_var = len(kind.variants)
        offset = int(rng.integers(0, n_var)) if rng is not None else 0
        for i in range(len(labels)):
            plan.append((i, 0, 0))
            plan.append((i, 1, (i + offset) % n_var))
        return plan
    pos = [i for i, y in enumerate(labels) if y == 1]
    neg = [i for i, y in enumerate(labels) if y == 0]
    plan = [(i, 1, 0) for i in pos] + [(i, 0, 0) for i in neg]
    if rng is not None and pos and neg:
        small, big = (pos, neg) if len(pos) < len(neg) else (neg, pos)
        label = 1 if small is pos else 0
        extra = rng.choice(small, size=len(big) - len(small), replace=True)
        made = int(round(kind.made_positives * len(extra))) if label == 1 else 0
        plan += [(int(i), label, 0) for i in extra[made:]]
        plan += [(int(i), 1, MADE) for i in rng.choice(neg, size=made, replace=True)]
    return plan


def build_eval_set(images: list[np.ndarray], labels: list[int | None], kind: Kind, spec: InputSpec, progress=False):
    """Un-augmented examples for validation / evaluation: (x (N,s,s,1), y (N,), source index (N,), variant (N,))."""
    from tqdm import tqdm

    plan = example_plan(labels, kind, rng=None)
    xs = np.zeros((len(plan), spec.size, spec.size, 1), dtype=np.float32)
    for j, (i, y, v) in enumerate(tqdm(plan, desc="validation set", unit="ex", disable=not progress)):
        xs[j] = make_example(images[i], kind, bool(y), v, spec, rng=None)
    plan_arr = np.asarray(plan, dtype=np.int64).reshape(-1, 3)
    return xs, plan_arr[:, 1].astype(np.float32), plan_arr[:, 0], plan_arr[:, 2]


def _keras_dataset_base():
    import keras

    return keras.utils.PyDataset


class TrainingBatches:
    """Factory for a Keras ``PyDataset`` that synthesises fresh augmented examples every epoch.

    Deterministic: batch ``b`` of epoch ``e`` draws from ``default_rng([seed, e, b])``.
    """

    def __new__(cls, images, labels, kind: Kind, spec: InputSpec, batch_size: int, seed: int, copies: int = 1):
        base = _keras_dataset_base()

        class _Batches(base):
            def __init__(self):
                super().__init__(workers=1, use_multiprocessing=False)
                self.epoch = 0
                self._make_plan()

            def _make_plan(self):
                rng = np.random.default_rng([seed, self.epoch, 1_000_003])
                plan = []
                for _ in range(copies):
                    plan += example_plan(labels, kind, rng)
                order = rng.permutation(len(plan))
                self.plan = [plan[i] for i in order]

            def __len__(self):
                return int(np.ceil(len(self.plan) / batch_size))

            def __getitem__(self, index):
                rng = np.random.default_rng([seed, self.epoch, index])
                part = self.plan[index * batch_size : (index + 1) * batch_size]
                x = np.stack([make_example(images[i], kind, bool(y), v, spec, rng) for i, y, v in part])
                y = np.asarray([y for _, y, _ in part], dtype=np.float32)
                return x, y

            def on_epoch_end(self):
                self.epoch += 1
                self._make_plan()

        return _Batches()
