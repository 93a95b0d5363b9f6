"""The truth labels a development or demo archive is judged against, and how each planted artefact is made.

One list for the archive builder (which plants them) and the evaluation (which judges a scan against them).
"""
from __future__ import annotations

import numpy as np

#: truth label -> (detector kind, variant) whose synthesis plants it: one definition of each artefact
PLANTS = {
    "rot90": ("rotation", 0),
    "rot180": ("rotation", 1),
    "rot270": ("rotation", 2),
    "inverted": ("inversion", 0),
    "hflip": ("flip", 0),
}


def plant_artefact(pixels: np.ndarray, truth: str) -> np.ndarray:
    """The displayed image with the artefact ``truth``, exactly as training synthesises it."""
    from detectors.kinds import get_kind

    kind, variant = PLANTS[truth]
    return get_kind(kind).positive(pixels, variant)


#: every truth label a truth table may hold
TRUTH_LABELS = ("upright", *PLANTS, "lateral", "other_body", "corrupt")
#: detectors found by name rather than kind (a ``custom`` bundle): the truth labels each exists to find
NAME_TARGETS = {"non_frontal": ("lateral", "other_body")}
