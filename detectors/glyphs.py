"""Reading burned-in text on a film: does its text read mirror-reversed, and on which side are its L and R markers?

A digital mirror reverses every glyph on a film and moves its side markers across, and portable ICU films
(where anatomy fails the flip detector) nearly all carry a side marker. The reader is trained only on
synthetic patches over real films: text (a word or a few letters) readable or reversed, a lone L or R side
marker facing either way (sometimes with initials), or nothing (or left-right symmetric letters, like A or O,
whose handedness cannot be read). The background is mirrored at random independently of the label, so
only the glyphs separate the classes. The network is fully convolutional: trained on 48 px patches with a
global max over positions, on a whole film it gives per-position maps. ``with_reader`` joins it to an
anatomy model as one Keras model: the flip detector's log-odds plus the evidence from where the markers are
(an L on the image's right is upright whichever way it faces: lead markers are often put on the cassette back
to front, so their handedness alone misleads: a third of upright NIH PA films carry a reversed L). The text's
handedness is trained but not scored (see ``with_reader`` and docs/decisions/0001).
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .backbones import BN_MOMENTUM
from .evidence import LOGIT_CLIP, evidence, logit  # noqa: F401  (the reader's log-odds)

PATCH = 48
FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "/Library/Fonts", "C:/Windows/Fonts")
#: letters whose mirror image differs from them (their handedness can be read), and ones whose does not
HANDED = list("RLFPSEBCDGJKNQZ2345679")
SYMMETRIC = list("AHIMOTUVWXY08")
#: a letter counts as handed in a font when its mirror overlap is at most this, as symmetric when at least that
HANDED_MAX_OVERLAP, SYMMETRIC_MIN_OVERLAP = 0.75, 0.85
#: stands for Pillow's own scalable font where the machine has no TrueType fonts
PILLOW_FONT = "<pillow default>"


@functools.lru_cache(maxsize=None)
def find_fonts() -> tuple[str, ...]:
    """Upright TrueType fonts on this machine (markers are mostly plain capitals) in which an R and an L can be
    told from their mirror images; Pillow's own scalable font if there are none."""
    found = sorted(str(p) for d in FONT_DIRS if Path(d).is_dir() for p in Path(d).rglob("*.ttf")
                   if not any(w in p.name.lower() for w in ("italic", "oblique", "emoji", "symbol")))
    return tuple(f for f in found if _draws_markers(f)) or (PILLOW_FONT,)


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


#: patch classes; the reader's output channels are the last four (an L or R side marker is read whichever way it faces)
NOTHING, READABLE, REVERSED, MARKER_L, MARKER_R = range(5)
CHANNELS = ("readable", "reversed", "marker_L", "marker_R")
#: burned-in words seen on chest films (English and German), drawn as readable or reversed text
WORDS = ("AP", "PA", "PORTABLE", "SUPINE", "ERECT", "SEMI-ERECT", "UPRIGHT", "SITTING", "BEDSIDE", "MOBILE",
         "INSP", "EXP", "LIEGEND", "STEHEND", "SITZEND", "ITS", "ICU", "CHEST", "THORAX", "KEY", "DR", "CR")


def _compose(parts: list[tuple[np.ndarray, np.ndarray]], below: bool) -> tuple[np.ndarray, np.ndarray]:
    """Glyph masks and plates side by side (or the second below the first), as one mask and plate."""
    h = sum(m.shape[0] for m, _ in parts) if below else max(m.shape[0] for m, _ in parts)
    w = max(m.shape[1] for m, _ in parts) if below else sum(m.shape[1] for m, _ in parts)
    mask, box = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
    at = 0
    for m, b in parts:
        top, left = (at, 0) if below else (0, at)
        mask[top : top + m.shape[0], left : left + m.shape[1]] = m
        box[top : top + b.shape[0], left : left + b.shape[1]] = np.maximum(box[top : top + b.shape[0], left : left + b.shape[1]], b)
        at += m.shape[0] if below else m.shape[1]
    return mask, box


def _text(handed: Sequence[str], symmetric: Sequence[str], rng: np.random.Generator) -> str:
    """Burned-in text whose handedness can be read; never a lone L or R (those are side markers), nor a lone
    J, which reversed is drawn like an L in many fonts."""
    if rng.random() < 0.35:
        return str(rng.choice(WORDS))
    while True:
        letters = list(rng.choice(handed, size=int(rng.integers(1, 5))))
        if symmetric and rng.random() < 0.3:
            letters.insert(int(rng.integers(len(letters) + 1)), str(rng.choice(symmetric)))
        text = "".join(letters)
        if text not in ("L", "R", "J"):
            return text


