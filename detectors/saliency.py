"""Saliency maps for a detector: *why* an image was flagged, shown to the reviewer as an overlay.

Grad-CAM (Selvaraju et al. 2017) on the model's last convolution layer, found generically: in the
top-level graph or inside a nested backbone sub-model (e.g. ``keras.applications.ResNet50`` used as
a layer). It costs one forward and a partial backward pass per image, compiled once per model
(``tf.function`` over a fixed batch shape) on the TensorFlow backend, eager on PyTorch.

A glyph-reading detector (one with a layer ``glyphs.MAPS_LAYER``, the flip detector) is explained in two
parts, both from the same pass: Grad-CAM over its anatomy (the reader is left out of the search: its
max-over-positions evidence has a gradient at one cell or none) and the side markers the reader saw
(``glyph_saliency.read_marks``).

Where an image's Grad-CAM is empty (no positive evidence reaches the conv layer) and the reader saw no
marker, the map is the input's gradient times the input. Occlusion sensitivity (one forward pass per patch
position: tens of passes per image) is used only when asked for, or for a model without a convolution.

Maps are float32 arrays in [0, 1] with the model input's height and width (docs/decisions/0006).
"""
from __future__ import annotations

import functools
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from .glyph_saliency import MAPS_LAYER, read_marks, strongest_marks
from .graph_taps import CONV_CLASS_NAMES, contains_layer, find_path, find_paths, is_conv, run_with_taps  # noqa: F401
from .inference import batch_for
from .inference import pad_batch as _pad

#: the stash keys of the glyph readers' maps: "glyph_maps", then "glyph_maps_2", ... for a model with several readers
GLYPH_TAP = "glyph_maps"

METHODS = ("auto", "gradcam", "occlusion")
#: input pixels per compiled batch: 32 films at 128 px, 2 at 512 px (memory stays bounded for large inputs)
BATCH_PIXELS = 32 * 128 * 128


@dataclass
class SaliencyResult:
    maps: np.ndarray  # (N, H, W) float32 in [0, 1]
    method: str  # "gradcam" or "occlusion"
    layer: str | None  # path of the conv layer used, e.g. "resnet50/conv5_block3_3_conv"
    fallback: list = field(default_factory=list)  # images whose Grad-CAM was empty: input x gradient used
    marks: list | None = None  # per image, the side markers a glyph reader saw (glyph_saliency.Mark)

    def image_method(self, i: int) -> str:
        """How image ``i``'s overlay was made, as the page names it: ``gradcam``, ``gradient`` (its Grad-CAM was
        empty), ``occlusion``; for a glyph reader ``gradcam+markers``, ``markers`` (markers read, Grad-CAM empty)
        or ``gradcam+no-marker``."""
        if i in self.fallback:
            return "gradient"
        if self.marks is None or self.method != "gradcam":
            return self.method
        if not self.marks[i]:
            return "gradcam+no-marker"
        return "gradcam+markers" if self.maps[i].any() else "markers"


def find_last_conv(model) -> list | None:
    """The path ``[model, sub_model, ..., conv_layer]`` to the last 2-D convolution, searching nested
    sub-models depth first from the end, but not a glyph reader's; None when there is none."""
    return find_path(model, is_conv, skip=lambda layer: contains_layer(layer, MAPS_LAYER))


def _run_layer(layer, x, path: list, stash: dict):
    """Run ``layer`` on ``x``, capturing the output of ``path``'s last layer in ``stash["activations"]``."""
    return run_with_taps(layer, x, {"activations": path}, stash)


@contextmanager
def _logit_output(model):
    """Score the logit rather than the probability where the model ends in a sigmoid layer: a
    saturated sigmoid (score 1.000) has no gradient left, the logit keeps it. Grad-CAM is
    normalised per image, so the monotone change does not alter the map otherwise."""
    import keras

    last = model.layers[-1] if getattr(model, "layers", None) else None
    act = getattr(last, "activation", None)
    swap = act is keras.activations.sigmoid or getattr(act, "__name__", "") == "sigmoid"
    if swap:
        last.activation = keras.activations.linear
    try:
        yield
    finally:
        if swap:
            last.activation = act


