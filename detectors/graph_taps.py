"""Reaching inside a Keras model: find a layer (also inside nested sub-models) and run the model so that
chosen layers' outputs are captured on the way, in one pass (saliency needs the last convolution's output
and, for a glyph-reading detector, the reader's per-position maps, from the same call that gives the score).
"""
from __future__ import annotations

CONV_CLASS_NAMES = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose")


def is_conv(layer) -> bool:
    if type(layer).__name__ in CONV_CLASS_NAMES:
        return True
    import keras

    base = getattr(keras.layers, "Conv2D", None)
    return base is not None and isinstance(layer, base)


def sublayers(layer) -> list:
    """Direct children of a model-like layer, in graph order (empty for a plain layer)."""
    import keras

    if isinstance(layer, keras.Model) or hasattr(layer, "_nodes_by_depth"):
        return list(getattr(layer, "layers", []))
    return []


def find_path(model, match, skip=None) -> list | None:
    """The path ``[model, sub_model, ..., layer]`` to the last layer for which ``match(layer)``, searching
    nested sub-models depth first from the end; sub-models for which ``skip(layer)`` are not entered."""
    paths = find_paths(model, match, skip)
    return paths[0] if paths else None


def find_paths(model, match, skip=None) -> list[list]:
    """Every path ``[model, sub_model, ..., layer]`` to a layer for which ``match(layer)``, in ``find_path``'s
    order (from the end); a matching layer's own sub-layers are not searched, nor those for which ``skip``."""
    found = []
    for layer in reversed(sublayers(model)):
        if skip is not None and skip(layer):
            continue
        if match(layer):
            found.append([model, layer])
        elif sublayers(layer):
            found += [[model] + inner for inner in find_paths(layer, match, skip)]
    return found


def contains_layer(layer, name: str) -> bool:
    """Whether ``layer`` is, or holds at any depth, a layer called ``name``."""
    return layer.name == name or any(contains_layer(sub, name) for sub in sublayers(layer))


def run_with_taps(layer, x, taps: dict, stash: dict):
    """Call ``layer`` on ``x`` in inference mode; ``taps`` maps a key to a path from ``find_path``, and the
    output of each path's last layer is put in ``stash[key]`` (``stash["watch"]``, if given, is called on the
    one under ``"activations"``, for a gradient tape). Layers on a path run their graph node by node."""
    for key, path in taps.items():
        if path and layer is path[-1]:
            out = layer(x, training=False) if _accepts_training(layer) else layer(x)
            stash[key] = out
            if key == "activations" and "watch" in stash:
                stash["watch"](out)
            return out
    if any(layer is p for path in taps.values() for p in path[:-1]):
        import keras

        if isinstance(layer, keras.Sequential):
            for sub in layer.layers:
                x = run_with_taps(sub, x, taps, stash)
            return x
        if hasattr(layer, "_run_through_graph"):
            return _run_graph(layer, x, taps, stash)
    if _accepts_training(layer):
        return layer(x, training=False)
    return layer(x)


def _run_graph(layer, x, taps: dict, stash: dict):
    on_path = [p for path in taps.values() for p in path]

    def op_fn(op):
        def call(*args, **kwargs):
            if any(op is p for p in on_path):
                # keyword arguments recorded on the node (training, mask) do not apply here
                return run_with_taps(op, args[0] if len(args) == 1 else list(args), taps, stash)
            if _accepts_training(op):
                kwargs.setdefault("training", False)
            return op(*args, **kwargs)

        return call

    inputs = x if isinstance(x, (list, tuple)) else [x]
    out = layer._run_through_graph(inputs, operation_fn=op_fn)
    return out[0] if isinstance(out, (list, tuple)) and len(out) == 1 else out


def _accepts_training(op) -> bool:
    import keras

    if isinstance(op, keras.layers.InputLayer):
        return False
    return isinstance(op, keras.layers.Layer)
