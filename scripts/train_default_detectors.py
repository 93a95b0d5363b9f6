"""Train the default detectors shipped inside the package: rotation, inversion, flip on ../shared/data/nih, non_frontal
on labelled films of every site.

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
    # flip (plus its glyph reader of the side bands, kinds.reads_glyphs): the shipped v2 is assembled from v1
    # (scripts/assemble_flip.py) and v3 from v2 (decision 0017); these settings retrain it end to end with the mirror
    # comparator and the reader reading the mirror too, which so far measured worse (decision 0009)
    "flip": dict(epochs=28, patience=8, ap_weight=4),
    # not a frontal chest film: learnt from labelled films of every site; ignores what the others detect
    # half of the positives added to balance the classes are parts of frontal films (decision 0012), every positive
    # turned (0016), three members averaged so that no threshold hangs on one model's draw (0015, 0016)
    "non_frontal": dict(epochs=20, patience=6, labelled=True, nuisances=("rotation", "inversion", "flip"), gate=True,
                        made_positives=0.5, turned_positives=True, members=3),
}
#: the share of real upright films each default's threshold may flag (docs/decisions/0008)
TARGET_FPR = 0.001
#: NIH films reviewed as artefacts themselves, each left out of the default detectors its ``kinds`` column names
EXCLUSIONS = REPO / "data_manifests" / "default_training_exclusions.csv"
NIH_LICENCE = "NIH ChestX-ray14: released without restrictions on use (public domain)"
#: each shared-data folder's dataset and licence (../shared/data/README.md), for the published manifests
SOURCES = {
    "nih": ("NIH Clinical Center ChestX-ray14", NIH_LICENCE),
    "hannover": ("Hannover Medical School COVID-19 image repository", "CC BY 3.0"),
    "ieee": ("COVID-19 image data collection (Cohen et al.)", "mixed CC licences per image (ieee/metadata.csv)"),
    "kermany": ("Kermany et al., Guangzhou Women and Children's Medical Center", "CC BY 4.0"),
    "hands": ("RSNA Pediatric Bone Age challenge", "RSNA challenge data terms"),
    "dicom": ("DICOM WG04 compression test images (NEMA)", "NEMA DICOM test images"),
}


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


#: the sites of ../shared/data whose films are frontal chest films (negatives of non_frontal) and the folders
#: of films that are not (its positives): laterals, CT slices, hand films, the DICOM test objects (hip, leg, CT,
#: MR, NM, US, XA)
FRONTAL_SITES = {"nih": "nih/images", "nih_fullres": "nih/fullres", "hannover": "hannover/images",
                 "ieee_frontal": "ieee/frontal", "kermany": "kermany/images"}
NON_FRONTAL_SITES = {"ieee_lateral": "ieee/lateral", "ieee_ct": "ieee/ct", "hands": "hands/images", "dicom": "dicom"}


def _film_patient(site: str, path: Path, ids: dict) -> str:
    """A grouping key that keeps one patient's films (or one DICOM object's transfer syntaxes) on one side."""
    if site.startswith("nih") or site.startswith("ieee") or site == "hannover":
        return f"{site.split('_')[0]}:{ids.get(path.name, path.stem)}"
    if site == "dicom":
        return f"dicom:{path.name.split('_')[0]}"
    if site == "kermany":
        return f"kermany:{path.stem.split('_')[0] if path.stem.startswith('person') else path.stem.rsplit('-', 1)[0]}"
    return f"{site}:{path.stem}"


def patient_ids(data: Path) -> dict:
    """File name -> patient id, from the metadata of the sites that have one."""
    import pandas as pd

    ids = {}
    for meta in ("nih/metadata.csv", "ieee/metadata.csv", "hannover/metadata.csv"):
        table = pd.read_csv(data / meta, dtype=str, keep_default_na=False)
        ids.update({Path(p).name: pid for p, pid in zip(table["path"], table["patient_id"])})
    return ids


def non_frontal_list(data: Path, out_csv: Path, leave_out: tuple = (), leave_out_patients: tuple = ()) -> Path:
    """The labelled films of the bundled non_frontal detector (path,label,patient_id,site): every film of
    ``NON_FRONTAL_SITES`` (1) and of ``FRONTAL_SITES`` (0), minus the demo sample's patients, the sites in
    ``leave_out`` (for leave-one-site-out measurements) and the patients in ``leave_out_patients``
    (``_film_patient`` keys, e.g. ``ieee:13``: for folds of patients within one collection)."""
    import pandas as pd

    from cleaner.io.walker import walk_archive

    demo = set(pd.read_csv(REPO / "data_manifests" / "demo_nih.csv", dtype=str)["patient_id"])
    ids = patient_ids(data)
    rows = []
    for label, sites in ((1, NON_FRONTAL_SITES), (0, FRONTAL_SITES)):
        for site, folder in sites.items():
            if site in leave_out or site.split("_")[0] in leave_out:
                continue
            for path in walk_archive(data / folder):
                if site.startswith("nih") and ids.get(path.name) in demo:
                    continue
                patient = _film_patient(site, path, ids)
                if patient not in leave_out_patients:
                    rows.append({"path": str(path), "label": label, "patient_id": patient, "site": site})
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out_csv, index=False)
    return out_csv


def upright_list(data: Path, bundle: Path, out_csv: Path, leave_out: tuple = (), leave_out_patients: tuple = ()) -> Path:
    """Real upright adult frontal films the bundle was not trained on (path,site), to calibrate its threshold:
    its own validation split's frontal films (from its training manifest, adults where the age is known) and,
    for a detector trained on NIH only, every Hannover film and every adult ieee frontal film."""
    import pandas as pd

    manifest = pd.read_csv(bundle / "training_manifest.csv", dtype=str, keep_default_na=False)
    val = manifest[(manifest["split"] == "val") & manifest["label"].isin(["", "0"])]
    ages = {}
    for meta in ("nih/metadata.csv", "ieee/metadata.csv"):
        table = pd.read_csv(data / meta, dtype=str, keep_default_na=False)
        ages.update({Path(p).name: a for p, a in zip(table["path"], table["age_years"])})

    def adult(path: str) -> bool:
        age = pd.to_numeric(pd.Series([ages.get(Path(path).name, "")]), errors="coerce").iloc[0]
        return not (age < 18)

    rows = [{"path": str(p if Path(p).is_absolute() else data / p), "site": _site_of(data, p)}
            for p in val["path"] if adult(p)]
    rows = [r for r in rows if r["site"] in FRONTAL_SITES]
    trained_on = {_site_of(data, p) for p in manifest.loc[manifest["split"] == "train", "path"]}
    for site in ("hannover", "ieee_frontal"):
        if site not in trained_on:
            rows += [{"path": str(p), "site": site} for p in sorted((data / FRONTAL_SITES[site]).iterdir())
                     if p.is_file() and adult(str(p))]
    rows = [r for r in rows if r["site"] not in leave_out]
    if leave_out_patients:
        ids = patient_ids(data)
        rows = [r for r in rows if _film_patient(r["site"], Path(r["path"]), ids) not in leave_out_patients]
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out_csv, index=False)
    return out_csv


def _site_of(data: Path, path: str) -> str:
    rel = Path(path).resolve().relative_to(data.resolve()).as_posix() if Path(path).is_absolute() else path
    for site, folder in {**FRONTAL_SITES, **NON_FRONTAL_SITES}.items():
        if rel.startswith(folder + "/"):
            return site
    return rel.split("/")[0]


def validation_scores(bundle: Path, data: Path, manifest: Path | None = None):
    """The bundle's scores of its validation split (the split=val films of ``manifest``, its own training
    manifest by default), artefacts synthesised as in training: (labels, scores, ROC/PR plots as bytes)."""
    import pandas as pd

    import detectors

    table = pd.read_csv(manifest or bundle / "training_manifest.csv", dtype=str, keep_default_na=False)
    val = table[(table["split"] == "val") & table["label"].isin(["", "0"])]
    with tempfile.TemporaryDirectory() as tmp:
        normals = Path(tmp) / "val_normals.csv"
        pd.DataFrame({"path": [p if Path(p).is_absolute() else str(data / p) for p in val["path"]]}).to_csv(
            normals, index=False)
        detector = detectors.load(bundle)
        detectors.evaluate(detector, normals, out=Path(tmp) / "eval", workers=2)
        scored = pd.read_csv(Path(tmp) / "eval" / "scores.csv")
        plots = {name: (Path(tmp) / "eval" / name).read_bytes() for name in ("roc.png", "precision_recall.png")}
    return scored["label"].to_numpy(), scored[f"{detector.name}_score"].to_numpy(), plots


def record_recall_curve(bundle: Path, data: Path) -> None:
    """Add the validation recall curve (what the flag budget quotes) to a synthetic-kind bundle trained before
    detector.json recorded it; the model and its version are unchanged."""
    from detectors.bundle import INFO_FILE, write_info
    from detectors.calibration import recall_curve

    info = json.loads((bundle / INFO_FILE).read_text())
    validation = info.setdefault("metrics", {}).setdefault("validation", {})
    if validation.get("recall_curve") or info["kind"] not in ("rotation", "inversion", "flip"):
        return
    y, scores, _ = validation_scores(bundle, data)
    threshold = float((info.get("threshold_choice") or {}).get("validation_threshold", info["threshold"]))
    validation["recall_curve"] = recall_curve(y, scores, threshold)
    write_info(bundle, info)


def publish_manifest(bundle: Path, kind: str, data: Path) -> Path:
    """The bundle's training manifest in data_manifests/ format, paths relative to the shared data."""
    import pandas as pd

    table = pd.read_csv(bundle / "training_manifest.csv", dtype=str, keep_default_na=False)
    root = str(data.resolve()) + os.sep
    table["path"] = [p[len(root):] if p.startswith(root) else p for p in table["path"]]
    sources = [SOURCES[p.split("/")[0]] for p in table["path"]]
    for column, at, values in (("source_dataset", 2, [s[0] for s in sources]), ("licence", 3, [s[1] for s in sources])):
        if column in table:  # published before (--calibrate-only on the shipped bundles)
            table[column] = values
        else:
            table.insert(at, column, values)
    target = REPO / "data_manifests" / f"default_{kind}_training.csv"
    table.to_csv(target, index=False)
    table.to_csv(bundle / "training_manifest.csv", index=False)  # the shipped bundle carries no local paths
    from detectors.bundle import INFO_FILE, write_info

    info = json.loads((bundle / INFO_FILE).read_text())
    for s in info.get("suspect_normals", []):
        s["path"] = s["path"][len(root):] if s["path"].startswith(root) else s["path"]
    write_info(bundle, info)
    return target


