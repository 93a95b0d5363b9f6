"""The detectors a scan uses: found, loaded once, given their thresholds, and the one step that scores a batch.

A film the rotation detector flags is scored by every other detector turned upright, and the turn is reported; a
film the inversion detector flags is scored by every other detector un-inverted, rotation included
(``orientation``, docs/decisions/0004 and 0014); everything else sees the film as it is.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from cleaner.scan import orientation
from cleaner.scan.config import ScanError
from cleaner.scan.folder import score_columns


def default_detector_dirs() -> list[Path]:
    """The detectors shipped inside the package, used when the user names none."""
    from detectors.bundle import default_bundles_dir

    root = default_bundles_dir()
    return [root] if root is not None else []


@dataclass
class ScanDetector:
    detector: object  # detectors.bundle.Detector
    threshold: float
    threshold_source: str  # bundle | override

    @property
    def name(self) -> str:
        return self.detector.name

    def row(self) -> dict:
        """This detector's row of ``detectors.csv``."""
        d = self.detector
        return {
            "name": d.name, "kind": d.kind, "version": d.version, "threshold": self.threshold,
            "threshold_source": self.threshold_source,
            "bundle_path": str(Path(d.path).resolve()) if d.path is not None else "",
            "input_size": d.input_spec.size, "input_borders": d.input_spec.borders, "gate": bool(d.info.get("gate")),
        }


def resolve_bundle_paths(detector_dirs: Iterable = (), detector_paths: Iterable = ()) -> list[Path]:
    """Bundle folders from ``--detectors DIR`` (all below DIR) and ``--detector BUNDLE``, without repeats."""
    from detectors.bundle import INFO_FILE, find_bundles

    found: list[Path] = []
    for folder in detector_dirs:
        folder = Path(folder)
        if not folder.is_dir():
            raise ScanError(f"{folder}: --detectors folder not found")
        bundles = find_bundles(folder)
        if not bundles:
            raise ScanError(f"{folder}: no detector bundles (no {INFO_FILE}) at or below this folder")
        found += bundles
    for bundle in detector_paths:
        bundle = Path(bundle)
        folder = bundle.parent if bundle.name == INFO_FILE else bundle
        if not (folder / INFO_FILE).is_file():
            raise ScanError(f"{bundle}: not a detector bundle (no {INFO_FILE})")
        found.append(folder)
    unique, seen = [], set()
    for path in found:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(key)
    return unique


def parse_threshold_overrides(items: Iterable[str]) -> dict[str, float]:
    """``["rotation=0.7", ...]`` to ``{"rotation": 0.7}``; values must lie in [0, 1]."""
    out = {}
    for item in items:
        name, sep, value = str(item).partition("=")
        name = name.strip()
        try:
            number = float(value)
        except ValueError:
            number = None
        if not sep or not name or number is None or not 0.0 <= number <= 1.0:
            raise ScanError(f"--threshold {item!r}: expected NAME=VALUE with VALUE between 0 and 1")
        out[name] = number
    return out


def load_scan_detectors(detectors: Sequence, thresholds: dict[str, float] | None = None,
                        models: bool = True) -> list[ScanDetector]:
    """Load bundles (paths or already loaded Detectors), check names are unique, apply overrides; name order.
    ``models=False`` reads only each bundle's description (``load_info``): for a driver whose engine scores elsewhere."""
    from detectors.bundle import Detector, load, load_info

    loaded = []
    for item in detectors:
        if isinstance(item, Detector):
            loaded.append(item)
            continue
        try:
            loaded.append(load(item) if models else load_info(item))
        except (FileNotFoundError, ValueError) as exc:
            raise ScanError(f"cannot load detector: {exc}") from None
    names = Counter(d.name for d in loaded)
    dupes = sorted(n for n, c in names.items() if c > 1)
    if dupes:
        where = {n: [str(d.path) for d in loaded if d.name == n] for n in dupes}
        raise ScanError(f"two or more detectors share a name (their columns would collide): {where}")
    thresholds = dict(thresholds or {})
    unknown = sorted(set(thresholds) - set(names))
    if unknown:
        raise ScanError(f"--threshold for unknown detector(s) {unknown}; detectors are {sorted(names)}")
    return [ScanDetector(d, thresholds[d.name], "override") if d.name in thresholds else ScanDetector(d, d.threshold, "bundle")
            for d in sorted(loaded, key=lambda d: d.name)]


