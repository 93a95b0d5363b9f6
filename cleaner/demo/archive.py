"""Builds test archives with planted artefacts and a truth table: the demo and the development archive.

Every source film is kept as it is (bytes copied: 'upright') and, for frontal sources, one altered copy
is planted beside it: rotated 90/180/270, pixel-inverted or mirrored, decoded by the one reader and
written as 8-bit PNG. Other roles are copied as they are with their truth (lateral, other_body), and a
few corrupt files are added. ``truth.csv`` lists every file with its truth, source and age.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from cleaner.io.images import read_image
from cleaner.reports.truth import PLANTS, plant_artefact
from cleaner.io.walker import walk_archive

@dataclass
class FilmFolder:
    """A folder of films: ``role`` is 'frontal' (planted), 'lateral', 'other_body' or 'child' (frontal, not planted)."""

    folder: Path
    name: str
    role: str = "frontal"
    ages: dict | None = None  # file name -> age in years, where the source's metadata gives one
    limit: int | None = None


def load_ages(metadata_csv: Path, column: str = "age_years") -> dict:
    """File name -> age from a dataset's metadata.csv (non-numeric ages are left out)."""
    if not metadata_csv.is_file():
        return {}
    table = pd.read_csv(metadata_csv, dtype=str)
    if column not in table.columns:
        return {}
    ages = pd.to_numeric(table[column], errors="coerce")
    return {Path(p).name: float(a) for p, a in zip(table["path"], ages) if a == a}


def _save_png(pixels: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)).save(path, format="PNG")


def _corrupt_files(out: Path, donor: Path) -> list[tuple[str, str]]:
    folder = out / "corrupt"
    folder.mkdir(parents=True, exist_ok=True)
    data = donor.read_bytes()
    files = {
        "truncated.png": data[: max(64, len(data) // 3)],
        "empty.png": b"",
        "random_bytes.png": np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "text_named_dicom.dcm": b"This is a report, not an image.\n" * 20,
        "fake_dicom_header": b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI" + b"\xff" * 40,
    }
    for name, payload in files.items():
        (folder / name).write_bytes(payload)
    return [(f"corrupt/{name}", "corrupt") for name in files]


def build_archive(sources: list[FilmFolder], out: str | Path, seed: int = 0, plant: bool = True) -> pd.DataFrame:
    """Write the archive under ``out`` and return (and save as ``out/../truth.csv``) its truth table."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    donor = None
    for source in sources:
        files = sorted(walk_archive(source.folder))
        if source.limit is not None:
            files = files[: source.limit]
        kinds = list(PLANTS) * (len(files) // len(PLANTS) + 1)
        rng.shuffle(kinds)
        for i, path in enumerate(files):
            rel = f"{source.name}/{path.relative_to(source.folder).as_posix()}"
            age = (source.ages or {}).get(path.name)
            truth = {"frontal": "upright", "child": "upright"}.get(source.role, source.role)
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            rows.append(dict(path=rel, truth=truth, source=source.name, role=source.role, age_years=age, origin=rel))
            if donor is None and path.suffix.lower() == ".png":
                donor = path
            if plant and source.role == "frontal":
                kind = kinds[i]
                planted = f"{source.name}/planted/{path.stem}_{i:04d}.png"
                _save_png(plant_artefact(read_image(path).pixels, kind), out / planted)
                rows.append(dict(path=planted, truth=kind, source=source.name, role=source.role, age_years=age, origin=rel))
    if donor is not None:
        rows += [dict(path=p, truth=t, source="corrupt", role="corrupt", age_years=None, origin="") for p, t in _corrupt_files(out, donor)]
    truth = pd.DataFrame(rows).sort_values("path").reset_index(drop=True)
    truth.to_csv(out.parent / f"{out.name}_truth.csv", index=False)
    return truth
