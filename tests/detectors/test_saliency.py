"""Saliency maps: Grad-CAM finds the conv layer (also inside a nested backbone), follows what a
trained rotation detector looks at, and falls back to occlusion when there is no conv layer."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from cleaner.io.preprocess import InputSpec  # noqa: E402
from detectors.bundle import load, save_bundle  # noqa: E402
from detectors.layers import GreyToBackboneInput  # noqa: E402
from detectors.saliency import _run_layer, find_last_conv, overlay, saliency  # noqa: E402

SIZE = 64


def object_image(rng: np.random.Generator, rotate: int) -> np.ndarray:
    """An asymmetric bright object (a big blob, a small blob up-right of it, a bar below) jittered
    around the centre of a noisy background; ``rotate`` quarter turns plant the artefact."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    cy, cx = SIZE / 2 + rng.integers(-3, 4), SIZE / 2 + rng.integers(-3, 4)
    img = 0.03 * rng.standard_normal((SIZE, SIZE)).astype(np.float32)  # dark, like collimation
    img += 0.6 * np.exp(-(((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 4.0**2)))
    img += 0.6 * np.exp(-(((yy - cy + 7) ** 2 + (xx - cx - 6) ** 2) / (2 * 2.0**2)))
    img += 0.5 * ((np.abs(yy - cy - 7) < 2) & (np.abs(xx - cx) < 6))
    return np.rot90(np.clip(img, 0, 1), k=rotate)[..., None].astype(np.float32)


def train_rotation_model(seed: int = 0):
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for i in range(480):
        rot = int(rng.integers(1, 4)) if i % 2 else 0
        xs.append(object_image(rng, rot))
        ys.append(1.0 if rot else 0.0)
    x, y = np.stack(xs), np.array(ys, dtype=np.float32)
    inp = keras.Input((SIZE, SIZE, 1))
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inp)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(h)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="last_conv")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(h))
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=20, batch_size=32, verbose=0, shuffle=True)
    return model


@pytest.fixture(scope="module")
def rotation_bundle(tmp_path_factory):
    model = train_rotation_model()
    info = {"name": "rotation", "kind": "rotation", "input": InputSpec(size=SIZE).to_dict(), "threshold": 0.5}
    return load(save_bundle(model, info, tmp_path_factory.mktemp("bundle") / "rotation"))


@pytest.mark.slow
def test_gradcam_lights_up_the_object_not_the_border(rotation_bundle):
    rng = np.random.default_rng(123)
    planted = np.stack([object_image(rng, rot) for rot in (1, 2, 3, 1, 2, 3)])
    normal = np.stack([object_image(rng, 0) for _ in range(6)])
    scores = rotation_bundle.predict(np.concatenate([planted, normal]))
    assert scores[:6].mean() > 0.8 and scores[6:].mean() < 0.2, f"the tiny detector did not learn: {scores}"
    res = saliency(rotation_bundle.model, planted)
    assert res.method == "gradcam" and res.layer == "last_conv"
    assert res.maps.shape == (6, SIZE, SIZE) and res.maps.min() >= 0 and res.maps.max() <= 1
    lo, hi = SIZE // 4, 3 * SIZE // 4  # the central half of each side: a quarter of the area
    for m in res.maps:
        centre = m[lo:hi, lo:hi].sum()
        border = m.sum() - centre
        assert centre > border, f"Grad-CAM mass centre {centre:.1f} <= border {border:.1f}"


def _nested_resnet():
    inp = keras.Input((SIZE, SIZE, 1))
    x = GreyToBackboneInput(3, 255.0, (103.9, 116.8, 123.7))(inp)
    backbone = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(backbone(x))
    return keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(x))


