"""Backbones: the weights routes (imagenet offline, PATH, none) and batch-norm momentum 0.9 everywhere."""
from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from detectors import backbones  # noqa: E402
from detectors.backbones import BN_MOMENTUM, WeightsError, build, resolve_weights  # noqa: E402


def _bn_layers(model):
    return [layer for layer in backbones._all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]


@pytest.fixture
def empty_keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))

    def no_download(*args, **kwargs):  # the imagenet route must never reach for the network
        raise AssertionError("tried to download weights")

    monkeypatch.setattr(keras.utils, "get_file", no_download)
    return tmp_path / "keras_home"


def test_imagenet_offline_fails_fast_with_a_way_out(empty_keras_home):
    with pytest.raises(WeightsError) as info:
        resolve_weights("resnet50", "imagenet")
    message = str(info.value)
    assert "--weights PATH" in message and "--weights none" in message
    assert str(empty_keras_home / "models" / backbones.RESNET50_NOTOP_FILE) in message


def test_imagenet_is_taken_from_keras_cache_when_present(empty_keras_home):
    cached = empty_keras_home / "models" / backbones.RESNET50_NOTOP_FILE
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"placeholder")
    assert resolve_weights("resnet50", "imagenet") == str(cached)
    with pytest.raises(WeightsError, match="compact"):
        resolve_weights("compact", "imagenet")


def test_weights_argument_errors_are_clear(tmp_path):
    assert resolve_weights("compact", "none") is None
    with pytest.raises(WeightsError, match="no such file"):
        resolve_weights("resnet50", str(tmp_path / "missing.h5"))
    (tmp_path / "w.txt").write_text("x")
    with pytest.raises(WeightsError, match="weights file"):
        resolve_weights("resnet50", str(tmp_path / "w.txt"))
    with pytest.raises(ValueError, match="unknown backbone"):
        resolve_weights("vgg", "none")


def test_cli_imagenet_offline_exits_before_reading_any_image(tmp_path, empty_keras_home):
    from click.testing import CliRunner

    from cleaner.cli import main

    (tmp_path / "normals").mkdir()
    result = CliRunner().invoke(
        main, ["train-detector", "rotation", "--normals", str(tmp_path / "normals"), "--out", str(tmp_path / "b")]
    )
    assert result.exit_code == 2
    assert "--weights none" in result.output and "decoding" not in result.output
    assert not (tmp_path / "b").exists()


@pytest.fixture(scope="module")
def donor_resnet50():
    keras.utils.set_random_seed(1)
    return keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg")


@pytest.mark.parametrize("file_name", ["resnet50_notop.weights.h5", "resnet50_notop.h5"])
def test_resnet50_weights_path_route_loads_the_file_the_test_writes(tmp_path, donor_resnet50, file_name):
    """Keras 3 ``.weights.h5`` and the legacy ``.h5`` layout of the file Keras caches for imagenet."""
    path = tmp_path / file_name
    if file_name.endswith(".weights.h5"):
        donor_resnet50.save_weights(path)
    else:
        import h5py
        from keras.src.legacy.saving import legacy_h5_format

        with h5py.File(path, "w") as f:
            legacy_h5_format.save_weights_to_hdf5_group(f, donor_resnet50)
    keras.utils.set_random_seed(2)  # a fresh build would differ without the file
    model, base = build("resnet50", 32, resolve_weights("resnet50", str(path)))
    assert base is not None
    for got, want in zip(base.get_weights(), donor_resnet50.get_weights()):
        np.testing.assert_array_equal(got, want)
    assert model.input_shape == (None, 32, 32, 1) and model.output_shape == (None, 1)
    assert {layer.momentum for layer in _bn_layers(model)} == {BN_MOMENTUM}


def test_mismatched_weights_file_is_a_clear_error(tmp_path):
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    path = tmp_path / "other.weights.h5"
    other.save_weights(path)
    with pytest.raises(WeightsError, match="cannot load"):
        build("compact", 32, str(path))


def test_every_batchnorm_layer_has_momentum_0_9_resnet50_included():
    model, _ = build("resnet50", 32)
    bns = _bn_layers(model)
    assert len(bns) == 53  # all of ResNet50's, inside the nested application model
    assert {layer.momentum for layer in bns} == {BN_MOMENTUM}
    compact, _ = build("compact", 32)
    assert _bn_layers(compact) and {layer.momentum for layer in _bn_layers(compact)} == {BN_MOMENTUM}


