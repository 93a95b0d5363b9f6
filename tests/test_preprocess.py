"""The one preprocessing path."""
import numpy as np
import pytest

from cleaner.preprocess import InputSpec, preprocess
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