def test_gradcam_finds_the_last_conv_inside_a_nested_backbone():
    keras.utils.set_random_seed(1)
    model = _nested_resnet()
    path = find_last_conv(model)
    assert [layer.name for layer in path[1:]] == ["resnet50", "conv5_block3_3_conv"]
    batch = np.random.default_rng(0).random((2, SIZE, SIZE, 1), dtype=np.float32)
    # running the graph node by node gives the model's own output
    stash = {"watch": lambda t: None}
    np.testing.assert_allclose(np.asarray(_run_layer(model, batch, path, stash)), np.asarray(model(batch, training=False)), atol=1e-5)
    assert np.asarray(stash["activations"]).shape[1:3] == (2, 2)
    res = saliency(model, batch)
    assert res.method == "gradcam" and res.layer == "resnet50/conv5_block3_3_conv"
    assert res.maps.shape == (2, SIZE, SIZE) and np.isfinite(res.maps).all()


def test_sequential_model_and_occlusion_fallback():
    keras.utils.set_random_seed(2)
    seq = keras.Sequential([keras.Input((32, 32, 1)), keras.layers.Conv2D(4, 3, activation="relu", name="c1"),
                            keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1, activation="sigmoid")])
    batch = np.random.default_rng(0).random((3, 32, 32, 1), dtype=np.float32)
    assert saliency(seq, batch).layer == "c1"
    # a model with no conv layer: occlusion sensitivity, which follows the one pixel region that matters
    inp = keras.Input((32, 32, 1))
    flat = keras.layers.Flatten()(inp)
    dense = keras.layers.Dense(1, activation="sigmoid", use_bias=False)
    model = keras.Model(inp, dense(flat))
    w = np.zeros((32 * 32, 1), dtype=np.float32)
    region = np.zeros((32, 32), dtype=bool)
    region[4:10, 20:28] = True
    w[region.reshape(-1)] = 0.05  # keeps the sigmoid off saturation
    dense.set_weights([w])
    res = saliency(model, np.ones((1, 32, 32, 1), dtype=np.float32))
    assert res.method == "occlusion" and res.layer is None
    m = res.maps[0]
    assert m[region].mean() > 3 * m[~region].mean()
    with pytest.raises(ValueError, match="no 2-D convolution"):
        saliency(model, batch, method="gradcam")


def test_overlay_is_rgb_and_keeps_the_image_where_cold():
    grey = np.linspace(0, 1, 40 * 30, dtype=np.float32).reshape(40, 30)
    heat = np.zeros((10, 10), dtype=np.float32)
    heat[4:6, 4:6] = 1
    rgb = overlay(grey, heat)
    assert rgb.shape == (40, 30, 3) and rgb.dtype == np.uint8
    assert np.abs(rgb[0, 0].astype(int) - round(grey[0, 0] * 255)).max() <= 1  # cold corner untouched
    assert np.abs(rgb[20, 15].astype(int) - round(grey[20, 15] * 255)).max() > 20  # hot centre coloured


def test_overlay_colours_are_matplotlibs_jet():
    """The palette is a table read off matplotlib's 'jet' once: the colours of calling the colormap (to one
    level of 255, from the order of the blend's float operations)."""
    from matplotlib import colormaps

    rng = np.random.default_rng(0)
    grey = rng.random((33, 47)).astype(np.float32)
    heat = rng.random((33, 47)).astype(np.float32)
    heat[0, :3] = [0.0, 1.0, 255 / 256]
    colour = colormaps["jet"](heat)[..., :3].astype(np.float32)
    weight = 0.45 * heat[..., None] ** 0.5
    expected = (np.clip(grey[..., None] * (1 - weight) + colour * weight, 0, 1) * 255).round().astype(np.uint8)
    assert np.abs(overlay(grey, heat).astype(int) - expected).max() <= 1  # the blend's float rounding order