def test_compact_model_is_small_and_takes_grey_unit_input(tmp_path):
    model, base = build("compact", 256)
    assert base is None and model.input_shape == (None, 256, 256, 1)
    model.save(tmp_path / "m.keras")
    assert (tmp_path / "m.keras").stat().st_size <= 5 * 1024 * 1024
    out = np.asarray(model(np.random.default_rng(0).random((2, 256, 256, 1), dtype=np.float32)))
    assert out.shape == (2, 1) and ((out >= 0) & (out <= 1)).all()


def test_recalibration_replaces_stale_batchnorm_statistics():
    """Moving statistics left from other data are replaced by the average over the given batches."""
    model, _ = build("compact", 32)
    rng = np.random.default_rng(0)
    batches = [(rng.random((8, 32, 32, 1), dtype=np.float32) * 0.2 + 0.7, None) for _ in range(4)]
    first_bn = _bn_layers(model)[0]
    before = np.asarray(first_bn.moving_mean).copy()
    used = backbones.recalibrate_batchnorm(model, batches)
    assert used == 4
    # expected: the mean over batches of each batch's per-channel mean of the stem conv output
    stem = keras.Model(model.input, model.get_layer("stem_conv").output)
    want = np.mean([np.asarray(stem(x)).mean(axis=(0, 1, 2)) for x, _ in batches], axis=0)
    np.testing.assert_allclose(np.asarray(first_bn.moving_mean), want, rtol=1e-3, atol=1e-5)
    assert not np.allclose(before, want)
    assert first_bn.momentum == BN_MOMENTUM



def test_bundle_keeps_the_trained_model_without_optimizer_state(tmp_path):
    """A bundle only predicts: Adam's two moment tensors per weight would triple the file."""
    import keras

    from detectors.bundle import load, save_bundle

    model, _ = build("compact", 32)
    x = np.random.default_rng(0).random((16, 32, 32, 1), dtype=np.float32)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    model.fit(x, np.r_[np.zeros(8), np.ones(8)], epochs=3, verbose=0)
    model.save(tmp_path / "with_optimizer.keras")
    save_bundle(model, {"name": "t", "kind": "flip", "input": {"size": 32}, "threshold": 0.5}, tmp_path / "b")
    assert (tmp_path / "b" / "model.keras").stat().st_size < 0.6 * (tmp_path / "with_optimizer.keras").stat().st_size
    np.testing.assert_allclose(load(tmp_path / "b").predict(x), model.predict(x, verbose=0).reshape(-1), atol=1e-6)


def test_a_bundles_model_file_seeds_a_new_compact_model(tmp_path):
    """Adapting a detector to one's own archive starts from a bundle: --weights BUNDLE/model.keras."""
    from detectors.bundle import save_bundle

    donor, _ = build("compact", 32)
    donor.set_weights([w + np.float32(0.01) * (i + 1) for i, w in enumerate(donor.get_weights())])
    save_bundle(donor, {"name": "t", "kind": "flip", "input": {"size": 32}, "threshold": 0.5}, tmp_path / "b")
    path = resolve_weights("compact", str(tmp_path / "b" / "model.keras"))
    seeded, _ = build("compact", 32, path)
    for got, want in zip(seeded.get_weights(), donor.get_weights()):
        np.testing.assert_array_equal(got, want)
    bigger, _ = build("compact", 64, path)  # the compact layout head pools to 4x4: any input size takes them
    np.testing.assert_array_equal(bigger.get_weights()[0], donor.get_weights()[0])
    with pytest.raises(WeightsError, match="cannot load"):
        build("resnet50", 32, path)  # another backbone: refused with the file named, not half-loaded


def test_an_input_pool_averages_the_larger_input_down_for_the_backbone():
    """flip's backbone reads the glyph reader's 4x larger input; it must see that input's 4x4 means."""
    pooled, _ = build("compact", 16, input_pool=4)
    plain, _ = build("compact", 16)
    assert tuple(pooled.inputs[0].shape[1:3]) == (64, 64)
    plain.set_weights(pooled.get_weights())
    x = np.random.default_rng(0).random((3, 64, 64, 1), dtype=np.float32)
    means = x.reshape(3, 16, 4, 16, 4, 1).mean(axis=(2, 4))
    np.testing.assert_allclose(pooled.predict(x, verbose=0), plain.predict(means, verbose=0), atol=1e-5)
    with pytest.raises(ValueError, match="at least 1"):
        build("compact", 16, input_pool=0)


