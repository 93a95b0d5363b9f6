"""The reader over the real radiographs in ../shared/data (skipped when they are absent)."""
import csv

import numpy as np
import pytest

from cleaner.io.images import read_image
from cleaner.io.walker import walk_archive
pytestmark = pytest.mark.shared_data


def test_every_dicom_decodes(shared_data):
    paths = list(walk_archive(shared_data / "dicom"))
    assert len(paths) >= 26
    for path in paths:
        loaded = read_image(path)
        assert loaded.pixels.ndim == 2 and loaded.pixels.min() >= 0 and loaded.pixels.max() <= 1, path
        assert loaded.pixels.std() > 0.05, path
    jply = read_image(shared_data / "dicom" / "JPLY" / "RG2_JPLY")
    assert jply.meta.decoder == "gdcm" and jply.meta.transfer_syntax.startswith("JPEG Extended")


@pytest.mark.parametrize("syntax", ["REF/RG3_UNC.dcm", "RLE/RG3_RLE", "J2KR/RG3_J2KR", "JPLY/RG3_JPLY", "JLSL/RG3_JLSL"])
def test_monochrome1_bone_bright_like_rg2(syntax, shared_data):
    rg3 = read_image(shared_data / "dicom" / syntax)
    assert rg3.meta.photometric == "MONOCHROME1"
    h, w = rg3.pixels.shape
    tibia = rg3.pixels[int(0.1 * h) : int(0.6 * h), int(0.40 * w) : int(0.50 * w)].mean()
    air = rg3.pixels[int(0.1 * h) : int(0.6 * h), int(0.26 * w) : int(0.31 * w)].mean()
    assert tibia > air + 0.3  # bone bright, air dark, as in the MONOCHROME2 RG2
    rg2 = read_image(shared_data / "dicom" / "REF" / "RG2_UNC.dcm").pixels
    h2, w2 = rg2.shape
    pelvis = rg2[int(0.25 * h2) : int(0.4 * h2), int(0.3 * w2) : int(0.45 * w2)].mean()
    below = rg2[int(0.8 * h2) : int(0.95 * h2), int(0.1 * w2) : int(0.3 * w2)].mean()
    assert pelvis > below + 0.3  # the same polarity in the MONOCHROME2 hip film


def test_compressed_match_uncompressed(shared_data):
    ref = read_image(shared_data / "dicom" / "REF" / "RG3_UNC.dcm").pixels
    for lossless in ("RLE/RG3_RLE", "J2KR/RG3_J2KR", "JLSL/RG3_JLSL", "JPLL/RG3_JPLL"):
        np.testing.assert_allclose(read_image(shared_data / "dicom" / lossless).pixels, ref, atol=1e-6)
    assert np.abs(read_image(shared_data / "dicom" / "JPLY" / "RG3_JPLY").pixels - ref).mean() < 0.02


@pytest.mark.parametrize("folder", ["images", "fullres"])
def test_every_nih_png_reads_with_its_size(folder, shared_data):
    from PIL import Image

    paths = sorted((shared_data / "nih" / folder).glob("*.png"))
    assert paths
    for path in paths:
        loaded = read_image(path)
        with Image.open(path) as im:
            assert loaded.pixels.shape == (im.height, im.width)
    if folder == "fullres":
        assert all(read_image(p).pixels.shape == (1024, 1024) for p in paths[:3])
    else:
        assert max(read_image(paths[0]).pixels.shape) == 512


def test_metadata_csvs_list_readable_files(shared_data):
    with open(shared_data / "nih" / "metadata.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert all((shared_data / "nih" / row["path"]).is_file() for row in rows)