def test_empty_gradcam_falls_back_to_the_input_gradient_per_image():
    """A conv branch that is dead (ReLU of a large negative bias) gives an all-zero Grad-CAM; the
    score still depends on the image through another branch, which the input's gradient finds (no
    occlusion: that costs tens of passes per image)."""
    keras.utils.set_random_seed(3)
    inp = keras.Input((32, 32, 1))
    conv = keras.layers.Conv2D(2, 3, padding="same", activation="relu", bias_initializer=keras.initializers.Constant(-100.0))
    dead = keras.layers.GlobalAveragePooling2D()(conv(inp))
    live = keras.layers.Dense(1, use_bias=False, name="live")(keras.layers.Flatten()(inp))
    merged = keras.layers.Concatenate()([dead, live])
    head = keras.layers.Dense(1, activation="sigmoid", use_bias=False, name="head")
    model = keras.Model(inp, head(merged))
    w = np.zeros((32 * 32, 1), dtype=np.float32)
    w.reshape(32, 32)[8:16, 8:16] = 0.05
    model.get_layer("live").set_weights([w])
    head.set_weights([np.array([[0.0], [0.0], [1.0]], dtype=np.float32)])
    batch = np.ones((2, 32, 32, 1), dtype=np.float32)
    res = saliency(model, batch)
    assert res.method == "gradcam" and res.fallback == [0, 1]
    assert [res.image_method(i) for i in range(2)] == ["gradient", "gradient"]
    assert all(m[8:16, 8:16].mean() > 3 * m.mean() for m in res.maps)
    strict = saliency(model, batch, method="gradcam")
    assert strict.fallback == [] and not strict.maps.any()
    asked = saliency(model, batch, method="occlusion")
    assert asked.method == "occlusion" and all(m[8:16, 8:16].mean() > 2 * m.mean() for m in asked.maps)


def test_compiled_gradcam_equals_the_eager_computation_and_pads_the_last_batch(rotation_bundle):
    """The compiled pass (fixed batch shape, last batch padded with zeros) gives the maps an eager
    gradient tape gives, image by image, whatever the batch it came in."""
    import tensorflow as tf

    from detectors.saliency import Explainer, _cam, _logit_output, _normalise, _resize_maps

    model = rotation_bundle.model
    rng = np.random.default_rng(7)
    batch = np.stack([object_image(rng, k % 4) for k in range(37)])  # 32 + 5: one full batch, one padded
    explainer = Explainer(model)
    assert explainer.batch_size(SIZE, SIZE) == 32
    res = explainer.explain(batch)
    conv = model.get_layer("last_conv")
    probe = keras.Model(model.inputs, [conv.output, model.output])
    x = tf.convert_to_tensor(batch)
    with tf.GradientTape() as tape, _logit_output(model):  # the logit, not the sigmoid, as the explainer does
        acts, logit = probe(x, training=False)
        score = tf.reduce_sum(logit)
    grads = tape.gradient(score, acts)
    expected = _normalise(_resize_maps(_cam(np.asarray(acts), np.asarray(grads), len(batch)), SIZE, SIZE))
    np.testing.assert_allclose(res.maps, expected, atol=1e-4)
    np.testing.assert_allclose(explainer.explain(batch[33:35]).maps, expected[33:35], atol=1e-4)


def test_saturated_sigmoid_still_has_a_gradcam_map():
    """A detector that is sure (score rounds to 1.0 in float32) still gets a map: Grad-CAM is taken
    on the logit, and the model's own output is left unchanged afterwards."""
    keras.utils.set_random_seed(4)
    inp = keras.Input((16, 16, 1))
    h = keras.layers.Conv2D(2, 3, padding="same", activation="relu", kernel_initializer="ones", name="c")(inp)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inp, keras.layers.Dense(1, activation="sigmoid", kernel_initializer=keras.initializers.Constant(50.0))(h))
    batch = np.zeros((1, 16, 16, 1), dtype=np.float32)
    batch[0, 4:8, 4:8] = 1.0
    assert float(np.asarray(model(batch))[0, 0]) == 1.0
    res = saliency(model, batch)
    assert res.fallback == [] and res.maps[0].max() == 1.0
    assert res.maps[0][4:8, 4:8].mean() > 3 * res.maps[0][10:, 10:].mean()
    assert float(np.asarray(model(batch))[0, 0]) == 1.0  # the sigmoid is back


