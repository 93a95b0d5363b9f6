"""The one scoring step (detectors/inference.py): a compiled graph that scores exactly like the bundle's own
Keras model, pads the last batch without changing any score, and traces once per model and batch size."""
from pathlib import Path

import numpy as np
import pytest

from detectors.bundle import load
from detectors.inference import Scorer, predict

REPO = Path(__file__).resolve().parents[2]
DEFAULTS = REPO / "detectors" / "default_bundles"


def keras_scores(model, x: np.ndarray) -> np.ndarray:
    """The bundle's own scores: the Keras model called directly, one input at a time (no batch, no padding)."""
    from keras import ops

    return np.concatenate([ops.convert_to_numpy(model(x[i : i + 1], training=False)).reshape(-1) for i in range(len(x))])


def inputs(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, size, size, 1), dtype=np.float32)


@pytest.mark.parametrize("kind", ["rotation", "inversion", "flip"])
def test_default_bundles_score_as_their_keras_model(kind):
    if not (DEFAULTS / kind / "detector.json").is_file():
        pytest.skip("default bundles not trained yet")
    det = load(DEFAULTS / kind)
    x = inputs(5, det.input_spec.size)  # batches of 4: one full, one padded from 1
    np.testing.assert_allclose(det.predict(x, batch_size=4), keras_scores(det.model, x), atol=1e-5, rtol=0)


def test_tiny_and_rule_bundles_score_as_their_keras_model(tmp_path, rule_bundles):
    from scan_output_builder import save_tiny_bundle

    folders = [save_tiny_bundle(tmp_path / "tiny"), rule_bundles / "rotation", rule_bundles / "inversion"]
    for folder in folders:
        det = load(folder)
        x = inputs(11, det.input_spec.size, seed=1)
        np.testing.assert_allclose(det.predict(x, batch_size=4), keras_scores(det.model, x), atol=1e-5, rtol=0)
        assert det.predict(x[:0]).shape == (0,)
        # (N, s, s) without the channel axis is the same input
        np.testing.assert_allclose(det.predict(x[..., 0], batch_size=4), det.predict(x, batch_size=4), atol=0)


def test_padding_never_changes_a_score_and_nothing_retraces(rule_bundles):
    """A film scores the same alone (padded with 7 blanks) as in a full batch; 1, 5, 8 and 13 films all go
    through the one trace of batch 8, and the cached scorer is shared by every caller of the model."""
    keras = pytest.importorskip("keras")
    det = load(rule_bundles / "inversion")
    x = inputs(13, det.input_spec.size, seed=2)
    together = det.predict(x, batch_size=8)
    alone = np.concatenate([det.predict(x[i : i + 1], batch_size=8) for i in range(len(x))])
    np.testing.assert_array_equal(alone, together)
    for n in (5, 8, 13):
        predict(det.model, x[:n], 8)
    scorer = Scorer.of(det.model, 8)
    assert scorer is Scorer.of(det.model, 8) and scorer is not Scorer.of(det.model, 4)
    if keras.backend.backend() == "tensorflow":
        (fn,) = scorer.traced.values()
        assert fn.experimental_get_tracing_count() == 1


def test_the_inverse_comparator_pads_without_mixing_films():
    """A model that stacks each film with its complement along the batch axis (inversion's WithComplement ->
    HalvesDifference) still pairs each film with its own complement when the last batch is padded."""
    import keras

    from detectors.layers import HalvesDifference, WithComplement

    inp = keras.Input((16, 16, 1))
    both = keras.layers.GlobalAveragePooling2D()(WithComplement()(inp))
    model = keras.Model(inp, keras.layers.Activation("sigmoid")(HalvesDifference()(both) * 8.0))
    x = inputs(7, 16, seed=3)
    expected = 1 / (1 + np.exp(-8.0 * (2 * x.mean(axis=(1, 2, 3)) - 1)))
    np.testing.assert_allclose(predict(model, x, 4), expected, atol=1e-5)


