"""DICOM as a viewer shows it: LUTs, MONOCHROME1, signed data, compression, metadata, failures."""
import numpy as np
import pytest
from pydicom.uid import RLELossless

from cleaner.io.errors import ImageReadError
from cleaner.io.images import read_image, to_unit_range
from imagegen import phantom, write_dicom


@pytest.fixture
def film():
    return phantom(64, 48)


def expected(film, bits=12):
    return to_unit_range(np.round(film * (2**bits - 1)))


def test_monochrome1_equals_monochrome2(tmp_path, film):
    m2 = read_image(write_dicom(tmp_path / "m2.dcm", film, photometric="MONOCHROME2"))
    m1 = read_image(write_dicom(tmp_path / "m1.dcm", film, photometric="MONOCHROME1"))
    np.testing.assert_allclose(m1.pixels, m2.pixels, atol=1e-6)
    np.testing.assert_allclose(m2.pixels, expected(film), atol=1e-6)
    assert m1.meta.photometric == "MONOCHROME1" and "MONOCHROME1 inverted for display" in m1.meta.notes


def test_rle_signed_and_no_preamble(tmp_path, film):
    rle = read_image(write_dicom(tmp_path / "rle.dcm", film, rle=True))
    assert rle.meta.transfer_syntax == RLELossless.name
    signed = read_image(write_dicom(tmp_path / "s.dcm", film, signed=True))
    bare = read_image(write_dicom(tmp_path / "bare", film, preamble=False))
    for loaded in (rle, signed, bare):
        np.testing.assert_allclose(loaded.pixels, expected(film), atol=1e-6)


def test_window_is_applied(tmp_path, film):
    # Window over the upper half of the stored range: the dark half saturates to black.
    loaded = read_image(write_dicom(tmp_path / "w.dcm", film, window=(3071, 2048)))
    stored = np.round(film * 4095)
    assert "VOI LUT/window applied" in loaded.meta.notes
    assert np.all(loaded.pixels[stored < 2040] == 0)
    assert loaded.pixels[stored > 4000].min() > 0.9


def test_rescale_keeps_display(tmp_path, film):
    loaded = read_image(write_dicom(tmp_path / "r.dcm", film, rescale=(2.0, -1024.0)))
    np.testing.assert_allclose(loaded.pixels, expected(film), atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, age",
    [
        (dict(age="045Y"), 45.0),
        (dict(age="006M"), 0.5),
        (dict(age="003W"), round(21 / 365.25, 4)),
        (dict(age="010D"), round(10 / 365.25, 4)),
        (dict(age=None, birth_date="20100101", study_date="20200101"), round(3652 / 365.25, 4)),
        (dict(age=None, birth_date=None), None),
        (dict(age="garbage"), None),
    ],
)
def test_age(tmp_path, film, kwargs, age):
    assert read_image(write_dicom(tmp_path / "a.dcm", film, **kwargs)).meta.age_years == age


def test_metadata(tmp_path, film):
    meta = read_image(write_dicom(tmp_path / "a.dcm", film, view="AP", patient_id="X9", study_uid="1.2.3")).meta
    assert (meta.view_position, meta.patient_id, meta.study_uid, meta.sex) == ("AP", "X9", "1.2.3", "F")
    assert (meta.modality, meta.body_part, meta.bits, meta.width, meta.height) == ("DX", "CHEST", 12, 48, 64)
    assert meta.decoder == "pydicom"


def test_no_pixel_data(tmp_path, film):
    path = write_dicom(tmp_path / "np.dcm", film, with_pixels=False)
    with pytest.raises(ImageReadError, match="DICOM has no pixel data"):
        read_image(path)


def test_truncated_pixel_data(tmp_path, film):
    path = write_dicom(tmp_path / "t.dcm", phantom(256, 256))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 50000])
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert info.value.path == str(path) and "pixel data" in info.value.reason


