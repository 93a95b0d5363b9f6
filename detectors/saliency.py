"""Saliency maps for a detector: *why* an image was flagged, shown to the reviewer as an overlay.

Grad-CAM (Selvaraju et al. 2017) on the model's last convolution layer, found generically: in the
top-level graph or inside a nested backbone sub-model (e.g. ``keras.applications.ResNet50`` used as
a layer). Where a model has no convolution layer at all, occlusion sensitivity is used instead
(slide a grey patch over the image and measure how much the score falls).

Maps are float32 arrays in [0, 1] with the model input's height and width. Grad-CAM needs
gradients; it is implemented for the TensorFlow and PyTorch Keras backends (others fall back to
occlusion).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

CONV_CLASS_NAMES = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose")


@dataclass
class SaliencyResult:
    maps: np.ndarray  # (N, H, W) float32 in [0, 1]
    method: str  # "gradcam" or "occlusion"
    layer: str | None  # path of the conv layer used, e.g. "resnet50/conv5_block3_3_conv"
    occlusion_fallback: list = field(default_factory=list)  # images whose Grad-CAM was empty: occlusion used


def _is_conv(layer) -> bool:
    if type(layer).__name__ in CONV_CLASS_NAMES:
        return True
    import keras

    base = getattr(keras.layers, "Conv2D", None)
    return base is not None and isinstance(layer, base)


def _sublayers(layer) -> list:
    """Direct children of a model-like layer, in graph order (empty for a plain layer)."""
    import keras

    if isinstance(layer, keras.Model) or hasattr(layer, "_nodes_by_depth"):
        return list(getattr(layer, "layers", []))
    return []


def find_last_conv(model) -> list | None:
    """The path ``[model, sub_model, ..., conv_layer]`` to the last 2-D convolution whose output is
    still spatial, searching nested sub-models depth first from the end; None when there is none."""
    for layer in reversed(_sublayers(model)):
        if _is_conv(layer):
            return [model, layer]
        if _sublayers(layer):
            inner = find_last_conv(layer)
            if inner is not None:
                return [model] + inner
    return None


def _run_layer(layer, x, path: list, stash: dict):
    """Call ``layer`` on ``x`` eagerly in inference mode; if ``layer`` lies on ``path`` run its graph
    node by node so the target conv layer's output can be captured in ``stash``."""
    if path and layer is path[-1]:
        out = layer(x, training=False)
        stash["activations"] = out
        stash["watch"](out)
        return out
    if any(layer is p for p in path):
        import keras

        if isinstance(layer, keras.Sequential):
            for sub in layer.layers:
                x = _run_layer(sub, x, path, stash)
            return x
        if hasattr(layer, "_run_through_graph"):

            def op_fn(op):
                def call(*args, **kwargs):
                    if any(op is p for p in path):
                        # keyword arguments recorded on the node (training, mask) do not apply here
                        return _run_layer(op, args[0] if len(args) == 1 else list(args), path, stash)
                    if _accepts_training(op):
                        kwargs.setdefault("training", False)
                    return op(*args, **kwargs)

                return call

            inputs = x if isinstance(x, (list, tuple)) else [x]
            out = layer._run_through_graph(inputs, operation_fn=op_fn)
            return out[0] if isinstance(out, (list, tuple)) and len(out) == 1 else out
    if _accepts_training(layer):
        return layer(x, training=False)
    return layer(x)


def _accepts_training(op) -> bool:
    import keras

    if isinstance(op, keras.layers.InputLayer):
        return False
    return isinstance(op, keras.layers.Layer)


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


def _gradcam_tf(model, batch: np.ndarray, path: list) -> np.ndarray:
    import tensorflow as tf

    x = tf.convert_to_tensor(batch, dtype=tf.float32)
    with tf.GradientTape() as tape, _logit_output(model):
        stash = {"watch": tape.watch}
        score = _run_layer(model, x, path, stash)
        score = tf.reshape(score, (tf.shape(score)[0], -1))[:, 0]
    acts = stash["activations"]
    grads = tape.gradient(score, acts)
    if grads is None:
        raise RuntimeError("no gradient from the score to the conv layer")
    return _cam(np.asarray(acts), np.asarray(grads), len(batch))


