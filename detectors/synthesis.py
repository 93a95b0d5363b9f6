"""Synthesising training examples: artefact on the decoded image, then the one preprocessing path.

Order for every example, positive or negative alike:
``augment(decoded) -> [artefact if positive] -> cleaner.preprocess.preprocess(., spec)``.
The augmentation parameters are drawn independently of the label, so augmentation can never
tell the classes apart; and ``preprocess`` is the very call scanning makes, so padding, aspect
ratio, file format or exposure offer no shortcut.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from cleaner.preprocess import InputSpec, preprocess

from .kinds import Kind


def augment(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Small random shift and zoom (a crop), a tilt of up to 7 degrees, a few erased patches,
    gamma and noise.

    The draws do not depend on the label and the artefact is applied afterwards, so both classes
    get the same. Uncovered corners and erased patches take the image's median grey. Erasing
    patches keeps a detector from leaning on one small cue (a side marker, a label) that another
    hospital places differently.
    """
    h, w = pixels.shape
    zoom = rng.uniform(1.0, 1.25)
    ch, cw = max(8, int(round(h / zoom))), max(8, int(round(w / zoom)))
    top = int(rng.integers(0, h - ch + 1)) if ch < h else 0
    left = int(rng.integers(0, w - cw + 1)) if cw < w else 0
    x = pixels[top : top + ch, left : left + cw]
    fill = float(np.median(x[::4, ::4]))
    tilt = rng.uniform(-7.0, 7.0)  # films are rarely square to the detector
    if abs(tilt) > 0.5:
        im = Image.fromarray(np.ascontiguousarray(x, dtype=np.float32))
        x = np.array(im.rotate(tilt, Image.Resampling.BILINEAR, fillcolor=fill), dtype=np.float32)
    else:
        x = x.copy()
    for _ in range(int(rng.integers(0, 4))):
        eh, ew = int(ch * rng.uniform(0.05, 0.15)), int(cw * rng.uniform(0.05, 0.15))
        ey, ex = int(rng.integers(0, ch - eh + 1)), int(rng.integers(0, cw - ew + 1))
        x[ey : ey + eh, ex : ex + ew] = fill
    x = np.power(np.clip(x, 0.0, 1.0), rng.uniform(0.7, 1.4), dtype=np.float32)
    sigma = rng.uniform(0.0, 0.02)
    if sigma > 0:
        x = x + np.float32(sigma) * rng.standard_normal(x.shape, dtype=np.float32)
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def make_example(
    pixels: np.ndarray,
    kind: Kind,
    positive: bool,
    variant: int,
    spec: InputSpec,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """One model input. ``positive`` applies the kind's artefact (synthetic kinds only); ``rng`` = augment."""
    x = augment(pixels, rng) if rng is not None else np.asarray(pixels, dtype=np.float32)
    if positive and kind.synthetic:
        x = kind.positive(x, variant)
    return preprocess(x, spec)


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
        plan += [(int(i), label, 0) for i in extra]
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
