"""Heads: what sits between a model's features and its output layer, and the output layer itself.

``class_probabilities`` reads the output layer back as one probability per class.
A head builder takes the feature tensor and the dropout rate and returns the tensor the output layer
reads. Layer names are fixed (``flatten``, ``dense``, ``dropout``, ``avg_pool``, ``output``) because
checkpoints, cached-feature training and tests address layers by name.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
from keras import KerasTensor

Head = Callable[[KerasTensor, float], KerasTensor]  # (features, dropout) -> what the output layer reads


def flatten_dense_head(x: KerasTensor, dropout: float) -> KerasTensor:
    """The report's VGG head: Flatten -> Dense 256 (ReLU) -> Dropout."""
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(256, activation="relu", name="dense")(x)
    return keras.layers.Dropout(dropout, name="dropout")(x)


def pooling_head(x: KerasTensor, dropout: float) -> KerasTensor:
    """Global average pooling -> Dropout: the Keras transfer-learning guide's head for modern bases."""
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.layers.Dropout(dropout, name="dropout")(x)


def dropout_head(x: KerasTensor, dropout: float) -> KerasTensor:
    """Dropout only: for an MLP, whose hidden layers are its features."""
    return keras.layers.Dropout(dropout, name="dropout")(x)


def dropout_dense_head(x: KerasTensor, dropout: float) -> KerasTensor:
    """The report's small CNN head: Flatten -> Dropout -> Dense 512 (ReLU)."""
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    return keras.layers.Dense(512, activation="relu", name="dense")(x)


def output_layer(num_classes: int) -> keras.layers.Dense:
    """Sigmoid for two classes (one unit: P(second class)), softmax for more.

    float32 even under mixed precision, so the loss and the probabilities are exact.
    """
    if num_classes == 2:
        return keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="output")
    return keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="output")


def class_probabilities(outputs: np.ndarray, num_classes: int) -> np.ndarray:
    """Model outputs -> ``(N, classes)``; a binary model's sigmoid ``p`` becomes ``[1 - p, p]``."""
    outputs = np.asarray(outputs, np.float32)
    if num_classes == 2 and outputs.shape[-1] == 1:
        return np.concatenate([1.0 - outputs, outputs], axis=-1)
    return outputs