def main(argv=None) -> int:
    default_data = Path(os.environ.get("CXCLEAN_SHARED_DATA") or REPO.parent / "shared" / "data")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--kinds", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--out", type=Path, default=REPO / "detectors" / "default_bundles")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=None, help="default: per kind, see SETTINGS")
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ap-weight", type=int, default=None, help="AP film repeats per epoch (default: per kind)")
    parser.add_argument("--patience", type=int, default=None, help="default: per kind")
    parser.add_argument("--made-positives", type=float, default=None,
                        help="non_frontal: share of balancing positives made from frontal films (default: per kind)")
    parser.add_argument("--members", type=int, default=None, help="models averaged (default: per kind)")
    parser.add_argument("--target-fpr", type=float, default=TARGET_FPR,
                        help="calibration: the share of real upright films a threshold may flag")
    parser.add_argument("--leave-out", nargs="*", default=[],
                        help="sites left out of training and calibration (leave-one-site-out measurements); "
                             "such bundles are not published to data_manifests/")
    parser.add_argument("--leave-out-patients", nargs="*", default=[],
                        help="patients (e.g. ieee:13) left out of training and calibration: folds within a collection")
    parser.add_argument("--calibrate-only", action="store_true", help="recalibrate the bundles in --out, no training")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="cxclean_defaults_"))
    for kind in args.kinds:
        bundle = args.out / kind
        if not args.calibrate_only:
            train_default(kind, bundle, args, tmp)
        record_recall_curve(bundle, args.data)
        from detectors.calibration import calibrate_bundle

        uprights = upright_list(args.data, bundle, tmp / f"uprights_{kind}.csv", tuple(args.leave_out),
                                tuple(args.leave_out_patients))
        calibrate_bundle(bundle, uprights, args.target_fpr, workers=2)
        if not (args.leave_out or args.leave_out_patients):
            print(f"{kind}: manifest {publish_manifest(bundle, kind, args.data)}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


def train_default(kind: str, bundle: Path, args, tmp: Path):
    """Train one default bundle into ``bundle`` with the shipped settings (``SETTINGS``)."""
    import detectors

    settings = dict(SETTINGS[kind])
    settings.update({k: v for k, v in (("epochs", args.epochs), ("patience", args.patience),
                                       ("ap_weight", args.ap_weight), ("members", args.members),
                                       ("made_positives", args.made_positives))
                     if v is not None})
    common = dict(backbone="compact", weights="none", patience=settings["patience"], epochs=settings["epochs"],
                  image_size=args.image_size, copies=args.copies, seed=args.seed, members=settings.get("members", 1),
                  workers=2)
    if bundle.exists():
        shutil.rmtree(bundle)
    if settings.get("labelled"):
        labels = non_frontal_list(args.data, tmp / f"{kind}_labels.csv", tuple(args.leave_out),
                                  tuple(args.leave_out_patients))
        det = detectors.train("custom", labels=labels, out=bundle, name=kind, nuisances=settings["nuisances"],
                              gate=settings["gate"], made_positives=settings.get("made_positives", 0.0),
                              turned_positives=settings.get("turned_positives", False),
                              **common)
    else:
        normals, dropped = nih_training_list(args.data, tmp / f"nih_normals_{kind}.csv", settings["ap_weight"], kind)
        print(f"{kind}: training list {normals} (AP weight {settings['ap_weight']}); demo patients' and reviewed "
              f"films left out: {dropped}")
        det = detectors.train(kind, normals, out=bundle, **common, **settings.get("extra", {}))
    size = sum(f.stat().st_size for f in bundle.iterdir() if f.is_file()) / 1e6
    print(f"{kind}: {det.version} validation threshold {det.threshold:.4f}, bundle {size:.2f} MB")
    return det


if __name__ == "__main__":
    raise SystemExit(main())