class DetectorSet:
    """The scan's detectors in name order, the distinct model inputs they need (one per ``InputSpec``), and
    ``score``, the one step that turns a batch of decoded films into scores."""

    def __init__(self, members: list[ScanDetector]):
        self.members = members
        self.specs = []
        for d in members:
            if d.detector.input_spec not in self.specs:
                self.specs.append(d.detector.input_spec)
        self.spec_index = {d.name: self.specs.index(d.detector.input_spec) for d in members}
        # the first rotation detector turns the films it flags upright, and the first inversion detector un-inverts
        # the films it flags, before the others score them
        self.rotation = next((d for d in members if d.detector.kind == "rotation"), None)
        self.inversion = next((d for d in members if d.detector.kind == "inversion"), None)

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.members]

    @property
    def gates(self) -> tuple:
        """Detectors whose flag overrides the others' on a film (``rules.ExclusionRules``)."""
        return tuple(d.name for d in self.members if d.detector.info.get("gate"))

    def columns(self) -> list[str]:
        """scores.csv's columns for these detectors."""
        return score_columns(self.names, turn=self.rotation is not None)

    def rows(self) -> list[dict]:
        """detectors.csv's rows."""
        return [d.row() for d in self.members]

    def score(self, stacks: list[np.ndarray], batch_size: int) -> list[dict]:
        """Per film, ``{name: score}`` (plus the quarter turns under ``orientation.TURN_COLUMN`` when a rotation
        detector is present), for films given as one stack per ``self.specs`` entry. Rotation reads the film as it
        lies, inversion reads it turned upright, and the others read it turned and, where inversion flags it,
        un-inverted; rotation reads a film inversion flags again, un-inverted (``orientation.scored_view``)."""
        n = len(stacks[0]) if stacks else 0
        scores: list[dict] = [{} for _ in range(n)]
        rotation, inversion = self.rotation, self.inversion
        views, uninverted = stacks, np.zeros(0, dtype=np.int64)
        if rotation is not None:
            rotation_values, turns = self._read_orientation(stacks, np.arange(n), batch_size)
            views = [orientation.apply_turns(stack, turns) for stack in stacks]
        first = views  # the films as rotation's first reading turned them, before any un-inversion
        if inversion is not None:
            values = inversion.detector.predict(views[self.spec_index[inversion.name]], batch_size=batch_size)
            for i, v in enumerate(values):
                scores[i][inversion.name] = float(v)
            # in float64, as the flag column is decided (``rules.ExclusionRules.flags``), so the two always agree
            uninverted = np.flatnonzero(np.asarray(values, dtype=np.float64) >= inversion.threshold)
            if len(uninverted):
                plain = [orientation.uninvert(stack, uninverted) for stack in stacks]
                if rotation is not None:
                    rotation_values[uninverted], turns[uninverted] = self._read_orientation(plain, uninverted,
                                                                                            batch_size)
                first, views = views, ([orientation.apply_turns(stack, turns) for stack in plain]
                                       if rotation is not None else plain)
        if rotation is not None:
            for i, (v, t) in enumerate(zip(rotation_values, turns)):
                scores[i][rotation.name] = float(v)
                scores[i][orientation.TURN_COLUMN] = int(t)
        for d in self.members:
            if d is rotation or d is inversion:
                continue
            if d.detector.info.get("gate"):
                values = self._read_gate(d, first, views, uninverted, batch_size)
            else:
                values = d.detector.predict(views[self.spec_index[d.name]], batch_size=batch_size)
            for i, v in enumerate(values):
                scores[i][d.name] = float(v)
        return scores

    def _read_gate(self, gate: ScanDetector, first: list, views: list, uninverted: np.ndarray, batch_size: int):
        """A gate asks whether a film is a frontal chest film at all, which un-inverting it assumes: on a film that
        is not one, inversion's verdict, and the turn rotation then finds, are arbitrary (decision 0013). So the
        gate reads each film as rotation's first reading turned it and, where inversion flagged it, also
        un-inverted and turned again, and keeps the higher score (decision 0014)."""
        k = self.spec_index[gate.name]
        values = np.asarray(gate.detector.predict(first[k], batch_size=batch_size)).reshape(-1)
        if len(uninverted):
            again = np.asarray(gate.detector.predict(views[k][uninverted], batch_size=batch_size)).reshape(-1)
            values[uninverted] = np.maximum(values[uninverted], again)
        return values

    def _read_orientation(self, stacks: list[np.ndarray], idx: np.ndarray, batch_size: int):
        """The rotation detector's scores of films ``idx`` as they lie, and the quarter turns that make the
        flagged ones upright (0 for the others); flagged in float64, as the flag column is."""
        rotation = self.rotation
        own = stacks[self.spec_index[rotation.name]][idx]
        values = np.asarray(rotation.detector.predict(own, batch_size=batch_size), dtype=np.float64).reshape(-1)
        return values, orientation.upright_turns(rotation.detector, own, values >= rotation.threshold, batch_size)
