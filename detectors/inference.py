"""The one scoring step: a Keras model's scores for a stack of model inputs, run as a compiled graph.

Keras 3 runs ``model(x)`` eagerly, op by op: on this CPU that cost rotation 2-3x and inversion 3x their
graph-compiled speed (docs/decisions/0007-compiled-inference.md, ``benchmarks/compiled_inference.py``). Here the
model runs as a ``tf.function`` traced once per model and batch shape: inputs go in fixed batches, the last one
padded, so nothing retraces whatever the number of films. The ``.keras`` bundle stays the only model: the graph
is traced from it in memory when first used, never stored. With another Keras backend (torch on a GPU box without
TensorFlow) the same fixed batches go through Keras's own ``predict_on_batch``. Either way Keras places the work
on a GPU when one is present. Scan, evaluation, training and orientation all score through ``predict``.
"""
from __future__ import annotations

import numpy as np

#: films per compiled batch unless the caller says otherwise
DEFAULT_BATCH = 64


class Scorer:
    """A model's compiled scoring function for one batch size; build it with ``Scorer.of`` (cached per model)."""

    def __init__(self, model, batch_size: int = DEFAULT_BATCH):
        if batch_size < 1:
            raise ValueError(f"batch size {batch_size} is below 1")
        self.model, self.batch_size = model, int(batch_size)
        self._fns: dict[tuple, object] = {}

    @classmethod
    def of(cls, model, batch_size: int = DEFAULT_BATCH) -> "Scorer":
        """The scorer of ``model`` for ``batch_size``, kept on the model so that every caller (an epoch's
        validation, the suspects, the scan's batches) shares one trace instead of tracing again."""
        cache = model.__dict__.setdefault("_cxclean_scorers", {})  # plain dict: Keras does not track it
        if batch_size not in cache:
            cache[batch_size] = cls(model, batch_size)
        return cache[batch_size]

    def _fn(self, shape: tuple):
        """The function scoring one (batch_size, *shape) float32 batch, built on first use."""
        if shape not in self._fns:
            import keras

            model = self.model
            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf

                spec = tf.TensorSpec((self.batch_size, *shape), tf.float32)
                self._fns[shape] = tf.function(lambda x: model(x, training=False), input_signature=[spec],
                                               autograph=False)
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
        fn, size = self._fn(batch.shape[1:]), self.batch_size
        out = np.empty((n,), dtype=np.float32)
        for start in range(0, n, size):
            chunk = batch[start : start + size]
            got = len(chunk)
            chunk = pad_batch(chunk, size)  # the last batch: one shape, one trace; inputs never mix (no batch statistics)
            scores = np.asarray(fn(np.ascontiguousarray(chunk)), dtype=np.float32).reshape(size, -1)[:, 0]
            out[start : start + got] = scores[:got]
        return out


def pad_batch(batch: np.ndarray, size: int) -> np.ndarray:
    """``batch`` padded with zero images to ``size``, the fixed batch shape of a compiled function."""
    if len(batch) == size:
        return batch
    return np.concatenate([batch, np.zeros((size - len(batch),) + batch.shape[1:], batch.dtype)])


def predict(model, batch, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
    """Scores in [0, 1] of ``model`` for ``batch`` (preprocessed inputs) through its compiled ``Scorer``."""
    return Scorer.of(model, batch_size).predict(batch)
