"""cxclean's model side: artefact kinds, synthesis, backbones, training and detector bundles.

Python API::

    import detectors
    det = detectors.train("rotation", normals="normals/", out="bundles/rotation", backbone="compact", weights="none")
    det = detectors.load("bundles/rotation")
    scores = det.score(["a.png", "b.dcm"])          # higher = artefact present
    flags = det.flags(scores)                        # at the threshold chosen on validation

Heavy imports (Keras/TensorFlow) happen only when a function needs them.
"""
from .bundle import BundleError, Detector, default_bundles_dir, find_bundles, load
from .config import TrainConfig
from .kinds import KINDS, get_kind


def train(*args, **kwargs):
    """See ``detectors.training.train``; imported lazily so ``import detectors`` stays light."""
    from .training import train as _train

    return _train(*args, **kwargs)


def evaluate(*args, **kwargs):
    """See ``detectors.evaluation.evaluate``."""
    from .evaluation import evaluate as _evaluate

    return _evaluate(*args, **kwargs)


__all__ = ["BundleError", "Detector", "KINDS", "TrainConfig", "default_bundles_dir", "evaluate", "find_bundles", "get_kind",
           "load", "train"]
