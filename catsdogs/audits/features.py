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
from catsdogs.data.images import check_files
from catsdogs.data.sources import decoded_batches
from catsdogs.models import create_model
from catsdogs.runtime.prediction import progress_bar
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
    checks = check_files(paths, image_size)
    failures = [check.failure() for check in checks if not check.ok]
    usable = [check for check in checks if check.ok]
    kept: list[str] = []
    rows: list[np.ndarray] = []
    with progress_bar(len(usable), progress) as bar:
        bar.set_description("features")
        for batch, images in decoded_batches(usable, image_size, batch_size, failures):
            kept += batch
            rows.append(np.asarray(extractor.predict_on_batch(images), np.float32))
            bar.update(len(batch))
    width = int(extractor.output.shape[-1])
    return kept, (np.concatenate(rows) if rows else np.zeros((0, width), np.float32)), failures
