"""The one preprocessing path."""
import numpy as np
import pytest

from cleaner.io.preprocess import InputSpec, content_box, crop, percentiles, preprocess, resize_square
from imagegen import phantom


def test_shape_range_and_inversion_symmetry():
    film = phantom(120, 90)
    spec = InputSpec(size=64)
    x = preprocess(film, spec)
    assert x.shape == (64, 64, 1) and x.dtype == np.float32
    assert x.min() == 0 and x.max() == 1
    np.testing.assert_allclose(preprocess(1 - film, spec), 1 - x, atol=1e-5)


def test_rotation_commutes_for_square_images():
    film = phantom(100, 100)
    spec = InputSpec(size=50)
    np.testing.assert_allclose(preprocess(np.rot90(film), spec), np.rot90(preprocess(film, spec)), atol=1e-5)


def test_constant_image_and_spec_round_trip():
    assert not preprocess(np.full((30, 30), 0.7, np.float32), InputSpec(size=16)).any()
    spec = InputSpec(size=128, normalisation="none")
    assert InputSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError):
        InputSpec(size=8)
    with pytest.raises(ValueError, match="percentiles"):
        InputSpec(low_pct=60.0, high_pct=40.0)
    with pytest.raises(ValueError, match="percentiles"):  # a bundle's spec is checked on the way in too
        InputSpec.from_dict({"size": 64, "low_pct": -1, "high_pct": 99})


def test_preprocess_all_is_preprocess_per_spec_with_one_resize_per_size(monkeypatch):
    """Scanning and review prepare every detector's input at once: exactly what ``preprocess`` gives for each
    spec (what training saw), resizing once per size however many stretches share it."""
    import importlib

    module = importlib.import_module("cleaner.io.preprocess")

    rng = np.random.default_rng(0)
    pixels = rng.random((90, 70), dtype=np.float32) ** 2
    specs = [InputSpec(size=32), InputSpec(size=32, low_pct=5.0, high_pct=95.0), InputSpec(size=48),
             InputSpec(size=32, normalisation="none")]
    want = [preprocess(pixels, spec) for spec in specs]
    sizes = []
    resize = module.resize_square
    monkeypatch.setattr(module, "resize_square", lambda p, size: (sizes.append(size), resize(p, size))[1])
    got = module.preprocess_all(pixels, specs)
    assert sorted(sizes) == [32, 48]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    assert not np.shares_memory(got[0], got[3])


def _boxed(film: np.ndarray, top: int, bottom: int, left: int, right: int, value: float = 0.0) -> np.ndarray:
    return np.pad(film, ((top, bottom), (left, right)), constant_values=value)


def test_uniform_bars_are_cut_off_on_every_side_black_or_white():
    film = phantom(120, 90)
    boxed = np.pad(_boxed(film, 30, 18, 0, 0), ((0, 0), (12, 9)), constant_values=1.0)  # letterbox + white pillars
    box = content_box(boxed)
    assert box == (30, 30 + 120, 12, 12 + 90)
    np.testing.assert_array_equal(crop(boxed, box), film)
    # the film with bars is the film without them, to the model
    np.testing.assert_array_equal(preprocess(boxed, InputSpec(size=64)), preprocess(film, InputSpec(size=64)))
    # ... unless the bundle keeps them (bundles written before borders were trimmed)
    assert not np.array_equal(preprocess(boxed, InputSpec(size=64, borders="keep")), preprocess(film, InputSpec(size=64)))


def test_the_box_turns_inverts_and_mirrors_with_the_film():
    boxed = _boxed(phantom(100, 80), 25, 10, 6, 14)
    top, bottom, left, right = content_box(boxed)
    h, w = boxed.shape
    assert content_box(1 - boxed) == (top, bottom, left, right)
    assert content_box(boxed[:, ::-1]) == (top, bottom, w - right, w - left)
    assert content_box(boxed[::-1]) == (h - bottom, h - top, left, right)
    assert content_box(boxed.T) == (left, right, top, bottom)


def test_films_without_bars_thin_bars_and_blank_images_are_left_whole():
    film = phantom(120, 90)
    assert content_box(film) == (0, 120, 0, 90)  # noise at the edge: not a bar
    thin = _boxed(film, 1, 1, 1, 1)  # under 2 % of a side: not worth a different input
    assert content_box(thin) == (0, 122, 0, 92)
    blank = np.zeros((200, 150), np.float32)
    assert content_box(blank) == (0, 200, 0, 150)
    mostly_bar = _boxed(phantom(40, 90), 80, 80, 0, 0)  # 80 % bars: too little film left to trust the cut
    assert content_box(mostly_bar) == (0, 200, 0, 90)
    speck = _boxed(film, 30, 0, 0, 0)
    speck[5, 40] = 1.0  # one bright pixel in a bar (dust, a burned-in dot) does not stop the cut
    assert content_box(speck)[0] == 30


def test_large_films_are_read_sparsely_and_never_cut_into():
    rng = np.random.default_rng(1)
    film = np.clip(0.5 + 0.1 * rng.standard_normal((1500, 1200)), 0, 1).astype(np.float32)
    boxed = _boxed(film, 301, 250, 0, 77)
    top, bottom, left, right = content_box(boxed)
    assert 301 - 3 <= top <= 301 and 301 + 1500 <= bottom <= 301 + 1500 + 3
    assert left == 0 and 1200 <= right <= 1200 + 3  # the 77-px bar is 6 % of the width: cut, conservatively


def test_spec_borders_round_trip_and_legacy_bundles_keep_them():
    assert InputSpec().borders == "trim"
    assert InputSpec.from_dict(InputSpec(size=64).to_dict()).borders == "trim"
    assert InputSpec.from_dict({"size": 64}).borders == "keep"  # a bundle written before: what it was trained on
    with pytest.raises(ValueError, match="borders"):
        InputSpec(borders="pad")


def _arrays():
    rng = np.random.default_rng(0)
    film = resize_square(phantom(700, 600), 512)
    yield film  # a film at flip's input size
    yield 1 - film
    yield resize_square(phantom(300, 200), 128)
    yield np.round(rng.random((512, 512), dtype=np.float32) * 5) / 5  # heavy ties
    yield rng.random((512, 512), dtype=np.float32) ** 12  # most values near 0
    yield np.zeros((256, 256), np.float32)
    yield rng.random((7,), dtype=np.float32)
    skewed = np.full((512, 512), 1e6, np.float32).reshape(-1)  # every 16th value misleads the threshold guess
    skewed[::16] = np.arange(skewed[::16].size, dtype=np.float32)
    yield skewed


@pytest.mark.parametrize("low,high", [(0.5, 99.5), (5, 95), (0, 100), (60, 99), (1, 20), (49.9, 50.1)])
def test_percentiles_are_numpys_bit_for_bit(low, high):
    """The stretch's cheaper order statistics give np.percentile's values exactly, both ends, ties and all."""
    for x in _arrays():
        assert percentiles(x, low, high) == tuple(float(v) for v in np.percentile(x, [low, high]))


def test_the_stretch_is_the_same_numbers_as_before():
    """``preprocess`` still equals the plain numpy formula the bundles were trained with."""
    film = phantom(640, 480)
    for spec in (InputSpec(size=128), InputSpec(size=128, low_pct=5, high_pct=95), InputSpec(size=512)):
        small = resize_square(film, spec.size)
        lo, hi = np.percentile(small, [spec.low_pct, spec.high_pct])
        expected = np.clip((small - lo) / (hi - lo), 0.0, 1.0)[..., None].astype(np.float32)
        np.testing.assert_array_equal(preprocess(film, spec), expected)
