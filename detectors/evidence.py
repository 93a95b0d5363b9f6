"""Log-odds arithmetic shared by the glyph reader and the layers that sum its evidence (no Keras here)."""
from __future__ import annotations

import numpy as np

#: the logit a probability of 1 - 1e-6 has: where ``logit`` clips, and where the bundled model clips the glyph
#: reader's evidence
LOGIT_CLIP = 13.8155


def logit(p) -> np.ndarray:
    """Log-odds of a probability, clipped (at +-LOGIT_CLIP) so that a saturated sigmoid stays finite."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def evidence(p_readable, p_reversed) -> np.ndarray:
    """Log-odds that the film's text is reversed: logit(reversed) - logit(readable)."""
    return logit(p_reversed) - logit(p_readable)
