"""What the one reader returns, and the small pixel helpers both its PNG/JPEG and its DICOM paths use.

Output is a float32 greyscale array in [0, 1] (0 = black on screen) plus the metadata later stages need.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from cleaner.io.errors import ImageReadError

#: Largest frame decoded, in pixels (about 9000 x 9000). Real radiographs are under 25 MP;
#: anything larger is a decompression bomb or a mislabelled file and is refused unread.
MAX_PIXELS = 80_000_000
#: Largest file opened at all.
MAX_FILE_BYTES = 2 * 1024**3
#: the shortest side a radiograph can have: a strip of a few pixels is an error, not a film to score
MIN_SIDE = 16

@dataclass
class ImageMeta:
    """What cxclean knows about an image besides its pixels; every field may be unknown (None)."""

    path: str
    format: str  # PNG, JPEG, TIFF, BMP, DICOM
    width: int
    height: int
    bits: int | None = None  # bits stored per sample in the file
    photometric: str | None = None  # DICOM photometric interpretation or the PIL mode
    transfer_syntax: str | None = None
    decoder: str | None = None  # pillow, pydicom, gdcm
    frames: int = 1
    age_years: float | None = None
    sex: str | None = None
    patient_id: str | None = None
    study_uid: str | None = None
    modality: str | None = None
    view_position: str | None = None
    body_part: str | None = None
    notes: list[str] = field(default_factory=list)  # policies applied: first frame, colour to grey, ...
    blank: bool = False  # every pixel the same value: nothing to score

    def as_row(self) -> dict:
        row = asdict(self)
        row["notes"] = "; ".join(self.notes)
        return row


@dataclass
class LoadedImage:
    pixels: np.ndarray  # float32, shape (height, width), values in [0, 1]
    meta: ImageMeta


def check_frame_size(path, width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageReadError(path, f"invalid image size {width}x{height}")
    if min(width, height) < MIN_SIDE:
        raise ImageReadError(path, f"image of {width}x{height} pixels is too small to be a radiograph "
                                   f"(under {MIN_SIDE} px on a side)")
    if width * height > MAX_PIXELS:
        raise ImageReadError(
            path, f"image of {width}x{height} pixels is over the {MAX_PIXELS}-pixel limit (decompression bomb guard)"
        )


def to_unit_range(arr: np.ndarray) -> np.ndarray:
    """Min-max scale to float32 [0, 1]; a constant image becomes all zeros."""
    arr = np.asarray(arr, dtype=np.float32)
    lo, hi = float(np.min(arr)), float(np.max(arr))
    if not np.isfinite(lo) or not np.isfinite(hi):
        finite = np.isfinite(arr)
        if not finite.any():
            raise ValueError("no finite pixel values (all NaN or infinite)")
        lo, hi = float(arr[finite].min()), float(arr[finite].max())
        arr = np.where(finite, arr, lo)
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.float32)
    return (arr - lo) / (hi - lo)


def rgb_to_grey(arr: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma, the weighting Pillow and most viewers use."""
    arr = np.asarray(arr, dtype=np.float32)
    return arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114


def note_blank(pixels: np.ndarray, meta: ImageMeta) -> None:
    """A constant image reads, but a reviewer should know it holds nothing."""
    if pixels.size and float(pixels.max()) == float(pixels.min()):
        meta.notes.append("blank image (every pixel the same value)")
        meta.blank = True
