"""Pooled features of a pretrained base for every image: what the label check, the near-duplicate check and the
outlier check compare images by.

The base is built by ``models.create_model`` as for training (its own preprocessing inside), cut below its
head (``training.features.split_at_first_trainable``, as ``--cache-features`` cuts it) and pooled over space.
Images are checked and decoded as prediction decodes them (``data.sources.decoded_batches``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from catsdogs.data.files import Failure
from catsdogs.data.sources import decoded_batches
from catsdogs.models import create_model
from catsdogs.runtime.prediction import run_decoded
from catsdogs.training.features import split_at_first_trainable


def feature_extractor(base: str, image_size: int, weights: str | None, options: dict[str, Any]) -> keras.Model:
    """Images (RGB 0-255) -> the frozen base's output, averaged over space: one vector per image."""
    model = create_model(base, image_size=image_size, num_classes=2, weights=weights, **options)
    prefix, _, _ = split_at_first_trainable(model)
    pooled = prefix.output
    if len(pooled.shape) == 4:
        pooled = keras.layers.GlobalAveragePooling2D(name="pooled")(pooled)
    return keras.Model(prefix.input, pooled, name=f"{base}_features")


def image_features(extractor: keras.Model, paths: Sequence[str], image_size: int, batch_size: int = 32,
                   progress: bool | None = None) -> tuple[list[str], np.ndarray, list[Failure]]:
    """The paths that decoded, their feature rows (float32, in that order), and a ``Failure`` per file that did not."""
    kept, rows, failures = run_decoded(
        lambda checks, size, failed: decoded_batches(checks, image_size, size, failed), image_size,
        lambda images: np.asarray(extractor.predict_on_batch(images), np.float32), paths, batch_size, progress)
    width = int(extractor.output.shape[-1])
    return kept, (rows.astype(np.float32) if len(kept) else np.zeros((0, width), np.float32)), failures
