"""Reading the handedness of burned-in text: is a film's side marker or label readable, or mirror-reversed?

A digital mirror reverses every glyph on a film, and portable ICU films (where anatomy fails the flip
detector) nearly all carry a side marker. The reader is trained only on synthetic patches: a letter drawn
over a patch of a real film, readable, reversed, or absent (or left-right symmetric, like A or O, whose
handedness cannot be read). The background is mirrored at random independently of the label, so only the
glyph's handedness separates the classes. The network is fully convolutional with a global max over
positions: trained on 48 px patches, it answers on a whole film "is there readable text?" and "is there
reversed text?". ``with_reader`` joins it to an anatomy model as one Keras model: the flip detector's
log-odds plus the evidence that the film's text is reversed (``benchmarks/flip_marker_reading.py`` measured
the sum on another hospital's films).
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

PATCH = 48
FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "/Library/Fonts", "C:/Windows/Fonts")
#: letters whose mirror image differs from them (their handedness can be read), and ones whose does not
HANDED = list("RLFPSEBCDGJKNQZ2345679")
SYMMETRIC = list("AHIMOTUVWXY08")
#: a letter counts as handed in a font when its mirror overlap is at most this, as symmetric when at least that
HANDED_MAX_OVERLAP, SYMMETRIC_MIN_OVERLAP = 0.75, 0.85
#: stands for Pillow's own scalable font where the machine has no TrueType fonts
PILLOW_FONT = "<pillow default>"


def find_fonts() -> list[str]:
    """Upright TrueType fonts on this machine (markers are mostly plain capitals) in which an R and an L can be
    told from their mirror images; Pillow's own scalable font if there are none."""
    found = sorted(str(p) for d in FONT_DIRS if Path(d).is_dir() for p in Path(d).rglob("*.ttf")
                   if not any(w in p.name.lower() for w in ("italic", "oblique", "emoji", "symbol")))
    return [f for f in found if _draws_markers(f)] or [PILLOW_FONT]


def _draws_markers(font_path: str) -> bool:
    """False for a font that cannot be read, draws nothing, or draws R and L symmetric (e.g. as empty boxes)."""
    try:
        return {"R", "L"} <= set(letter_sets(font_path)[0])
    except (OSError, ValueError):
        return False


def load_font(path: str, size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size) if path == PILLOW_FONT else ImageFont.truetype(path, size)


def mirror_overlap(letter: str, font_path: str) -> float:
    """How alike a letter and its mirror image are in this font: intersection over union of the ink, drawn
    large, cropped to the ink and slightly blurred so that hinting and anti-aliasing do not count (1 = symmetric)."""
    from PIL import Image, ImageDraw
    from scipy.ndimage import gaussian_filter

    font = load_font(font_path, 160)
    left, top, right, bottom = font.getbbox(letter)
    im = Image.new("L", (right - left + 4, bottom - top + 4), 0)
    ImageDraw.Draw(im).text((2 - left, 2 - top), letter, fill=255, font=font)
    ink = np.asarray(im, np.float32) / 255
    rows, cols = np.nonzero(ink > 0.1)
    ink = gaussian_filter(ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1], 3.0)
    mirrored = ink[:, ::-1]
    return float(np.minimum(ink, mirrored).sum() / np.maximum(ink, mirrored).sum())


