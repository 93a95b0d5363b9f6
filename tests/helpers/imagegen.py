"""Synthetic test images in every format cxclean reads, written by the tests themselves."""
from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid


def phantom(height: int = 96, width: int = 80, seed: int = 0) -> np.ndarray:
    """A float [0, 1] 'film': dark lungs, bright spine and a bright marker top-left, so orientation is visible."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    img = 0.55 + 0.05 * rng.standard_normal((height, width))
    for cx in (0.3, 0.7):
        img -= 0.35 * (((xx / width - cx) / 0.17) ** 2 + ((yy / height - 0.5) / 0.3) ** 2 < 1)
    img[:, int(width * 0.47) : int(width * 0.53)] = 0.9
    img[: height // 8, : width // 8] = 1.0
    return np.clip(img, 0, 1).astype(np.float32)


def write_png8(path, pixels: np.ndarray) -> Path:
    Image.fromarray(np.round(pixels * 255).astype(np.uint8)).save(path, format="PNG")
    return Path(path)


def write_png16(path, pixels: np.ndarray, max_value: int = 4095) -> Path:
    Image.fromarray(np.round(pixels * max_value).astype(np.uint16)).save(path, format="PNG")
    return Path(path)


def write_jpeg(path, pixels: np.ndarray, quality: int = 95, exif_orientation: int | None = None) -> Path:
    im = Image.fromarray(np.round(pixels * 255).astype(np.uint8))
    if exif_orientation:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        im.save(path, format="JPEG", quality=quality, exif=exif.tobytes())
    else:
        im.save(path, format="JPEG", quality=quality)
    return Path(path)


def write_dicom(
    path,
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits: int = 12,
    age: str | None = "045Y",
    birth_date: str | None = None,
    study_date: str | None = "20200101",
    rle: bool = False,
    with_pixels: bool = True,
    signed: bool = False,
    rescale: tuple[float, float] | None = None,
    window: tuple[float, float] | None = None,
    view: str = "PA",
    patient_id: str = "P1",
    study_uid: str | None = None,
    preamble: bool = True,
    uid_seed: str | None = None,
) -> Path:
    """A DICOM file holding ``pixels`` so that a viewer shows exactly ``pixels`` (MONOCHROME1 stored inverted).

    With ``uid_seed`` the UIDs are derived from it, so the same call writes the same bytes."""
    def uid(part):
        return generate_uid(entropy_srcs=[uid_seed, part]) if uid_seed else generate_uid()

    maxv = 2**bits - 1
    stored = np.round(pixels * maxv).astype(np.int32)
    if photometric == "MONOCHROME1":
        stored = maxv - stored
    if signed:
        stored = stored - 2 ** (bits - 1)
    dtype = np.int16 if signed else np.uint16
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
    meta.MediaStorageSOPInstanceUID = uid("sop")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientID = patient_id
    ds.PatientSex = "F"
    if age is not None:
        ds.PatientAge = age
    if birth_date:
        ds.PatientBirthDate = birth_date
    if study_date:
        ds.StudyDate = study_date
    ds.StudyInstanceUID = study_uid or uid("study")
    ds.SeriesInstanceUID = uid("series")
    ds.Modality = "DX"
    ds.ViewPosition = view
    ds.BodyPartExamined = "CHEST"
    ds.ContentDate = datetime.date(2020, 1, 1).strftime("%Y%m%d")
    if rescale:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    if with_pixels:
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = photometric
        ds.BitsAllocated = 16
        ds.BitsStored = bits
        ds.HighBit = bits - 1
        ds.PixelRepresentation = 1 if signed else 0
        ds.PixelData = stored.astype(dtype).tobytes()
        if rle:
            ds.compress(RLELossless)
    ds.save_as(path, enforce_file_format=preamble)
    return Path(path)
