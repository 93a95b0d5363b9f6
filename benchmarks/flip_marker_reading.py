"""Experiment: does reading burned-in text (side markers "R"/"L", labels) fix the flip detector on portable AP films?

A digital mirror reverses every burned-in glyph: an "R" marker becomes a reversed R. The shipped flip
detector (anatomy at 128 px) fails on heavily wired ICU films whose heart borders are invisible, and
those films nearly all carry a legible side marker. This script measures that cue before it goes into the
product:

1. The glyph reader of ``detectors/glyphs.py`` is trained on synthetic 48 px patches cut from NIH films
   (Hannover is never used): a letter drawn with the machine's TrueType fonts, readable, mirror-reversed,
   or absent (or left-right symmetric, like A or O). Anatomy carries no signal (the background is mirrored
   at random); on a whole film the same network answers "is there readable / reversed text?".
2. On every Hannover film and its mirrored copy (as the flip benchmark synthesises them), the glyph
   evidence is the text's logit(reversed) - logit(readable) plus the side markers' evidence (an L on the
   image's left or an R on its right says mirrored, whichever way it faces: ``detectors.layers.MarkerSideEvidence``),
   and the combined score is logit(flip_score) + weight * glyph evidence (weight 1 = summing the log-odds
   as independent evidence). AUC is reported for anatomy alone, each cue alone and combined, per view.

    PYTHONPATH=$PWD python benchmarks/flip_marker_reading.py --out runs/flip_glyph
    PYTHONPATH=$PWD python benchmarks/flip_marker_reading.py --out runs/flip_glyph_half --patches 30000 --width 0.5   # cheaper reader

Films are read by cleaner.io.images.read_image and brought to a 512 px square by cleaner.io.preprocess (the
scan path), so glyphs are stretched as a scanned film's would be; training patches get the same stretch
at random. Given a flip bundle that reads glyphs already (the default since the reader went into the
product), no reader is trained: the bundle's own backbone logit and glyph evidence are read out of its model.
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

WORK_SIZE = 512


def shared_data() -> Path:
    return Path(os.environ.get("CXCLEAN_SHARED_DATA", REPO.parent / "shared" / "data"))


def film(path: Path):
    """A film as the scan path prepares it, at WORK_SIZE: decoded, square-resized, percentile-stretched."""
    from cleaner.io.images import read_image
    from cleaner.io.preprocess import InputSpec, preprocess

    return preprocess(read_image(path).pixels, InputSpec(size=WORK_SIZE))[..., 0]


def train_reader(data: Path, n_patches: int, epochs: int, seed: int, width: float, log):
    import pandas as pd

    from detectors.glyphs import train_reader as train

    meta = pd.read_csv(data / "nih" / "metadata.csv", dtype=str).sort_values("path")
    return train([film(data / "nih" / p) for p in meta["path"]], n_patches, epochs, seed, width, log)[0]


def hannover_films(data: Path):
    """Every Hannover film (as the scan path prepares it) and its mirrored copy: (path, label, film)."""
    import numpy as np

    for path in sorted((data / "hannover" / "images").glob("*.png")):
        im = film(path)
        for label, shown in ((0, im), (1, im[:, ::-1])):
            yield str(path), label, np.ascontiguousarray(shown)[None, ..., None]


def bundled_parts(bundle, data: Path):
    """A flip bundle that reads glyphs already: its backbone's logit and its reader's evidence, per film."""
    import keras
    import pandas as pd

    if bundle.input_spec.size != WORK_SIZE:
        raise SystemExit(f"{bundle.path}: input {bundle.input_spec.size} px, this script reads films at {WORK_SIZE} px")
    model = bundle.model
    names = [layer.name for layer in model.layers]
    cues = [n for n in ("glyph_evidence", "marker_side_evidence") if n in names]  # what the bundle's score sums
    parts = keras.Model(model.inputs[0], [model.get_layer(n).output for n in ["logit", *cues]])
    t0, rows = time.perf_counter(), []
    for path, label, x in hannover_films(data):
        values = dict(zip(["logit", *cues], (float(v.reshape(-1)[0]) for v in parts.predict(x, verbose=0))))
        text, side = values.get("glyph_evidence", 0.0), values.get("marker_side_evidence", 0.0)
        rows.append({"path": path, "label": label, "anatomy_logit": values["logit"], "text_evidence": text,
                     "side_evidence": side, "glyph_evidence": text + side})
    return pd.DataFrame(rows), None, time.perf_counter() - t0


def new_reader_parts(args, data: Path, log):
    """An anatomy-only flip bundle: train a glyph reader on NIH here and read every film with it."""
    import pandas as pd

    from detectors.evaluation import evaluate
    from detectors.glyphs import evidence_model, logit

    t0 = time.perf_counter()
    reader = train_reader(data, args.patches, args.epochs, args.seed, args.width, log)
    train_s = time.perf_counter() - t0
    reader.save(args.out / "glyph_reader.keras")
    evaluate(args.flip_bundle, normals=data / "hannover" / "images", out=args.out / "anatomy", progress=False)
    anatomy = pd.read_csv(args.out / "anatomy" / "scores.csv")
    cues = evidence_model(reader)
    t1, rows = time.perf_counter(), []
    for path, label, x in hannover_films(data):
        text, side = (float(v.reshape(-1)[0]) for v in cues.predict(x, verbose=0))
        rows.append({"path": path, "label": label, "text_evidence": text, "side_evidence": side,
                     "glyph_evidence": side})  # what the product sums (glyphs.with_reader)
    read_s = time.perf_counter() - t1
    scores = pd.DataFrame(rows).merge(anatomy[["path", "label", "flip_score"]], on=["path", "label"])
    scores["anatomy_logit"] = logit(scores["flip_score"])
    return scores, train_s, read_s


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
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    def log(message):
        print(message, flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    import detectors

    bundle = detectors.load(args.flip_bundle)
    if {"glyph_evidence", "marker_side_evidence"} & {layer.name for layer in bundle.model.layers}:
        scores, train_s, read_s = bundled_parts(bundle, data)
    else:
        scores, train_s, read_s = new_reader_parts(args, data, log)
    meta = pd.read_csv(data / "hannover" / "metadata.csv", dtype=str)
    meta["path"] = [str(data / "hannover" / p) for p in meta["path"]]
    scores = scores.merge(meta[["path", "view"]], on="path", how="left")
    scores["view"] = scores["view"].fillna("?").str.upper()
    table = []
    candidates = {"anatomy (flip backbone)": scores["anatomy_logit"], "glyphs alone": scores["glyph_evidence"],
                  "text alone": scores["text_evidence"], "side markers alone": scores["side_evidence"]}
    for weight in (0.5, 1.0, 2.0):
        candidates[f"anatomy + {weight:g} x glyphs"] = scores["anatomy_logit"] + weight * scores["glyph_evidence"]
    for name, score in candidates.items():
        row = {"score": name, "AUC": roc_auc_score(scores["label"], score)}
        for view in ("AP", "PA"):
            part = scores["view"] == view
            if scores.loc[part, "label"].nunique() == 2:
                row[f"AUC {view}"] = roc_auc_score(scores.loc[part, "label"], score[part])
        table.append(row)
    scores.to_csv(args.out / "scores.csv", index=False)
    trained = "the bundle's own glyph reader" if train_s is None else f"glyph reader trained in {train_s:.0f} s"
    print(f"\nHannover: {len(scores) // 2} films and their mirrored copies; {trained}, "
          f"read {len(scores)} films in {read_s:.0f} s ({len(scores) / read_s:.1f} films/s at {WORK_SIZE} px)")
    print(pd.DataFrame(table).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
