"""The keras.ops augmentation (``catsdogs.affine_ops``, what ``RandomAffine`` runs on every backend) against
the TensorFlow one the tf.data pipeline runs (``catsdogs.affine``): same matrices, same pixels.

Runs under ``KERAS_BACKEND=jax`` as well (CI does): ``catsdogs.affine`` is plain TensorFlow either way.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from catsdogs import affine, affine_ops
from catsdogs.config import FILL_MODES, INTERPOLATIONS, AugmentParams

BATCH, HEIGHT, WIDTH = 6, 21, 27  # not square: each axis must use its own centre


def parameters(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(-0.7, 0.7, BATCH), rng.uniform(-5, 5, BATCH), rng.uniform(-4, 4, BATCH),
            rng.uniform(-0.3, 0.3, BATCH), rng.uniform(0.8, 1.2, BATCH), rng.uniform(0.8, 1.2, BATCH),
            rng.uniform(0, 1, BATCH) < 0.5, rng.uniform(0, 1, BATCH) < 0.5]


def numpy(x: object) -> np.ndarray:
    return keras.ops.convert_to_numpy(x) if not isinstance(x, tf.Tensor) else x.numpy()


def test_the_matrices_are_the_tensorflow_ones():
    values = parameters()
    reference = affine.affine_transforms(HEIGHT, WIDTH, *[tf.constant(v) for v in values])
    ours = affine_ops.affine_transforms(HEIGHT, WIDTH, *[keras.ops.convert_to_tensor(v) for v in values])
    np.testing.assert_allclose(numpy(ours), numpy(reference), atol=1e-5)
    without_flips = affine_ops.affine_transforms(HEIGHT, WIDTH, *values[:6])
    np.testing.assert_allclose(numpy(without_flips), numpy(affine.affine_transforms(HEIGHT, WIDTH, *values[:6])),
                               atol=1e-5)


@pytest.mark.parametrize("fill_mode", FILL_MODES)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_the_resampling_gives_the_tensorflow_pixels(fill_mode, interpolation):
    images = np.random.default_rng(1).uniform(0, 255, (BATCH, HEIGHT, WIDTH, 3)).astype(np.float32)
    transforms = numpy(affine.affine_transforms(HEIGHT, WIDTH, *[tf.constant(v) for v in parameters(2)]))
    reference = numpy(affine.apply_transforms(images, transforms, fill_mode, interpolation, cval=17.0))
    ours = numpy(affine_ops.apply_transforms(keras.ops.convert_to_tensor(images),
                                             keras.ops.convert_to_tensor(transforms), fill_mode, interpolation, 17.0))
    differs = np.abs(ours - reference).max(axis=-1) > 1e-2
    if fill_mode == "wrap":
        # TensorFlow's kernel wraps with a period of size - 1 on some coordinates (its own quirk; ours and
        # JAX's use the size): the same pixels wherever the source point lies inside the image.
        differs &= inside_the_image(transforms)
    # Nearest-neighbour reads may round a coordinate at exactly .5 the other way: a few pixels, not the image.
    assert differs.mean() < (0.01 if interpolation == "nearest" else 1e-4), differs.mean()


def inside_the_image(transforms: np.ndarray) -> np.ndarray:
    """(N, H, W): whether each output pixel samples from a point inside the input image."""
    rows, cols = np.meshgrid(np.arange(HEIGHT), np.arange(WIDTH), indexing="ij")
    t = transforms[:, :, None, None]
    x = t[:, 0] * cols + t[:, 1] * rows + t[:, 2]
    y = t[:, 3] * cols + t[:, 4] * rows + t[:, 5]
    return (x >= 0) & (x <= WIDTH - 1) & (y >= 0) & (y <= HEIGHT - 1)


def test_random_transforms_draw_within_the_ranges_and_vary():
    params = AugmentParams(rotation_range=30, width_shift_range=0, height_shift_range=0, shear_range=0,
                           zoom_range=0, horizontal_flip=True)
    seed = keras.random.SeedGenerator(3)
    transforms = numpy(affine_ops.random_transforms(HEIGHT, WIDTH, 400, params, seed))
    determinant = transforms[:, 0] * transforms[:, 4] - transforms[:, 1] * transforms[:, 3]
    flipped = determinant < 0  # a flip reverses the orientation; rotations keep it
    assert 0.4 < flipped.mean() < 0.6
    angles = np.degrees(np.arctan2(transforms[:, 3], np.where(flipped, -transforms[:, 0], transforms[:, 0])))
    assert np.abs(angles).max() <= 30.0 + 1e-3 and np.abs(angles).max() > 25  # the range, and near its edge
    again = numpy(affine_ops.random_transforms(HEIGHT, WIDTH, 400, params, seed))
    assert not np.allclose(again, transforms)  # the generator moves on


def test_identity_parameters_leave_the_batch_alone():
    images = keras.ops.ones((2, 8, 8, 3))
    no_change = AugmentParams(rotation_range=0, width_shift_range=0, height_shift_range=0, shear_range=0,
                              zoom_range=0, horizontal_flip=False)
    assert affine_ops.augment_batch(images, no_change, seed=1) is images
    assert math.isclose(float(numpy(affine_ops.augment_batch(images, AugmentParams(), seed=1)).mean()), 1.0,
                        rel_tol=1e-5)  # nearest fill: a constant image stays constant whatever the warp