@functools.lru_cache(maxsize=None)
def letter_sets(font_path: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(handed, symmetric) letters *in this font*: a serif A or U has thick and thin strokes, so it is not
    symmetric there, and Q is barely handed anywhere. Letters in between are not drawn with the font, so
    that no patch is labelled against what it shows."""
    handed = tuple(c for c in HANDED if mirror_overlap(c, font_path) <= HANDED_MAX_OVERLAP)
    symmetric = tuple(c for c in SYMMETRIC if mirror_overlap(c, font_path) >= SYMMETRIC_MIN_OVERLAP)
    return handed, symmetric


def glyph_mask(text: str, height: float, font_path: str, rng: np.random.Generator):
    """The text's ink and its plate (the box behind it) as [0, 1] arrays, stretched and tilted at random."""
    from PIL import Image, ImageDraw

    font = load_font(font_path, max(6, int(height * 1.35)))
    left, top, right, bottom = font.getbbox(text)
    pad = int(rng.integers(1, 5))
    mask = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 0)
    ImageDraw.Draw(mask).text((pad - left, pad - top), text, fill=255, font=font)
    box = Image.new("L", mask.size, 255)
    stretch = float(np.exp(rng.uniform(-0.3, 0.3)))  # the square resize of landscape or portrait films
    size = (max(1, round(mask.width * stretch)), max(1, round(mask.height / stretch)))
    mask, box = mask.resize(size, Image.Resampling.BILINEAR), box.resize(size, Image.Resampling.BILINEAR)
    angle = rng.uniform(-10, 10)
    if abs(angle) > 1:
        mask = mask.rotate(angle, Image.Resampling.BILINEAR, expand=True)
        box = box.rotate(angle, Image.Resampling.BILINEAR, expand=True)
    return np.asarray(mask, np.float32) / 255, np.asarray(box, np.float32) / 255


def make_patch(background: np.ndarray, label: int, fonts: Sequence[str], rng: np.random.Generator) -> np.ndarray:
    """label 0: no glyph or a symmetric one; 1: readable glyph; 2: mirror-reversed glyph."""
    from PIL import Image
    from scipy.ndimage import gaussian_filter

    x = background[:, ::-1].copy() if rng.random() < 0.5 else background.copy()
    font = fonts[int(rng.integers(len(fonts)))]
    handed, symmetric = letter_sets(font)
    if label == 0:
        text = "".join(rng.choice(symmetric, size=int(rng.integers(1, 3)))) if symmetric and rng.random() < 0.4 else None
    else:
        r = rng.random()
        text = "R" if r < 0.3 else "L" if r < 0.6 else "".join(rng.choice(handed, size=int(rng.integers(1, 3))))
    if text:
        mask, box = glyph_mask(text, rng.uniform(9, 30), font, rng)
        if label == 2:
            mask, box = mask[:, ::-1], box[:, ::-1]
        if max(mask.shape) > PATCH:
            s = 0.95 * PATCH / max(mask.shape)
            size = (max(1, int(mask.shape[1] * s)), max(1, int(mask.shape[0] * s)))
            mask = np.asarray(Image.fromarray(mask).resize(size), np.float32)
            box = np.asarray(Image.fromarray(box).resize(size), np.float32)
        h, w = mask.shape
        top, left = int(rng.integers(0, PATCH - h + 1)), int(rng.integers(0, PATCH - w + 1))
        region = x[top : top + h, left : left + w]
        style, ink = rng.random(), rng.uniform(0.85, 1.0)
        if style < 0.35:  # a marker on its own dark or light plate
            back = rng.uniform(0.0, 0.3) if rng.random() < 0.6 else rng.uniform(0.8, 1.0)
            ink = rng.uniform(0.0, 0.2) if back > 0.5 else ink
            region[:] = region * (1 - box) + back * box
        elif style < 0.5:
            ink = rng.uniform(0.0, 0.15)
        region[:] = region * (1 - mask) + ink * mask
    if rng.random() < 0.5:
        x = gaussian_filter(x, rng.uniform(0.3, 1.2))
    x = np.clip(x, 0, 1) ** rng.uniform(0.7, 1.4)
    x = x + rng.uniform(0, 0.03) * rng.standard_normal(x.shape)
    return np.clip(x, 0, 1).astype(np.float32)


def build_reader(width: float = 1.0):
    """``width`` scales every layer's filters (0.5: about a quarter of the compute)."""
    import keras
    from keras import layers

    from .backbones import BN_MOMENTUM

    inputs = keras.Input((None, None, 1))
    x = inputs
    for filters, pool in ((32, True), (64, True), (96, True), (128, False)):
        for _ in range(2):
            x = layers.Conv2D(max(8, round(filters * width)), 3, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)  # few steps per epoch: see backbones
            x = layers.ReLU()(x)
        if pool:
            x = layers.MaxPooling2D(2)(x)
    logits = layers.GlobalMaxPooling2D(name=LOGITS_LAYER)(layers.Conv2D(2, 1, name="readable_reversed")(x))
    return keras.Model(inputs, layers.Activation("sigmoid")(logits), name="glyph_reader")


