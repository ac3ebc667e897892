"""``catsdogs.affine``'s augmentation in ``keras.ops``: the same transforms on any Keras backend.

``catsdogs.affine`` is TensorFlow code on purpose: it runs inside ``tf.data`` maps, which are TensorFlow
graphs whatever the Keras backend, and its XLA-fused resampling is 1.8x faster there than TensorFlow's
kernel. A layer, though, runs on the model's backend (JAX arrays under ``KERAS_BACKEND=jax``), so
``RandomAffine`` and the TensorFlow-free pipeline use this twin: the same composition of ImageDataGenerator's
rotation, shift, shear, zoom and flips (conventions in ``catsdogs.affine``), applied once with
``keras.ops.image.affine_transform``. ``tests/test_affine_ops.py`` holds the two to the same matrices and
the same pixels; only the random draws differ (each backend's own generator).
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from catsdogs.config import AugmentParams


def affine_transforms(height: Any, width: Any, theta: Any, shift_x: Any, shift_y: Any, shear: Any, zoom_x: Any,
                      zoom_y: Any, flip_horizontal: Any = None, flip_vertical: Any = None) -> Any:
    """Per-image transforms (batch, 8), as ``catsdogs.affine.affine_transforms`` makes them, in keras.ops."""
    theta = ops.cast(theta, "float32")
    ones, zeros = ops.ones_like(theta), ops.zeros_like(theta)

    def matrix(rows: list[list[Any]]) -> Any:  # (batch, 3, 3) from a 3x3 grid of (batch,)
        return ops.stack([ops.stack([ops.cast(v, "float32") for v in row], axis=-1) for row in rows], axis=-2)

    def translation(x: Any, y: Any) -> Any:
        return matrix([[ones, zeros, x], [zeros, ones, y], [zeros, zeros, ones]])

    cos, sin = ops.cos(theta), ops.sin(theta)
    shear = ops.cast(shear, "float32")
    rotation = matrix([[cos, -sin, zeros], [sin, cos, zeros], [zeros, zeros, ones]])
    shearing = matrix([[ones, -ops.sin(shear), zeros], [zeros, ops.cos(shear), zeros], [zeros, zeros, ones]])
    zoom = matrix([[zoom_x, zeros, zeros], [zeros, zoom_y, zeros], [zeros, zeros, ones]])
    transform = rotation @ translation(shift_x, shift_y) @ shearing @ zoom

    center_x = (ops.cast(width, "float32") - 1.0) / 2.0
    center_y = (ops.cast(height, "float32") - 1.0) / 2.0
    transform = translation(center_x * ones, center_y * ones) @ transform @ translation(-center_x * ones,
                                                                                         -center_y * ones)
    if flip_horizontal is not None:
        sign = ops.where(flip_horizontal, -1.0, 1.0)
        transform = transform @ matrix([[sign, zeros, (1.0 - sign) * center_x], [zeros, ones, zeros],
                                        [zeros, zeros, ones]])
    if flip_vertical is not None:
        sign = ops.where(flip_vertical, -1.0, 1.0)
        transform = transform @ matrix([[ones, zeros, zeros], [zeros, sign, (1.0 - sign) * center_y],
                                        [zeros, zeros, ones]])
    return ops.reshape(transform, (-1, 9))[:, :8]


def random_transforms(height: Any, width: Any, batch: Any, params: AugmentParams,
                      seed: keras.random.SeedGenerator | int | None) -> Any:
    """Draw ``batch`` transforms the way ImageDataGenerator.get_random_transform does (keras.random)."""
    height_f, width_f = ops.cast(height, "float32"), ops.cast(width, "float32")

    def uniform(low: float, high: float) -> Any:
        return keras.random.uniform((batch,), minval=low, maxval=high, seed=seed)

    def shift(value: float, size: Any) -> Any:
        pixels = uniform(-value, value)
        return pixels * size if value < 1 else pixels  # < 1: a fraction of the size, as in Keras 2

    theta = uniform(-params.rotation_range, params.rotation_range) * (math.pi / 180.0)
    shift_x = shift(params.width_shift_range, width_f)
    shift_y = shift(params.height_shift_range, height_f)
    shear = uniform(-params.shear_range, params.shear_range) * (math.pi / 180.0)
    zoom_low, zoom_high = params.zoom_bounds
    zoom_x, zoom_y = uniform(zoom_low, zoom_high), uniform(zoom_low, zoom_high)
    flip_h = uniform(0.0, 1.0) < 0.5 if params.horizontal_flip else None
    flip_v = uniform(0.0, 1.0) < 0.5 if params.vertical_flip else None
    return affine_transforms(height, width, theta, shift_x, shift_y, shear, zoom_x, zoom_y, flip_h, flip_v)


def apply_transforms(images: Any, transforms: Any, fill_mode: str = "nearest", interpolation: str = "bilinear",
                     cval: float = 0.0) -> Any:
    """Resample a batch (N, H, W, C) once with per-image (N, 8) transforms; ``config.FILL_MODES`` name
    ImageProjectiveTransformV3's modes as keras.ops.image.affine_transform does."""
    return ops.image.affine_transform(images, transforms, interpolation=interpolation,
                                      fill_mode=fill_mode, fill_value=cval, data_format="channels_last")


def augment_batch(images: Any, params: AugmentParams, seed: keras.random.SeedGenerator | int | None) -> Any:
    """Augment a float batch (N, H, W, C) with ``params``, drawing from ``seed``."""
    if params.is_identity:
        return images
    shape = ops.shape(images)
    transforms = random_transforms(shape[1], shape[2], shape[0], params, seed)
    return apply_transforms(images, transforms, params.fill_mode, params.interpolation, params.cval)
