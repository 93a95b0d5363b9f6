"""Backbones: ``resnet50`` (keras.applications, ImageNet or given weights) and ``compact`` (small, for CPUs).

Every model takes (size, size, 1) in [0, 1] and returns (N, 1) probabilities; the backbone's own
input convention lives inside it (``GreyToBackboneInput``). Every BatchNormalization layer gets
momentum 0.9: with few steps per epoch Keras's default 0.99 leaves the moving statistics
unsettled, so validation AUC looks fine while predictions at 0.5 collapse to one class.
"""
from __future__ import annotations

import os
from pathlib import Path

from cleaner.io.errors import CxcleanError, UserInputError

BACKBONES = ("resnet50", "compact")
BN_MOMENTUM = 0.9
#: ImageNet channel means (BGR) for ResNet50's 'caffe' input convention: x * 255 - mean.
CAFFE_MEANS = (103.939, 116.779, 123.68)
RESNET50_NOTOP_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"


class WeightsError(CxcleanError, ValueError):
    """Backbone weights that cannot be had (offline ImageNet, missing or mismatched file)."""


def keras_cache_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def resolve_weights(backbone: str, weights: str | None) -> str | None:
    """``None`` (random init) or a path to a weights file; raises ``WeightsError`` at once when unavailable.

    ``imagenet`` is looked for in Keras's cache only: this never downloads, so an offline machine
    fails in a second instead of after a network timeout.
    """
    if backbone not in BACKBONES:
        raise UserInputError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    if weights in (None, "", "none"):
        return None
    if weights == "imagenet":
        if backbone != "resnet50":
            raise WeightsError(f"no ImageNet weights exist for the {backbone!r} backbone; use --weights none")
        cached = keras_cache_dir() / RESNET50_NOTOP_FILE
        if cached.is_file():
            return str(cached)
        raise WeightsError(
            f"ImageNet weights for ResNet50 are not on this machine ({cached} is missing) and cxclean does "
            "not download them. Either copy the file there from a machine with internet "
            f"(https://storage.googleapis.com/tensorflow/keras-applications/resnet/{RESNET50_NOTOP_FILE}), "
            "or pass it with --weights PATH, or train from scratch with --weights none."
        )
    path = Path(weights)
    if not path.is_file():
        raise WeightsError(f"--weights {weights}: no such file (give imagenet, none, or a weights file path)")
    if not (path.name.endswith((".h5", ".hdf5", ".keras"))):
        raise WeightsError(f"--weights {weights}: expected a .weights.h5, .h5 or .keras weights file")
    return str(path)


def set_bn_momentum(model, momentum: float = BN_MOMENTUM) -> int:
    """Set ``momentum`` on every BatchNormalization layer, nested models included; returns how many."""
    import keras

    count = 0
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum
            count += 1
    return count


def recalibrate_batchnorm(model, batches, max_batches: int = 16) -> int:
    """Re-estimate every BatchNormalization layer's moving mean/variance under the current weights.

    Runs up to ``max_batches`` training batches forward in training mode (no weight updates) with
    momentum set so the moving statistics become the plain average over those batches, then
    restores momentum 0.9. Without it, a short epoch leaves statistics from older weights and the
    0.5 threshold is meaningless even when the AUC is high. Returns the number of batches used.
    """
    import keras

    bns = [layer for layer in _all_layers(model) if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable]
    if not bns:
        return 0
    used = 0
    try:
        for k in range(min(len(batches), max_batches)):
            x, _ = batches[k]
            for layer in bns:
                layer.momentum = k / (k + 1.0)  # cumulative average: the first batch replaces the old statistics
            model(x, training=True)
            used += 1
    finally:
        for layer in bns:
            layer.momentum = BN_MOMENTUM
    return used


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def build(backbone: str, size: int, weights: str | None = None, dropout: float = 0.3, input_pool: int = 1):
    """The classifier model for ``backbone``; ``weights`` as returned by ``resolve_weights``.

    With ``input_pool`` > 1 the model takes ``size * input_pool`` px and averages it down to ``size``
    in its first layer, so that a detector which also reads fine detail (flip's glyph reader) and its
    anatomy branch share one input, and the anatomy branch is trained on exactly what it scans.
    Returns (model, base): ``base`` is the pretrained part to freeze for a head-first phase.
    """
    if input_pool < 1:
        raise ValueError(f"input_pool must be at least 1, not {input_pool}")
    if backbone == "resnet50":
        model, base = _resnet50(size, weights, dropout, input_pool)
    elif backbone == "compact":
        model, base = _compact(size, dropout, input_pool), None
        if weights is not None:
            _load_weights(model, weights)
    else:
        raise ValueError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    set_bn_momentum(model)
    return model, base


#: the share of a film's regions at each end of the vote that ``compare_with_inverse`` leaves out
VOTE_TRIM = 0.25


def compare_with_inverse(model, trim: float = VOTE_TRIM):
    """``model``'s backbone as a comparator of each region of a film with the same region of its inversion.

    Each cell of the backbone's last feature map (4 x 4 for the compact backbone at 128 px) gives a
    log-odds ``g(x) - g(1 - x)``, and the film's log-odds is their trimmed mean (``trim`` of the cells at
    each end left out). So a film and its inversion always get opposite log-odds, whatever another
    hospital's films shift in ``g`` for both polarities alike (exposure, processing, wires) cancels, and a
    few regions cannot outvote the rest of the film (docs/decisions/0003).
    """
    import keras

    from .layers import HalvesDifference, TrimmedMean, WithComplement

    image = keras.Input(model.inputs[0].shape[1:], name="image")
    features = model.get_layer("global_pool").input
    dropout = model.get_layer("head_dropout").rate
    cells = keras.layers.Conv2D(1, 1, dtype="float32", name="cell_logit")(
        keras.layers.Dropout(dropout, name="cell_dropout")(features))
    branch = keras.Model(model.inputs[0], cells, name="polarity_branch")
    both = branch(WithComplement(name="with_complement")(image))  # one batch: BN sees both polarities
    votes = keras.layers.Flatten(name="cell_votes")(HalvesDifference(dtype="float32", name="cell_difference")(both))
    logit = TrimmedMean(trim, dtype="float32", name="logit")(votes)
    score = keras.layers.Activation("sigmoid", dtype="float32", name="score")(logit)
    return keras.Model(image, score, name=f"{model.name}_vs_inverse")


