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

WORK_SIZE = 512


def shared_data() -> Path:
    return Path(os.environ.get("CXCLEAN_SHARED_DATA", REPO.parent / "shared" / "data"))


def film(path: Path):
    """A film as the scan path prepares it, at WORK_SIZE: decoded, square-resized, percentile-stretched."""
    from cleaner.images import read_image
    from cleaner.preprocess import InputSpec, preprocess

    return preprocess(read_image(path).pixels, InputSpec(size=WORK_SIZE))[..., 0]


def train_reader(data: Path, n_patches: int, epochs: int, seed: int, width: float, log):
    import pandas as pd

    from detectors.glyphs import train_reader as train

    meta = pd.read_csv(data / "nih" / "metadata.csv", dtype=str).sort_values("path")
    return train([film(data / "nih" / p) for p in meta["path"]], n_patches, epochs, seed, width, log)[0]


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
    from detectors.glyphs import evidence, logit

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

    scores = pd.DataFrame(rows).merge(anatomy[["path", "label", "flip_score"]], on=["path", "label"])
    scores["glyph_evidence"] = evidence(scores["p_readable"], scores["p_reversed"])
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
