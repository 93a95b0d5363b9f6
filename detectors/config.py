"""A training run's settings as one dataclass: what ``detectors.train`` and ``cxclean train-detector`` take, and
what a bundle's ``detector.json`` records under ``train_config``."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from cleaner.io.errors import UserInputError
from cleaner.io.settings import with_settings


@dataclass
class TrainConfig:
    """Every setting of a training run besides the kind, the images and the output folder."""

    #: the detector's name, the prefix of its scan columns (``<name>_score``); default: the kind
    name: str | None = None
    #: ``resnet50`` or ``compact`` (``backbones.BACKBONES``), and its weights: ``imagenet``, ``none`` or a file
    backbone: str = "resnet50"
    weights: str | None = "imagenet"
    #: the square model input, pixels
    image_size: int = 256
    #: most epochs (early stopping on validation log loss), and epochs without a better one before stopping
    epochs: int = 30
    patience: int = 6
    batch_size: int = 32
    learning_rate: float = 1e-3
    #: with pretrained weights: epochs training only the head before fine-tuning everything
    head_epochs: int = 3
    #: augmented copies of each training image per epoch
    copies: int = 1
    #: backbones trained on one split (seeds ``seed``, ``seed`` + 1, ...) whose log-odds are averaged
    members: int = 1
    #: share of images (by patient) held out for validation, and the validation precision the threshold keeps
    val_fraction: float = 0.3
    target_precision: float = 0.999
    seed: int = 0
    #: real upright frontal films (a folder or CSV) the threshold is calibrated on, and the share of them it may
    #: flag (``detectors.calibration``); None: the validation threshold only
    calibrate_on: str | None = None
    target_fpr: float = 0.001
    #: other kinds whose artefacts the detector must ignore (applied at random to both classes in training);
    #: None: the kind's own (``Kind.nuisances``). A "not a frontal chest film" detector ignores rotation,
    #: inversion and flip, so that a rotated frontal film is left to the rotation detector
    nuisances: tuple | None = None
    #: when this detector flags a film, the other detectors' flags on it are not exclusion reasons (their scores
    #: stay): for a detector of films on which the others mean nothing, such as laterals and other body parts
    gate: bool = False
    #: labelled kinds: the share of the balancing positives made from negatives (``Kind.made_positives``)
    made_positives: float = 0.0
    #: labelled kinds: positives turned to any orientation in training (``Kind.turned_positives``)
    turned_positives: bool = False
    #: decoding processes
    workers: int = 1
    #: longest side training images are kept at in memory (default: twice the input size)
    max_side: int | None = None
    #: the reader of burned-in text (None: the kind's ``reads_glyphs``), its input size, patches, epochs, width
    glyph_reader: bool | None = None
    glyph_size: int = 512
    glyph_patches: int = 40000
    glyph_epochs: int = 5
    glyph_width: float = 0.5
    #: the reader's faster design (strided stem, separable convolutions), and the share of the film's width it
    #: reads at each side (None: the whole film; side markers sit near the edges, decision 0009)
    glyph_fast: bool = False
    glyph_bands: float | None = 0.2

    def __post_init__(self):
        if self.name is not None and not self.name.replace("_", "").isalnum():
            raise UserInputError(f"--name {self.name!r}: use letters, digits and underscores "
                                 f"(it becomes the {self.name}_score column)")
        if self.members < 1:
            raise UserInputError(f"members must be at least 1, not {self.members}")
        if self.nuisances is not None:
            self.nuisances = tuple(self.nuisances)
        if not 0.0 <= self.made_positives <= 1.0:
            raise UserInputError(f"made_positives must be between 0 and 1, not {self.made_positives}")
        if self.calibrate_on is not None:
            self.calibrate_on = str(self.calibrate_on)
        if not 0.0 <= self.target_fpr < 0.5:
            raise UserInputError(f"--target-fpr must be at least 0 and below 0.5, not {self.target_fpr}")
        if not 0.0 < self.val_fraction < 1.0:
            raise UserInputError(f"--val-fraction must be between 0 and 1, not {self.val_fraction}")
        for key in ("image_size", "epochs", "batch_size", "copies", "workers", "glyph_size"):
            if getattr(self, key) < 1:
                raise UserInputError(f"{key.replace('_', '-')} must be at least 1, not {getattr(self, key)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_kwargs(cls, config: "TrainConfig | None" = None, **settings) -> "TrainConfig":
        """``config`` with ``settings`` (field names) replacing its values; unknown names are refused."""
        return with_settings(cls, config, "training setting", **settings)
