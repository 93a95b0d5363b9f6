"""Builds an archive and a scan output folder exactly as the scan contract (issue 4) describes,
so the review and report code can be tested without running a scan.

Everything is generated: small synthetic radiograph-like images (PNG, and DICOM through pydicom),
one unreadable file, known scores per detector. ``ImageSpec`` says what each file is; the
builder computes flags, exclusion reasons and the review copies from it, the way a scan would.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from cleaner.scan.folder import reason_folder


def page_data(page: Path) -> dict:
    """The data the review page embeds (sections and their items), as the page's script reads it."""
    text = Path(page).read_text()
    m = re.search(r'<script type="application/json" id="review-data">(.*?)</script>', text, re.S)
    return json.loads(m.group(1).replace("<\\/", "</"))

BASE_COLUMNS = [
    "path", "status", "error", "format", "photometric", "width", "height", "age_years", "age_source", "sex",
    "view_position", "body_part", "modality", "patient_id", "study_uid", "notes",
]


@dataclass
class ImageSpec:
    path: str  # relative to the archive root, '/' separators
    scores: dict = field(default_factory=dict)  # detector name -> score
    age: float | None = None
    sex: str = ""
    view: str = ""
    patient_id: str = ""
    study_uid: str = ""
    kind: str = "png"  # png | dicom | broken
    rotate: int = 0  # degrees (multiple of 90) the generated film is rotated by
    age_source: str = "metadata"


