"""The one image reader: every command sees a file the way a radiology viewer shows it.

Output is a float32 greyscale array in [0, 1] (0 = black on screen) plus the metadata later
stages need. Format is decided by content, not by file name. Every failure is an
``ImageReadError`` naming the file and a reason a person understands.
"""
from __future__ import annotations

import os
import stat
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cleaner.io.errors import ImageReadError

#: Largest frame decoded, in pixels (about 9000 x 9000). Real radiographs are under 25 MP;
#: anything larger is a decompression bomb or a mislabelled file and is refused unread.
MAX_PIXELS = 80_000_000
#: Largest file opened at all.
MAX_FILE_BYTES = 2 * 1024**3

_RASTER_FORMATS = {"PNG", "JPEG", "TIFF", "BMP"}


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

    def as_row(self) -> dict:
        row = asdict(self)
        row["notes"] = "; ".join(self.notes)
        return row


@dataclass
class LoadedImage:
    pixels: np.ndarray  # float32, shape (height, width), values in [0, 1]
    meta: ImageMeta


def sniff_format(path: str | os.PathLike) -> str | None:
    """The file's format from its first bytes, or None when it is none cxclean reads."""
    with open(path, "rb") as fh:
        head = fh.read(132)
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "DICOM"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if head.startswith(b"BM"):
        return "BMP"
    # DICOM written without the 128-byte preamble (old ACR-NEMA style exports): starts with a
    # group 0x0002 or 0x0008 element, little endian; pydicom then validates it.
    if len(head) >= 8 and head[:2] in (b"\x02\x00", b"\x08\x00") and head[3] == 0:
        return "DICOM"
    return None


def _check_file(path: Path) -> int:
    if path.is_symlink() and not path.exists():
        raise ImageReadError(path, "broken symbolic link")
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ImageReadError(path, "file not found") from None
    except PermissionError:
        raise ImageReadError(path, "permission denied") from None
    if path.is_dir():
        raise ImageReadError(path, "is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end when read
        kind = "named pipe" if stat.S_ISFIFO(st.st_mode) else "socket" if stat.S_ISSOCK(st.st_mode) else "device"
        raise ImageReadError(path, f"not a regular file ({kind}); not read")
    if st.st_size == 0:
        raise ImageReadError(path, "empty file (0 bytes)")
    if st.st_size > MAX_FILE_BYTES:
        raise ImageReadError(path, f"file of {st.st_size} bytes is over the {MAX_FILE_BYTES}-byte limit")
    return st.st_size


def check_frame_size(path, width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageReadError(path, f"invalid image size {width}x{height}")
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


def _read_raster(path: Path, fmt: str) -> LoadedImage:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            check_frame_size(path, *im.size)
            meta = ImageMeta(path=str(path), format=fmt, width=im.size[0], height=im.size[1], decoder="pillow")
            n_frames = getattr(im, "n_frames", 1)
            if n_frames > 1:
                meta.frames = n_frames
                meta.notes.append(f"first of {n_frames} pages")
            im.load()
            if fmt in ("JPEG", "TIFF"):
                orientation = im.getexif().get(0x0112, 1)
                if orientation not in (None, 1):
                    im = ImageOps.exif_transpose(im)
                    meta.notes.append(f"EXIF orientation {orientation} applied")
            mode = im.mode
            meta.photometric = mode
            if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
                arr = np.asarray(im)
                meta.bits = 16 if mode.startswith("I;16") else 32
                try:
                    pixels = to_unit_range(arr)
                except ValueError as exc:
                    raise ImageReadError(path, str(exc)) from None
                meta.notes.append(f"{meta.bits}-bit values scaled min-max to [0, 1]")
            else:
                meta.bits = 1 if mode == "1" else 8
                if mode not in ("L", "1"):
                    if mode in ("LA", "RGBA", "PA"):
                        meta.notes.append("alpha channel ignored")
                    if mode not in ("LA",):
                        meta.notes.append(f"colour ({mode}) converted to grey")
                    if mode in ("P", "PA"):
                        im = im.convert("RGB")
                im = im.convert("L")
                pixels = np.asarray(im, dtype=np.float32) / 255.0
    except ImageReadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageReadError(path, f"decompression bomb guard: {exc}") from None
    except Image.DecompressionBombWarning as exc:
        raise ImageReadError(path, f"decompression bomb guard: {exc}") from None
    except UnidentifiedImageError:
        raise ImageReadError(path, f"not a valid {fmt} file (Pillow cannot identify it)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        text = str(exc)
        if "truncated" in text.lower() or isinstance(exc, EOFError) or "broken" in text.lower():
            raise ImageReadError(path, f"truncated or corrupt {fmt}: {text}") from None
        raise ImageReadError(path, f"cannot decode {fmt}: {text}") from None
    if pixels.ndim != 2:
        raise ImageReadError(path, f"unexpected pixel array shape {pixels.shape}")
    note_blank(pixels, meta)
    return LoadedImage(np.ascontiguousarray(pixels, dtype=np.float32), meta)


def note_blank(pixels: np.ndarray, meta: ImageMeta) -> None:
    """A constant image reads, but a reviewer should know it holds nothing."""
    if pixels.size and float(pixels.max()) == float(pixels.min()):
        meta.notes.append("blank image (every pixel the same value)")


def read_image(path: str | os.PathLike) -> LoadedImage:
    """Read one PNG, JPEG, TIFF, BMP or DICOM file as the viewer shows it."""
    path = Path(path)
    _check_file(path)
    try:
        fmt = sniff_format(path)
    except PermissionError:
        raise ImageReadError(path, "permission denied") from None
    except OSError as exc:
        raise ImageReadError(path, f"cannot open: {exc.strerror or exc}") from None
    if fmt is None and path.suffix.lower() in (".dcm", ".dicom", ".dic"):
        fmt = "DICOM"
    if fmt == "DICOM":
        from cleaner.io.dicom import read_dicom

        return read_dicom(path)
    if fmt in _RASTER_FORMATS:
        return _read_raster(path, fmt)
    raise ImageReadError(path, "unrecognised file format (not PNG, JPEG, TIFF, BMP or DICOM)")