def make_patch(background: np.ndarray, label: int, fonts: Sequence[str], rng: np.random.Generator) -> np.ndarray:
    """A ``PATCH`` px patch of ``background`` showing what ``label`` (``NOTHING`` ... ``MARKER_R``) names.

    Text (readable or reversed) is a word or a few letters. A side marker is a lone L or R, readable or
    reversed at random (lead markers are often put on the cassette facing the wrong way), sometimes with
    the technologist's initials beside or below it; it teaches the reader *which* letter is there, not
    its handedness, so that a physically reversed marker cannot pass for a mirrored film."""
    from scipy.ndimage import gaussian_filter

    x = background[:, ::-1].copy() if rng.random() < 0.5 else background.copy()
    font = fonts[int(rng.integers(len(fonts)))]
    handed, symmetric = letter_sets(font)
    height = rng.uniform(9, 30)
    glyph, reverse = None, label == REVERSED
    if label == NOTHING:
        if symmetric and rng.random() < 0.4:
            glyph = glyph_mask("".join(rng.choice(symmetric, size=int(rng.integers(1, 3)))), height, font, rng)
    elif label in (READABLE, REVERSED):
        glyph = glyph_mask(_text(handed, symmetric, rng), height, font, rng)
    else:
        glyph = glyph_mask("L" if label == MARKER_L else "R", height, font, rng)
        if rng.random() < 0.4:  # initials
            initials = "".join(rng.choice(list(handed) + list(symmetric), size=int(rng.integers(1, 4))))
            glyph = _compose([glyph, glyph_mask(initials, height * rng.uniform(0.35, 0.6), font, rng)], rng.random() < 0.5)
        reverse = rng.random() < 0.5
    if rng.random() < (FRAMED_MARKERS if label in (MARKER_L, MARKER_R) else FRAMED_OTHER):
        glyph = _framed(glyph, rng)  # a ring or box round a marker, or round anything else (or nothing)
    if glyph is not None:
        mask, box = _fit(*glyph)
        if reverse:
            mask, box = mask[:, ::-1], box[:, ::-1]
        _paste(x, mask, box, rng)
    if rng.random() < 0.5:
        x = gaussian_filter(x, rng.uniform(0.3, 1.2))
    x = np.clip(x, 0, 1) ** rng.uniform(0.7, 1.4)
    x = x + rng.uniform(0, 0.03) * rng.standard_normal(x.shape)
    return np.clip(x, 0, 1).astype(np.float32)


#: how often a side marker is drawn inside a ring or a box (as on many portable films), and anything else
#: (text, symmetric letters, nothing at all), so that a frame alone never says "marker"
FRAMED_MARKERS, FRAMED_OTHER = 0.3, 0.1


