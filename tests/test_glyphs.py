"""The glyph reader's synthetic data: letters sorted by whether their handedness can be read, patches
labelled as they claim, and a reader that takes patches and whole films alike."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detectors import glyphs
from tests.imagegen import phantom


@pytest.fixture(scope="module")
def font():
    """A plain sans font, as side markers are; Pillow's own where the machine has neither."""
    fonts = glyphs.find_fonts()
    for name in ("LiberationSans-Regular.ttf", "DejaVuSans.ttf"):
        found = [f for f in fonts if f.endswith(name)]
        if found:
            return found[0]
    return glyphs.PILLOW_FONT


def test_the_mirror_overlap_tells_symmetric_letters_from_handed_ones(font):
    for letter in "HIOX":
        assert glyphs.mirror_overlap(letter, font) > 0.85, letter
    for letter in "RLFJK7":
        assert glyphs.mirror_overlap(letter, font) < 0.6, letter


def test_each_font_draws_only_letters_whose_symmetry_it_keeps(font):
    handed, symmetric = glyphs.letter_sets(font)
    assert {"R", "L"} <= set(handed) and {"H", "O", "U", "A"} <= set(symmetric)
    assert "Q" not in handed  # a sans Q is nearly its own mirror image: drawn as neither
    serif = [f for f in glyphs.find_fonts() if "Serif" in Path(f).name and "Sans" not in Path(f).name]
    if not serif:
        pytest.skip("no serif font on this machine to show the contrast")
    for path in serif:  # thick and thin strokes: a serif U or A is not symmetric, so such fonts do not draw it as such
        assert not {"U", "A"} & set(glyphs.letter_sets(path)[1]), path


def _ink_crop(patch: np.ndarray) -> np.ndarray:
    ink = np.abs(patch - np.median(patch)) > 0.2
    rows, cols = np.nonzero(ink)
    return ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def test_a_reversed_glyph_is_the_readable_one_mirrored(font):
    """Same seed, labels 1 and 2: the same text, plate and place, the second mirror-reversed."""
    flat = np.full((glyphs.PATCH, glyphs.PATCH), 0.45, np.float32)
    agreement = []
    for seed in range(12):
        readable = _ink_crop(glyphs.make_patch(flat, 1, [font], np.random.default_rng(seed)))
        reversed_ = _ink_crop(glyphs.make_patch(flat, 2, [font], np.random.default_rng(seed)))
        assert readable.shape == reversed_.shape, seed
        as_mirror, as_is = (reversed_ == readable[:, ::-1]).mean(), (reversed_ == readable).mean()
        assert as_mirror > as_is, (seed, as_mirror, as_is)  # blur at the patch edge and noise blur the rest
        agreement.append(as_mirror)
    assert np.mean(agreement) > 0.95, agreement


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
    ink, _ = glyphs.glyph_mask("L", 20, glyphs.PILLOW_FONT, np.random.default_rng(0))
    assert ink.max() > 0.5
    assert {"R", "L"} <= set(glyphs.letter_sets(glyphs.PILLOW_FONT)[0])


def test_reader_scores_patches_and_whole_films_alike():
    reader = glyphs.build_reader(width=0.25)
    for shape in ((2, glyphs.PATCH, glyphs.PATCH, 1), (1, 200, 160, 1)):
        out = reader.predict(np.random.default_rng(0).random(shape, dtype=np.float32), verbose=0)
        assert out.shape == (shape[0], 2) and np.all((out >= 0) & (out <= 1))


def test_evidence_is_zero_when_undecided_and_changes_sign_with_the_mirror():
    assert glyphs.evidence(0.5, 0.5) == pytest.approx(0.0)
    assert glyphs.evidence(0.1, 0.9) > 2 and glyphs.evidence(0.9, 0.1) == pytest.approx(-glyphs.evidence(0.1, 0.9))


def test_a_font_file_that_cannot_be_read_or_draws_nothing_is_not_used(tmp_path):
    broken = tmp_path / "broken.ttf"
    broken.write_bytes(b"not a font")
    assert not glyphs._draws_markers(str(broken))


def test_the_bundled_score_sums_the_backbones_log_odds_and_the_clipped_glyph_evidence(tmp_path):
    """One Keras model, saved and loaded in safe mode, scores exactly sigmoid(anatomy logit + evidence)."""
    import keras

    from detectors.backbones import build
    from detectors.bundle import load, save_bundle

    keras.utils.set_random_seed(0)
    anatomy, _ = build("compact", 16, input_pool=4)
    reader = glyphs.build_reader(width=0.25)
    last = reader.get_layer("readable_reversed")
    kernel, bias = last.get_weights()
    last.set_weights([kernel * 300, bias])  # logits far beyond the clip, so that the clip is tested too
    x = np.random.default_rng(1).random((6, 64, 64, 1), dtype=np.float32)
    x[:3, 40:] = 0.0  # a few different films
    combined = glyphs.with_reader(anatomy, reader)
    anatomy_logit = keras.Model(anatomy.inputs[0], anatomy.get_layer("logit").output).predict(x, verbose=0).reshape(-1)
    p_readable, p_reversed = reader.predict(x, verbose=0).T
    assert np.abs(glyphs.logit(p_reversed) - glyphs.logit(p_readable)).max() > 1.0
    want = 1 / (1 + np.exp(-(anatomy_logit + glyphs.evidence(p_readable, p_reversed))))
    got = combined.predict(x, verbose=0).reshape(-1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    save_bundle(combined, {"name": "flip", "kind": "flip", "input": {"size": 64}, "threshold": 0.5}, tmp_path / "b")
    np.testing.assert_allclose(load(tmp_path / "b").predict(x), got, atol=1e-6)


def test_the_reader_shifts_the_score_towards_mirrored_when_its_text_reads_reversed():
    """A reader made to answer only 'reversed' raises every score; one answering only 'readable' lowers it."""
    import keras

    from detectors.backbones import build

    keras.utils.set_random_seed(0)
    anatomy, _ = build("compact", 16, input_pool=2)
    x = np.random.default_rng(2).random((4, 32, 32, 1), dtype=np.float32)
    alone = anatomy.predict(x, verbose=0).reshape(-1)
    for reversed_bias, direction in ((5.0, 1), (-5.0, -1)):
        reader = glyphs.build_reader(width=0.25)
        last = reader.get_layer("readable_reversed")
        kernel, _ = last.get_weights()
        last.set_weights([kernel * 0, np.array([-reversed_bias, reversed_bias], np.float32)])
        shifted = glyphs.with_reader(anatomy, reader).predict(x, verbose=0).reshape(-1)
        assert np.all(direction * (shifted - alone) > 0.1)