def test_frozen_scoring_keeps_the_weights_it_was_built_with_and_live_scoring_follows_them():
    """Scan and evaluation score a finished model frozen (its weights made graph constants, for speed); training's
    per-epoch validation must see each epoch's weights, so it scores unfrozen. Both score like Keras."""
    import keras

    inp = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, use_bias=False)(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(x))
    model = keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(x))
    films = inputs(6, 8, seed=4)
    before = keras_scores(model, films)
    np.testing.assert_allclose(predict(model, films, 4), before, atol=1e-5)
    np.testing.assert_allclose(predict(model, films, 4, frozen=False), before, atol=1e-6)
    model.set_weights([w * 1.7 + 0.1 for w in model.get_weights()])  # as an epoch of training would
    after = keras_scores(model, films)
    assert np.abs(after - before).max() > 1e-3
    np.testing.assert_allclose(predict(model, films, 4, frozen=False), after, atol=1e-6)
    if keras.backend.backend() == "tensorflow":  # the frozen graph holds the weights it was built with
        np.testing.assert_allclose(predict(model, films, 4), before, atol=1e-5)


def test_a_model_that_cannot_be_frozen_is_scored_unfrozen_with_a_warning(monkeypatch):
    """Freezing uses TensorFlow's internal API: if it fails (a newer TensorFlow, an op it cannot convert), the
    scorer warns and scores through the plain graph, with the same scores; a scan never dies of it."""
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("freezing is TensorFlow's")
    from tensorflow.python.framework import convert_to_constants

    def refuse(*args, **kwargs):
        raise ValueError("cannot convert this op")

    monkeypatch.setattr(convert_to_constants, "convert_variables_to_constants_v2", refuse)
    inp = keras.Input((8, 8, 1))
    model = keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(keras.layers.Flatten()(inp)))
    films = inputs(5, 8, seed=6)
    with pytest.warns(RuntimeWarning, match="without a frozen graph.*cannot convert this op"):
        got = predict(model, films, 4)
    np.testing.assert_allclose(got, keras_scores(model, films), atol=1e-6)


def test_on_a_cpu_a_compiled_batch_holds_at_most_cpu_batch_pixels(monkeypatch):
    """Large inputs go through smaller compiled batches on a CPU (flip's 512-px films: 8, for memory), small ones
    through the batch asked for; with a GPU the batch asked for stands. Scores are the same either way."""
    import keras

    from detectors import inference

    inp = keras.Input((None, None, 1))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3)(inp))
    model = keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(x))
    assert inference.batch_for(32, 512, 512, inference.CPU_BATCH_PIXELS) == 8
    assert inference.batch_for(32, 128, 128, inference.CPU_BATCH_PIXELS) == 32
    assert inference.batch_for(32, 4096, 4096, inference.CPU_BATCH_PIXELS) == 1
    monkeypatch.setattr(inference, "accelerated", lambda: False)
    big, small = inputs(10, 512, seed=5), inputs(10, 16, seed=5)
    scorer = Scorer(model, 32)
    assert scorer.compiled_batch(big.shape[1:]) == 8 and scorer.compiled_batch(small.shape[1:]) == 32
    np.testing.assert_allclose(scorer.predict(big), keras_scores(model, big), atol=1e-5)
    if keras.backend.backend() == "tensorflow":
        assert scorer.traced[big.shape[1:]].input_signature[0].shape[0] == 8
    monkeypatch.setattr(inference, "accelerated", lambda: True)
    gpu = Scorer(model, 32)
    assert gpu.compiled_batch(big.shape[1:]) == 32
    np.testing.assert_allclose(gpu.predict(big), keras_scores(model, big), atol=1e-5)


def test_a_bad_batch_size_is_refused():
    with pytest.raises(ValueError, match="batch size"):
        Scorer(object(), 0)