def compiled_batch(height: int, width: int) -> int:
    """Films per compiled call for inputs of this size: the fixed batch shape (the last batch is padded to it)."""
    return batch_for(32, height, width, BATCH_PIXELS)


class Explainer:
    """Saliency for one model, compiled once and reused for every batch (``explain``).

    ``method``: ``auto`` (Grad-CAM; occlusion only for a model with no convolution or a backend without
    gradients), ``gradcam`` (Grad-CAM or an error), ``occlusion``."""

    def __init__(self, model, method: str = "auto"):
        import keras

        if method not in METHODS:
            raise ValueError(f"saliency method must be auto, gradcam or occlusion, not {method!r}")
        self.model, self.method = model, method
        self.backend = keras.backend.backend()
        self.cam_path = find_last_conv(model) if method != "occlusion" else None
        # every glyph reader's maps (flip v4 averages two readers: docs/decisions/0017)
        readers = find_paths(model, lambda layer: layer.name == MAPS_LAYER)
        # flip v2-v4 (docs/decisions/0009, 0017): the anatomy also runs on the film's mirror, the reader on its side
        # bands (v3, v4: and on their mirror, second in its batch, so the first maps are the film's own)
        from .layers import SideBands, WithMirror

        self.mirrored_views = find_path(model, lambda layer: isinstance(layer, WithMirror)) is not None
        bands = find_path(model, lambda layer: isinstance(layer, SideBands))
        self.bands = bands[-1].fraction if bands else None
        self.taps = {"activations": self.cam_path} if self.cam_path else {}
        for i, path in enumerate(readers):
            self.taps[GLYPH_TAP + (f"_{i + 1}" if i else "")] = path
        self.gradcam = self.cam_path is not None and self.backend in ("tensorflow", "torch")
        if method == "gradcam" and not self.gradcam:
            raise ValueError("Grad-CAM impossible: " + ("no 2-D convolution layer in the model" if self.cam_path is None
                                                         else f"backend {self.backend} is not supported"))
        self.layer = "/".join(layer.name for layer in self.cam_path[1:]) if self.cam_path else None
        self._compiled: dict = {}

    def batch_size(self, height: int, width: int) -> int:
        return compiled_batch(height, width)

    def explain(self, batch: np.ndarray) -> SaliencyResult:
        """Maps (and, for a glyph reader, marks) for a batch already preprocessed for the model (N, H, W, 1)."""
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim == 3:
            batch = batch[..., None]
        h, w = batch.shape[1:3]
        if not self.gradcam:
            return SaliencyResult(_normalise(occlusion_maps(self.model, batch)), "occlusion", None)
        cams, glyph_maps = [], {key: [] for key in self.taps if key.startswith(GLYPH_TAP)}
        size = self.batch_size(h, w)
        for start in range(0, len(batch), size):
            chunk = batch[start : start + size]
            out = self._run(_pad(chunk, size), "cam")
            cams.append(_cam(out["acts"], out["grads"], size, self.mirrored_views)[: len(chunk)])
            for key, got in glyph_maps.items():
                got.append(out[key][: len(chunk)])
        maps = _normalise(_resize_maps(np.concatenate(cams), h, w))
        marks = strongest_marks([read_marks(np.concatenate(got), bands=self.bands) for got in glyph_maps.values()]
                                ) if glyph_maps else None
        # An empty Grad-CAM tells the reviewer nothing: where the reader saw no marker either, the
        # input's gradient shows what the score depends on (a backward pass, not occlusion's many passes).
        empty = [i for i, m in enumerate(maps) if not m.any() and not (marks and marks[i])]
        if empty and self.method == "auto":
            maps[empty] = self._input_gradient(batch[empty], size)
        else:
            empty = []
        return SaliencyResult(maps, "gradcam", self.layer, empty, marks)

    def _input_gradient(self, batch: np.ndarray, size: int) -> np.ndarray:
        from scipy.ndimage import gaussian_filter

        h, w = batch.shape[1:3]
        out = []
        for start in range(0, len(batch), size):
            chunk = batch[start : start + size]
            g = self._run(_pad(chunk, size), "input")["input_grads"][: len(chunk)]
            sal = np.abs(g[..., 0] * chunk[..., 0])
            out.append(np.stack([gaussian_filter(s, max(1.0, min(h, w) / 64)) for s in sal]))
        return _normalise(np.concatenate(out))

    def _run(self, x: np.ndarray, what: str) -> dict:
        """One forward and backward pass: ``what`` = "cam" (conv activations, their gradients, glyph maps)
        or "input" (the gradient with respect to the input)."""
        with _logit_output(self.model):
            if self.backend == "torch":
                return _pass_torch(self.model, x, self.taps, what)
            key = (what, x.shape)
            if key not in self._compiled:
                self._compiled[key] = _compile_tf(self.model, x.shape, self.taps, what)
            return {k: np.asarray(v) for k, v in self._compiled[key](x).items()}


