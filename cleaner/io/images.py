"""The one image reader: every command sees a file the way a radiology viewer shows it.

Output is a float32 greyscale array in [0, 1] (0 = black on screen) plus the metadata later
stages need. Format is decided by content, not by file name. Every failure is an
``ImageReadError`` naming the file and a reason a person understands.
"""
from __future__ import annotations

import errno
import os
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cleaner.io.dicom import read_dicom
from cleaner.io.errors import ImageReadError
from cleaner.io.readonly import open_quietly
from cleaner.io.pixels import (MAX_FILE_BYTES, MAX_PIXELS, ImageMeta, LoadedImage, check_frame_size, note_blank,
                               rgb_to_grey, to_unit_range)

__all__ = ["ImageMeta", "LoadedImage", "MAX_FILE_BYTES", "MAX_PIXELS", "read_image", "read_or_error", "sniff_format",
           "rgb_to_grey", "to_unit_range"]

_RASTER_FORMATS = {"PNG", "JPEG", "TIFF", "BMP"}


def sniff_format(path: str | os.PathLike) -> str | None:
    """The file's format from its first bytes, or None when it is none cxclean reads."""
    with open_quietly(path) as fh:
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
    try:
        st = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise ImageReadError(path, f"broken symbolic link (to {os.readlink(path)}, which does not exist)") from None
        raise ImageReadError(path, "file not found") from None
    except PermissionError:
        raise ImageReadError(path, "permission denied") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ImageReadError(path, "symbolic link loop (the link leads back to itself)") from None
        raise ImageReadError(path, f"cannot open: {exc.strerror or exc}") from None
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


def _read_raster(path: Path, fmt: str) -> LoadedImage:
    try:
        with open_quietly(path) as fh:
            return _decode_raster(path, fmt, fh)
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


def _decode_raster(path: Path, fmt: str, fh) -> LoadedImage:
    """Pillow's reading of the open file ``fh``, to a [0, 1] grey array; Pillow's errors are ``_read_raster``'s."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        im = Image.open(fh)
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
    if pixels.ndim != 2:
        raise ImageReadError(path, f"unexpected pixel array shape {pixels.shape}")
    note_blank(pixels, meta)
    return LoadedImage(np.ascontiguousarray(pixels, dtype=np.float32), meta)


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
        return read_dicom(path)
    if fmt in _RASTER_FORMATS:
        return _read_raster(path, fmt)
    raise ImageReadError(path, "unrecognised file format (not PNG, JPEG, TIFF, BMP or DICOM)")


def read_or_error(path: str | os.PathLike) -> tuple[LoadedImage | None, str]:
    """``read_image`` that never raises: (image, "") or (None, reason). Every command that reads many files
    (scan, review, inspect, training) goes through it, so a bad file is a row with its reason, and a bug in
    a decoder is reported for that file instead of ending a run over a whole archive."""
    try:
        return read_image(path), ""
    except ImageReadError as exc:
        return None, exc.reason
    except Exception as exc:  # a reader bug: named, never fatal
        return None, f"unexpected {type(exc).__name__}: {exc}"
