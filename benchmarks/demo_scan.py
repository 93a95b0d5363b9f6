"""A stand-in scan for measuring the review page on real radiographs until ``cxclean scan`` (issue 4)
is merged: it writes a scan output folder to the scan contract (scores.csv, exclusions.csv,
errors.csv, detectors.csv, summary.json, review/ copies) for an archive and detector bundles.
Use ``cxclean scan`` instead once it exists; this script is not part of the product.

With ``--train-rotation BUNDLE_OUT`` it first trains a small 64 px rotation CNN (seeded, about a
minute on 2 CPU cores) on the frontal films found under ``--normals`` (positives: the same films
turned 90/180/270 degrees) and uses it as the rotation detector.

Demo on ../shared/data (images stay where they are; the archive is made of symbolic links plus
a few planted rotated copies written to /tmp):
  PYTHONPATH=$PWD python benchmarks/demo_scan.py --make-demo-archive /tmp/demo_archive
  PYTHONPATH=$PWD python benchmarks/demo_scan.py /tmp/demo_archive --out /tmp/demo_scan \\
      --train-rotation /tmp/demo_bundles/rotation --normals /work/shared/data/nih/images --min-age 10
  PYTHONPATH=$PWD python benchmarks/review_build.py /tmp/demo_scan --workers 2
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from cleaner.io.ages import parse_age_value  # noqa: E402
from cleaner.io.errors import ImageReadError  # noqa: E402
from cleaner.io.images import read_image  # noqa: E402
from cleaner.io.preprocess import InputSpec, preprocess  # noqa: E402
from cleaner.review.build import reason_folder  # noqa: E402
from cleaner.io.walker import WalkStats, walk_archive  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
BASE = ["path", "status", "error", "format", "photometric", "width", "height", "age_years", "age_source", "sex",
        "view_position", "body_part", "modality", "patient_id", "study_uid"]


def make_demo_archive(dest: Path, shared: Path, planted: int = 24, seed: int = 0) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("nih", "hannover", "ieee", "kermany", "hands", "dicom"):
        link = dest / name
        if not link.exists():
            link.symlink_to(shared / name, target_is_directory=True)
    rng = np.random.default_rng(seed)
    nih = sorted((shared / "nih" / "images").glob("*.png"))
    out = dest / "planted"
    out.mkdir(exist_ok=True)
    for i, src in enumerate(rng.choice(nih, size=planted, replace=False)):
        k = 1 + i % 3
        with Image.open(src) as im:
            np_im = np.rot90(np.asarray(im.convert("L")), k=k)
        Image.fromarray(np.ascontiguousarray(np_im)).save(out / f"{src.stem}_rot{90 * k}.png")


def train_rotation(normals: Path, out: Path, size: int = 64, seed: int = 0, limit: int = 600) -> Path:
    import keras

    from detectors.bundle import save_bundle

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    files = sorted(p for p in normals.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".dcm"))[:limit]
    spec = InputSpec(size=size)
    base = [preprocess(read_image(p).pixels, spec) for p in files]
    xs, ys = [], []
    for x in base:
        xs.append(x)
        ys.append(0.0)
        xs.append(np.rot90(x, k=int(rng.integers(1, 4)), axes=(0, 1)))
        ys.append(1.0)
    x, y = np.stack(xs).astype(np.float32), np.array(ys, dtype=np.float32)
    inp = keras.Input((size, size, 1))
    h = inp
    for filters in (16, 32, 64):
        h = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(h)
        h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="last_conv")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(h))
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=25, batch_size=32, verbose=2, validation_split=0.15, shuffle=True)
    info = {"name": "rotation", "kind": "rotation", "input": spec.to_dict(), "threshold": 0.5, "seed": seed,
            "note": "demo stand-in trained by benchmarks/demo_scan.py", "training_files": len(files)}
    return save_bundle(model, info, out)


def _metadata(path: Path, archive: Path, cache: dict) -> dict:
    """The row for ``path`` in the nearest metadata.csv above it (its paths relative to that folder)."""
    for parent in path.parents:
        if parent not in cache:
            f = parent / "metadata.csv"
            cache[parent] = (pd.read_csv(f, dtype=str, keep_default_na=False).drop_duplicates("path").set_index("path").to_dict("index")
                             if f.is_file() else None)
        table = cache[parent]
        if table is not None:
            return table.get(path.relative_to(parent).as_posix(), {})
        if parent == archive:
            break
    return {}


def scan(archive: Path, out: Path, bundles: list[Path], min_age: float) -> None:
    from tqdm import tqdm

    from detectors.bundle import load

    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    dets = sorted((load(b) for b in bundles), key=lambda d: d.name)
    stats = WalkStats()
    rows, cache = [], {}
    for path in tqdm(list(walk_archive(archive, stats)), desc="demo scan", unit="img"):
        rel = path.relative_to(archive).as_posix()
        row = {c: "" for c in BASE}
        row["path"] = rel
        try:
            img = read_image(path)
        except ImageReadError as exc:
            row.update(status="error", error=exc.reason)
            rows.append(row)
            continue
        m = img.meta
        meta = _metadata(path, archive, cache)
        age, source = m.age_years, "dicom" if m.age_years is not None else ""
        if age is None and meta.get("age_years"):
            age = parse_age_value(meta["age_years"])
            source = "metadata" if age is not None else ""
        row.update(status="ok", format=m.format, photometric=m.photometric or "", width=m.width, height=m.height,
                   age_years="" if age is None else f"{age:g}", age_source=source,
                   sex=(m.sex or meta.get("sex", "")).upper(), view_position=(m.view_position or meta.get("view", "")).upper(),
                   body_part=m.body_part or "", modality=m.modality or meta.get("modality", ""),
                   patient_id=m.patient_id or meta.get("patient_id", ""), study_uid=m.study_uid or "")
        reasons = []
        for d in dets:
            score = float(d.predict(preprocess(img.pixels, d.input_spec)[None])[0])
            row[f"{d.name}_score"] = f"{score:.6f}"
            row[f"{d.name}_flag"] = str(score >= d.threshold)
            if score >= d.threshold:
                reasons.append(d.name)
        if age is not None and age < min_age:
            reasons.append(f"age<{min_age:g}")
        row["excluded"], row["reasons"] = str(bool(reasons)), ";".join(reasons)
        row["_pixels"] = img.pixels if reasons and m.format == "DICOM" else None
        rows.append(row)
    out.mkdir(parents=True, exist_ok=True)
    cols = BASE + [c for d in dets for c in (f"{d.name}_score", f"{d.name}_flag")] + ["excluded", "reasons"]
    df = pd.DataFrame(rows)
    for c in cols:
        if c not in df:
            df[c] = ""
    df.loc[df["status"] == "error", "excluded"] = "False"
    df = df.fillna("")
    df[cols].to_csv(out / "scores.csv", index=False)
    ex = df[df["excluded"] == "True"]
    ex[["path", "reasons"] + [f"{d.name}_score" for d in dets] + ["age_years"]].to_csv(out / "exclusions.csv", index=False)
    df.loc[df["status"] == "error", ["path", "error"]].to_csv(out / "errors.csv", index=False)
    det_rows = [{"name": d.name, "kind": d.kind, "version": d.version, "threshold": d.threshold,
                 "threshold_source": "bundle", "bundle_path": str(d.path.resolve()), "input_size": d.input_spec.size}
                for d in dets]
    pd.DataFrame(det_rows).to_csv(out / "detectors.csv", index=False)
    per_reason = {}
    for _, r in ex.iterrows():
        for reason in r["reasons"].split(";"):
            per_reason[reason] = per_reason.get(reason, 0) + 1
            dest = out / "review" / reason_folder(reason) / r["path"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(archive / r["path"], dest)
            if r["format"] == "DICOM":
                Image.fromarray((np.clip(r["_pixels"], 0, 1) * 255).astype(np.uint8)).save(str(dest) + ".png")
    seconds = time.perf_counter() - t0
    ok = int((df["status"] == "ok").sum())
    summary = {"archive": str(archive.resolve()), "out": str(out.resolve()), "cxclean_version": "0.1.0 (demo_scan stand-in)",
               "started": started.isoformat(), "finished": datetime.now(timezone.utc).isoformat(), "seconds": seconds,
               "files": len(df), "ok": ok, "errors": len(df) - ok, "excluded": len(ex), "excluded_per_reason": per_reason,
               "skipped": dict(stats.skipped), "images_per_second": len(df) / seconds, "min_age": min_age,
               "unknown_age": "keep", "unknown_age_count": int(((df["status"] == "ok") & (df["age_years"] == "")).sum()),
               "detectors": det_rows}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"{len(df)} files, {ok} read, {len(ex)} excluded {per_reason}, {seconds:.0f} s -> {out}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("archive", nargs="?")
    ap.add_argument("--out")
    ap.add_argument("--bundle", action="append", default=[])
    ap.add_argument("--train-rotation", help="train a 64 px rotation detector into this bundle folder first")
    ap.add_argument("--normals", default=str(SHARED / "nih" / "images"))
    ap.add_argument("--min-age", type=float, default=10)
    ap.add_argument("--make-demo-archive", help="create a demo archive of links into ../shared/data here")
    args = ap.parse_args(argv)
    if args.make_demo_archive:
        make_demo_archive(Path(args.make_demo_archive), SHARED)
        return
    bundles = [Path(b) for b in args.bundle]
    if args.train_rotation:
        bundles.append(train_rotation(Path(args.normals), Path(args.train_rotation)))
    scan(Path(args.archive), Path(args.out), bundles, args.min_age)


if __name__ == "__main__":
    main()
