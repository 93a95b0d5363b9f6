"""Training images: where they come from (folder or CSV), decoding them once, and a leak-free split.

Images are decoded with the one reader (``cleaner.io.images.read_image``) and kept in memory at a
bounded *working resolution* (longest side at most ``max_side``; training uses twice the model
input, so 512 px at the default 256). Every artefact cxclean synthesises (quarter turns,
mirroring, ``max - x``) commutes with that antialiased resize, and the resize is applied
identically to both classes, so caching changes nothing that could separate them. What it does
change is small and class-blind: a training example is resized twice (working size, then the
input size, both antialiased) where scanning resizes once. It bounds memory (about 1 MB per image
at 512 px) and makes synthesis several times faster on a CPU.
"""
from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from cleaner.io.errors import UserInputError
from cleaner.io.images import read_or_error
from cleaner.io.manifests import file_sha256
from cleaner.io.parallel import ordered_map
from cleaner.io.pathlists import is_path_list, read_path_list
from cleaner.io.walker import WalkStats, walk_archive

TRUE_LABELS = {"1", "true", "yes", "y", "positive", "pos", "artefact", "artifact"}
FALSE_LABELS = {"0", "false", "no", "n", "negative", "neg", "normal"}


@dataclass
class TrainingImage:
    """One training image: where it is, its label (None = presumed normal) and what groups it."""

    path: str
    label: int | None = None
    patient_id: str | None = None
    sha256: str | None = None
    pixels: np.ndarray | None = field(default=None, repr=False)
    error: str | None = None
    split: str | None = None
    #: training repeats per epoch (CSV ``weight`` column): lets a rare subgroup (AP portable films,
    #: children, one scanner) count more without changing validation
    weight: int = 1
    #: the trained detector's score on the image as it is, and on its synthesised artefact
    score: float | None = None
    artefact_score: float | None = None
    #: a presumed normal that the trained detector flags (a film that really is rotated, say): for review
    suspect: bool = False

    @property
    def group(self) -> str:
        """Images of one patient (or byte-identical copies of one file) must stay on one side of the split."""
        if self.patient_id not in (None, ""):
            return f"patient:{self.patient_id}"
        return f"sha256:{self.sha256 or self.path}"


def parse_label(value, where: str) -> int:
    text = str(value).strip().lower()
    if text in TRUE_LABELS:
        return 1
    if text in FALSE_LABELS:
        return 0
    try:
        number = float(text)
    except ValueError:
        number = None
    if number in (0.0, 1.0):
        return int(number)
    raise UserInputError(f"{where}: label {value!r} is not one of 1/0, true/false, positive/negative")


def read_list_csv(csv_path: str | os.PathLike, need_label: bool) -> list[TrainingImage]:
    """Images from a CSV list (``cleaner.io.pathlists``: a ``path`` column, relative to the CSV's folder),
    optional ``patient_id``, optional ``weight`` (training repeats per epoch, default 1; 0 leaves the image
    out of training but not out of validation) and, for labelled kinds, ``label``."""
    listed = read_path_list(csv_path, required=("path", "label") if need_label else ("path",))
    images = []
    for item in listed:
        where = f"{csv_path} row {item.line}"
        label = parse_label(item.cells.get("label", ""), where) if need_label else None
        weight = _parse_weight(item.cells.get("weight", ""), where)
        images.append(TrainingImage(str(item.absolute), label=label, patient_id=item.cells.get("patient_id") or None,
                                    weight=weight))
    return images


def _parse_weight(value, where: str) -> int:
    if str(value).strip() == "":
        return 1
    try:
        weight = float(value)
    except ValueError:
        weight = -1.0
    if weight < 0 or weight != int(weight):
        raise UserInputError(f"{where}: weight {value!r} is not a whole number >= 0")
    return int(weight)


def list_sources(where: str | os.PathLike, label: int | None = None, need_label: bool = False) -> list[TrainingImage]:
    """Sources from a folder (walked like an archive) or a CSV list."""
    where = Path(where)
    if where.is_file() and is_path_list(where):
        sources = read_list_csv(where, need_label)
        if label is not None:
            for s in sources:
                s.label = label
        return sources
    if not where.exists():
        raise UserInputError(f"{where}: no such folder or CSV")
    stats = WalkStats()
    sources = [TrainingImage(str(p), label=label) for p in walk_archive(where, stats)]
    for folder, reason in stats.folder_errors:
        sources.append(TrainingImage(folder, label=label, error=f"folder not readable: {reason}"))
    return sources


