"""Thresholds that hold on other hospitals' films: an operating point chosen on real upright films.

A threshold chosen on a validation split of a few hundred synthetic examples cannot promise a low false-positive
rate: zero false positives among n negatives only bounds the rate below about 3/n (95 %), 1.5 % for 200. So a
detector is *calibrated* on real upright frontal films, ideally from sites it was not trained on: its threshold
is put above all but ``target_fpr`` of them, and ``detector.json`` records how many films from which sites, the
rate they show and the rate they can support. Calibration only ever makes a detector stricter than its
validation threshold: real upright films can show that a threshold flags too many of them, but a few hundred of
them cannot show that a lower one is safe.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

#: the stricter thresholds a flag budget and a recall curve are given at
THRESHOLD_GRID = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999)
#: log-odds added above the highest allowed upright score, so that rounding on another CPU does not flag it
MARGIN = 0.25


def fpr_upper_bound(false_positives: int, films: int, confidence: float = 0.95) -> float:
    """One-sided exact (Clopper-Pearson) upper bound of the false-positive rate that ``false_positives`` among
    ``films`` real negatives are consistent with: 0 of 200 -> 1.5 %, 0 of 3000 -> 0.1 %."""
    from scipy.stats import beta

    if films <= 0:
        return 1.0
    if false_positives >= films:
        return 1.0
    return float(beta.ppf(confidence, false_positives + 1, films - false_positives))


def supported_fpr_note(films: int, false_positives: int = 0) -> str:
    """What a set of negatives can and cannot promise, in words (the training log and detector.json say it)."""
    bound = fpr_upper_bound(false_positives, films)
    return (f"{false_positives} false positive(s) among {films} negative film(s) is consistent with a false-positive "
            f"rate of up to {bound:.2%} (95 % upper bound); a rate below that needs more negatives "
            f"(about {math.ceil(3 / 0.001):,} with none flagged for 0.1 %)")


def _logit(p: float) -> float:
    p = min(max(float(p), 1e-7), 1 - 1e-7)
    return math.log(p / (1 - p))


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def threshold_at_fpr(scores, target_fpr: float, floor: float = 0.0, margin: float = MARGIN) -> float:
    """The threshold that flags at most ``target_fpr`` of ``scores`` (real upright films), with ``margin`` log-odds
    above the highest score it lets through, and never below ``floor`` (the validation threshold)."""
    scores = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    if not len(scores):
        return float(floor)
    allowed = int(math.floor(target_fpr * len(scores) + 1e-9))
    if allowed >= len(scores):
        return float(floor)
    t = _sigmoid(_logit(scores[allowed]) + margin)
    return float(max(t, floor))


@dataclass
class Calibration:
    """How a threshold was chosen on real upright films (``detector.json``'s ``threshold_choice.calibration``)."""

    threshold: float
    target_fpr: float
    films: int
    sites: dict = field(default_factory=dict)  # site (top folder) -> films
    false_positives: int = 0  # calibration films at or above the threshold
    fpr_upper_95: float = 1.0
    validation_threshold: float | None = None
    validation_recall: float | None = None  # synthetic validation recall at the new threshold, when known
    margin: float = MARGIN
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def calibrate_scores(scores, sites, target_fpr: float, validation_threshold: float,
                     recall_curve: list | None = None) -> Calibration:
    """A ``Calibration`` from the detector's scores of real upright films (``sites`` names each film's site)."""
    scores = np.asarray(scores, dtype=np.float64)
    t = threshold_at_fpr(scores, target_fpr, floor=validation_threshold)
    fp = int((scores >= t).sum())
    counts: dict[str, int] = {}
    for s in sites:
        counts[str(s)] = counts.get(str(s), 0) + 1
    recall = recall_at(recall_curve, t) if recall_curve else None
    note = (f"threshold {t:.6g} flags {fp} of {len(scores)} real upright film(s) "
            f"({'raised from' if t > validation_threshold else 'kept at'} the validation threshold "
            f"{validation_threshold:.6g}); " + supported_fpr_note(len(scores), fp))
    return Calibration(t, target_fpr, len(scores), dict(sorted(counts.items())), fp,
                       fpr_upper_bound(fp, len(scores)), validation_threshold, recall, MARGIN, note)


def stricter_thresholds(threshold: float, grid=THRESHOLD_GRID) -> list[float]:
    """``threshold`` and every grid value above it: the rows of a recall curve and of a flag budget (a grid value
    within rounding of the threshold, as a float32 0.5 is of 0.5, is the same row)."""
    return [float(threshold)] + [float(g) for g in grid if g > threshold + 1e-6]


def recall_curve(y_true, scores, threshold: float, grid=THRESHOLD_GRID) -> list[list[float]]:
    """[[threshold, recall], ...] on validation examples, at ``stricter_thresholds(threshold)``."""
    y_true = np.asarray(y_true).astype(int)
    scores = np.asarray(scores, dtype=np.float64)
    positives = scores[y_true == 1]
    if not len(positives):
        return []
    return [[t, float((positives >= t).mean())] for t in stricter_thresholds(threshold, grid)]


def recall_at(curve: list | None, threshold: float) -> float | None:
    """Validation recall at ``threshold`` from a ``recall_curve`` (the nearest point at or below it, which is
    the recall of a threshold no stricter than it), or None when the curve cannot tell."""
    if not curve:
        return None
    below = [r for t, r in curve if t <= threshold + 1e-12]
    return float(below[-1]) if below else None


# --------------------------------------------------------------------------- calibrating a bundle


def _input_for(task: tuple):
    """Worker: one film read and preprocessed for ``spec``; (input, "") or (None, reason). Never raises."""
    from cleaner.io.images import read_or_error
    from cleaner.io.preprocess import preprocess

    path, spec = task
    loaded, error = read_or_error(path)
    if loaded is None:
        return None, error
    return preprocess(loaded.pixels, spec), ""


def _crashed(task: tuple, why: str):
    """``ordered_map``'s result for a film whose decode worker died on it twice: left out, with the reason."""
    return None, f"decoder crashed: {why}"


def upright_films(where) -> list[tuple[str, str]]:
    """(path, site) of every film in a folder (site: its top-level folder) or a CSV list (a ``site`` column,
    else the film's folder name)."""
    from pathlib import Path

    from cleaner.io.pathlists import is_path_list, read_path_list
    from cleaner.io.walker import walk_archive

    where = Path(where)
    if where.is_file() and is_path_list(where):
        return [(str(item.absolute), item.cells.get("site") or item.absolute.parent.name) for item in read_path_list(where)]
    films = []
    for path in walk_archive(where):
        parts = path.relative_to(where).parts
        films.append((str(path), parts[0] if len(parts) > 1 else where.name))
    return films


def score_films(detector, paths: list[str], workers: int = 1, progress: bool = True, batch_size: int = 64):
    """The detector's scores of ``paths`` through the one scoring path (``Detector.predict``); unreadable films
    are left out and returned with their reasons: (scores, kept indices, [(path, reason), ...])."""
    from tqdm import tqdm

    from cleaner.io.parallel import ordered_map

    spec = detector.input_spec
    scores, kept, errors, batch, idx = [], [], [], [], []
    results = ordered_map(_input_for, [(p, spec) for p in paths], workers=workers, chunksize=8, on_crash=_crashed)
    for i, (x, error) in enumerate(tqdm(results, total=len(paths), desc=f"scoring {detector.name}", unit="film",
                                        disable=not progress)):
        if x is None:
            errors.append((paths[i], error))
            continue
        batch.append(x)
        idx.append(i)
        if len(batch) == batch_size:
            scores += list(detector.predict(np.stack(batch), batch_size=batch_size))
            kept += idx
            batch, idx = [], []
    if batch:
        scores += list(detector.predict(np.stack(batch), batch_size=batch_size))
        kept += idx
    return np.asarray(scores, dtype=np.float64), kept, errors


def calibrate_bundle(bundle, uprights, target_fpr: float = 0.001, out=None, workers: int = 1, log=print,
                     progress: bool = True) -> Calibration:
    """Calibrate a detector bundle on real upright films (a folder or CSV list, see ``upright_films``) and write
    the threshold and how it was chosen into ``detector.json`` (of ``out``, a copy of the bundle, if given).
    The model, and so the bundle's version, is unchanged."""
    import json
    import shutil
    from pathlib import Path

    from cleaner.io.errors import UserInputError

    from .bundle import INFO_FILE, load, write_info

    detector = load(bundle)
    films = upright_films(uprights)
    if not films:
        raise UserInputError(f"{uprights}: no upright films to calibrate on")
    scores, kept, errors = score_films(detector, [p for p, _ in films], workers, progress)
    for path, reason in errors[:20]:
        log(f"  not used (unreadable): {path}: {reason}")
    info = detector.info
    choice = dict(info.get("threshold_choice") or {})
    validation_threshold = float(choice.get("validation_threshold", choice.get("threshold", info["threshold"])))
    curve = (info.get("metrics", {}).get("validation") or {}).get("recall_curve")
    cal = calibrate_scores(scores, [films[i][1] for i in kept], target_fpr, validation_threshold, curve)
    target = Path(out) if out is not None else Path(detector.path)
    if out is not None:
        if target.exists():
            raise UserInputError(f"{target}: already exists; give a new folder for the calibrated copy")
        shutil.copytree(detector.path, target)
    saved = json.loads((target / INFO_FILE).read_text())
    saved["threshold"] = cal.threshold
    saved.setdefault("threshold_choice", {})["validation_threshold"] = validation_threshold
    saved["threshold_choice"]["calibration"] = cal.to_dict() | {"unreadable": len(errors)}
    write_info(target, saved)
    log(f"{detector.name}: {cal.note}")
    return cal
