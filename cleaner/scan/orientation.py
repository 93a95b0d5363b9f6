"""Undoing an artefact a detector found before the other detectors score the film, and saying what was undone.

The detectors learnt on upright films of the right polarity (rotations and inversions only as an occasional
nuisance), so on a film lying on its side, or inverted, their scores are less reliable (docs/decisions/0004,
0014). When the rotation detector flags a film, the quarter turn that makes it look most upright (lowest rotation
score) is found, every other detector scores the film turned that way, and the turn is reported, so a rotated film
can be turned back instead of dropped. When the inversion detector then flags it, the others score it un-inverted,
and rotation reads it again un-inverted (an inverted film it called rotated is, un-inverted, often upright). The
model inputs are square and stretched symmetrically, so turning or un-inverting the preprocessed input is the same
as doing it to the film before preprocessing.
"""
from __future__ import annotations

import numpy as np

#: column of scores.csv and exclusions.csv: degrees clockwise that turn a flagged film upright
TURN_COLUMN = "turn_upright_cw"


def upright_turns(rotation_detector, stack: np.ndarray, flagged: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Counter-clockwise quarter turns (0-3, ``np.rot90``'s ``k``) that make each input upright; 0 where
    ``flagged`` is False. ``stack`` is (N, s, s, 1) preprocessed for ``rotation_detector``."""
    turns = np.zeros(len(stack), dtype=np.int64)
    idx = np.flatnonzero(flagged)
    if len(idx) == 0:
        return turns
    picked = stack[idx]
    # the three turns in one call: one padded last batch instead of three
    turned = np.concatenate([np.rot90(picked, k, axes=(1, 2)) for k in (1, 2, 3)])
    scores = rotation_detector.predict(turned, batch_size=batch_size).reshape(3, len(idx))
    turns[idx] = 1 + np.argmin(scores, axis=0)
    return turns


def apply_turns(stack: np.ndarray, turns: np.ndarray) -> np.ndarray:
    """``stack`` with input ``i`` turned ``turns[i]`` quarter turns counter-clockwise (a copy only if any turn)."""
    if not np.any(turns):
        return stack
    out = stack.copy()
    for i in np.flatnonzero(turns):
        out[i] = np.rot90(stack[i], int(turns[i]), axes=(0, 1))
    return out


def clockwise_degrees(turn: int) -> int:
    """``np.rot90``'s counter-clockwise quarter turns as the clockwise degrees a viewer would apply."""
    return (360 - 90 * int(turn)) % 360


def quarter_turns(clockwise: str | int | float | None) -> int:
    """The inverse of ``clockwise_degrees``: a ``turn_upright_cw`` value (blank = none) as ``np.rot90``'s ``k``."""
    if clockwise in (None, "") or (isinstance(clockwise, float) and np.isnan(clockwise)):
        return 0
    degrees = int(float(clockwise))
    if degrees % 90:
        raise ValueError(f"{TURN_COLUMN} {clockwise!r}: not a multiple of 90 degrees")
    return ((360 - degrees) % 360) // 90


def uninvert(stack: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``stack`` with inputs ``idx`` un-inverted by the inversion kind's own artefact (``max - x``, which undoes
    itself on an input whose darkest pixel is 0, as the percentile stretch makes it); a copy only if any."""
    if not len(idx):
        return stack
    out = stack.copy()
    for i in idx:
        out[i] = _invert(stack[i])
    return out


def _invert(x: np.ndarray) -> np.ndarray:
    from detectors.kinds import get_kind

    return get_kind("inversion").positive(x, 0)


def scored_view(kind: str, turn: int, uninverted: bool) -> tuple[int, bool]:
    """How a scan showed a film to a detector of ``kind``, given the film's turn and whether the inversion
    detector flagged it: rotation reads the film as it lies (un-inverted when flagged), inversion reads it turned
    (as it is), every other detector turned and un-inverted."""
    if kind == "rotation":
        return 0, uninverted
    if kind == "inversion":
        return turn, False
    return turn, uninverted


def scored_input(x: np.ndarray, turn: int, uninverted: bool) -> np.ndarray:
    """One model input (s, s, 1) as a scan showed it to a detector: un-inverted (``uninvert``) and turned."""
    if uninverted:
        x = _invert(x)
    return np.rot90(x, turn).copy() if turn else x