def test_a_glyph_reading_bundle_seeds_its_backbone_by_layer_name(tmp_path):
    """The default flip bundle holds a glyph reader beside its backbone; --weights on its model file still
    seeds a compact backbone (with the same input pool), and a backbone it does not hold is still refused."""
    from detectors import glyphs
    from detectors.bundle import save_bundle

    donor, _ = build("compact", 16, input_pool=4)
    donor.set_weights([w + np.float32(0.01) * (i + 1) for i, w in enumerate(donor.get_weights())])
    combined = glyphs.with_reader(donor, glyphs.build_reader(width=0.25))
    save_bundle(combined, {"name": "t", "kind": "flip", "input": {"size": 64}, "threshold": 0.5}, tmp_path / "b")
    path = resolve_weights("compact", str(tmp_path / "b" / "model.keras"))
    seeded, _ = build("compact", 16, path, input_pool=4)
    for got, want in zip(seeded.get_weights(), donor.get_weights()):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(WeightsError, match="cannot load"):
        build("resnet50", 32, path)


def test_an_inverse_comparator_votes_region_by_region_and_scores_a_film_and_its_inversion_oppositely(tmp_path):
    """compare_with_inverse: every cell of the backbone's last feature map gives g(x) - g(1 - x) and the film's
    log-odds is their trimmed mean, so an image and its inversion get exactly opposite log-odds; both
    polarities go through batch normalisation as one batch, in training as in scanning."""
    from detectors.bundle import load, save_bundle

    plain, _ = build("compact", 128, dropout=0.0)
    rng = np.random.default_rng(0)
    x = rng.random((5, 128, 128, 1), dtype=np.float32)
    x[:, :64] *= 0.3  # not symmetric in itself: its inversion must look different to g
    plain.set_weights([w + np.float32(0.05) * rng.standard_normal(w.shape).astype(np.float32) for w in plain.get_weights()])
    backbones.recalibrate_batchnorm(plain, [(np.concatenate([x, 1 - x]), None)])  # signal of order 1, not 1e-8
    model = backbones.compare_with_inverse(plain)
    model.get_layer("polarity_branch").get_layer("cell_logit").set_weights([np.float32(0.1) * rng.standard_normal((1, 1, 192, 1)).astype(np.float32),
                                               np.zeros(1, np.float32)])
    logit = keras.Model(model.inputs[0], model.get_layer("logit").output)
    a, b = logit.predict(x, verbose=0), logit.predict(1 - x, verbose=0)
    np.testing.assert_allclose(a, -b, atol=1e-5)
    branch = model.get_layer("polarity_branch")
    assert branch.output.shape[1:] == (4, 4, 1)
    votes = np.sort((branch.predict(x, verbose=0) - branch.predict(1 - x, verbose=0)).reshape(5, 16), axis=1)
    np.testing.assert_allclose(a[:, 0], votes[:, 4:12].mean(axis=1), atol=1e-5)  # the 4 lowest and 4 highest left out
    assert np.abs(a).max() > 1e-3 and not np.allclose(a[:, 0], votes.mean(axis=1), atol=1e-4)
    np.testing.assert_allclose(model.predict(x, batch_size=2, verbose=0), model.predict(x, batch_size=5, verbose=0), atol=1e-6)
    # batch statistics over both polarities at once: recalibrated on this batch, training mode == scanning mode
    assert backbones.recalibrate_batchnorm(model, [(x, None)]) == 1
    np.testing.assert_allclose(model(x, training=True).numpy(), model(x, training=False).numpy(), atol=1e-3)
    save_bundle(model, {"name": "t", "kind": "inversion", "input": {"size": 128}, "threshold": 0.5}, tmp_path / "b")
    np.testing.assert_allclose(load(tmp_path / "b").predict(x), model.predict(x, verbose=0).reshape(-1), atol=1e-6)


def test_a_few_regions_cannot_outvote_the_film():
    """The trimmed mean: three cells of 16 voting +100 (a label box in a corner) leave the rest's -1 standing,
    where a plain mean would have flipped the film."""
    from detectors.layers import TrimmedMean

    votes = np.full((2, 16), -1.0, np.float32)
    votes[0, :3] = 100.0
    votes[1] = np.arange(16)
    got = np.asarray(TrimmedMean(0.25)(votes))
    np.testing.assert_allclose(got[:, 0], [-1.0, np.arange(4, 12).mean()])
    assert votes[0].mean() > 0


def test_a_resnet50_comparator_votes_over_its_feature_map():
    model = backbones.compare_with_inverse(build("resnet50", 64)[0])
    assert model.get_layer("polarity_branch").output.shape[1:] == (2, 2, 1)
    x = np.random.default_rng(1).random((2, 64, 64, 1), dtype=np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0) + model.predict(1 - x, verbose=0), 1.0, atol=1e-5)


