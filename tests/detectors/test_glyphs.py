"""The glyph reader's synthetic data: letters sorted by whether their handedness can be read, patches
labelled as they claim, and a reader that takes patches and whole films alike."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detectors import glyphs
from imagegen import phantom


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
    from scipy.ndimage import median_filter

    patch = median_filter(patch, 3)  # the noise, not faint ink
    away = np.abs(patch - np.median(patch))
    ink = away > 0.5 * away.max()  # the strongest structure, letter or plate, however faint the ink
    rows, cols = np.nonzero(ink)
    return ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Pixel agreement of two ink crops, best over the alignments their difference in size allows."""
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    return max((a[i : i + h, j : j + w] == b[k : k + h, m : m + w]).mean()
               for i in range(a.shape[0] - h + 1) for j in range(a.shape[1] - w + 1)
               for k in range(b.shape[0] - h + 1) for m in range(b.shape[1] - w + 1))


def test_a_reversed_glyph_is_the_readable_one_mirrored(font, monkeypatch):
    """Same seed, readable and reversed text: the same text, plate and place, the second mirror-reversed.
    What is pasted is compared exactly; the finished patches, whose noise and blur fall differently on the
    mirrored strokes, only by their ink crops (rough: a plate can outweigh its letters in a crop)."""
    pasted = []
    paste = glyphs._paste
    monkeypatch.setattr(glyphs, "_paste", lambda x, mask, box, rng: (pasted.append((mask, box)), paste(x, mask, box, rng))[1])
    flat = np.full((glyphs.PATCH, glyphs.PATCH), 0.45, np.float32)
    agreement, mirrored = [], 0
    for seed in range(12):
        pasted.clear()
        readable = _ink_crop(glyphs.make_patch(flat, glyphs.READABLE, [font], np.random.default_rng(seed)))
        reversed_ = _ink_crop(glyphs.make_patch(flat, glyphs.REVERSED, [font], np.random.default_rng(seed)))
        (mask, box), (mask_r, box_r) = pasted
        assert mask.shape == mask_r.shape and (mask != mask[:, ::-1]).any(), seed  # handed text
        np.testing.assert_array_equal(mask_r, mask[:, ::-1])
        np.testing.assert_array_equal(box_r, box[:, ::-1])
        as_mirror, as_is = _agreement(reversed_, readable[:, ::-1]), _agreement(reversed_, readable)
        mirrored += as_mirror > as_is
        agreement.append(as_mirror)
    assert mirrored >= 10, mirrored
    assert np.mean(agreement) > 0.75, agreement  # faint ink, plates and cut-off glyphs make crops rough


def test_a_side_marker_is_a_lone_l_or_r_and_text_never_is(font):
    """Markers teach which letter (L or R) is there, facing either way; text is never a lone L, R or J, so a
    physically reversed lead marker is not read as mirrored text."""
    rng = np.random.default_rng(0)
    handed, symmetric = glyphs.letter_sets(font)
    texts = {glyphs._text(handed, symmetric, rng) for _ in range(2000)}
    assert not texts & {"L", "R", "J"} and any(len(t) == 1 for t in texts) and set(glyphs.WORDS) & texts
    flat = np.full((glyphs.PATCH, glyphs.PATCH), 0.45, np.float32)
    widths = {glyphs.MARKER_L: [], glyphs.MARKER_R: []}
    for label in widths:
        for seed in range(40):
            widths[label].append(_ink_crop(glyphs.make_patch(flat, label, [font], np.random.default_rng(seed))).shape[1])
    assert np.median(widths[glyphs.MARKER_L]) < 48 and max(widths[glyphs.MARKER_L]) > 1.5 * min(widths[glyphs.MARKER_L])


def test_patches_are_labelled_evenly_and_stay_in_range(font):
    films = [phantom(200, 180, seed=s) for s in range(2)]
    x, y = glyphs.synth_patches(films, 300, [font], np.random.default_rng(0))
    assert x.shape == (300, glyphs.PATCH, glyphs.PATCH, 1) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert set(map(tuple, y.astype(int))) <= {tuple(row) for row in np.eye(len(glyphs.CHANNELS) + 1, len(glyphs.CHANNELS), -1, int)}
    counts = [(y.sum(1) == 0).sum(), *y.sum(0)]
    assert all(40 <= c <= 80 for c in counts), counts
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
        assert out.shape == (shape[0], len(glyphs.CHANNELS)) and np.all((out >= 0) & (out <= 1))


def test_evidence_is_zero_when_undecided_and_changes_sign_with_the_mirror():
    assert glyphs.evidence(0.5, 0.5) == pytest.approx(0.0)
    assert glyphs.evidence(0.1, 0.9) > 2 and glyphs.evidence(0.9, 0.1) == pytest.approx(-glyphs.evidence(0.1, 0.9))


def test_a_font_file_that_cannot_be_read_or_draws_nothing_is_not_used(tmp_path):
    broken = tmp_path / "broken.ttf"
    broken.write_bytes(b"not a font")
    assert not glyphs._draws_markers(str(broken))


def _side_evidence(maps: np.ndarray, clip: float = glyphs.LOGIT_CLIP) -> np.ndarray:
    """An L on the left or an R on the right says mirrored, written out independently of the layer."""
    half = maps.shape[2] // 2
    left = np.clip(maps[:, :, :half, 2:4].max(axis=(1, 2)), 0, clip)
    right = np.clip(maps[:, :, maps.shape[2] - half :, 2:4].max(axis=(1, 2)), 0, clip)
    return (left[:, 0] - right[:, 0]) + (right[:, 1] - left[:, 1])


