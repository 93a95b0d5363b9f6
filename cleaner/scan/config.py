"""A scan's settings as one dataclass: what ``scan_archive`` and ``cxclean scan`` take, and what
``scan.config.json`` records (``--resume`` refuses to continue a journal made with other settings)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from cleaner.io.errors import CxcleanError
from cleaner.io.settings import with_settings

UNKNOWN_AGE_CHOICES = ("keep", "exclude")
#: where the work runs: this machine's cores, or a Ray cluster (``cleaner.scan.ray_engine``, the ``ray`` extra)
ENGINES = ("local", "ray")


class ScanError(CxcleanError):
    """A scan that cannot start or continue; the message says why and what to do."""


@dataclass
class ScanConfig:
    """Every setting of a scan. The first group decides the results; the second only how fast they come."""

    #: bundle folders to score with (``--detector``), and folders whose every bundle is used (``--detectors``)
    detectors: tuple = ()
    detector_dirs: tuple = ()
    #: with neither, the bundled default detectors (False: an age-only scan)
    default_detectors: bool = True
    #: per-detector threshold overrides, name -> value in [0, 1]
    thresholds: dict = field(default_factory=dict)
    #: exclude patients younger than this many years; what to do with films of unknown age
    min_age: float | None = None
    unknown_age: str = "keep"
    #: a CSV of ages joined on path or file name (``--metadata``), and its columns
    metadata: str | None = None
    id_column: str | None = None
    age_column: str | None = None
    #: copy flagged files into ``review/<reason>/``
    review: bool = True
    #: then build the review page (``review/index.html``, overlays included) in the same process, with the
    #: detectors the scan already loaded: no second start of TensorFlow, no second load of the bundles
    review_page: bool = False

    #: decoding processes (None: every core), films per inference batch, files per worker task
    workers: int | None = None
    batch_size: int = 32
    chunksize: int = 4
    #: the executor; with ``ray``: the cluster to join (None: $RAY_ADDRESS, else a local one for the run) and
    #: the scoring actors (None: one per GPU, else one per node)
    engine: str = "local"
    ray_address: str | None = None
    ray_actors: int | None = None

    #: the fields that do not change the results: a resumed scan may use other values (another engine included)
    SPEED_FIELDS = ("workers", "batch_size", "chunksize", "engine", "ray_address", "ray_actors", "review_page")

    def __post_init__(self):
        self.detectors = tuple(str(d) for d in self.detectors)
        self.detector_dirs = tuple(str(d) for d in self.detector_dirs)
        self.thresholds = dict(self.thresholds or {})
        self.metadata = str(self.metadata) if self.metadata is not None else None
        self.check()

    def check(self) -> None:
        """Settings that contradict each other or are out of range; ``ScanError`` says which."""
        if self.unknown_age not in UNKNOWN_AGE_CHOICES:
            raise ScanError(f"--unknown-age must be one of {UNKNOWN_AGE_CHOICES}, not {self.unknown_age!r}")
        if self.unknown_age == "exclude" and self.min_age is None:
            raise ScanError("--unknown-age exclude needs --min-age (there is no age filter to apply it to)")
        if self.min_age is not None and not 0 < float(self.min_age) < 150:
            raise ScanError(f"--min-age {self.min_age}: expected years between 0 and 150")
        for name, value in self.thresholds.items():
            if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
                raise ScanError(f"--threshold {name}={value}: expected a value between 0 and 1")
        if self.batch_size < 1 or self.chunksize < 1 or (self.workers is not None and self.workers < 1):
            raise ScanError("--workers, --batch-size and chunksize must be at least 1")
        if self.engine not in ENGINES:
            raise ScanError(f"--engine must be one of {ENGINES}, not {self.engine!r}")
        if self.review_page and not self.review:
            raise ScanError("--review-page needs the review folders: drop --no-review")
        if self.ray_actors is not None and self.ray_actors < 1:
            raise ScanError(f"--ray-actors {self.ray_actors}: expected at least 1")

    def to_dict(self) -> dict:
        return asdict(self)

    def result_settings(self) -> dict:
        """The settings that decide a scan's results (what a resumed scan must share with the journal)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in self.SPEED_FIELDS}

    @classmethod
    def from_kwargs(cls, config: "ScanConfig | None" = None, **settings) -> "ScanConfig":
        """``config`` with ``settings`` (field names) replacing its values; unknown names are refused."""
        return with_settings(cls, config, "scan setting", **settings)
