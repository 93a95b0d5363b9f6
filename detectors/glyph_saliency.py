"""Where a glyph-reading detector saw its side markers, and which way each one reads the film.

The flip detector's marker evidence is a max over positions (``layers.MarkerSideEvidence``): its gradient
lights one cell or none, so Grad-CAM over the reader says little. What the reviewer needs is what the
reader read: "an R on the image's left" (the film is upright) or "an L on the image's left" (mirrored).
These are read from the reader's per-position maps (the layer ``glyphs.MAPS_LAYER``, channels
``glyphs.CHANNELS``) exactly as the score reads them: per half of the film, each letter's strongest logit,
counted when above 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .glyphs import CHANNELS, MAPS_LAYER, PATCH  # noqa: F401  (MAPS_LAYER: the layer the maps are read from)

MARKER_CHANNELS = {"L": CHANNELS.index("marker_L"), "R": CHANNELS.index("marker_R")}
#: marks whose logit is below this are not shown: they add less than this to the film's log-odds, and on most
#: films some cell of the anatomy reads faintly as a letter
MIN_LOGIT = 1.0


@dataclass(frozen=True)
class Mark:
    """A side marker the reader saw: ``letter`` at (``y``, ``x``), fractions of the model input's height
    and width (0 = top / left), with the reader's ``logit``; ``says`` what it counts for in the score."""

    letter: str
    y: float
    x: float
    logit: float
    says: str  # "mirrored" or "upright"

    def turned_back(self, k: int) -> "Mark":
        """The same mark on the film as it lies, when the model saw it turned ``k`` quarter turns
        (``np.rot90(film, k)``)."""
        y, x = self.y, self.x
        for _ in range(k % 4):
            y, x = x, 1.0 - y
        return Mark(self.letter, y, x, self.logit, self.says)


def strongest_marks(readings: list[list[list[Mark]]]) -> list[list[Mark]]:
    """Per image, the marks of several readers (one ``read_marks`` result each, as flip v4 averages two readers):
    for each letter and each side of the film, the strongest reader's mark. One reading is returned as it is."""
    out = []
    for marks in zip(*readings):
        best: dict = {}
        for mark in (m for reader in marks for m in reader):
            if (mark.letter, mark.says) not in best or mark.logit > best[mark.letter, mark.says].logit:
                best[mark.letter, mark.says] = mark
        out.append(sorted(best.values(), key=lambda m: -m.logit))
    return out


def read_marks(maps: np.ndarray, min_logit: float = MIN_LOGIT, bands: float | None = None) -> list[list[Mark]]:
    """Per image of ``maps`` (N, h, w, 4 channels), the markers that count in its score: for each letter and
    each half of the film, the strongest position, when its logit is at least ``min_logit`` (the score counts
    every logit above 0). An L on the image's left or an R on its right says "mirrored" (a frontal film shows
    the patient's left on the viewer's right); the middle column of an odd width is on neither side, as in the
    score. ``bands``: the maps are of the film's left and right edge bands side by side (``layers.SideBands``,
    each ``bands`` of the width); positions are given on the film."""
    maps = np.asarray(maps, dtype=np.float32)
    n, h, w = maps.shape[:3]
    half = w // 2
    out = []
    for i in range(n):
        marks = []
        for letter, channel in MARKER_CHANNELS.items():
            for side, cols in (("left", slice(0, half)), ("right", slice(w - half, w))):
                region = maps[i, :, cols, channel]
                if region.size == 0 or region.max() < max(min_logit, 1e-6):
                    continue
                r, c = np.unravel_index(int(np.argmax(region)), region.shape)
                c += cols.start
                mirrored = (letter == "L") == (side == "left")
                x = (c + 0.5) / w
                if bands:  # band coordinates to the film's: the left band is [0, bands], the right [1 - bands, 1]
                    x = 2 * bands * x if x < 0.5 else 1.0 - 2 * bands * (1.0 - x)
                marks.append(Mark(letter, (r + 0.5) / h, x, float(region.max()), "mirrored" if mirrored else "upright"))
        out.append(sorted(marks, key=lambda m: -m.logit))
    return out