def _gradcam_torch(model, batch: np.ndarray, path: list) -> np.ndarray:
    import torch

    x = torch.as_tensor(batch, dtype=torch.float32)
    stash = {"watch": lambda t: t.retain_grad()}
    with torch.enable_grad(), _logit_output(model):
        score = _run_layer(model, x, path, stash)
        score = score.reshape(score.shape[0], -1)[:, 0]
        score.sum().backward()
    acts = stash["activations"]
    return _cam(acts.detach().cpu().numpy(), acts.grad.detach().cpu().numpy(), len(batch))


def _cam(acts: np.ndarray, grads: np.ndarray, n: int) -> np.ndarray:
    """Grad-CAM: channel weights = spatially averaged gradients; ReLU of the weighted sum.

    A model that runs its conv layers on k aligned views of each of its ``n`` images in one batch
    (``backbones.compare_with_inverse``: the film, then its inversion) has k * n activation maps; an image's
    map sums its k views' weighted maps before the ReLU, as its score sums what each view contributes."""
    weights = grads.mean(axis=(1, 2), keepdims=True)
    weighted = (acts * weights).sum(axis=-1)
    if len(weighted) != n:
        if len(weighted) % n:
            raise RuntimeError(f"{len(weighted)} activation maps for {n} images")
        weighted = weighted.reshape((len(weighted) // n, n) + weighted.shape[1:]).sum(axis=0)
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
        out.append(np.asarray(model(batch[start : start + batch_size], training=False)).reshape(len(batch[start : start + batch_size]), -1)[:, 0])
    return np.concatenate(out)


def saliency(model, batch: np.ndarray, method: str = "auto") -> SaliencyResult:
    """Saliency maps for a batch already preprocessed for ``model`` (N, H, W, 1), float32.

    ``method``: ``gradcam``, ``occlusion``, or ``auto`` (Grad-CAM where the model has a conv layer
    and the backend supports gradients, else occlusion)."""
    import keras

    batch = np.asarray(batch, dtype=np.float32)
    if batch.ndim == 3:
        batch = batch[..., None]
    h, w = batch.shape[1:3]
    if method not in ("auto", "gradcam", "occlusion"):
        raise ValueError(f"saliency method must be auto, gradcam or occlusion, not {method!r}")
    path = find_last_conv(model) if method != "occlusion" else None
    backend = keras.backend.backend()
    if path is not None and backend in ("tensorflow", "torch"):
        fn = _gradcam_tf if backend == "tensorflow" else _gradcam_torch
        maps = _normalise(_resize_maps(fn(model, batch, path), h, w))
        layer_name = "/".join(layer.name for layer in path[1:])
        # Grad-CAM is all zero where no positive evidence reaches the conv layer (the ReLU cuts
        # it); an empty overlay would tell the reviewer nothing, so those images get occlusion.
        empty = [i for i, m in enumerate(maps) if not m.any()]
        if empty and method == "auto":
            maps[empty] = _normalise(occlusion_maps(model, batch[empty]))
        return SaliencyResult(maps, "gradcam", layer_name, empty if method == "auto" else [])
    if method == "gradcam":
        raise ValueError("Grad-CAM impossible: " + ("no 2-D convolution layer in the model" if path is None
                                                     else f"backend {backend} is not supported"))
    return SaliencyResult(_normalise(occlusion_maps(model, batch)), "occlusion", None)


def detector_saliency(detector, batch: np.ndarray, method: str = "auto") -> SaliencyResult:
    """Saliency for a loaded ``detectors.bundle.Detector`` on a batch run through its ``preprocess``."""
    return saliency(detector.model, batch, method=method)


def overlay(grey: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """An RGB uint8 picture: the greyscale image with the heat map blended on in a 'jet' palette."""
    from matplotlib import colormaps
    from PIL import Image

    grey = np.clip(np.asarray(grey, dtype=np.float32), 0, 1)
    if heat.shape != grey.shape:
        im = Image.fromarray(np.ascontiguousarray(heat, dtype=np.float32))
        heat = np.asarray(im.resize((grey.shape[1], grey.shape[0]), Image.Resampling.BILINEAR), dtype=np.float32)
    colour = colormaps["jet"](np.clip(heat, 0, 1))[..., :3].astype(np.float32)
    weight = alpha * np.clip(heat, 0, 1)[..., None] ** 0.5
    rgb = grey[..., None] * (1 - weight) + colour * weight
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)
