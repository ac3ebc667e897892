"""Pictures of training and of what the network sees; each function writes a PNG (and numbers beside it).

``plot_history``: accuracy and loss, training vs validation, as in the report's figures.
``save_augmentation_preview``: N augmented versions of one image (the report's figure 7).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_history(history: Mapping[str, Sequence[float]], path: str | Path, title: str = "") -> Path:
    """Two panels, accuracy and loss per epoch, training (dots) vs validation (line)."""
    path = Path(path)
    epochs = history.get("epoch") or range(len(history.get("loss", [])))
    epochs = [int(e) + 1 for e in epochs]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for axis, metric in zip(axes, ("accuracy", "loss")):
        if metric in history:
            axis.plot(epochs, history[metric], "o", markersize=3, label=f"training {metric}")
        if f"val_{metric}" in history:
            axis.plot(epochs, history[f"val_{metric}"], "-", label=f"validation {metric}")
        axis.set_xlabel("epoch")
        axis.set_title(f"{title} {metric}".strip())
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def image_grid(images: Sequence[np.ndarray], path: str | Path, columns: int | None = None,
               titles: Sequence[str] | None = None, cmap: str | None = None, tile_inches: float = 2.0) -> Path:
    """Save tiles in a grid; uint8/float RGB images or 2-D maps (shown with ``cmap``)."""
    path = Path(path)
    count = len(images)
    columns = columns or min(count, 8)
    rows = math.ceil(count / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(tile_inches * columns, tile_inches * rows), squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index >= count:
            continue
        image = np.asarray(images[index])
        if image.ndim == 3 and image.dtype != np.uint8:
            image = np.clip(image, 0, 255).astype(np.uint8)
        axis.imshow(image, cmap=cmap)
        if titles:
            axis.set_title(titles[index], fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path


def save_augmentation_preview(image_path: str | Path, path: str | Path, count: int = 8, image_size: int = 150,
                              params: "AugmentParams | None" = None, seed: int = 0) -> Path:
    """``count`` augmented versions of one image in a grid, the original first (the report's figure 7)."""
    import tensorflow as tf

    from catsdogs.augment import AugmentParams, augment_batch
    from catsdogs.data import load_image

    params = params or AugmentParams()
    image = tf.cast(load_image(image_path, image_size), tf.float32)
    batch = tf.repeat(image[None], count, axis=0)
    augmented = augment_batch(batch, params, tf.constant([seed, 0])).numpy()
    tiles = [image.numpy(), *augmented]
    titles = ["original", *[f"augmented {i + 1}" for i in range(count)]]
    return image_grid(tiles, path, columns=min(len(tiles), 5), titles=titles)
