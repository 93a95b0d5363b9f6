"""Keras layers cxclean's models use, registered so bundles load in safe mode.

The backbone's own input conventions (three channels, its scaling) live inside the model, so a
bundle takes the same (size, size, 1) [0, 1] input whatever its backbone.
"""
from __future__ import annotations

import keras
from keras import ops

from .glyphs import LOGIT_CLIP


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
    """The glyph reader's (N, 2) [readable, reversed] logits to the log-odds that the film's text is
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
