"""Augmentation of a batched tf.data pipeline with ImageDataGenerator's parameters, and its preview.

The maths (one affine matrix per image, one resampling) is ``catsdogs.affine``; here it is drawn
afresh every epoch from a seeded stream, so a run repeats exactly for a given seed.
``save_augmentation_preview`` draws the report's figure 7: one image and N augmented versions of it.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from catsdogs.affine import augment_batch, augment_sources
from catsdogs.config import DEFAULT_IMAGE_SIZE, DEFAULT_SEED, AugmentParams
from catsdogs.data.decode import load_image
from catsdogs.plots import image_grid


def augment_dataset(dataset: tf.data.Dataset, params: AugmentParams, seed: int = DEFAULT_SEED) -> tf.data.Dataset:
    """Augment the images of a batched ``(images, labels)`` dataset; new draws each epoch, same ones per seed."""
    return tf.data.Dataset.zip((dataset, batch_seeds(seed))).map(
        lambda batch, batch_seed: (augment_batch(batch[0], params, batch_seed, compiled=True), batch[1]),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def augment_sources_dataset(dataset: tf.data.Dataset, params: AugmentParams, image_size: int,
                            seed: int = DEFAULT_SEED) -> tf.data.Dataset:
    """``augment_dataset`` for ``pipeline.source_batches``: each batch squashed to ``image_size`` and augmented in
    one resampling (``affine.augment_sources``), float32 out. The seeds are ``augment_dataset``'s, so the same
    batch gets the same transforms either way."""
    return tf.data.Dataset.zip((dataset, batch_seeds(seed))).map(
        lambda batch, batch_seed: (augment_sources(batch[0][0], batch[0][1], params, batch_seed, image_size), batch[1]),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def batch_seeds(seed: int) -> tf.data.Dataset:
    """One stateless seed per batch from a seeded stream that is re-drawn every epoch."""
    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)


def save_augmentation_preview(image_path: str | Path, path: str | Path, count: int = 8,
                              image_size: int = DEFAULT_IMAGE_SIZE, params: AugmentParams | None = None,
                              seed: int = 0) -> Path:
    """``count`` augmented versions of one image in a grid, the original first (the report's figure 7)."""
    params = params or AugmentParams()
    image = tf.cast(load_image(image_path, image_size), tf.float32)
    batch = tf.repeat(image[None], count, axis=0)
    augmented = augment_batch(batch, params, tf.constant([seed, 0])).numpy()
    tiles = [image.numpy(), *augmented]
    titles = ["original", *[f"augmented {i + 1}" for i in range(count)]]
    return image_grid(tiles, path, columns=min(len(tiles), 5), titles=titles)
