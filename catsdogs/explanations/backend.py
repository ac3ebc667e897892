"""The explanations that take gradients of the input (Grad-CAM, filter ascent) do it with ``tf.GradientTape``,
so they run on the TensorFlow backend only; elsewhere they refuse in one line before any work.

Activations need no gradients and work on every backend, as does everything else a ``.keras`` model does.
"""

from __future__ import annotations

import keras

from catsdogs.errors import UserError


def require_gradients_backend(what: str) -> None:
    """A one-line ``UserError`` naming the fix when this process's Keras backend is not TensorFlow."""
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise UserError(f"{what} takes gradients with TensorFlow and needs the TensorFlow backend: run it with "
                        f"KERAS_BACKEND=tensorflow (this process uses {backend}; the model loads under either)")
