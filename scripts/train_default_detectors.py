"""Train the default detectors shipped inside the package (rotation, inversion, flip) on ../shared/data/nih.

    python scripts/train_default_detectors.py                 # -> detectors/default_bundles/<kind>/
    python scripts/train_default_detectors.py --kinds flip --image-size 192

Reproducible: fixed seed, the NIH list is sorted, and every patient with a film in the bundled demo
sample (demo/nih, see data_manifests/demo_nih.csv) is left out so the quick start never scores a
film (or a patient) its detectors were trained on; so are the NIH films reviewed as artefacts
themselves (data_manifests/default_training_exclusions.csv). Each bundle's training manifest is copied to
data_manifests/default_<kind>_training.csv with paths relative to the shared data folder.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: the settings the shipped bundles were trained with (flip: AP films repeated, longer patience; inversion: three
#: members averaged, because single inversion detectors disagreed about which of another hospital's films sit
#: near the threshold, see DEVELOPERS.md)
SETTINGS = {
    "rotation": dict(epochs=20, patience=6, ap_weight=1),
    "inversion": dict(epochs=20, patience=6, ap_weight=1, members=3),
    "flip": dict(epochs=28, patience=8, ap_weight=4),  # plus its glyph reader (kinds.reads_glyphs), ~6 min
}
#: NIH films reviewed as artefacts themselves, each left out of the default detectors its ``kinds`` column names
EXCLUSIONS = REPO / "data_manifests" / "default_training_exclusions.csv"
NIH_LICENCE = "NIH ChestX-ray14: released without restrictions on use (public domain)"


def nih_training_list(data: Path, out_csv: Path, ap_weight: int = 1, kind: str = "all") -> tuple[Path, int]:
    """NIH films minus the demo sample's patients and the reviewed artefacts in ``EXCLUSIONS`` that apply
    to ``kind`` (a mirrored film is left out of everything, an inverted one of the inversion detector), as
    path,patient_id,view,weight (absolute paths). A reviewed film whose bytes no longer match the sha256
    that was reviewed stops the run: the review was of another file.

    ``ap_weight`` repeats AP films per epoch: NIH is 83 % PA, while ICU archives are mostly AP portable films.
    """
    import pandas as pd

    from cleaner.io.manifests import file_sha256

    meta = pd.read_csv(data / "nih" / "metadata.csv", dtype=str, keep_default_na=False).sort_values("path")
    demo = pd.read_csv(REPO / "data_manifests" / "demo_nih.csv", dtype=str)
    held_out = set(demo["patient_id"])
    reviewed = pd.read_csv(EXCLUSIONS, dtype=str)
    applies = [k == "all" or kind in k.split() for k in reviewed["kinds"]]
    artefacts = set()
    for path, digest, applies_here in zip(reviewed["path"], reviewed["sha256"], applies):
        if not (applies_here and path.startswith("nih/")):
            continue
        local = data / path
        if local.is_file() and file_sha256(local) != digest:
            raise ValueError(f"{local}: its sha256 differs from the one reviewed in {EXCLUSIONS.name}; "
                             "look at this film again before training the defaults")
        artefacts.add(path.split("/", 1)[1])
    keep = meta[~meta["patient_id"].isin(held_out) & ~meta["path"].isin(artefacts)].copy()
    keep["path"] = [str(data / "nih" / p) for p in keep["path"]]
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    keep["weight"] = [ap_weight if v.upper() == "AP" else 1 for v in keep["view"]]
    keep[["path", "patient_id", "view", "weight"]].to_csv(out_csv, index=False)
    return out_csv, len(meta) - len(keep)


def publish_manifest(bundle: Path, kind: str, data: Path) -> Path:
    """The bundle's training manifest in data_manifests/ format, paths relative to the shared data."""
    import pandas as pd

    table = pd.read_csv(bundle / "training_manifest.csv", dtype=str, keep_default_na=False)
    root = str(data.resolve()) + os.sep
    table["path"] = [p[len(root):] if p.startswith(root) else p for p in table["path"]]
    table.insert(2, "source_dataset", "NIH Clinical Center ChestX-ray14")
    table.insert(3, "licence", NIH_LICENCE)
    target = REPO / "data_manifests" / f"default_{kind}_training.csv"
    table.to_csv(target, index=False)
    table.to_csv(bundle / "training_manifest.csv", index=False)  # the shipped bundle carries no local paths
    info_path = bundle / "detector.json"
    info = json.loads(info_path.read_text())
    for s in info.get("suspect_normals", []):
        s["path"] = s["path"][len(root):] if s["path"].startswith(root) else s["path"]
    info_path.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return target


def main(argv=None) -> int:
    default_data = Path(os.environ.get("CXCLEAN_SHARED_DATA") or REPO.parent / "shared" / "data")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--kinds", nargs="+", default=["rotation", "inversion", "flip"])
    parser.add_argument("--out", type=Path, default=REPO / "detectors" / "default_bundles")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=None, help="default: per kind, see SETTINGS")
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ap-weight", type=int, default=None, help="AP film repeats per epoch (default: per kind)")
    parser.add_argument("--patience", type=int, default=None, help="default: per kind")
    args = parser.parse_args(argv)

    import detectors

    tmp = Path(tempfile.mkdtemp(prefix="cxclean_defaults_"))
    for kind in args.kinds:
        settings = dict(SETTINGS.get(kind, SETTINGS["rotation"]))
        settings.update({k: v for k, v in (("epochs", args.epochs), ("patience", args.patience),
                                           ("ap_weight", args.ap_weight)) if v is not None})
        ap_weight = settings["ap_weight"]
        normals, dropped = nih_training_list(args.data, tmp / f"nih_normals_{kind}.csv", ap_weight, kind)
        print(f"{kind}: training list {normals} (AP weight {ap_weight}); demo patients' and reviewed films left out: {dropped}")
        bundle = args.out / kind
        if bundle.exists():
            shutil.rmtree(bundle)
        det = detectors.train(kind, normals, out=bundle, backbone="compact", weights="none",
                              patience=settings["patience"], epochs=settings["epochs"],
                              image_size=args.image_size, copies=args.copies, seed=args.seed,
                              members=settings.get("members", 1))
        size = sum(f.stat().st_size for f in bundle.iterdir() if f.is_file()) / 1e6
        print(f"{kind}: {det.version} threshold {det.threshold:.4f}, bundle {size:.2f} MB, manifest "
              f"{publish_manifest(bundle, kind, args.data)}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
