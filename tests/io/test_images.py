"""The reader: every format as a viewer shows it, every failure with a reason."""
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from cleaner.io import pixels as pixels_mod
from cleaner.io.errors import ImageReadError
from cleaner.io.images import read_image, sniff_format, to_unit_range
from imagegen import phantom, write_dicom, write_jpeg, write_png8, write_png16


@pytest.fixture
def film():
    return phantom(96, 80)


def test_png8_reads_exactly(tmp_path, film):
    loaded = read_image(write_png8(tmp_path / "a.png", film))
    assert loaded.pixels.dtype == np.float32 and loaded.pixels.shape == (96, 80)
    assert np.abs(loaded.pixels - film).max() <= 0.5 / 255 + 1e-6
    assert (loaded.meta.format, loaded.meta.bits, loaded.meta.width, loaded.meta.height) == ("PNG", 8, 80, 96)


def test_png16_scaled_to_full_range(tmp_path, film):
    loaded = read_image(write_png16(tmp_path / "a.png", film, max_value=4095))
    assert loaded.meta.bits == 16
    np.testing.assert_allclose(loaded.pixels, to_unit_range(np.round(film * 4095)), atol=1e-6)
    assert loaded.pixels.min() == 0 and loaded.pixels.max() == 1


def test_palette_rgb_rgba_become_grey(tmp_path, film):
    grey = (film * 255).astype(np.uint8)
    rgb = Image.fromarray(np.stack([grey] * 3, -1))
    rgb.save(tmp_path / "rgb.png")
    rgb.convert("RGBA").save(tmp_path / "rgba.png")
    rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(tmp_path / "p.png")
    for name in ("rgb.png", "rgba.png", "p.png"):
        loaded = read_image(tmp_path / name)
        assert loaded.pixels.ndim == 2, name
        assert np.abs(loaded.pixels - grey / 255).mean() < 0.02, name
        assert any("grey" in note for note in loaded.meta.notes), name


def test_jpeg_and_exif_orientation(tmp_path, film):
    plain = read_image(write_jpeg(tmp_path / "a.jpg", film))
    assert plain.meta.format == "JPEG" and np.abs(plain.pixels - film).mean() < 0.02
    # Orientation 6 = 'rotate 90 CW to display': the viewer shows the transposed shape.
    turned = read_image(write_jpeg(tmp_path / "b.jpg", film, exif_orientation=6))
    assert turned.pixels.shape == (80, 96)
    assert "EXIF orientation 6 applied" in turned.meta.notes


def test_tiff_16bit(tmp_path, film):
    Image.fromarray((film * 60000).astype(np.uint16)).save(tmp_path / "a.tif")
    loaded = read_image(tmp_path / "a.tif")
    assert loaded.meta.format == "TIFF" and loaded.pixels.shape == film.shape


def test_format_by_content_not_name(tmp_path, film):
    write_png8(tmp_path / "really_png.dcm", film)
    write_dicom(tmp_path / "IM0001", film)
    assert read_image(tmp_path / "really_png.dcm").meta.format == "PNG"
    assert read_image(tmp_path / "IM0001").meta.format == "DICOM"
    assert sniff_format(tmp_path / "IM0001") == "DICOM"


def _reason(path):
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert info.value.path == str(path)
    return info.value.reason


def test_failures_have_reasons(tmp_path, film):
    png = write_png8(tmp_path / "good.png", phantom(200, 200))
    data = png.read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    assert "truncated" in _reason(tmp_path / "truncated.png").lower()
    jpg = write_jpeg(tmp_path / "good.jpg", phantom(200, 200))
    (tmp_path / "truncated.jpg").write_bytes(jpg.read_bytes()[:600])
    assert "JPEG" in _reason(tmp_path / "truncated.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    assert _reason(tmp_path / "empty.png") == "empty file (0 bytes)"
    (tmp_path / "notes.bin").write_bytes(b"hello, this is not an image at all" * 10)
    assert "unrecognised file format" in _reason(tmp_path / "notes.bin")
    assert _reason(tmp_path / "missing.png") == "file not found"
    os.symlink(tmp_path / "nowhere.png", tmp_path / "dangling.png")
    assert _reason(tmp_path / "dangling.png") == f"broken symbolic link (to {tmp_path / 'nowhere.png'}, which does not exist)"
    os.symlink("self.png", tmp_path / "self.png")  # points at itself: a loop, not a broken link
    assert _reason(tmp_path / "self.png") == "symbolic link loop (the link leads back to itself)"
    os.symlink("ping.png", tmp_path / "pong.png")
    os.symlink("pong.png", tmp_path / "ping.png")
    assert _reason(tmp_path / "ping.png") == "symbolic link loop (the link leads back to itself)"


def _png_header_only(path, width, height):
    """A PNG whose header claims a huge size: the bomb guard must refuse it before decoding."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


def test_decompression_bomb_refused(tmp_path):
    reason = _reason(_png_header_only(tmp_path / "bomb.png", 20000, 20000))
    assert "limit" in reason and "20000x20000" in reason or "bomb" in reason


def test_size_limit_is_configurable(tmp_path, film, monkeypatch):
    monkeypatch.setattr(pixels_mod, "MAX_PIXELS", 1000)
    assert "pixel limit" in _reason(write_png8(tmp_path / "a.png", film))
    assert "pixel limit" in _reason(write_dicom(tmp_path / "a.dcm", film))


def test_hostile_files(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")  # reading it would block forever
    assert _reason(tmp_path / "pipe.png") == "not a regular file (named pipe); not read"
    Image.fromarray(np.full((32, 32), np.nan, np.float32)).save(tmp_path / "nan.tif")
    assert "no finite pixel values" in _reason(tmp_path / "nan.tif")
    partly = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    partly[0, 0] = np.inf
    Image.fromarray(partly).save(tmp_path / "inf.tif")
    assert np.isfinite(read_image(tmp_path / "inf.tif").pixels).all()
    blank = read_image(write_png16(tmp_path / "blank.png", np.full((32, 32), 0.5, np.float32)))
    assert "blank image (every pixel the same value)" in blank.meta.notes and not blank.pixels.any()
    assert blank.meta.blank
    Image.fromarray(np.zeros((15, 400), np.uint8)).save(tmp_path / "strip.png")
    assert _reason(tmp_path / "strip.png") == "image of 400x15 pixels is too small to be a radiograph (under 16 px on a side)"