def make_film(seed: int, size: int = 96, rotate: int = 0) -> np.ndarray:
    """A chest-film-like uint8 picture: dark background, two bright 'lungs' fields and a bright
    off-centre 'heart' blob (asymmetric, so a rotation is visible), with noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = 0.15 + 0.05 * rng.standard_normal((size, size))
    body = np.exp(-(((xx - 0.5) / 0.32) ** 2 + ((yy - 0.55) / 0.4) ** 2) ** 2)
    img += 0.45 * body
    for cx in (0.33, 0.67):
        img -= 0.2 * np.exp(-(((xx - cx) / 0.11) ** 2 + ((yy - 0.5) / 0.2) ** 2))
    img += 0.35 * np.exp(-(((xx - 0.58) / 0.09) ** 2 + ((yy - 0.62) / 0.08) ** 2))
    img += 0.4 * np.exp(-(((xx - 0.5) / 0.03) ** 2 + ((yy - 0.12) / 0.05) ** 2))  # a 'neck' at the top
    img = np.clip(img, 0, 1)
    if rotate:
        img = np.rot90(img, k=(rotate // 90) % 4)
    return (img * 255).round().astype(np.uint8)


def _write_dicom(path: Path, pixels: np.ndarray, spec: ImageSpec) -> None:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[spec.path])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.PatientID = spec.patient_id
    ds.StudyInstanceUID = spec.study_uid or generate_uid(entropy_srcs=[spec.path, "study"])
    if spec.age is not None:
        ds.PatientAge = f"{int(spec.age):03d}Y"
    ds.PatientSex = spec.sex
    ds.ViewPosition = spec.view
    ds.BodyPartExamined = "CHEST"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = (pixels.astype(np.uint16) * 16).tobytes()
    ds.save_as(str(path), enforce_file_format=True)


def default_specs() -> list[ImageSpec]:
    """A small archive over two sites with known flags: the expected review/report numbers follow."""
    s = []
    # site A: 8 PNG films (metadata ages), PA and AP, two patients with two films each
    s.append(ImageSpec("siteA/p001_a.png", {"rotation": 0.97, "inversion": 0.02}, 45, "M", "PA", "P001", "", rotate=90))
    s.append(ImageSpec("siteA/p001_b.png", {"rotation": 0.05, "inversion": 0.01}, 45, "M", "PA", "P001", ""))
    s.append(ImageSpec("siteA/p002_a.png", {"rotation": 0.91, "inversion": 0.88}, 8, "F", "AP", "P002", "", rotate=180))
    s.append(ImageSpec("siteA/p002_b.png", {"rotation": 0.10, "inversion": 0.03}, 8, "F", "AP", "P002", ""))
    s.append(ImageSpec("siteA/p003.png", {"rotation": 0.75, "inversion": 0.04}, 70, "F", "PA", "P003", "", rotate=270))
    s.append(ImageSpec("siteA/p004.png", {"rotation": 0.20, "inversion": 0.95}, None, "M", "AP", "P004", ""))
    s.append(ImageSpec("siteA/sub/p005.png", {"rotation": 0.30, "inversion": 0.10}, 30, "F", "PA", "P005", ""))
    s.append(ImageSpec("siteA/sub/p003.png", {"rotation": 0.66, "inversion": 0.05}, 71, "F", "PA", "P006", "", rotate=90))
    # site B: DICOM with study UIDs (two films in one study), one unreadable file
    s.append(ImageSpec("siteB/s1_1.dcm", {"rotation": 0.01, "inversion": 0.02}, 60, "M", "PA", "B01", "1.2.3.1", "dicom"))
    s.append(ImageSpec("siteB/s1_2.dcm", {"rotation": 0.93, "inversion": 0.02}, 60, "M", "PA", "B01", "1.2.3.1", "dicom", rotate=90))
    s.append(ImageSpec("siteB/s2_1.dcm", {"rotation": 0.02, "inversion": 0.01}, 5, "F", "AP", "B02", "1.2.3.2", "dicom"))
    s.append(ImageSpec("siteB/broken.png", {}, None, "", "", "", "", "broken"))
    for spec in s:
        if spec.kind == "dicom":
            spec.age_source = "dicom"
        if spec.age is None:
            spec.age_source = ""
    return s


def build_scan_output(tmp: Path, specs: list[ImageSpec] | None = None, thresholds: dict | None = None,
                      bundles: dict | None = None, min_age: float = 10, film_size: int = 96,
                      make_review_copies: bool = True) -> tuple[Path, Path]:
    """Write ``tmp/archive`` and ``tmp/scan_out``; returns (archive, scan_out).

    ``thresholds``: detector name -> threshold (default rotation 0.6, inversion 0.5).
    ``bundles``: detector name -> bundle folder written in detectors.csv (default: a path that does
    not exist, so saliency is unavailable)."""
    specs = default_specs() if specs is None else specs
    thresholds = thresholds or {"rotation": 0.6, "inversion": 0.5}
    bundles = bundles or {}
    names = sorted(thresholds)
    archive = Path(tmp) / "archive"
    out = Path(tmp) / "scan_out"
    archive.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    rows, errors = [], []
    started = datetime.now(timezone.utc)
    for i, spec in enumerate(specs):
        dest = archive / spec.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        row = {c: "" for c in BASE_COLUMNS}
        row["path"] = spec.path
        if spec.kind == "broken":
            dest.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png")
            row.update(status="error", error="truncated or corrupt PNG")
            for n in names:
                row[f"{n}_score"] = ""
                row[f"{n}_flag"] = ""
            row.update(excluded="False", reasons="")
            rows.append(row)
            errors.append({"path": spec.path, "error": row["error"]})
            continue
        film = make_film(i, film_size, spec.rotate)
        if spec.kind == "dicom":
            _write_dicom(dest, film, spec)
            fmt, photometric = "DICOM", "MONOCHROME2"
        else:
            Image.fromarray(film).save(dest)
            fmt, photometric = "PNG", "L"
        row.update(
            status="ok", format=fmt, photometric=photometric, width=film.shape[1], height=film.shape[0],
            age_years="" if spec.age is None else f"{float(spec.age):g}", age_source=spec.age_source,
            sex=spec.sex, view_position=spec.view, body_part="CHEST" if spec.kind == "dicom" else "",
            modality="DX" if spec.kind == "dicom" else "", patient_id=spec.patient_id, study_uid=spec.study_uid,
        )
        reasons = []
        for n in names:
            score = float(spec.scores.get(n, 0.0))
            flag = score >= thresholds[n]
            row[f"{n}_score"] = f"{score:.6f}"
            row[f"{n}_flag"] = str(flag)
            if flag:
                reasons.append(n)
        if spec.age is not None and spec.age < min_age:
            reasons.append(f"age<{min_age:g}")
        row["excluded"] = str(bool(reasons))
        row["reasons"] = ";".join(reasons)
        rows.append(row)
    columns = BASE_COLUMNS + [c for n in names for c in (f"{n}_score", f"{n}_flag")] + ["excluded", "reasons"]
    scores = pd.DataFrame(rows, columns=columns)
    scores.to_csv(out / "scores.csv", index=False)
    excl = scores[scores["excluded"] == "True"]
    excl[["path", "reasons"] + [f"{n}_score" for n in names] + ["age_years"]].to_csv(out / "exclusions.csv", index=False)
    pd.DataFrame(errors, columns=["path", "error"]).to_csv(out / "errors.csv", index=False)
    det_rows = []
    for n in names:
        bundle = Path(bundles[n]).resolve() if n in bundles else (Path(tmp) / "no_such_bundles" / n).resolve()
        version = f"{n}-000000000000"
        size, borders = 64, "keep"
        if (bundle / "detector.json").is_file():
            info = json.loads((bundle / "detector.json").read_text())
            version, size, borders = info["version"], info["input"]["size"], info["input"].get("borders", "keep")
        det_rows.append({"name": n, "kind": n, "version": version, "threshold": thresholds[n],
                         "threshold_source": "bundle", "bundle_path": str(bundle), "input_size": size,
                         "input_borders": borders})
    pd.DataFrame(det_rows).to_csv(out / "detectors.csv", index=False)
    per_reason: dict = {}
    for r in excl["reasons"]:
        for reason in r.split(";"):
            per_reason[reason] = per_reason.get(reason, 0) + 1
    if make_review_copies:
        for _, row in excl.iterrows():
            for reason in row["reasons"].split(";"):
                dest = out / "review" / reason_folder(reason) / row["path"]
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(archive / row["path"], dest)
                if row["path"].endswith(".dcm"):
                    from cleaner.io.images import read_image

                    px = read_image(archive / row["path"]).pixels
                    Image.fromarray((px * 255).round().astype(np.uint8)).save(str(dest) + ".png")
    finished = datetime.now(timezone.utc)
    unknown = int(((scores["status"] == "ok") & (scores["age_years"] == "")).sum())
    summary = {
        "archive": str(archive.resolve()), "out": str(out.resolve()), "cxclean_version": "0.1.0",
        "started": started.isoformat(), "finished": finished.isoformat(),
        "seconds": (finished - started).total_seconds(), "files": len(scores),
        "ok": int((scores["status"] == "ok").sum()), "errors": int((scores["status"] == "error").sum()),
        "excluded": int(len(excl)), "excluded_per_reason": per_reason, "skipped": {},
        "images_per_second": 0.0, "min_age": min_age, "unknown_age": "keep", "unknown_age_count": unknown,
        "detectors": det_rows,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return archive, out


def flagged_pairs(scan_out: Path) -> set[tuple[str, str]]:
    """(path, reason) for every exclusion, read back from exclusions.csv."""
    excl = pd.read_csv(Path(scan_out) / "exclusions.csv", dtype=str, keep_default_na=False)
    return {(p, r) for p, rs in zip(excl["path"], excl["reasons"]) for r in rs.split(";")}


def save_tiny_bundle(out: Path, name: str = "rotation", size: int = 64, threshold: float = 0.5, seed: int = 0) -> Path:
    """A small, untrained conv detector bundle (real Keras model) for page and saliency plumbing tests."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from cleaner.io.preprocess import InputSpec
    from detectors.bundle import save_bundle

    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="last_conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(x))
    info = {"name": name, "kind": name, "input": InputSpec(size=size).to_dict(), "threshold": threshold}
    return save_bundle(model, info, out)