def test_a_corrupt_element_length_is_named_not_called_no_pixel_data(tmp_path, film):
    """A length that runs past the end swallows every element after it, pixel data included: say so."""
    import struct

    path = write_dicom(tmp_path / "len.dcm", film)
    data = bytearray(path.read_bytes())
    at = data.find(b"\x10\x00\x40\x00CS")  # PatientSex, explicit VR little endian: tag, VR, 2-byte length
    assert at > 0
    data[at + 6 : at + 8] = struct.pack("<H", 0xFFF0)
    path.write_bytes(bytes(data))
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    reason = info.value.reason
    assert reason.startswith("corrupt DICOM: element (0010,0040) declares 65520 bytes"), reason
    assert "corrupt element length" in reason


def test_truncated_header(tmp_path, film):
    path = write_dicom(tmp_path / "h.dcm", film)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ImageReadError):
        read_image(path)


def test_multiframe_first_frame(tmp_path, film):
    import pydicom

    path = write_dicom(tmp_path / "mf.dcm", film)
    ds = pydicom.dcmread(path)
    second = np.round((1 - film) * 4095).astype(np.uint16)
    first = np.frombuffer(ds.PixelData, dtype=np.uint16).reshape(film.shape)
    ds.NumberOfFrames = 2
    ds.PixelData = np.stack([first, second]).tobytes()
    ds.save_as(path)
    loaded = read_image(path)
    np.testing.assert_allclose(loaded.pixels, expected(film), atol=1e-6)
    assert loaded.meta.frames == 2 and "first of 2 frames" in loaded.meta.notes


def test_colour_dicom_to_grey(tmp_path, film):
    import pydicom

    path = write_dicom(tmp_path / "rgb.dcm", film)
    ds = pydicom.dcmread(path)
    rgb = np.stack([np.round(film * 255).astype(np.uint8)] * 3, -1)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = rgb.tobytes()
    ds.save_as(path)
    loaded = read_image(path)
    assert loaded.pixels.shape == film.shape and "colour (RGB) converted to grey" in loaded.meta.notes
    np.testing.assert_allclose(loaded.pixels, to_unit_range(rgb[..., 0].astype(np.float32)), atol=2e-3)


@pytest.mark.parametrize("kwargs", [dict(), dict(photometric="MONOCHROME1"), dict(signed=True), dict(rle=True),
                                    dict(window=(3071, 2048)), dict(rescale=(-2.0, 4000.0)), dict(bits=8)])
def test_grey_levels_by_table_are_the_per_pixel_numbers(tmp_path, monkeypatch, kwargs):
    """The LUTs run once per stored value, then looked up: bit for bit what running them per pixel gives."""
    from cleaner.io import dicom

    path = write_dicom(tmp_path / "f.dcm", phantom(300, 260), **kwargs)  # large enough for the table path
    fast = read_image(path)
    monkeypatch.setattr(dicom, "_grey_levels", dicom._display)
    slow = read_image(path)
    assert fast.pixels.dtype == slow.pixels.dtype == np.float32 and fast.meta.notes == slow.meta.notes
    np.testing.assert_array_equal(fast.pixels, slow.pixels)


def test_grey_levels_by_table_with_a_lut_that_goes_up_and_down():
    """A Modality LUT that is not monotonic: min-max over the values present, not the table's ends."""
    from pydicom.dataset import Dataset

    from cleaner.io import dicom

    lut = Dataset()
    lut.LUTDescriptor, lut.LUTData = [64, 0, 16], [int(1000 + 900 * np.sin(i / 5)) for i in range(64)]
    ds = Dataset()
    ds.ModalityLUTSequence = [lut]
    ds.PixelRepresentation, ds.BitsStored = 0, 16
    arr = (np.random.default_rng(0).integers(10, 50, (300, 300))).astype(np.uint16)
    for mono1 in (False, True):
        np.testing.assert_array_equal(dicom._grey_levels(arr, ds, False, mono1), dicom._display(arr, ds, False, mono1))