def _framed(glyph, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``glyph`` (mask, plate) inside a ring or a rectangle drawn in the same ink; None: an empty frame."""
    from PIL import Image, ImageDraw

    mask, _ = glyph if glyph is not None else (np.zeros((int(rng.integers(10, 24)),) * 2, np.float32), None)
    h, w = mask.shape
    ring = rng.random() < 0.6
    pad = int(max(2, rng.uniform(0.15, 0.45) * max(h, w) * (1.25 if ring else 1.0)))
    size = (w + 2 * pad, h + 2 * pad)
    line = max(1, round(rng.uniform(0.06, 0.14) * max(h, w)))
    frame, inside = Image.new("L", size, 0), Image.new("L", size, 0)
    shape = (ImageDraw.Draw(frame).ellipse if ring else ImageDraw.Draw(frame).rectangle)
    shape((0, 0, size[0] - 1, size[1] - 1), outline=255, width=line)
    (ImageDraw.Draw(inside).ellipse if ring else ImageDraw.Draw(inside).rectangle)((0, 0, size[0] - 1, size[1] - 1), fill=255)
    out = np.asarray(frame, np.float32) / 255
    out = out.copy()
    out[pad : pad + h, pad : pad + w] = np.maximum(out[pad : pad + h, pad : pad + w], mask)
    return out, np.asarray(inside, np.float32) / 255


def _fit(mask: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A glyph shrunk to fit in a patch; before any mirroring, so that resampling treats both handednesses alike."""
    from PIL import Image

    if max(mask.shape) <= PATCH:
        return mask, box
    s = 0.95 * PATCH / max(mask.shape)
    size = (max(1, int(mask.shape[1] * s)), max(1, int(mask.shape[0] * s)))
    return (np.asarray(Image.fromarray(mask).resize(size), np.float32),
            np.asarray(Image.fromarray(box).resize(size), np.float32))


def _paste(x: np.ndarray, mask: np.ndarray, box: np.ndarray, rng: np.random.Generator) -> None:
    """Burn a glyph (no larger than the patch) into patch ``x`` at a random place, possibly running over an
    edge (markers sit at a film's border), as bright or dark ink, often on its own plate of any contrast
    (a white letter on a light grey plate is as common as black on white)."""
    h, w = mask.shape
    top = int(rng.integers(-h // 5, PATCH - h + h // 5 + 1))
    left = int(rng.integers(-w // 5, PATCH - w + w // 5 + 1))
    rows = slice(max(0, -top), min(h, PATCH - top))
    cols = slice(max(0, -left), min(w, PATCH - left))
    mask, box = mask[rows, cols], box[rows, cols]
    region = x[max(0, top) : max(0, top) + mask.shape[0], max(0, left) : max(0, left) + mask.shape[1]]
    style, back = rng.random(), None
    if style < 0.5:  # a plate: dark or light, ink of strong or weak contrast either way
        back = rng.uniform(0.0, 0.35) if rng.random() < 0.5 else rng.uniform(0.6, 1.0)
        contrast = rng.uniform(0.12, 0.9) * (1 if back < 0.5 else -1) * (-1 if rng.random() < 0.3 else 1)
        ink = float(np.clip(back + contrast, 0, 1))
        if abs(ink - back) < 0.1:
            ink = float(np.clip(back - np.sign(contrast) * 0.3, 0, 1))
    elif style < 0.65:
        ink = rng.uniform(0.0, 0.15)
    elif style < 0.8:  # faint ink on the film itself
        ink = float(np.clip(np.median(region) + rng.choice([-1, 1]) * rng.uniform(0.15, 0.4), 0, 1))
    else:
        ink = rng.uniform(0.85, 1.0)
    burn_in(region, mask, box, ink, back)


def burn_in(region: np.ndarray, mask: np.ndarray, box: np.ndarray, ink: float, back: float | None = None) -> None:
    """Blend a glyph into ``region`` in place: its plate (``box``) in ``back`` first, if any, then its ink."""
    if back is not None:
        region[:] = region * (1 - box) + back * box
    region[:] = region * (1 - mask) + ink * mask


def build_reader(width: float = 1.0, fast: bool = False):
    """``width`` scales every layer's filters (0.5: about a quarter of the compute). ``fast``: after a plain first
    convolution, depthwise-separable ones: about a sixth of the plain reader's compute at the same width."""
    import keras
    from keras import layers

    def block(x, filters, separable):
        conv = layers.SeparableConv2D if separable else layers.Conv2D
        x = conv(max(8, round(filters * width)), 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)  # few steps per epoch: see backbones
        return layers.ReLU()(x)

    inputs = keras.Input((None, None, 1))
    x = block(inputs, 16 if fast else 32, separable=False)
    stages = ((16, 1), (32, 2), (48, 2), (64, 2)) if fast else ((32, 1), (64, 2), (96, 2), (128, 2))
    for i, (filters, repeats) in enumerate(stages):
        for _ in range(repeats):
            x = block(x, filters, separable=fast)
        if i < 3:
            x = layers.MaxPooling2D(2)(x)
    maps = layers.Conv2D(len(CHANNELS), 1, name=MAPS_LAYER)(x)
    logits = layers.GlobalMaxPooling2D(name=LOGITS_LAYER)(maps)
    return keras.Model(inputs, layers.Activation("sigmoid")(logits), name="glyph_reader")


#: the reader's per-position logits (one channel per ``CHANNELS``) and their max over positions (per film)
MAPS_LAYER, LOGITS_LAYER = "glyph_maps", "glyph_logits"


def _cues(logits, maps, suffix: str = ""):
    """Text evidence: the reader's [reversed - readable] logits (None without ``logits``). Side-marker
    evidence: an L on the image's left or an R on its right says "mirrored", the other way round says
    "upright" (a frontal film shows the patient's left on the viewer's right), whichever way the letter
    faces. Both as log-odds of "mirrored"."""
    from .layers import GlyphEvidence, MarkerSideEvidence

    text = None if logits is None else GlyphEvidence(LOGIT_CLIP, name="glyph_evidence")(logits)
    return text, MarkerSideEvidence(LOGIT_CLIP, name="marker_side_evidence" + suffix)(maps)


def evidence_model(reader):
    """The reader's two cues per film, (text evidence, side-marker evidence), as one Keras model."""
    import keras

    text, side = _cues(reader.get_layer(LOGITS_LAYER).output, reader.get_layer(MAPS_LAYER).output)
    return keras.Model(reader.inputs[0], [text, side], name="glyph_cues")


def with_reader(model, reader, name: str = "anatomy_and_glyphs", bands: float | None = None,
                mirrored: bool = False):
    """One model: sigmoid(``model``'s logit + the side markers' evidence).

    ``model`` is a cxclean backbone (it has a ``logit`` layer) whose input the reader reads as well;
    summing log-odds treats the two as independent evidence, with no weight to tune. The text's handedness is
    left out of the score (it lowered AUC everywhere; docs/decisions/0001); its classes still teach the marker
    channels that a letter inside a word is not a marker. With ``bands`` (a fraction of the width) the reader
    reads only the film's left and right edge bands, where side markers sit (``layers.SideBands``).

    With ``mirrored`` the reader also reads the mirror of what it reads, in one batch (the film's own views first),
    and the side evidence is ``(side(x) - side(mirror x)) / 2``: with a mirror comparator as ``model`` a film and
    its mirror then get opposite log-odds as a whole (docs/decisions/0017). ``reader`` may be a list of readers:
    their side evidence is averaged (review overlays show each letter and side as the strongest reader read it)."""
    import keras

    from .layers import HalvesDifference, SideBands, WithMirror

    readers = list(reader) if isinstance(reader, (list, tuple)) else [reader]
    image = model.inputs[0]
    seen = SideBands(bands, name="side_bands")(image) if bands else image
    if mirrored:
        seen = WithMirror(name="read_with_mirror")(seen)  # the mirror's bands are the bands' mirror, exactly
    sides = []
    for i, one in enumerate(readers):
        suffix = f"_{i + 1}" if i else ""
        maps = keras.Model(one.inputs[0], one.get_layer(MAPS_LAYER).output, name="glyph_reader" + suffix)(seen)
        sides.append(_cues(None, maps, suffix)[1])
    side = keras.layers.Average(dtype="float32", name="mean_of_readers")(sides) if len(sides) > 1 else sides[0]
    if mirrored:
        side = HalvesDifference(dtype="float32", name="side_difference")(side)
        side = keras.layers.Rescaling(0.5, dtype="float32", name="side_logit")(side)
    total = keras.layers.Add(name="summed_logit")([model.get_layer("logit").output, side])
    score = keras.layers.Activation("sigmoid", dtype="float32", name="score")(total)
    return keras.Model(image, score, name=name)


def synth_patches(films: Sequence[np.ndarray], n_patches: int, fonts: Sequence[str], rng: np.random.Generator):
    """``n_patches`` patches cut at random from ``films`` (each at least PATCH px a side), classes drawn evenly;
    y is (n, 4), one column per ``CHANNELS``."""
    x = np.zeros((n_patches, PATCH, PATCH, 1), np.float32)
    y = np.zeros((n_patches, len(CHANNELS)), np.float32)
    for k in range(n_patches):
        im = films[int(rng.integers(len(films)))]
        top, left = int(rng.integers(0, im.shape[0] - PATCH + 1)), int(rng.integers(0, im.shape[1] - PATCH + 1))
        label = int(rng.integers(5))
        x[k, ..., 0] = make_patch(im[top : top + PATCH, left : left + PATCH], label, fonts, rng)
        if label:
            y[k, label - 1] = 1
    return x, y


def train_reader(films: Sequence[np.ndarray], n_patches: int = 30000, epochs: int = 4, seed: int = 0,
                 width: float = 1.0, log: Callable[[str], None] = print, verbose: int = 0, fast: bool = False):
    """A glyph reader trained on synthetic patches over ``films`` (decoded, preprocessed [0, 1] arrays).

    Returns (model, info): info says how it was trained and its accuracy on held-out synthetic patches."""
    import time

    import keras

    started = time.perf_counter()
    keras.utils.set_random_seed(seed)
    fonts = find_fonts()
    log(f"glyph reader: {len(films)} film(s) as backgrounds, {len(fonts)} font(s), {n_patches} patches")
    x, y = synth_patches(films, n_patches, fonts, np.random.default_rng(seed))
    model = build_reader(width, fast=fast)
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy", metrics=["binary_accuracy"])
    n_val = n_patches // 10

    class _Log(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            log(f"glyph reader epoch {epoch + 1}/{epochs}: loss {logs.get('loss', np.nan):.4f}, held-out patch "
                f"accuracy {logs.get('val_binary_accuracy', np.nan):.4f}")

    history = model.fit(x[n_val:], y[n_val:], validation_data=(x[:n_val], y[:n_val]), batch_size=128, epochs=epochs,
                        verbose=verbose, callbacks=[_Log()])
    info = {"patches": n_patches, "epochs": epochs, "width": width, "fast": fast, "seed": seed, "fonts": len(fonts),
            "background_films": len(films), "patch_size": PATCH, "logit_clip": LOGIT_CLIP,
            "held_out_patch_accuracy": round(float(history.history["val_binary_accuracy"][-1]), 4),
            "seconds": round(time.perf_counter() - started, 1)}
    return model, info