def scan_output_for_existing(tmp: Path, archive: Path, flagged: dict, min_age: float = 10) -> Path:
    """A scan output over files that already exist in ``archive`` (e.g. real radiographs, left where
    they are): ``flagged`` maps a relative path to (reasons, rotation score). No review copies,
    so the page must render its own full-size previews."""
    out = Path(tmp) / "scan_out"
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for rel, (reasons, score) in flagged.items():
        row = {c: "" for c in BASE_COLUMNS}
        row.update(path=rel, status="ok", rotation_score=f"{score:.6f}", rotation_flag=str(score >= 0.5),
                   excluded=str(bool(reasons)), reasons=";".join(reasons))
        rows.append(row)
    cols = BASE_COLUMNS + ["rotation_score", "rotation_flag", "excluded", "reasons"]
    scores = pd.DataFrame(rows, columns=cols)
    scores.to_csv(out / "scores.csv", index=False)
    scores[scores["excluded"] == "True"][["path", "reasons", "rotation_score", "age_years"]].to_csv(out / "exclusions.csv", index=False)
    pd.DataFrame(columns=["path", "error"]).to_csv(out / "errors.csv", index=False)
    pd.DataFrame([{"name": "rotation", "kind": "rotation", "version": "rotation-000000000000", "threshold": 0.5,
                   "threshold_source": "bundle", "bundle_path": str(Path(tmp) / "none"), "input_size": 256,
                   "input_borders": "keep"}]
                 ).to_csv(out / "detectors.csv", index=False)
    (out / "summary.json").write_text(json.dumps({"archive": str(Path(archive).resolve()), "out": str(out), "files": len(rows),
                                                  "ok": len(rows), "errors": 0, "excluded": int((scores["excluded"] == "True").sum()),
                                                  "min_age": min_age, "unknown_age": "keep"}))
    return out