def shrink_to(pixels: np.ndarray, max_side: int) -> np.ndarray:
    """Antialiased resize so the longest side is at most ``max_side`` (aspect kept); unchanged if smaller."""
    h, w = pixels.shape
    if max(h, w) <= max_side:
        return pixels
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    im = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.float32))
    return np.asarray(im.resize(size, Image.Resampling.BILINEAR), dtype=np.float32)


def _decode(path: str, max_side: int):
    """Worker: (pixels, patient_id, sha256, error) for one file; never raises."""
    loaded, error = read_or_error(path)
    if loaded is None:
        return None, None, None, error
    try:
        sha = file_sha256(path)
    except OSError as exc:
        return None, None, None, f"cannot read for its sha256: {exc.strerror or exc}"
    return shrink_to(loaded.pixels, max_side), loaded.meta.patient_id, sha, None


def _crashed(path, why: str) -> tuple:
    return None, None, None, f"decoder crashed: {why}"


def decode_sources(sources: list[TrainingImage], max_side: int, workers: int = 1, progress: bool = True) -> list[TrainingImage]:
    """Decode every source in place; unreadable ones keep their reason in ``.error`` (never dropped silently)."""
    from tqdm import tqdm

    todo = [s for s in sources if s.error is None]
    func = functools.partial(_decode, max_side=max_side)
    results = ordered_map(func, [s.path for s in todo], workers=workers, chunksize=8, on_crash=_crashed)
    for source, (pixels, patient_id, sha, error) in tqdm(
        zip(todo, results), total=len(todo), desc="decoding", unit="img", disable=not progress
    ):
        source.pixels, source.sha256, source.error = pixels, sha, error
        if source.patient_id in (None, "") and patient_id:
            source.patient_id = str(patient_id)
    return sources


def split_sources(sources: list[TrainingImage], val_fraction: float, seed: int) -> None:
    """Assign ``split`` = train / val by group (patient, else image content), seeded.

    Groups are shuffled and taken into validation until it holds ``val_fraction`` of the images,
    so no patient and no image (nor a byte-identical copy) is on both sides.
    """
    if not 0.0 < val_fraction < 1.0:
        raise UserInputError(f"--val-fraction must be between 0 and 1, not {val_fraction}")
    usable = [s for s in sources if s.error is None]
    groups: dict[str, list[TrainingImage]] = {}
    for s in usable:
        groups.setdefault(s.group, []).append(s)
    keys = sorted(groups)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(keys))
    target = val_fraction * len(usable)
    n_val = 0
    for i in order:
        members = groups[keys[i]]
        split = "val" if n_val < target else "train"
        if split == "val":
            n_val += len(members)
        for s in members:
            s.split = split
    for s in sources:
        if s.error is not None:
            s.split = "unreadable"


def write_manifest(sources: list[TrainingImage], path: str | os.PathLike, kind: str) -> Path:
    """The training manifest: every image offered, its split, sha256, label, patient, weight, the final
    detector's scores (and whether a presumed normal looks like an artefact itself), or why unreadable."""
    import pandas as pd

    rows = [
        {
            "path": s.path,
            "split": s.split,
            "label": "" if s.label is None else s.label,
            "role": _role(s, kind),
            "patient_id": s.patient_id or "",
            "weight": s.weight,
            "sha256": s.sha256 or "",
            "score": "" if s.score is None else round(s.score, 6),
            "artefact_score": "" if s.artefact_score is None else round(s.artefact_score, 6),
            "suspect": s.suspect,
            "error": s.error or "",
        }
        for s in sources
    ]
    path = Path(path)
    columns = ["path", "split", "label", "role", "patient_id", "weight", "sha256", "score", "artefact_score",
               "suspect", "error"]
    pd.DataFrame(rows, columns=columns).to_csv(path, index=False)
    return path


def _role(s: TrainingImage, kind: str) -> str:
    if s.label is None:
        return "normal (negative, and source of synthesised positives)"
    return "positive" if s.label == 1 else "negative"


def training_set_sha256(sources: list[TrainingImage]) -> str:
    """One hash for the training set: sha256 over the sorted ``sha256 split label weight`` lines of usable images."""
    lines = sorted(f"{s.sha256} {s.split} {s.label} {s.weight}" for s in sources if s.error is None)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()
