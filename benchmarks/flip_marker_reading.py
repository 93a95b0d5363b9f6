"""Experiment: does reading burned-in text (side markers "R"/"L", labels) fix the flip detector on portable AP films?

A digital mirror reverses every burned-in glyph: an "R" marker becomes a reversed R. The shipped flip
detector (anatomy at 128 px) fails on heavily wired ICU films whose heart borders are invisible, and
those films nearly all carry a legible side marker. This script measures that cue before it goes into the
product:

1. A small fully convolutional *glyph reader* is trained on 48 px patches cut from NIH films (Hannover is
   never used), on which a glyph is drawn with the system's TrueType fonts: none (or a left-right
   symmetric letter such as A, H, O), readable, or mirror-reversed. The background patch is mirrored at
   random independently of the label, so anatomy carries no signal; only the glyph's handedness does.
   Two sigmoid channels (readable, reversed), max-pooled over positions: on a whole film the same network
   answers "is there readable text?" and "is there reversed text?".
2. On every Hannover film and its mirrored copy (as the flip benchmark synthesises them), the glyph
   evidence is logit(reversed) - logit(readable), and the combined score is
   logit(flip_score) + weight * glyph evidence (weight 1 = summing the two log-odds as independent evidence).
   AUC is reported for anatomy alone, glyphs alone and combined, per view.

    PYTHONPATH=$PWD python benchmarks/flip_marker_reading.py --out runs/flip_glyph
    PYTHONPATH=$PWD python benchmarks/flip_marker_reading.py --out runs/flip_glyph_half --patches 30000 --width 0.5   # cheaper reader

Films are read by cleaner.images.read_image and brought to a 512 px square by cleaner.preprocess (the
scan path), so glyphs are stretched as a scanned film's would be; training patches get the same stretch
at random. Not part of the product yet: the anatomy score comes from the shipped flip bundle.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PATCH = 48
WORK_SIZE = 512
FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "/Library/Fonts", "C:/Windows/Fonts")
#: letters whose mirror image differs from them (their handedness can be read), and ones whose does not
HANDED = list("RLFPSEBCDGJKNQZ2345679")
SYMMETRIC = list("AHIMOTUVWXY08")


def shared_data() -> Path:
    return Path(os.environ.get("CXCLEAN_SHARED_DATA", REPO.parent / "shared" / "data"))


def sans_fonts() -> list[str]:
    """Upright sans and serif TrueType fonts found on this machine (markers are mostly plain sans capitals)."""
    found = sorted(str(p) for d in FONT_DIRS if Path(d).is_dir() for p in Path(d).rglob("*.ttf")
                   if not any(w in p.name.lower() for w in ("italic", "oblique", "emoji", "symbol")))
    if not found:
        raise SystemExit("no TrueType fonts found (install fonts-dejavu or fonts-liberation)")
    return found


def film(path: Path):
    """A film as the scan path prepares it, at WORK_SIZE: decoded, square-resized, percentile-stretched."""
    from cleaner.images import read_image
    from cleaner.preprocess import InputSpec, preprocess

    return preprocess(read_image(path).pixels, InputSpec(size=WORK_SIZE))[..., 0]


def glyph_mask(text, height, fonts, rng):
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(fonts[int(rng.integers(len(fonts)))], max(6, int(height * 1.35)))
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


def make_patch(background, label, fonts, rng):
    """label 0: no glyph or a symmetric one; 1: readable glyph; 2: mirror-reversed glyph."""
    import numpy as np
    from PIL import Image
    from scipy.ndimage import gaussian_filter

    x = background[:, ::-1].copy() if rng.random() < 0.5 else background.copy()
    if label == 0:
        text = "".join(rng.choice(SYMMETRIC, size=int(rng.integers(1, 3)))) if rng.random() < 0.4 else None
    else:
        r = rng.random()
        text = "R" if r < 0.3 else "L" if r < 0.6 else "".join(rng.choice(HANDED, size=int(rng.integers(1, 3))))
    if text:
        mask, box = glyph_mask(text, rng.uniform(9, 30), fonts, rng)
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


def glyph_reader(width: float = 1.0):
    """``width`` scales every layer's filters (0.5: about a quarter of the compute)."""
    import keras
    from keras import layers

    inputs = keras.Input((None, None, 1))
    x = inputs
    for filters, pool in ((32, True), (64, True), (96, True), (128, False)):
        for _ in range(2):
            x = layers.Conv2D(max(8, round(filters * width)), 3, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization(momentum=0.9)(x)
            x = layers.ReLU()(x)
        if pool:
            x = layers.MaxPooling2D(2)(x)
    logits = layers.Conv2D(2, 1, name="readable_reversed")(x)
    return keras.Model(inputs, layers.Activation("sigmoid")(layers.GlobalMaxPooling2D()(logits)), name="glyph_reader")


def train_reader(data: Path, n_patches: int, epochs: int, seed: int, width: float, log):
    import keras
    import numpy as np
    import pandas as pd

    keras.utils.set_random_seed(seed)
    meta = pd.read_csv(data / "nih" / "metadata.csv", dtype=str).sort_values("path")
    films = [film(data / "nih" / p) for p in meta["path"]]
    fonts = sans_fonts()
    log(f"glyph reader: {len(films)} NIH films as backgrounds, {len(fonts)} font(s), {n_patches} patches")
    rng = np.random.default_rng(seed)
    x = np.zeros((n_patches, PATCH, PATCH, 1), np.float32)
    y = np.zeros((n_patches, 2), np.float32)
    for k in range(n_patches):
        im = films[int(rng.integers(len(films)))]
        top, left = int(rng.integers(0, WORK_SIZE - PATCH + 1)), int(rng.integers(0, WORK_SIZE - PATCH + 1))
        label = int(rng.integers(3))
        x[k, ..., 0] = make_patch(im[top : top + PATCH, left : left + PATCH], label, fonts, rng)
        if label:
            y[k, label - 1] = 1
    model = glyph_reader(width)
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy", metrics=["binary_accuracy"])
    n_val = n_patches // 10
    model.fit(x[n_val:], y[n_val:], validation_data=(x[:n_val], y[:n_val]), batch_size=128, epochs=epochs, verbose=2)
    return model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/flip_glyph"), help="scores and the reader (not committed)")
    parser.add_argument("--flip-bundle", type=Path, default=REPO / "detectors" / "default_bundles" / "flip")
    parser.add_argument("--patches", type=int, default=60000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=float, default=1.0, help="scales the reader's filters (0.5: ~4x cheaper)")
    args = parser.parse_args(argv)

    data = shared_data()
    if not (data / "nih").is_dir() or not (data / "hannover").is_dir():
        print(f"shared data not found at {data} (set CXCLEAN_SHARED_DATA)", file=sys.stderr)
        return 2
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from detectors.evaluation import evaluate

    def log(message):
        print(message, flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    reader = train_reader(data, args.patches, args.epochs, args.seed, args.width, log)
    train_s = time.perf_counter() - t0
    reader.save(args.out / "glyph_reader.keras")

    evaluate(args.flip_bundle, normals=data / "hannover" / "images", out=args.out / "anatomy", progress=False)
    anatomy = pd.read_csv(args.out / "anatomy" / "scores.csv")
    t1 = time.perf_counter()
    rows = []
    for path in sorted(anatomy["path"].unique()):
        im = film(Path(path))
        for label, shown in ((0, im), (1, im[:, ::-1])):
            readable, reversed_ = reader.predict(np.ascontiguousarray(shown)[None, ..., None], verbose=0)[0]
            rows.append({"path": path, "label": label, "p_readable": float(readable), "p_reversed": float(reversed_)})
    read_s = time.perf_counter() - t1

    def logit(p):
        p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
        return np.log(p / (1 - p))

    scores = pd.DataFrame(rows).merge(anatomy[["path", "label", "flip_score"]], on=["path", "label"])
    scores["glyph_evidence"] = logit(scores["p_reversed"]) - logit(scores["p_readable"])
    meta = pd.read_csv(data / "hannover" / "metadata.csv", dtype=str)
    meta["path"] = [str(data / "hannover" / p) for p in meta["path"]]
    scores = scores.merge(meta[["path", "view"]], on="path", how="left")
    scores["view"] = scores["view"].fillna("?").str.upper()
    table = []
    candidates = {"anatomy (shipped flip)": logit(scores["flip_score"]), "glyphs alone": scores["glyph_evidence"]}
    for weight in (0.5, 1.0, 2.0):
        candidates[f"anatomy + {weight:g} x glyphs"] = logit(scores["flip_score"]) + weight * scores["glyph_evidence"]
    for name, score in candidates.items():
        row = {"score": name, "AUC": roc_auc_score(scores["label"], score)}
        for view in ("AP", "PA"):
            part = scores["view"] == view
            if scores.loc[part, "label"].nunique() == 2:
                row[f"AUC {view}"] = roc_auc_score(scores.loc[part, "label"], score[part])
        table.append(row)
    scores.to_csv(args.out / "scores.csv", index=False)
    print(f"\nHannover: {len(scores) // 2} films and their mirrored copies; glyph reader trained in {train_s:.0f} s, "
          f"read {len(scores)} films in {read_s:.0f} s ({len(scores) / read_s:.1f} films/s at {WORK_SIZE} px)")
    print(pd.DataFrame(table).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
