"""Keras layers cxclean's models use, registered so bundles load in safe mode.

The backbone's own input conventions (three channels, its scaling) live inside the model, so a
bundle takes the same (size, size, 1) [0, 1] input whatever its backbone.
"""
from __future__ import annotations

import keras
from keras import ops

from .evidence import LOGIT_CLIP


@keras.saving.register_keras_serializable(package="cxclean")
class GreyToBackboneInput(keras.layers.Layer):
    """[0, 1] grey (N, H, W, 1) to what a backbone expects: ``channels`` copies, ``x * scale - offset``.

    For ImageNet ResNet50 ('caffe' convention): 3 channels, scale 255, per-channel BGR means.
    """

    def __init__(self, channels: int = 3, scale: float = 1.0, offsets=(0.0, 0.0, 0.0), **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.scale = float(scale)
        self.offsets = [float(v) for v in offsets]

    def call(self, inputs):
        x = ops.repeat(inputs, self.channels, axis=-1) * self.scale
        return x - ops.reshape(ops.convert_to_tensor(self.offsets[: self.channels], dtype=x.dtype), (1, 1, 1, -1))

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels, scale=self.scale, offsets=self.offsets)
        return config



@keras.saving.register_keras_serializable(package="cxclean")
class GlyphEvidence(keras.layers.Layer):
    """The glyph reader's (N, >=2) [readable, reversed, ...] logits to the log-odds that the film's text is
    mirror-reversed, reversed - readable, each logit clipped to +-``clip`` so that one saturated
    glyph cannot outvote everything else the detector sees."""

    def __init__(self, clip: float = LOGIT_CLIP, **kwargs):
        super().__init__(**kwargs)
        self.clip = float(clip)

    def call(self, inputs):
        logits = ops.clip(inputs, -self.clip, self.clip)
        return logits[:, 1:2] - logits[:, 0:1]

    def get_config(self):
        config = super().get_config()
        config.update(clip=self.clip)
        return config


@keras.saving.register_keras_serializable(package="cxclean")
class MarkerSideEvidence(keras.layers.Layer):
    """The glyph reader's per-position maps (N, h, w, [readable, reversed, L, R]) to the log-odds that the
    film is mirrored, read from where its side markers are: an L in the left half or an R in the right
    half counts for "mirrored", an L on the right or an R on the left against. Each marker's strongest
    logit per half counts from 0 (absent) to ``clip``; the middle column of an odd width is on neither side."""

    def __init__(self, clip: float = LOGIT_CLIP, **kwargs):
        super().__init__(**kwargs)
        self.clip = float(clip)

    def call(self, inputs):
        half = inputs.shape[2] // 2 if inputs.shape[2] is not None else ops.shape(inputs)[2] // 2
        left = ops.max(inputs[:, :, :half, 2:4], axis=(1, 2))
        right = ops.max(inputs[:, :, -half:, 2:4], axis=(1, 2))
        left, right = ops.clip(left, 0.0, self.clip), ops.clip(right, 0.0, self.clip)
        return (left[:, 0:1] - right[:, 0:1]) + (right[:, 1:2] - left[:, 1:2])

    def get_config(self):
        config = super().get_config()
        config.update(clip=self.clip)
        return config


@keras.saving.register_keras_serializable(package="cxclean")
class SideBands(keras.layers.Layer):
    """(N, H, W, C) to (N, H, 2 w, C): the film's left and right edge bands (``fraction`` of its width each), side by
    side. Side markers sit there (96 % of the strong ones a reader found within a quarter of the width from an
    edge); the middle, where they rarely are, is not read. Mirroring the film mirrors the result exactly, so
    reading where a marker is keeps its meaning."""

    def __init__(self, fraction: float = 0.25, **kwargs):
        super().__init__(**kwargs)
        if not 0 < fraction <= 0.5:
            raise ValueError(f"SideBands fraction must be in (0, 0.5], not {fraction}")
        self.fraction = float(fraction)

    def _band(self, width):
        return max(1, int(round(width * self.fraction)))

    def call(self, inputs):
        band = self._band(inputs.shape[2])
        return ops.concatenate([inputs[:, :, :band], inputs[:, :, -band:]], axis=2)

    def compute_output_shape(self, input_shape):
        width = input_shape[2]
        return (input_shape[0], input_shape[1], None if width is None else 2 * self._band(width), input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update(fraction=self.fraction)
        return config


@keras.saving.register_keras_serializable(package="cxclean")
class WithComplement(keras.layers.Layer):
    """(N, ...) [0, 1] images to (2N, ...): the images, then their complements ``1 - x`` (their inversions:
    the percentile stretch keeps an inverted film exactly ``1 - x``). One batch, so batch normalisation
    sees both polarities together in training as in scanning."""

    def call(self, inputs):
        return ops.concatenate([inputs, 1.0 - inputs], axis=0)

    def compute_output_shape(self, input_shape):
        return (None,) + tuple(input_shape[1:])


@keras.saving.register_keras_serializable(package="cxclean")
class WithMirror(keras.layers.Layer):
    """(N, H, W, C) to (2N, H, W, C): the images, then their left-right mirrors. One batch, so batch normalisation
    sees both in training as in scanning; with ``HalvesDifference`` a film and its mirror get opposite log-odds."""

    def call(self, inputs):
        return ops.concatenate([inputs, ops.flip(inputs, axis=2)], axis=0)

    def compute_output_shape(self, input_shape):
        return (None,) + tuple(input_shape[1:])


@keras.saving.register_keras_serializable(package="cxclean")
class HalvesDifference(keras.layers.Layer):
    """(2N, k) to (N, k): the first half minus the second, i.e. f(x) - f(1 - x) after ``WithComplement``."""

    def call(self, inputs):
        n = ops.shape(inputs)[0] // 2
        return inputs[:n] - inputs[n:]

    def compute_output_shape(self, input_shape):
        return (None,) + tuple(input_shape[1:])


@keras.saving.register_keras_serializable(package="cxclean")
class TrimmedMean(keras.layers.Layer):
    """(N, k) to (N, 1): the mean of the middle values, the lowest and highest ``trim`` fraction left out, so
    that a few regions (a label box in a corner) cannot outvote the rest of the film."""

    def __init__(self, trim: float = 0.25, **kwargs):
        super().__init__(**kwargs)
        self.trim = float(trim)

    def call(self, inputs):
        k = inputs.shape[-1]
        cut = int(k * self.trim)
        ordered = ops.sort(inputs, axis=-1)
        return ops.mean(ordered[:, cut : k - cut], axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)

    def get_config(self):
        config = super().get_config()
        config.update(trim=self.trim)
        return config
