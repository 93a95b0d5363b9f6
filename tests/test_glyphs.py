"""The glyph reader's synthetic data: letters sorted by whether their handedness can be read, patches
labelled as they claim, and a reader that takes patches and whole films alike."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from scipy.ndimage import gaussian_filter

from detectors import glyphs
from tests.imagegen import phantom


def _ink(letter: str, font_path: str) -> np.ndarray:
    font = ImageFont.load_default(160) if font_path == glyphs.PILLOW_FONT else ImageFont.truetype(font_path, 160)
    left, top, right, bottom = font.getbbox(letter)
    im = Image.new("L", (right - left + 4, bottom - top + 4), 0)
    ImageDraw.Draw(im).text((2 - left, 2 - top), letter, fill=255, font=font)
    ink = np.asarray(im, np.float32) / 255
    rows, cols = np.nonzero(ink > 0.1)
    return ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]  # centred on the ink, not the advance box


def _mirror_overlap(ink: np.ndarray) -> float:
    """Intersection over union of a glyph's ink with its own mirror image (1 = symmetric), slightly blurred so
    that anti-aliasing does not count."""
    ink = gaussian_filter(ink, 3.0)
    flipped = ink[:, ::-1]
    return float(np.minimum(ink, flipped).sum() / np.maximum(ink, flipped).sum())


@pytest.fixture(scope="module")
def font():
    """A plain sans font, as side markers are; Pillow's own where the machine has neither."""
    fonts = glyphs.find_fonts()
    for name in ("LiberationSans-Regular.ttf", "DejaVuSans.ttf"):
        found = [f for f in fonts if f.endswith(name)]
        if found:
            return found[0]
    return glyphs.PILLOW_FONT


def test_symmetric_letters_look_the_same_mirrored_and_handed_ones_do_not(font):
    symmetric = {c: _mirror_overlap(_ink(c, font)) for c in glyphs.SYMMETRIC}
    handed = {c: _mirror_overlap(_ink(c, font)) for c in glyphs.HANDED}
    assert min(symmetric.values()) > 0.8, symmetric
    assert max(handed.values()) < min(symmetric.values()), (handed, symmetric)
    assert np.median(list(handed.values())) < 0.65, handed  # most handed letters are far from symmetric
    assert not set(glyphs.SYMMETRIC) & set(glyphs.HANDED)


def test_a_reversed_glyph_is_the_readable_one_mirrored(font):
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    ink, plate = glyphs.glyph_mask("R", 24, [font], rng_a)
    again, _ = glyphs.glyph_mask("R", 24, [font], rng_b)
    assert np.array_equal(ink, again)  # seeded
    assert ink.max() > 0.9 and plate.shape == ink.shape
    assert _mirror_overlap(ink) < 0.8  # an R is readable one way only


def test_patches_are_labelled_evenly_and_stay_in_range(font):
    films = [phantom(200, 180, seed=s) for s in range(2)]
    x, y = glyphs.synth_patches(films, 300, [font], np.random.default_rng(0))
    assert x.shape == (300, glyphs.PATCH, glyphs.PATCH, 1) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert set(map(tuple, y.astype(int))) <= {(0, 0), (1, 0), (0, 1)}
    counts = [(y.sum(1) == 0).sum(), y[:, 0].sum(), y[:, 1].sum()]
    assert all(70 <= c <= 130 for c in counts), counts
    again, _ = glyphs.synth_patches(films, 300, [font], np.random.default_rng(0))
    assert np.array_equal(x, again)


def test_pillow_font_stands_in_when_the_machine_has_none():
    ink, _ = glyphs.glyph_mask("L", 20, [glyphs.PILLOW_FONT], np.random.default_rng(0))
    assert ink.max() > 0.5


def test_reader_scores_patches_and_whole_films_alike():
    reader = glyphs.build_reader(width=0.25)
    for shape in ((2, glyphs.PATCH, glyphs.PATCH, 1), (1, 200, 160, 1)):
        out = reader.predict(np.random.default_rng(0).random(shape, dtype=np.float32), verbose=0)
        assert out.shape == (shape[0], 2) and np.all((out >= 0) & (out <= 1))


def test_evidence_is_zero_when_undecided_and_changes_sign_with_the_mirror():
    assert glyphs.evidence(0.5, 0.5) == pytest.approx(0.0)
    assert glyphs.evidence(0.1, 0.9) > 2 and glyphs.evidence(0.9, 0.1) == pytest.approx(-glyphs.evidence(0.1, 0.9))
