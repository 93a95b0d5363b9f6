"""Would a distance in the gate's feature space catch kinds of film the gate never saw? (decision 0015)

A classifier trained on a few kinds of non-frontal film catches an unseen kind by luck of the seed. An
out-of-distribution score does not need the kind: the Mahalanobis distance (Ledoit-Wolf covariance) of a film's
penultimate-layer features from the bundle's own training negatives. This reads the leave-one-site-out bundles
and scans that ``loso_quality.py`` left in WORK, scores each left-out site's films as the scan showed them to the
gate (turned upright by rotation, un-inverted where inversion flagged them), and counts, per truth label, the films
farther than the farthest validation negative, beside the gate's own flags.

    python benchmarks/loso_quality.py --archive /tmp/cxdev/archive --work /tmp/cxloso
    python benchmarks/gate_feature_distance.py --archive /tmp/cxdev/archive --work /tmp/cxloso
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
SITES = ("hannover", "ieee", "hands", "dicom", "kermany")


def model_inputs(det, paths: list, turns=None, uninverted=None) -> np.ndarray:
    """``paths`` read and preprocessed for ``det``, turned and un-inverted by the scan's own steps."""
    from cleaner.io.images import read_image
    from cleaner.io.preprocess import preprocess
    from cleaner.scan.orientation import apply_turns, uninvert

    stack = np.stack([preprocess(read_image(path).pixels, det.input_spec) for path in paths])
    if turns is not None:
        stack = apply_turns(stack, np.asarray(turns))
    if uninverted is not None:
        stack = uninvert(stack, np.flatnonzero(uninverted))
    return stack


def site_distances(bundle: Path, films: pd.DataFrame, archive: Path, sample: int = 600):
    """(distances of ``films``, distances of the bundle's validation negatives)."""
    import keras
    from sklearn.covariance import LedoitWolf

    import detectors
    from cleaner.scan.orientation import quarter_turns

    det = detectors.load(bundle)
    features = keras.Model(det.model.inputs[0], det.model.get_layer("logit").input)

    def feats(x):
        return np.concatenate([np.asarray(features(x[i:i + 64], training=False)) for i in range(0, len(x), 64)])

    manifest = pd.read_csv(bundle / "training_manifest.csv")
    negatives = manifest[manifest.label == 0]
    train = negatives[negatives.split == "train"]
    train = train.sample(min(sample, len(train)), random_state=0)
    fit = LedoitWolf().fit(feats(model_inputs(det, list(train.path))))
    val = fit.mahalanobis(feats(model_inputs(det, list(negatives[negatives.split == "val"].path))))
    x = model_inputs(det, [str(archive / p) for p in films.path], [quarter_turns(v) for v in films.turn_upright_cw],
                     films.inversion_flag.astype(str).eq("True").to_list())
    return fit.mahalanobis(feats(x)), val


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archive", type=Path, default=Path("/tmp/cxdev/archive"))
    ap.add_argument("--work", type=Path, required=True, help="a loso_quality.py work folder (its bundles and scan)")
    args = ap.parse_args(argv)
    table = pd.read_csv(args.work / "loso_table.csv", dtype={"path": str})
    rows = []
    for site in SITES:
        films = table[table.group == site]
        dist, val = site_distances(args.work / "non_frontal_loso" / site / "non_frontal", films, args.archive)
        far, gated = dist > val.max(), films.non_frontal_loso.astype(str).eq("True").to_numpy()
        print(f"{site}-out: validation negatives' distance median {np.median(val):.0f}, max {val.max():.0f}")
        for truth, idx in films.groupby("truth").indices.items():
            rows.append({"site": site, "truth": truth, "films": len(idx), "farther": int(far[idx].sum()),
                         "gate": int(gated[idx].sum()), "either": int((far | gated)[idx].sum()),
                         "median_distance": round(float(np.median(dist[idx])))})
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
