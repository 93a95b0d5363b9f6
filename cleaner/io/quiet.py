"""Keeping native libraries' console chatter away from users; real errors still reach them as exceptions."""
from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def native_stderr_silenced():
    """C code (libjpeg, GDCM, TensorFlow's start-up logging) writes straight to fd 2; send it to /dev/null
    while the block runs. Python exceptions raised inside still propagate with their messages."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_keras_quietly() -> None:
    """Import Keras/TensorFlow once with their start-up logging silenced (CUDA probing, oneDNN notes),
    which TensorFlow prints before any log-level setting takes effect."""
    if "keras" in sys.modules:
        return
    with native_stderr_silenced():
        import keras

        if keras.backend.backend() == "tensorflow":  # device probing logs a CUDA error on CPU-only machines
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")
