"""The one scoring step: a Keras model's scores for a stack of model inputs, run as a compiled graph.

Keras 3 runs ``model(x)`` eagerly, op by op: on this CPU that cost rotation 2-3x and inversion 3x their
graph-compiled speed (docs/decisions/0007-compiled-inference.md, ``benchmarks/compiled_inference.py``). Here the
model runs as a ``tf.function`` traced once per model and batch shape: inputs go in fixed batches, the last one
padded, so nothing retraces whatever the number of films. The ``.keras`` bundle stays the only model: the graph
is traced from it in memory when first used, never stored. A model whose training is over is scored through that
graph *frozen* (its weights made constants), which lets TensorFlow's graph optimiser fold each batch normalisation
into the convolution before it and fuse the activations: 1.2-1.4x faster for every default bundle, scores within
1e-6 (``benchmarks/compiled_inference.py``). Training's per-epoch validation scores the live weights unfrozen. With another Keras backend (torch on a GPU box without
TensorFlow) the same fixed batches go through Keras's own ``predict_on_batch``. Either way Keras places the work
on a GPU when one is present. Scan, evaluation, training and orientation all score through ``predict``.
"""
from __future__ import annotations

import functools
import warnings

import numpy as np

#: films per compiled batch unless the caller says otherwise
DEFAULT_BATCH = 64
#: on a CPU a compiled batch holds at most this many input pixels (8 films of 512 px, 128 of 128 px): flip's 512-px
#: readers score as fast in batches of 8 as of 64 but hold 4x the activations, so a scan's peak memory falls from
#: 3.8 to 1.6 GB; where a GPU is present the caller's batch size stands (docs/decisions/0007, addendum)
CPU_BATCH_PIXELS = 8 * 512 * 512


class Scorer:
    """A model's compiled scoring function for one batch size; build it with ``Scorer.of`` (cached per model).

    ``frozen``: the graph holds the weights as constants, taken when the scorer is first used, so it must not score
    a model whose weights change afterwards (a model being trained: ``frozen=False``)."""

    def __init__(self, model, batch_size: int = DEFAULT_BATCH, frozen: bool = True):
        if batch_size < 1:
            raise ValueError(f"batch size {batch_size} is below 1")
        self.model, self.batch_size, self.frozen = model, int(batch_size), bool(frozen)
        self._fns: dict[tuple, object] = {}
        self.traced: dict[tuple, object] = {}  # the tf.function behind each (frozen) scoring function

    @classmethod
    def of(cls, model, batch_size: int = DEFAULT_BATCH, frozen: bool = True) -> "Scorer":
        """The scorer of ``model`` for ``batch_size``, kept on the model so that every caller (an epoch's
        validation, the suspects, the scan's batches) shares one trace instead of tracing again."""
        cache = model.__dict__.setdefault("_cxclean_scorers", {})  # plain dict: Keras does not track it
        key = (int(batch_size), bool(frozen))
        if key not in cache:
            cache[key] = cls(model, batch_size, frozen)
        return cache[key]

    def compiled_batch(self, shape: tuple) -> int:
        """Films per compiled call for inputs of ``shape``: the batch size, capped by ``CPU_BATCH_PIXELS`` on a CPU."""
        if accelerated():
            return self.batch_size
        return batch_for(self.batch_size, shape[0], shape[1], CPU_BATCH_PIXELS)

    def _fn(self, shape: tuple):
        """The function scoring one (compiled_batch, *shape) float32 batch, built on first use."""
        if shape not in self._fns:
            import keras

            model = self.model
            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf

                spec = tf.TensorSpec((self.compiled_batch(shape), *shape), tf.float32)
                fn = tf.function(lambda x: model(x, training=False), input_signature=[spec], autograph=False)
                self.traced[shape] = fn
                self._fns[shape] = _frozen(fn) if self.frozen else fn
            else:
                self._fns[shape] = model.predict_on_batch
        return self._fns[shape]

    def predict(self, batch) -> np.ndarray:
        """One score per input of ``batch`` ((N, s, s) or (N, s, s, 1), already preprocessed), float32 (N,)."""
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim == 3:
            batch = batch[..., None]
        n = len(batch)
        if n == 0:
            return np.zeros((0,), dtype=np.float32)
        fn, size = self._fn(batch.shape[1:]), self.compiled_batch(batch.shape[1:])
        out = np.empty((n,), dtype=np.float32)
        for start in range(0, n, size):
            chunk = batch[start : start + size]
            got = len(chunk)
            chunk = pad_batch(chunk, size)  # the last batch: one shape, one trace; inputs never mix (no batch statistics)
            scores = np.asarray(fn(np.ascontiguousarray(chunk)), dtype=np.float32).reshape(size, -1)[:, 0]
            out[start : start + got] = scores[:got]
        return out


def batch_for(requested: int, height: int, width: int, pixels: int) -> int:
    """``requested`` films per compiled call, fewer where a batch of them would hold more than ``pixels`` pixels."""
    return int(max(1, min(requested, pixels // max(1, height * width))))


@functools.lru_cache(maxsize=1)
def accelerated() -> bool:
    """Whether the Keras backend sees a GPU (there larger batches are faster, and its memory is the GPU's)."""
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            return bool(tf.config.list_physical_devices("GPU"))
        if backend == "torch":
            import torch

            return bool(torch.cuda.is_available())
        if backend == "jax":
            import jax

            return jax.default_backend() != "cpu"
    except Exception:  # noqa: BLE001  a device probe that fails means no usable GPU
        return False
    return False


def _frozen(fn):
    """``fn``'s graph with its variables as constants, returning one tensor; ``fn`` itself, with a warning, where
    this TensorFlow cannot freeze it (the helper lives in TensorFlow's internal API, and a user's model may hold an
    op it cannot convert): the same scores, only slower, never a failed scan."""
    import tensorflow as tf

    try:
        from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

        graph = convert_variables_to_constants_v2(fn.get_concrete_function())
    except Exception as exc:  # noqa: BLE001  any failure to freeze leaves the unfrozen graph, which is correct
        warnings.warn(f"scoring without a frozen graph (slower, same scores): {type(exc).__name__}: {exc}",
                      RuntimeWarning, stacklevel=2)
        return fn
    return lambda x: graph(tf.convert_to_tensor(x))[0]


def pad_batch(batch: np.ndarray, size: int) -> np.ndarray:
    """``batch`` padded with zero images to ``size``, the fixed batch shape of a compiled function."""
    if len(batch) == size:
        return batch
    return np.concatenate([batch, np.zeros((size - len(batch),) + batch.shape[1:], batch.dtype)])


def predict(model, batch, batch_size: int = DEFAULT_BATCH, frozen: bool = True) -> np.ndarray:
    """Scores in [0, 1] of ``model`` for ``batch`` (preprocessed inputs) through its compiled ``Scorer``;
    ``frozen=False`` for a model whose weights are still changing (see ``Scorer``)."""
    return Scorer.of(model, batch_size, frozen).predict(batch)