def _compile_tf(model, shape: tuple, taps: dict, what: str):
    """The pass as a ``tf.function`` of a fixed input shape: traced once, then run as a graph (eager Keras
    calls are several times slower on a CPU)."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)], autograph=False)  # plain Python flow: traces 2x faster
    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            stash = {"watch": tape.watch}
            score = run_with_taps(model, x, taps if what == "cam" else {}, stash)
            score = tf.reduce_sum(tf.reshape(score, (tf.shape(score)[0], -1))[:, :1])
        if what == "input":
            return {"input_grads": tape.gradient(score, x)}
        grads = tape.gradient(score, stash["activations"])
        if grads is None:
            raise RuntimeError("no gradient from the score to the conv layer")
        return {"acts": stash["activations"], "grads": grads,
                **{k: v for k, v in stash.items() if k.startswith(GLYPH_TAP)}}

    return run


def _pass_torch(model, x: np.ndarray, taps: dict, what: str) -> dict:
    import torch

    xt = torch.as_tensor(x, dtype=torch.float32)
    if what == "input":
        xt.requires_grad_(True)
    stash = {"watch": lambda t: t.retain_grad()}
    with torch.enable_grad():
        score = run_with_taps(model, xt, taps if what == "cam" else {}, stash)
        score.reshape(score.shape[0], -1)[:, 0].sum().backward()
    if what == "input":
        return {"input_grads": xt.grad.detach().cpu().numpy()}
    acts = stash["activations"]
    out = {"acts": acts.detach().cpu().numpy(), "grads": acts.grad.detach().cpu().numpy()}
    out.update({k: v.detach().cpu().numpy() for k, v in stash.items() if k.startswith(GLYPH_TAP)})
    return out


def _cam(acts: np.ndarray, grads: np.ndarray, n: int, mirrored_views: bool = False) -> np.ndarray:
    """Grad-CAM: channel weights = spatially averaged gradients; ReLU of the weighted sum.

    A model that runs its conv layers on k aligned views of each of its ``n`` images in one batch
    (``backbones.compare_with_inverse``: the film, then its inversion) has k * n activation maps; an image's
    map sums its k views' weighted maps before the ReLU, as its score sums what each view contributes. With
    ``mirrored_views`` (``backbones.compare_with_mirror``) the second view is the film's mirror: its map is
    mirrored back first, so both views light the same place of the film."""
    weights = grads.mean(axis=(1, 2), keepdims=True)
    weighted = (acts * weights).sum(axis=-1)
    if len(weighted) != n:
        if len(weighted) % n:
            raise RuntimeError(f"{len(weighted)} activation maps for {n} images")
        weighted = weighted.reshape((len(weighted) // n, n) + weighted.shape[1:])
        if mirrored_views:
            weighted[1::2] = weighted[1::2, :, :, ::-1]
        weighted = weighted.sum(axis=0)
    return np.maximum(weighted, 0.0).astype(np.float32)


def _resize_maps(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    from PIL import Image

    out = np.zeros((len(maps), height, width), dtype=np.float32)
    for i, m in enumerate(maps):
        im = Image.fromarray(np.ascontiguousarray(m, dtype=np.float32))
        out[i] = np.asarray(im.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)
    return out


def _normalise(maps: np.ndarray) -> np.ndarray:
    maps = np.maximum(np.nan_to_num(maps.astype(np.float32)), 0.0)
    peak = maps.reshape(len(maps), -1).max(axis=1).reshape(-1, 1, 1)
    return np.where(peak > 0, maps / np.where(peak > 0, peak, 1.0), 0.0).astype(np.float32)


def occlusion_maps(model, batch: np.ndarray, patch: int | None = None, stride: int | None = None,
                   fill: float = 0.5, batch_size: int = 64) -> np.ndarray:
    """Occlusion sensitivity: how much the score drops when a ``patch``-sized grey square hides each
    region. Model-agnostic (any callable Keras model); costs one forward pass per patch position."""
    n, h, w = batch.shape[:3]
    patch = patch or max(4, min(h, w) // 8)
    stride = stride or max(1, patch // 2)
    base = _predict(model, batch, batch_size)
    heat = np.zeros((n, h, w), dtype=np.float32)
    count = np.zeros((h, w), dtype=np.float32)
    for top in range(0, max(1, h - patch + 1), stride):
        for left in range(0, max(1, w - patch + 1), stride):
            occluded = batch.copy()
            occluded[:, top : top + patch, left : left + patch] = fill
            drop = base - _predict(model, occluded, batch_size)
            heat[:, top : top + patch, left : left + patch] += drop.reshape(-1, 1, 1)
            count[top : top + patch, left : left + patch] += 1
    return heat / np.maximum(count, 1)


def _predict(model, batch: np.ndarray, batch_size: int) -> np.ndarray:
    out = []
    for start in range(0, len(batch), batch_size):
        chunk = batch[start : start + batch_size]
        out.append(np.asarray(model(chunk, training=False)).reshape(len(chunk), -1)[:, 0])
    return np.concatenate(out)


def saliency(model, batch: np.ndarray, method: str = "auto") -> SaliencyResult:
    """Saliency maps for a batch already preprocessed for ``model`` (N, H, W, 1), float32. Builds an
    ``Explainer`` each call: keep one (``Explainer(model)``) to reuse its compiled pass across batches."""
    return Explainer(model, method).explain(batch)


@functools.lru_cache(maxsize=1)
def _jet() -> np.ndarray:
    """matplotlib's 'jet' as a 256 x 3 table (building the colormap per picture cost more than the blend)."""
    from matplotlib import colormaps

    return colormaps["jet"](np.arange(256))[:, :3].astype(np.float32)


def overlay(grey: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """An RGB uint8 picture: the greyscale image with the heat map blended on in a 'jet' palette."""
    from PIL import Image

    grey = np.clip(np.asarray(grey, dtype=np.float32), 0, 1)
    if heat.shape != grey.shape:
        im = Image.fromarray(np.ascontiguousarray(heat, dtype=np.float32))
        heat = np.asarray(im.resize((grey.shape[1], grey.shape[0]), Image.Resampling.BILINEAR), dtype=np.float32)
    heat = np.clip(np.nan_to_num(heat, nan=0.0), 0, 1)
    colour = _jet()[np.minimum((heat * 256).astype(np.intp), 255)]  # matplotlib's own binning of [0, 1]
    weight = np.sqrt(heat)
    weight *= alpha
    # grey * (1 - w) + colour * w, in place: one overlay per flagged film and detector, drawn in the main process
    rgb = colour
    rgb -= grey[..., None]
    rgb *= weight[..., None]
    rgb += grey[..., None]
    np.clip(rgb, 0, 1, out=rgb)
    rgb *= 255
    return np.rint(rgb, out=rgb).astype(np.uint8)
