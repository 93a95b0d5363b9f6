"""What flip's parts cost, and what a cheaper glyph reader would save (issue 20, docs/decisions/0009).

    PYTHONPATH=$PWD python benchmarks/flip_reader_speed.py [--archive /tmp/cxdev/archive] [--films 256]

Scores the same films (the archive's first PNGs at flip's input, or random inputs without an archive) through the
compiled scoring path (``detectors.inference``), best of 3 rounds each: the shipped flip, its mirror comparator
alone (no reader), and the shipped comparator joined to readers of other shapes (random weights: the cost does not
depend on the weights). Prints films/s and ms per film.
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

#: (width, separable) of the readers to time beside the shipped one (width 0.5, plain convolutions)
READERS = ((0.5, True), (1.0, True), (0.25, False), (0.35, False))


def films(archive: Path | None, n: int, spec):
    import numpy as np

    from cleaner.io.images import read_or_error
    from cleaner.io.preprocess import preprocess

    out = []
    for path in sorted(archive.rglob("*.png")) if archive else []:
        loaded, _ = read_or_error(path)  # each file decoded once; unreadable ones (the corrupt files) passed over
        if loaded is not None:
            out.append(preprocess(loaded.pixels, spec))
        if len(out) == n:
            break
    if len(out) < n:
        rng = np.random.default_rng(0)
        out += list(rng.random((n - len(out), spec.size, spec.size, 1), dtype=np.float32))
    return np.stack(out)


def best_rate(model, x, rounds: int = 3) -> float:
    from detectors.inference import Scorer

    scorer = Scorer.of(model, 32)
    scorer.predict(x[:32])  # trace once
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        scorer.predict(x)
        best = min(best, time.perf_counter() - started)
    return len(x) / best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archive", type=Path, default=None)
    ap.add_argument("--films", type=int, default=256)
    args = ap.parse_args(argv)
    import keras

    import detectors
    from detectors import glyphs

    flip = detectors.load(detectors.default_bundles_dir() / "flip")
    bands = flip.model.get_layer("side_bands").fraction
    x = films(args.archive, args.films, flip.input_spec)
    keras.utils.set_random_seed(0)
    models = {f"shipped ({flip.version})": flip.model,
              "mirror comparator alone (no reader)": keras.Model(flip.model.inputs[0], flip.model.get_layer("logit").output)}
    for width, separable in READERS:
        reader = glyphs.build_reader(width, fast=separable)
        name = f"comparator + reader width {width}, {'separable' if separable else 'plain'}"
        models[name] = glyphs.with_reader(flip.model, reader, bands=bands)
    print(f"{len(x)} films at {flip.input_spec.size} px, batch 32, best of 3")
    for name, model in models.items():
        rate = best_rate(model, x)
        print(f"{name:55s} {rate:7.1f} films/s  {1000 / rate:5.1f} ms/film", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
