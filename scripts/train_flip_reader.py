"""Train a glyph reader for the flip detector on the films of a flip bundle's training split (decision 0017).

    python scripts/train_flip_reader.py --bundle detectors/default_bundles/flip --out /tmp/reader_framed.keras

The patches come from today's generator (``detectors.glyphs``: boxed and circled markers among them); the shape and
settings default to v1's reader (width 0.5, 40 000 patches, 5 epochs, seed 0). The films are the bundle's
``split=train`` rows, preprocessed at the bundle's input size as a scan does. Writes the reader (``.keras``) and
its training record beside it (``.json``); ``scripts/assemble_flip.py --add-reader`` puts it into a bundle.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv=None) -> int:
    default_data = Path(os.environ.get("CXCLEAN_SHARED_DATA") or REPO.parent / "shared" / "data")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, required=True, help="a flip bundle (its training manifest and input)")
    parser.add_argument("--out", type=Path, required=True, help="the reader's .keras file")
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--patches", type=int, default=40000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import pandas as pd

    import detectors
    from cleaner.io.images import read_image
    from cleaner.io.preprocess import preprocess
    from detectors import glyphs

    det = detectors.load(args.bundle)
    manifest = pd.read_csv(args.bundle / "training_manifest.csv", dtype=str, keep_default_na=False)
    paths = [args.data / p for p in manifest.loc[manifest["split"] == "train", "path"]]
    films = [preprocess(read_image(p).pixels, det.input_spec)[..., 0] for p in paths]
    reader, info = glyphs.train_reader(films, args.patches, args.epochs, args.seed, args.width,
                                       lambda m: print(m, flush=True))
    info.update(trained_by="scripts/train_flip_reader.py", films_from=det.version, framed_markers=glyphs.FRAMED_MARKERS)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    reader.save(args.out)
    args.out.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"reader {args.out}: {info}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
