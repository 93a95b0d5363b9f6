"""cxclean's front door: read any film as a viewer shows it, walk an archive, preprocess for a model.

The layers, bottom up: ``cleaner.io`` (reading, no ML) -> ``detectors`` (the models) -> ``cleaner.scan``,
``cleaner.review``, ``cleaner.reports`` -> ``cleaner.cli``. See DEVELOPERS.md.
"""
from importlib.metadata import PackageNotFoundError, version

from cleaner.io.errors import CxcleanError, ImageReadError
from cleaner.io.images import ImageMeta, LoadedImage, read_image
from cleaner.io.preprocess import InputSpec, preprocess
from cleaner.io.walker import WalkStats, walk_archive

try:
    __version__ = version("cxclean")  # pyproject.toml is the one place the version is set
except PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0+unknown"

__all__ = [
    "CxcleanError", "ImageReadError", "ImageMeta", "LoadedImage", "InputSpec", "WalkStats",
    "preprocess", "read_image", "walk_archive", "__version__",
]