def test_a_mirror_comparator_scores_a_film_and_its_mirror_to_sum_to_one(tmp_path):
    """compare_with_mirror: log-odds g(x) - g(mirror x), so a film and its mirror get opposite log-odds (their
    scores sum to 1) through the bundle round trip; side bands mirror exactly with the film, so reading them
    keeps where a marker is."""
    from detectors import glyphs
    from detectors.bundle import load, save_bundle
    from detectors.layers import SideBands

    plain, _ = build("compact", 64, dropout=0.0, input_pool=2)
    rng = np.random.default_rng(0)
    plain.set_weights([w + np.float32(0.05) * rng.standard_normal(w.shape).astype(np.float32) for w in plain.get_weights()])
    x = rng.random((4, 128, 128, 1), dtype=np.float32)
    x[:, :, :40] *= 0.4  # not mirror-symmetric in itself
    backbones.recalibrate_batchnorm(plain, [(np.concatenate([x, x[:, :, ::-1]]), None)])  # signal of order 1
    model = backbones.compare_with_mirror(plain)
    s, m = model.predict(x, verbose=0), model.predict(x[:, :, ::-1], verbose=0)
    np.testing.assert_allclose(s + m, 1.0, atol=1e-5)
    assert np.abs(s - 0.5).max() > 1e-3
    bands = np.asarray(SideBands(0.25)(x))
    assert bands.shape == (4, 128, 64, 1)
    np.testing.assert_array_equal(np.asarray(SideBands(0.25)(x[:, :, ::-1])), bands[:, :, ::-1])
    full = glyphs.with_reader(model, glyphs.build_reader(0.5, fast=True), bands=0.25)
    save_bundle(full, {"name": "f", "kind": "flip", "input": {"size": 128}, "threshold": 0.5}, tmp_path / "b")
    np.testing.assert_allclose(load(tmp_path / "b").predict(x), full.predict(x, verbose=0).reshape(-1), atol=1e-6)


def test_with_the_reader_also_reading_the_mirror_the_whole_score_sums_to_one_with_its_mirror(tmp_path):
    """Flip v3 (decision 0017): the side evidence is (side(x) - side(mirror x)) / 2, so the whole score of a film and
    of its mirror sum to 1, through the bundle round trip; reading once, as v2 does, they need not."""
    from detectors import glyphs
    from detectors.bundle import load, save_bundle

    plain, _ = build("compact", 64, dropout=0.0, input_pool=2)
    rng = np.random.default_rng(3)
    x = rng.random((4, 128, 128, 1), dtype=np.float32)
    x[:, :, :40] *= 0.4
    model = backbones.compare_with_mirror(plain)
    reader = glyphs.build_reader(0.5, fast=True)
    reader.set_weights([w + np.float32(0.3) * rng.standard_normal(w.shape).astype(np.float32) for w in reader.get_weights()])
    once = glyphs.with_reader(model, reader, bands=0.25)
    both = glyphs.with_reader(model, reader, bands=0.25, mirrored=True)
    s, m = both.predict(x, verbose=0), both.predict(x[:, :, ::-1], verbose=0)
    np.testing.assert_allclose(s + m, 1.0, atol=1e-5)
    assert np.abs(once.predict(x, verbose=0) + once.predict(x[:, :, ::-1], verbose=0) - 1.0).max() > 1e-3
    save_bundle(both, {"name": "f", "kind": "flip", "input": {"size": 128}, "threshold": 0.5}, tmp_path / "b")
    np.testing.assert_allclose(load(tmp_path / "b").predict(x), s.reshape(-1), atol=1e-6)
    # two readers (flip v4): their side evidence is averaged, so the log-odds are the mean of the two one-reader models'
    other = glyphs.build_reader(0.5, fast=True)
    other.set_weights([w + np.float32(0.3) * rng.standard_normal(w.shape).astype(np.float32) for w in other.get_weights()])
    pair = glyphs.with_reader(model, [reader, other], bands=0.25, mirrored=True)
    alone = glyphs.with_reader(model, other, bands=0.25, mirrored=True)
    logit = lambda p: np.log(p / (1 - p))
    got = pair.predict(x, verbose=0)
    np.testing.assert_allclose(logit(got), (logit(s) + logit(alone.predict(x, verbose=0))) / 2, atol=1e-3)
    np.testing.assert_allclose(got + pair.predict(x[:, :, ::-1], verbose=0), 1.0, atol=1e-5)
    save_bundle(pair, {"name": "f", "kind": "flip", "input": {"size": 128}, "threshold": 0.5}, tmp_path / "p")
    np.testing.assert_allclose(load(tmp_path / "p").predict(x), got.reshape(-1), atol=1e-6)