def compare_with_mirror(model):
    """``model``'s backbone as a comparator of a film with its own left-right mirror: log-odds
    ``(g(x) - g(mirror x)) / 2``, the mean of two readings of the same log-odds (the film says "mirrored" by
    ``g(x)``, its mirror says it by ``-g(mirror x)``).

    A film and its mirror always get opposite log-odds (their scores sum to 1), so whatever another hospital's
    films shift in ``g`` for both sides alike (exposure, processing, lines and wires) cancels, as it does for
    inversion's comparator (docs/decisions/0003, 0009)."""
    import keras

    from .layers import HalvesDifference, WithMirror

    image = keras.Input(model.inputs[0].shape[1:], name="image")
    branch = keras.Model(model.inputs[0], model.get_layer("logit").output, name="handedness_branch")
    both = branch(WithMirror(name="with_mirror")(image))
    difference = HalvesDifference(dtype="float32", name="mirror_difference")(both)
    logit = keras.layers.Rescaling(0.5, dtype="float32", name="logit")(difference)
    score = keras.layers.Activation("sigmoid", dtype="float32", name="score")(logit)
    return keras.Model(image, score, name=f"{model.name}_vs_mirror")


def _load_weights(model, weights: str):
    try:
        model.load_weights(weights)
    except Exception as exc:
        if not (weights.endswith(".keras") and _copy_weights_by_name(model, weights)):
            raise WeightsError(f"--weights {weights}: cannot load into this backbone ({type(exc).__name__}: {exc})") from None


def _copy_weights_by_name(model, weights: str) -> bool:
    """Seed ``model`` from a bundle's model file that holds more than this backbone (flip's glyph reader
    beside it): every layer with weights must find a layer of the same name and shapes there."""
    import keras

    from . import layers  # noqa: F401  registers cxclean's layers for the safe-mode load

    try:
        donor = keras.saving.load_model(weights, safe_mode=True, compile=False)
    except Exception:
        return False
    found = {layer.name: layer for layer in _all_layers(donor)}
    pairs = [(layer, found.get(layer.name)) for layer in model.layers if layer.weights]
    if not pairs or any(d is None or [w.shape for w in d.get_weights()] != [w.shape for w in t.get_weights()]
                        for t, d in pairs):
        return False
    for target, donor_layer in pairs:
        target.set_weights(donor_layer.get_weights())
    return True


def _head(x, dropout: float):
    import keras

    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    # float32 output even under mixed precision, for stable probabilities.
    logit = keras.layers.Dense(1, dtype="float32", name="logit")(x)
    return keras.layers.Activation("sigmoid", dtype="float32", name="score")(logit)


def _model_input(size: int, pool: int):
    """The (size * pool)-px image input and the tensor the backbone starts from (pooled to ``size``)."""
    import keras

    inputs = keras.Input((size * pool, size * pool, 1), name="image")
    return inputs, (keras.layers.AveragePooling2D(pool, name="input_pool")(inputs) if pool > 1 else inputs)


def _resnet50(size: int, weights: str | None, dropout: float, pool: int = 1):
    import keras

    from .layers import GreyToBackboneInput

    base = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(size, size, 3))
    if weights is not None:
        _load_weights(base, weights)
    inputs, x = _model_input(size, pool)
    x = GreyToBackboneInput(channels=3, scale=255.0, offsets=CAFFE_MEANS, name="to_resnet50")(x)
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(base(x))  # outside ``base``: its map stays reachable
    return keras.Model(inputs, _head(x, dropout), name="cxclean_resnet50"), (base if weights is not None else None)


def _compact(size: int, dropout: float, pool: int = 1):
    """About 0.2 M parameters (under 1 MB saved): separable conv blocks, then a head that keeps a
    coarse 4x4 layout (mirroring and rotation are about *where* things are) next to global pooling."""
    import keras
    from keras import layers

    from .layers import GreyToBackboneInput

    inputs, x = _model_input(size, pool)
    x = GreyToBackboneInput(channels=1, scale=2.0, offsets=(1.0,), name="to_unit_range")(x)
    x = layers.Conv2D(24, 5, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for stage, (filters, repeats) in enumerate([(32, 1), (64, 2), (128, 2), (192, 2)]):
        for r in range(repeats):
            x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=f"s{stage}_conv{r}")(x)
            x = layers.BatchNormalization(name=f"s{stage}_bn{r}")(x)
            x = layers.ReLU(name=f"s{stage}_relu{r}")(x)
        if x.shape[1] > 4:
            x = layers.MaxPooling2D(2, name=f"s{stage}_pool")(x)
    pooled = layers.GlobalAveragePooling2D(name="global_pool")(x)
    grid = x.shape[1] // 4 if x.shape[1] >= 4 else 1
    layout = layers.AveragePooling2D(grid, name="layout_pool")(x) if grid > 1 else x
    layout = layers.Conv2D(32, 1, activation="relu", name="layout_reduce")(layout)
    layout = layers.Flatten(name="layout_flat")(layout)
    x = layers.Concatenate(name="features")([pooled, layout])
    return keras.Model(inputs, _head(x, dropout), name="cxclean_compact")