#: the reader's layer holding its per-film [readable, reversed] logits (max over positions)
LOGITS_LAYER = "glyph_logits"
#: the logit a probability of 1 - 1e-6 has: where ``logit`` clips, and where the bundled model clips
LOGIT_CLIP = 13.8155


def with_reader(model, reader, name: str = "anatomy_and_glyphs"):
    """One model: sigmoid(``model``'s logit + the reader's evidence that the film's text is reversed).

    ``model`` is a cxclean backbone (it has a ``logit`` layer) whose input the reader reads as well;
    summing log-odds treats the two as independent evidence, with no weight to tune."""
    import keras

    from .layers import GlyphEvidence

    image = model.inputs[0]
    reader_logits = keras.Model(reader.inputs[0], reader.get_layer(LOGITS_LAYER).output, name="glyph_reader")
    evidence = GlyphEvidence(LOGIT_CLIP, name="glyph_evidence")(reader_logits(image))
    total = keras.layers.Add(name="summed_logit")([model.get_layer("logit").output, evidence])
    score = keras.layers.Activation("sigmoid", dtype="float32", name="score")(total)
    return keras.Model(image, score, name=name)


def synth_patches(films: Sequence[np.ndarray], n_patches: int, fonts: Sequence[str], rng: np.random.Generator):
    """``n_patches`` patches cut at random from ``films`` (each at least PATCH px a side), labels drawn evenly;
    y is (n, 2): [readable, reversed]."""
    x = np.zeros((n_patches, PATCH, PATCH, 1), np.float32)
    y = np.zeros((n_patches, 2), np.float32)
    for k in range(n_patches):
        im = films[int(rng.integers(len(films)))]
        top, left = int(rng.integers(0, im.shape[0] - PATCH + 1)), int(rng.integers(0, im.shape[1] - PATCH + 1))
        label = int(rng.integers(3))
        x[k, ..., 0] = make_patch(im[top : top + PATCH, left : left + PATCH], label, fonts, rng)
        if label:
            y[k, label - 1] = 1
    return x, y


def train_reader(films: Sequence[np.ndarray], n_patches: int = 30000, epochs: int = 4, seed: int = 0,
                 width: float = 1.0, log: Callable[[str], None] = print, verbose: int = 0):
    """A glyph reader trained on synthetic patches over ``films`` (decoded, preprocessed [0, 1] arrays).

    Returns (model, info): info says how it was trained and its accuracy on held-out synthetic patches."""
    import time

    import keras

    started = time.perf_counter()
    keras.utils.set_random_seed(seed)
    fonts = find_fonts()
    log(f"glyph reader: {len(films)} film(s) as backgrounds, {len(fonts)} font(s), {n_patches} patches")
    x, y = synth_patches(films, n_patches, fonts, np.random.default_rng(seed))
    model = build_reader(width)
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy", metrics=["binary_accuracy"])
    n_val = n_patches // 10

    class _Log(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            log(f"glyph reader epoch {epoch + 1}/{epochs}: loss {logs.get('loss', np.nan):.4f}, held-out patch "
                f"accuracy {logs.get('val_binary_accuracy', np.nan):.4f}")

    history = model.fit(x[n_val:], y[n_val:], validation_data=(x[:n_val], y[:n_val]), batch_size=128, epochs=epochs,
                        verbose=verbose, callbacks=[_Log()])
    info = {"patches": n_patches, "epochs": epochs, "width": width, "seed": seed, "fonts": len(fonts),
            "background_films": len(films), "patch_size": PATCH, "logit_clip": LOGIT_CLIP,
            "held_out_patch_accuracy": round(float(history.history["val_binary_accuracy"][-1]), 4),
            "seconds": round(time.perf_counter() - started, 1)}
    return model, info


def logit(p) -> np.ndarray:
    """Log-odds of a probability, clipped (at +-LOGIT_CLIP) so that a saturated sigmoid stays finite."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def evidence(p_readable, p_reversed) -> np.ndarray:
    """Log-odds that the film's text is reversed: logit(reversed) - logit(readable)."""
    return logit(p_reversed) - logit(p_readable)