def test_gradcam_of_an_inverse_comparator_gives_one_map_per_image():
    """compare_with_inverse runs its conv layers on each film and its inversion in one batch (2N maps):
    each image gets one map, made of its own two views only, whatever else is in the batch."""
    from detectors import backbones

    keras.utils.set_random_seed(2)
    plain, _ = backbones.build("compact", SIZE, dropout=0.0)
    rng = np.random.default_rng(3)
    batch = np.stack([object_image(rng, k % 4) for k in range(3)])
    backbones.recalibrate_batchnorm(plain, [(np.concatenate([batch, 1 - batch]), None)])
    model = backbones.compare_with_inverse(plain)
    res = saliency(model, batch, method="gradcam")
    assert res.layer.startswith("polarity_branch/")
    assert res.maps.shape == (3, SIZE, SIZE) and res.maps.max() == 1.0
    for i in range(3):
        np.testing.assert_allclose(saliency(model, batch[i : i + 1], method="gradcam").maps[0], res.maps[i], atol=1e-4)


def _glyph_model(readers: int = 1):
    """A flip-like model built the way the bundled one is (``glyphs.with_reader``): a compact anatomy backbone
    plus a 'reader' whose maps we set by hand: marker_L where the film is bright, marker_R where it is black. With
    two readers (as flip v4) the first reads only the L and the second only the R."""
    from detectors import backbones
    from detectors.glyphs import MAPS_LAYER, with_reader

    keras.utils.set_random_seed(5)
    anatomy, _ = backbones.build("compact", SIZE, dropout=0.0)
    kernel = np.array([0.0, 0.0, 20.0, -20.0], dtype=np.float32)
    bias = np.array([-5.0, -5.0, -10.0, 2.0], dtype=np.float32)
    keep = [(2, 3)] if readers == 1 else [(2,), (3,)]  # the marker channels each reader reads
    made = []
    for channels in keep:
        inp = keras.Input((None, None, 1))
        reader = keras.Model(inp, keras.layers.Conv2D(4, 1, name=MAPS_LAYER)(inp))
        off = [c in (2, 3) and c not in channels for c in range(4)]  # one reader: the weights as set above
        reader.get_layer(MAPS_LAYER).set_weights([np.where(off, 0.0, kernel).astype(np.float32).reshape(1, 1, 1, 4),
                                                   np.where(off, -30.0, bias).astype(np.float32)])
        made.append(reader)
    return with_reader(anatomy, made if readers > 1 else made[0])


