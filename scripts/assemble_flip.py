"""Assemble the default flip detector (v2, v3) from the trained weights of flip v1, without retraining.

    python scripts/assemble_flip.py --from FLIP_V1 --out /tmp/flip_v2/flip
    python scripts/assemble_flip.py --from FLIP_V2 --out /tmp/flip_v3/flip --mirrored-reader
    python scripts/train_default_detectors.py --kinds flip --calibrate-only --out /tmp/flip_v3   # then calibrate it

v3 (``--mirrored-reader``, docs/decisions/0017) reuses a v2 bundle's comparator and reader as they are, and the
reader also reads the mirrored bands: the film's side evidence is (side(x) - side(mirror x)) / 2, as its anatomy's.

v1 scored sigmoid(g(x) + side(x)): its anatomy backbone g on the film plus its glyph reader's side-marker
evidence read over the whole film at 512 px. v2 is built from the same two trained parts:
- the anatomy as a mirror comparator, (g(x) - g(mirror x)) / 2 (``backbones.compare_with_mirror``): a film and
  its mirror get opposite log-odds, so what another hospital's films shift in g for both sides alike cancels;
- the reader on the film's two edge bands only (``glyphs.with_reader(bands=0.2)``), where 94 % of side markers sit:
  the 512-px reading costs 40 % of the whole-film pass.
Measured on the development archive's frontal films before assembling (docs/decisions/0009). The validation split
of v1 (its training manifest) is scored again here, so the bundle's metrics, validation threshold and recall curve
are v2's own; the operating threshold is then set by calibration on real upright films.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BANDS = 0.2

from train_default_detectors import validation_scores  # noqa: E402  (scripts/ is on sys.path when run)


def assemble(source: Path, out: Path, data: Path, bands: float = BANDS, mirrored_reader: bool = False,
             add_reader: Path | None = None) -> Path:
    """v2 (or, with ``mirrored_reader``, v3) from ``source``: v1, or a bundle that already compares the anatomy
    with its mirror (v2), whose comparator and reader are then reused as they are. ``add_reader``: a second reader
    (``scripts/train_flip_reader.py``) whose side evidence is averaged with the source's (v4)."""
    import detectors
    from detectors import backbones, glyphs
    from detectors.bundle import save_bundle
    from detectors.calibration import recall_curve
    from detectors.metrics import binary_metrics, choose_threshold, recall_by_variant

    old = detectors.load(source)
    model = old.model
    compared = bool(old.info["training"].get("compares_mirror"))
    # the branch up to v1's anatomy ``logit``, or v2's comparator as it is
    comparator = model if compared else backbones.compare_with_mirror(model)
    readers = [model.get_layer("glyph_reader")]
    if add_reader:
        import keras

        readers.append(keras.models.load_model(add_reader, compile=False))
    assembled = glyphs.with_reader(comparator, readers, name="mirror_and_side_bands", bands=bands,
                                   mirrored=mirrored_reader)
    info = json.loads(json.dumps(old.info))
    for key in ("version", "model_sha256", "suspect_normals", "created"):
        info.pop(key, None)
    v = "v4" if add_reader else "v3" if mirrored_reader else "v2"
    info["description"] = (f"upright vs left-right mirrored ({v}: mirror comparator + side-band marker reading"
                           + (", both read on the film and its mirror)" if mirrored_reader else ")"))
    how = ("v1's anatomy backbone as (g(x) - g(mirror x)) / 2 plus v1's glyph reader on the left and right "
           f"{bands:.0%} of the film" + (", read on the bands and on their mirror: (side(x) - side(mirror x)) / 2"
                                         if mirrored_reader else ""))
    info["assembled_from"] = {
        "bundle": old.version, "script": "scripts/assemble_flip.py", "bands": bands, "mirrored_reader": mirrored_reader,
        "how": how + "; v1's networks not retrained (docs/decisions/0009" + (", 0017)" if mirrored_reader else ")")}
    info["training"]["compares_mirror"] = True
    info["training"]["glyph_reader"]["bands"] = bands
    info["training"]["glyph_reader"]["mirrored"] = mirrored_reader
    if add_reader:
        record = json.loads(Path(add_reader).with_suffix(".json").read_text())
        info["training"]["glyph_reader"]["added_reader"] = record
        info["assembled_from"]["added_reader"] = {"file": Path(add_reader).name, **record}
        info["assembled_from"]["how"] += "; a second reader trained with boxed and circled markers, the two readers' " \
                                         "side evidence averaged (docs/decisions/0017)"
    with tempfile.TemporaryDirectory() as tmp:
        staged = save_bundle(assembled, {**info, "threshold": old.threshold}, Path(tmp) / "staged")
        y, scores, plots = validation_scores(staged, data, manifest=source / "training_manifest.csv")
    choice = choose_threshold(y, scores, 0.999)
    validation = binary_metrics(y, scores, choice.threshold)
    validation["recall_curve"] = recall_curve(y, scores, choice.threshold)
    validation["recall_by_variant"] = recall_by_variant(y, scores, [0] * len(y), ["mirrored"], choice.threshold)
    info["metrics"] = {"validation": validation, "validation_source": old.info["metrics"]["validation"]}
    info["threshold"] = choice.threshold
    info["threshold_choice"] = {**choice.to_dict(), "validation_threshold": choice.threshold}
    print(f"{v} on the source's validation split: AUC {validation['auc']:.4f} (source {old.info['metrics']['validation']['auc']:.4f}); "
          f"{choice.note}")
    save_bundle(assembled, info, out)
    for name, content in plots.items():  # v2's curves on v1's validation split
        (out / name).write_bytes(content)
    (out / "training_manifest.csv").write_bytes((source / "training_manifest.csv").read_bytes())
    return out


def main(argv=None) -> int:
    default_data = Path(os.environ.get("CXCLEAN_SHARED_DATA") or REPO.parent / "shared" / "data")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="source", type=Path, required=True, help="the flip v1 bundle")
    parser.add_argument("--out", type=Path, required=True, help="a new folder for the v2 bundle")
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--bands", type=float, default=BANDS)
    parser.add_argument("--mirrored-reader", action="store_true",
                        help="v3: the reader also reads the mirrored bands (docs/decisions/0017)")
    parser.add_argument("--add-reader", type=Path, default=None,
                        help="v4: a second reader (.keras from scripts/train_flip_reader.py), evidence averaged")
    args = parser.parse_args(argv)
    if args.out.exists():
        parser.error(f"{args.out} exists")
    out = assemble(args.source, args.out, args.data, args.bands, args.mirrored_reader, args.add_reader)
    print(f"assembled {json.loads((out / 'detector.json').read_text())['version']} in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
