"""The registry of detector kinds: each kind is defined here and nowhere else.

A *synthetic* kind turns a presumed-normal image (negative) into its artefact (positive) with
``make_positive``, applied to the decoded image before the one preprocessing path runs, so
nothing but the artefact separates the classes. A *labelled* kind (``custom``) learns from
examples a person labelled instead. Adding a kind means adding one ``register(Kind(...))`` here.

A kind may name other kinds as *nuisances*: in training, their artefacts are applied at random to
positives and negatives alike, so the detector learns to ignore them. An inverted film is still
upright and a rotated film is not inverted: without this, the inversion detector flagged films
rotated by 180 degrees, and the rotation detector inverted ones, sending them to the wrong
review folder.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from cleaner.io.errors import UserInputError
from cleaner.io.preprocess import InputSpec


@dataclass(frozen=True)
class Kind:
    name: str
    description: str
    #: (pixels HxW float32 in [0, 1], variant index) -> the same image with the artefact; None for labelled kinds
    make_positive: Callable[[np.ndarray, int], np.ndarray] | None = None
    #: the distinct artefacts a synthetic kind covers (rotation: 90, 180, 270); positives cycle through them
    variants: tuple[str, ...] = ()
    #: other synthetic kinds whose artefacts this detector must ignore (applied label-independently in training)
    nuisances: tuple[str, ...] = ()
    #: whether the detector also reads burned-in L/R side markers at high resolution (``detectors.glyphs``):
    #: a mirror moves them across, the one cue left on ICU films whose anatomy is hidden (docs/decisions/0001)
    reads_glyphs: bool = False
    #: whether training adds annotation plates (text boxes, ``synthesis._plates``) after the artefact, so the
    #: detector learns to ignore them (docs/decisions/0002)
    plates: bool = False
    #: the strongest exposure haze augmentation mixes in (``synthesis._haze``; docs/decisions/0002)
    haze: float = 0.25
    #: whether the model compares each region of a film with the same region of its own inversion and the
    #: regions vote (``backbones.compare_with_inverse``; docs/decisions/0003)
    compares_inverse: bool = False
    #: whether the model compares a film with its own left-right mirror (``backbones.compare_with_mirror``): for
    #: the kind whose artefact is that mirror (docs/decisions/0009)
    compares_mirror: bool = False
    #: the percentiles preprocessing stretches to [0, 1] (``InputSpec``); symmetric for a comparator, so an
    #: inverted film stays ``1 - x`` (docs/decisions/0003)
    percentiles: tuple[float, float] = (0.5, 99.5)
    #: labelled kinds: the share of the positives added to balance the classes that are made from negatives
    #: instead (``synthesis.unframe``: a part of a frontal film, not the whole chest), so that a gate detector
    #: learns "not a whole frontal chest" rather than only the few kinds of positive it was shown
    made_positives: float = 0.0
    #: labelled kinds: every positive training example is turned a random quarter turn and mirrored half the
    #: time (``synthesis.any_orientation``), negatives are not, so a gate's verdict on a kind of film it never saw
    #: does not hang on which way rotation turned it (decision 0016)
    turned_positives: bool = False

    def __post_init__(self):
        InputSpec(low_pct=self.percentiles[0], high_pct=self.percentiles[1])  # refuses a range that is not one
        if self.compares_inverse and abs(sum(self.percentiles) - 100) > 1e-9:
            raise ValueError(f"kind {self.name!r}: a kind that compares a film with its inversion needs symmetric "
                             f"percentiles (low = 100 - high), not {self.percentiles}")
        if self.make_positive is not None and not self.variants:
            raise ValueError(f"synthetic kind {self.name!r} must name at least one artefact variant")

    @property
    def synthetic(self) -> bool:
        return self.make_positive is not None

    def positive(self, pixels: np.ndarray, variant: int) -> np.ndarray:
        if self.make_positive is None:
            raise UserInputError(f"detector kind {self.name!r} is trained from labelled examples, not synthesised")
        return np.ascontiguousarray(self.make_positive(pixels, variant % len(self.variants)), dtype=np.float32)

    def add_nuisances(self, pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Each nuisance kind's artefact with probability ``NUISANCE_PROBABILITY`` (a random variant)."""
        for name in self.nuisances:
            other = get_kind(name)
            if rng.random() < NUISANCE_PROBABILITY:
                pixels = other.positive(pixels, int(rng.integers(0, len(other.variants))))
        return pixels


#: how often each nuisance artefact is applied in training; most films a detector sees are free of them
NUISANCE_PROBABILITY = 0.25


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    if kind.name in KINDS:
        raise ValueError(f"detector kind {kind.name!r} is already registered")
    KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise UserInputError(f"unknown detector kind {name!r}; known kinds: {', '.join(KINDS)}") from None


def _rotate(pixels: np.ndarray, variant: int) -> np.ndarray:
    # np.rot90 turns counter-clockwise; variant 0, 1, 2 -> 90, 180, 270 degrees.
    return np.rot90(pixels, k=variant + 1)


def _invert(pixels: np.ndarray, variant: int) -> np.ndarray:
    # "max - x" on the displayed image: what a film shown with the wrong photometric looks like.
    return np.float32(pixels.max()) - pixels


def _mirror(pixels: np.ndarray, variant: int) -> np.ndarray:
    return pixels[:, ::-1]


register(Kind("rotation", "upright (negative) vs rotated by 90, 180 or 270 degrees (positive, balanced)",
              _rotate, ("rot90", "rot180", "rot270"), nuisances=("inversion", "flip"), plates=True, haze=0.5))
register(Kind("inversion", "upright vs pixel-inverted (max - x on the displayed image)", _invert, ("inverted",),
              nuisances=("rotation", "flip"), plates=True, compares_inverse=True, percentiles=(5.0, 95.0)))
register(Kind("flip", "upright vs left-right mirrored", _mirror, ("mirrored",), nuisances=("inversion",),
              reads_glyphs=True, compares_mirror=True))
register(Kind("custom", "trained from labelled positives and negatives (e.g. laterals vs frontals)"))