@pytest.mark.parametrize("readers", [1, 2])
def test_glyph_reader_overlay_shows_where_the_markers_were_read(readers):
    """For a glyph-reading detector, Grad-CAM runs over the anatomy (not the reader, whose max-over-positions
    has no useful gradient) and the side markers are read from the reader's maps as the score reads them; with two
    readers (flip v4), each one's marks."""
    from detectors.saliency import Explainer

    model = _glyph_model(readers)
    film = np.full((1, SIZE, SIZE, 1), 0.3, dtype=np.float32)
    film[0, 4:8, 4:8] = 1.0  # an "L" on the image's left: mirrored
    film[0, 50:54, 8:12] = 0.0  # an "R" on the image's left: upright
    explainer = Explainer(model)
    assert explainer.layer == "layout_reduce" and "glyph_maps" in explainer.taps
    res = explainer.explain(film)
    assert res.method == "gradcam" and res.image_method(0) == "gradcam+markers" and res.maps.shape == (1, SIZE, SIZE)
    marks = {(m.letter, m.says): m for m in res.marks[0]}
    assert set(marks) == {("L", "mirrored"), ("R", "upright")}
    assert 4 / SIZE <= marks["L", "mirrored"].y <= 8 / SIZE and 4 / SIZE <= marks["L", "mirrored"].x <= 8 / SIZE
    assert 50 / SIZE <= marks["R", "upright"].y <= 54 / SIZE and 8 / SIZE <= marks["R", "upright"].x <= 12 / SIZE
    plain = np.full((1, SIZE, SIZE, 1), 0.3, dtype=np.float32)
    assert explainer.explain(plain).marks == [[]]


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_marks_turn_back_onto_the_film_as_it_lies(k):
    """A film scored turned upright (``np.rot90(film, k)``) shows its marks where they are on the film as it lies."""
    from detectors.glyph_saliency import read_marks

    maps = np.full((8, 12, 4), -1.0, dtype=np.float32)
    maps[1, 2, 2] = 5.0  # an L at row 1, column 2
    mark = read_marks(np.rot90(maps, k)[None])[0][0].turned_back(k)
    assert mark.letter == "L" and abs(mark.y - 1.5 / 8) < 1e-6 and abs(mark.x - 2.5 / 12) < 1e-6


def test_default_flip_bundle_is_explained_by_anatomy_and_markers():
    from detectors.bundle import default_bundles_dir
    from detectors.saliency import Explainer

    root = default_bundles_dir()
    if root is None or not (root / "flip").is_dir():
        pytest.skip("no bundled flip detector")
    flip = load(root / "flip")
    explainer = Explainer(flip.model)
    assert "glyph_reader" not in explainer.layer and "glyph_maps" in explainer.taps
    bands = (flip.info.get("assembled_from") or {}).get("bands") or flip.info["training"]["glyph_reader"].get("bands")
    assert explainer.bands == bands and explainer.mirrored_views == bool(flip.info["training"].get("compares_mirror"))
    size = flip.info["input"]["size"]
    res = explainer.explain(np.random.default_rng(0).random((1, size, size, 1), dtype=np.float32))
    assert res.maps.shape == (1, size, size) and res.marks is not None and len(res.marks) == 1


def test_marks_read_on_side_bands_are_placed_on_the_film():
    """A reader of the side bands (flip v2) sees [left band | right band]: its marks are put back where they are
    on the film, and which side they are on (what the score counts) is unchanged."""
    from detectors.glyph_saliency import read_marks

    maps = np.full((8, 10, 4), -1.0, dtype=np.float32)
    maps[2, 1, 2] = 5.0  # an L in the left band, 0.15 of the way across the bands image
    maps[5, 8, 3] = 4.0  # an R in the right band, 0.85 of the way
    marks = {m.letter: m for m in read_marks(maps[None], bands=0.2)[0]}
    assert abs(marks["L"].x - 0.4 * 0.15) < 1e-6 and marks["L"].says == "mirrored"
    assert abs(marks["R"].x - (1 - 0.4 * 0.15)) < 1e-6 and marks["R"].says == "mirrored"
    assert abs(marks["L"].y - 2.5 / 8) < 1e-6


def test_grad_cam_of_a_mirror_comparator_maps_both_views_onto_the_film():
    """The mirror view's activations are mirrored back before the views are summed: evidence at the film's left
    edge, seen by the film (column 0) and by its mirror (last column), lands on the left edge only."""
    from detectors.saliency import _cam

    acts = np.zeros((2, 1, 4, 1), np.float32)  # view 0 (the film), view 1 (its mirror); one image
    acts[0, 0, 0, 0] = 1.0
    acts[1, 0, 3, 0] = 1.0
    grads = np.ones_like(acts)
    assert _cam(acts, grads, 1, mirrored_views=True)[0, 0].tolist() == [2.0, 0.0, 0.0, 0.0]
    assert _cam(acts, grads, 1)[0, 0].tolist() == [1.0, 0.0, 0.0, 1.0]
