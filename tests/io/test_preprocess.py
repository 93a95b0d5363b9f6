"""The one preprocessing path."""
import numpy as np
import pytest

from cleaner.io.preprocess import InputSpec, percentiles, preprocess, resize_square
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
