"""DICOM decoding as a viewer does it: pydicom (pylibjpeg plugins), then GDCM's own reader.

Policies: multi-frame files give their first frame; colour (RGB, YBR, palette) is converted
to grey; Modality LUT then VOI LUT/window are applied as pydicom documents; MONOCHROME1 is
inverted so that bone is bright, exactly like MONOCHROME2.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

from cleaner.io.ages import age_from_dates, parse_age_string
from cleaner.io.errors import ImageReadError
from cleaner.io.quiet import native_stderr_silenced as _native_stderr_silenced
from cleaner.io.readonly import open_quietly
from cleaner.io.pixels import ImageMeta, LoadedImage, check_frame_size, note_blank, rgb_to_grey, to_unit_range

# pydicom logs every failed plugin at WARNING; the reason reaches the user through ImageReadError.
logging.getLogger("pydicom").setLevel(logging.ERROR)

_PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420", "YBR_PARTIAL_422")


def _text(ds, keyword) -> str | None:
    value = ds.get(keyword)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def dicom_age(ds) -> float | None:
    age = parse_age_string(ds.get("PatientAge"))
    if age is not None:
        return age
    birth = ds.get("PatientBirthDate")
    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
        if ds.get(keyword):
            return age_from_dates(birth, ds.get(keyword))
    return None


def _meta(path: Path, ds) -> ImageMeta:
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    frames = int(ds.get("NumberOfFrames") or 1) if str(ds.get("NumberOfFrames") or "1").strip().isdigit() else 1
    return ImageMeta(
        path=str(path),
        format="DICOM",
        width=int(ds.get("Columns") or 0),
        height=int(ds.get("Rows") or 0),
        bits=int(ds.get("BitsStored")) if ds.get("BitsStored") is not None else None,
        photometric=_text(ds, "PhotometricInterpretation"),
        transfer_syntax=(ts.name if ts is not None else "Implicit VR Little Endian (no file meta)"),
        frames=max(frames, 1),
        age_years=dicom_age(ds),
        sex=_text(ds, "PatientSex"),
        patient_id=_text(ds, "PatientID"),
        study_uid=_text(ds, "StudyInstanceUID"),
        modality=_text(ds, "Modality"),
        view_position=_text(ds, "ViewPosition"),
        body_part=_text(ds, "BodyPartExamined"),
    )


def _gdcm_decode(path: Path, meta: ImageMeta) -> np.ndarray:
    """GDCM's own reader: decodes 12-bit JPEG extended files that pydicom's plugins refuse."""
    import gdcm

    reader = gdcm.ImageReader()
    reader.SetFileName(str(path))
    if not reader.Read():
        raise RuntimeError("gdcm.ImageReader could not read the file")
    image = reader.GetImage()
    fmt = image.GetPixelFormat()
    dtypes = {
        gdcm.PixelFormat.UINT8: np.uint8, gdcm.PixelFormat.INT8: np.int8,
        gdcm.PixelFormat.UINT16: np.uint16, gdcm.PixelFormat.INT16: np.int16,
        gdcm.PixelFormat.UINT32: np.uint32, gdcm.PixelFormat.INT32: np.int32,
    }
    dtype = dtypes.get(fmt.GetScalarType())
    if dtype is None:
        raise RuntimeError(f"GDCM pixel format {fmt.GetScalarTypeAsString()} not supported")
    cols, rows = image.GetDimension(0), image.GetDimension(1)
    samples = fmt.GetSamplesPerPixel()
    buffer = image.GetBuffer()  # a str holding raw bytes (SWIG); surrogateescape recovers them
    raw = buffer.encode("utf-8", "surrogateescape") if isinstance(buffer, str) else bytes(buffer)
    arr = np.frombuffer(raw, dtype=dtype)
    per_frame = rows * cols * samples
    if arr.size < per_frame:
        raise RuntimeError("GDCM returned less pixel data than the image size needs")
    arr = arr[:per_frame]
    return arr.reshape(rows, cols, samples) if samples > 1 else arr.reshape(rows, cols)


def _decode(path: Path, ds, meta: ImageMeta) -> np.ndarray:
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        if meta.frames > 1:
            ds.pixel_array_options(index=0)
        if ts is not None and ts.is_compressed:
            with _native_stderr_silenced():
                arr = ds.pixel_array
        else:
            arr = ds.pixel_array
        meta.decoder = "pydicom"
        return arr
    except Exception as exc:  # plugins raise many types; the reason is what matters
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if ts is None or not ts.is_compressed:
            reason = first
            if "length" in first.lower() and "pixel data" in first.lower():
                reason = f"truncated pixel data ({first})"
            raise ImageReadError(path, f"cannot decode DICOM pixel data: {reason}") from None
        try:
            with _native_stderr_silenced():
                arr = _gdcm_decode(path, meta)
            meta.decoder = "gdcm"
            return arr
        except Exception as gexc:
            raise ImageReadError(
                path, f"unsupported or corrupt {ts.name} ({ts}) pixel data: pydicom: {first}; GDCM: {gexc}"
            ) from None


def _cut_short(ds) -> str | None:
    """Why parsing ended early, when the last element holds fewer bytes than its length says: a corrupt element
    length (or a truncated file) swallowed the rest, pixel data included."""
    last = next(reversed(ds._dict.values()), None) if len(ds._dict) else None
    length, value = getattr(last, "length", None), getattr(last, "value", None)
    if isinstance(value, bytes) and isinstance(length, int) and length != 0xFFFFFFFF and len(value) < length:
        return (f"corrupt DICOM: element {last.tag} declares {length} bytes but the file ends {len(value)} bytes "
                "into it (a corrupt element length, or a truncated file); the elements after it cannot be read")
    return None


def _display(arr: np.ndarray, ds, has_voi: bool, monochrome1: bool) -> np.ndarray:
    """Stored values to [0, 1] display values: Modality LUT, VOI LUT/window, min-max, MONOCHROME1 inverted."""
    arr = apply_modality_lut(arr, ds)
    if has_voi:
        arr = apply_voi_lut(arr, ds, index=0)
    pixels = to_unit_range(arr)
    return 1.0 - pixels if monochrome1 else pixels


def _grey_levels(arr: np.ndarray, ds, has_voi: bool, monochrome1: bool) -> np.ndarray:
    """``_display`` of a grey image, the same numbers: for integer pixels it runs once per stored value (a table
    of at most 65,536 entries) instead of once per pixel, then the table is looked up. The LUTs in float64 over a
    2,000 x 2,000 film had cost more than decoding it (docs/decisions/0007-compiled-inference.md)."""
    if arr.dtype.kind not in "iu" or arr.ndim != 2 or arr.size < 1 << 16:
        return _display(arr, ds, has_voi, monochrome1)
    first, last = int(arr.min()), int(arr.max())
    if last - first >= 1 << 16:
        return _display(arr, ds, has_voi, monochrome1)
    shown = apply_modality_lut(np.arange(first, last + 1, dtype=arr.dtype), ds)
    if has_voi:
        shown = apply_voi_lut(shown, ds, index=0)
    shown = np.asarray(shown, dtype=np.float32)
    if not np.isfinite(shown).all():
        return _display(arr, ds, has_voi, monochrome1)
    index = arr - arr.dtype.type(first)
    steps = np.diff(shown)
    if (steps >= 0).all() or (steps <= 0).all():  # monotonic: the extremes are the first and last stored values
        present = shown[[0, -1]]
    else:
        present = shown[np.bincount(index.reshape(-1), minlength=len(shown)) > 0]
    lo, hi = float(present.min()), float(present.max())  # to_unit_range's arithmetic, on the table
    table = np.zeros(shown.shape, np.float32) if hi <= lo else (shown - lo) / (hi - lo)
    return (1.0 - table if monochrome1 else table)[index]


def read_dicom(path: Path) -> LoadedImage:
    try:
        with warnings.catch_warnings(), open_quietly(path) as fh:  # one clear error, not a warning per bad value
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(fh, force=True)
    except InvalidDicomError as exc:
        raise ImageReadError(path, f"not a valid DICOM file: {exc}") from None
    except Exception as exc:
        raise ImageReadError(path, f"truncated or corrupt DICOM header: {exc}") from None
    if not any(tag in ds for tag in _PIXEL_TAGS):
        raise ImageReadError(path, _cut_short(ds) or "DICOM has no pixel data")
    try:
        meta = _meta(path, ds)
    except Exception as exc:
        raise ImageReadError(path, f"invalid DICOM image header: {exc}") from None
    check_frame_size(path, meta.width, meta.height)
    arr = _decode(path, ds, meta)
    if meta.frames > 1:
        meta.notes.append(f"first of {meta.frames} frames")
        if arr.ndim == 4 or (arr.ndim == 3 and (meta.photometric or "").startswith("MONO")):
            arr = arr[0]
    photometric = (meta.photometric or "MONOCHROME2").upper()
    try:
        if photometric == "PALETTE COLOR":
            arr = rgb_to_grey(apply_color_lut(arr, ds))
            meta.notes.append("palette colour converted to grey")
            pixels = to_unit_range(arr)
        elif arr.ndim == 3 or photometric in _COLOUR:
            if arr.ndim != 3:
                raise ImageReadError(path, f"{photometric} image without three samples per pixel")
            pixels = to_unit_range(rgb_to_grey(arr))
            meta.notes.append(f"colour ({photometric}) converted to grey")
        else:
            has_voi = any(k in ds for k in ("VOILUTSequence", "WindowCenter"))
            pixels = _grey_levels(arr, ds, has_voi, photometric == "MONOCHROME1")
            if has_voi:
                meta.notes.append("VOI LUT/window applied")
            if photometric == "MONOCHROME1":
                meta.notes.append("MONOCHROME1 inverted for display")
    except ImageReadError:
        raise
    except Exception as exc:
        raise ImageReadError(path, f"cannot apply DICOM LUTs: {exc}") from None
    if pixels.ndim != 2:
        raise ImageReadError(path, f"unexpected pixel array shape {pixels.shape}")
    note_blank(pixels, meta)
    return LoadedImage(np.ascontiguousarray(pixels, dtype=np.float32), meta)
