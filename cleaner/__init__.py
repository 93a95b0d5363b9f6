"""cxclean's archive side: reading images, walking archives, scanning, review and reports."""
from cleaner.io.errors import ImageReadError
from cleaner.io.images import ImageMeta, LoadedImage, read_image
from cleaner.io.preprocess import InputSpec, preprocess
from cleaner.io.walker import WalkStats, walk_archive

__version__ = "0.1.0"

__all__ = [
    "ImageReadError", "ImageMeta", "LoadedImage", "InputSpec", "WalkStats",
    "preprocess", "read_image", "walk_archive", "__version__",
]