def test_the_bundled_score_sums_the_backbones_log_odds_and_the_clipped_side_marker_evidence(tmp_path):
    """One Keras model, saved and loaded in safe mode, scores exactly sigmoid(anatomy logit + side-marker
    evidence); the text channels are read but not summed."""
    import keras

    from detectors.backbones import build
    from detectors.bundle import load, save_bundle

    keras.utils.set_random_seed(0)
    anatomy, _ = build("compact", 16, input_pool=4)
    reader = glyphs.build_reader(width=0.25)
    last = reader.get_layer(glyphs.MAPS_LAYER)
    kernel, bias = last.get_weights()
    last.set_weights([kernel * 1500, bias])  # logits far beyond the clip, so that the clip is tested too
    x = np.random.default_rng(1).random((6, 64, 64, 1), dtype=np.float32)
    x[:3, 40:] = 0.0  # a few different films
    x[1, :, :20] = 1.0
    combined = glyphs.with_reader(anatomy, reader)
    anatomy_logit = keras.Model(anatomy.inputs[0], anatomy.get_layer("logit").output).predict(x, verbose=0).reshape(-1)
    maps = keras.Model(reader.inputs[0], last.output).predict(x, verbose=0)
    side = _side_evidence(maps)
    assert np.abs(side).max() > 1.0 and np.abs(maps).max() > glyphs.LOGIT_CLIP
    want = 1 / (1 + np.exp(-(anatomy_logit + side)))
    got = combined.predict(x, verbose=0).reshape(-1)
    np.testing.assert_allclose(got, want, atol=3e-4)  # float32 sums of logits up to +-14; the cue moves it > 0.1
    save_bundle(combined, {"name": "flip", "kind": "flip", "input": {"size": 64}, "threshold": 0.5}, tmp_path / "b")
    # the bundle scores through the frozen graph (batch norms folded into the convolutions): within 1e-5 of Keras
    np.testing.assert_allclose(load(tmp_path / "b").predict(x), got, atol=1e-5)
    text, side_again = (v.reshape(-1) for v in glyphs.evidence_model(reader).predict(x, verbose=0))
    np.testing.assert_allclose(side_again, side, atol=1e-4)
    p = reader.predict(x, verbose=0)
    np.testing.assert_allclose(text, glyphs.evidence(p[:, 0], p[:, 1]), atol=1e-3)


def _bright_spot_reader(channel: int):
    """A stand-in reader whose ``channel`` fires (logit +10) wherever the film is bright, -10 elsewhere."""
    import keras

    inputs = keras.Input((None, None, 1))
    maps = keras.layers.Conv2D(len(glyphs.CHANNELS), 1, name=glyphs.MAPS_LAYER)(inputs)
    logits = keras.layers.GlobalMaxPooling2D(name=glyphs.LOGITS_LAYER)(maps)
    reader = keras.Model(inputs, keras.layers.Activation("sigmoid")(logits))
    kernel = np.zeros((1, 1, 1, len(glyphs.CHANNELS)), np.float32)
    bias = np.full(len(glyphs.CHANNELS), -10.0, np.float32)
    kernel[..., channel], bias[channel] = 20.0, -10.0
    reader.get_layer(glyphs.MAPS_LAYER).set_weights([kernel, bias])
    return reader


def test_a_marker_moves_the_score_by_the_side_it_is_on():
    """An L found on the image's left raises the flip score and on its right lowers it; an R the other way."""
    import keras

    from detectors.backbones import build

    keras.utils.set_random_seed(0)
    anatomy, _ = build("compact", 16, input_pool=2)
    x = np.zeros((2, 32, 32, 1), np.float32)
    x[0, 4:8, 2:6] = 1.0  # a bright spot on the left
    x[1, 4:8, 26:30] = 1.0  # on the right
    alone = anatomy.predict(x, verbose=0).reshape(-1)
    for channel, left_means in ((2, 1), (3, -1)):  # L, R
        scored = glyphs.with_reader(anatomy, _bright_spot_reader(channel)).predict(x, verbose=0).reshape(-1)
        assert left_means * (scored[0] - alone[0]) > 0.1 and left_means * (alone[1] - scored[1]) > 0.1


def test_side_markers_count_by_where_they_are_not_which_way_they_face():
    """An L in the image's left half or an R in its right half says mirrored; the other way round says
    upright; absent markers (negative logits) say nothing; each counts at most the clip."""
    from detectors.layers import MarkerSideEvidence

    def film(l_at=None, r_at=None, strength=6.0, width=8):
        maps = np.full((1, 4, width, 4), -7.0, np.float32)
        if l_at is not None:
            maps[0, 1, l_at, 2] = strength
        if r_at is not None:
            maps[0, 2, r_at, 3] = strength
        return maps

    cases = {"L left": (film(l_at=0), 6.0), "L right": (film(l_at=7), -6.0), "R right": (film(r_at=6), 6.0),
             "R left": (film(r_at=1), -6.0), "upright pair": (film(l_at=7, r_at=0), -12.0),
             "mirrored pair": (film(l_at=1, r_at=6), 12.0), "none": (film(), 0.0),
             "saturated": (film(l_at=0, strength=100.0), glyphs.LOGIT_CLIP),
             "odd width, middle column": (film(l_at=4, width=9), 0.0)}
    layer = MarkerSideEvidence()
    for name, (maps, want) in cases.items():
        got = float(np.asarray(layer(maps)).reshape(-1)[0])
        assert got == pytest.approx(want, abs=1e-5), name
        assert _side_evidence(maps)[0] == pytest.approx(want, abs=1e-5), name
