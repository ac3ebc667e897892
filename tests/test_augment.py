"""ImageDataGenerator-compatible augmentation: parameter meaning, one fused resampling, determinism."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from catsdogs.affine import affine_transforms, apply_transforms, augment_batch, random_transforms, resample_sources
from catsdogs.config import NO_AUGMENTATION, AugmentParams
from catsdogs.models.layers import RandomAffine

SIZE = 33  # odd, so the centre is a pixel
CENTER = SIZE // 2


def marker_image(row: int, col: int, size: int = SIZE) -> np.ndarray:
    image = np.zeros((1, size, size, 3), np.float32)
    image[0, row, col] = 255.0
    return image


def brightest(image: np.ndarray) -> tuple[int, int]:
    row, col = np.unravel_index(np.argmax(image[0].sum(-1)), image.shape[1:3])
    return int(row), int(col)


def transform(image: np.ndarray, theta: float = 0.0, shift_x: float = 0.0, shift_y: float = 0.0,
              shear: float = 0.0, zoom_x: float = 1.0, zoom_y: float = 1.0, flip: bool | None = None,
              fill_mode: str = "nearest") -> np.ndarray:
    one = lambda v: tf.constant([v], tf.float32)  # noqa: E731
    flip_tensor = None if flip is None else tf.constant([flip])
    matrices = affine_transforms(image.shape[1], image.shape[2], one(theta), one(shift_x), one(shift_y),
                                 one(shear), one(zoom_x), one(zoom_y), flip_tensor)
    return apply_transforms(image, matrices, fill_mode).numpy()


def test_pure_horizontal_flip_mirrors_columns():
    image = np.random.default_rng(0).uniform(0, 255, (1, SIZE, SIZE + 4, 3)).astype(np.float32)
    np.testing.assert_allclose(transform(image, flip=True), image[:, :, ::-1], atol=1e-3)
    np.testing.assert_allclose(transform(image, flip=False), image, atol=1e-3)


def test_pure_shift_moves_content_by_the_shift():
    # The matrix maps output to input: sampling at x + 5 moves the content 5 pixels left.
    image = marker_image(10, 20)
    assert brightest(transform(image, shift_x=5.0)) == (10, 15)
    assert brightest(transform(image, shift_y=-4.0)) == (14, 20)


def test_pure_rotation_moves_known_pixels():
    # +90 degrees (Keras 2's sign): the pixel right of the centre goes above it, counter-clockwise on screen.
    image = marker_image(CENTER, CENTER + 8)
    assert brightest(transform(image, theta=math.pi / 2)) == (CENTER - 8, CENTER)
    assert brightest(transform(image, theta=-math.pi / 2)) == (CENTER + 8, CENTER)
    assert brightest(transform(image, theta=math.pi)) == (CENTER, CENTER - 8)


def test_zoom_above_one_shrinks_content_towards_the_centre():
    image = marker_image(CENTER, CENTER + 8)
    assert brightest(transform(image, zoom_x=2.0, zoom_y=2.0)) == (CENTER, CENTER + 4)


def test_shift_range_is_a_fraction_of_the_size():
    params = AugmentParams(rotation_range=0, width_shift_range=0.25, height_shift_range=0, shear_range=0,
                           zoom_range=0, horizontal_flip=False)
    matrices = random_transforms(SIZE, 40, 256, params, tf.constant([3, 4])).numpy()
    shift_x, shift_y = matrices[:, 2], matrices[:, 5]
    np.testing.assert_allclose(shift_y, 0.0, atol=1e-4)
    assert np.abs(shift_x).max() <= 0.25 * 40 + 1e-4
    assert np.abs(shift_x).max() > 0.2 * 40  # the whole range is used
    np.testing.assert_allclose(matrices[:, [0, 4]], 1.0, atol=1e-5)  # no rotation, zoom or shear


def test_shear_range_is_in_degrees_as_in_imagedatagenerator():
    # The report's shear_range=0.2 means +-0.2 degrees, not a shear factor of 0.2.
    params = AugmentParams(rotation_range=0, width_shift_range=0, height_shift_range=0, shear_range=0.2,
                           zoom_range=0, horizontal_flip=False)
    matrices = random_transforms(SIZE, SIZE, 512, params, tf.constant([5, 6])).numpy()
    assert np.abs(matrices[:, 1]).max() <= math.sin(math.radians(0.2)) + 1e-6
    assert np.abs(matrices[:, 1]).max() > 0.5 * math.sin(math.radians(0.2))


def test_zoom_range_draws_x_and_y_independently():
    params = AugmentParams(rotation_range=0, width_shift_range=0, height_shift_range=0, shear_range=0,
                           zoom_range=0.2, horizontal_flip=False)
    matrices = random_transforms(SIZE, SIZE, 512, params, tf.constant([7, 8])).numpy()
    zoom_x, zoom_y = matrices[:, 0], matrices[:, 4]
    assert zoom_x.min() >= 0.8 - 1e-5 and zoom_x.max() <= 1.2 + 1e-5
    assert np.abs(zoom_x - zoom_y).max() > 0.1  # independent, so the aspect ratio changes


def test_horizontal_flip_applies_to_about_half_the_images():
    params = AugmentParams(rotation_range=0, width_shift_range=0, height_shift_range=0, shear_range=0,
                           zoom_range=0, horizontal_flip=True)
    image = np.random.default_rng(1).uniform(0, 255, (1, SIZE, SIZE, 3)).astype(np.float32)
    batch = np.repeat(image, 64, axis=0)
    out = augment_batch(tf.constant(batch), params, tf.constant([1, 2])).numpy()
    flipped = [np.allclose(o, image[0, :, ::-1], atol=1e-3) for o in out]
    unchanged = [np.allclose(o, image[0], atol=1e-3) for o in out]
    assert all(f or u for f, u in zip(flipped, unchanged))
    assert 16 < sum(flipped) < 48


def test_values_stay_in_the_input_range_and_dtype():
    rng = np.random.default_rng(2)
    batch = tf.constant(rng.uniform(10, 200, (8, 40, 40, 3)).astype(np.float32))
    for compiled in (False, True):
        out = augment_batch(batch, AugmentParams(), tf.constant([1, 2]), compiled=compiled)
        assert out.dtype == tf.float32 and out.shape == batch.shape
        assert float(tf.reduce_min(out)) >= 10 - 1e-3 and float(tf.reduce_max(out)) <= 200 + 1e-3
        assert float(tf.reduce_mean(tf.abs(out - batch))) > 1.0  # it did move pixels


def test_same_seed_same_result_and_compiled_matches_graph():
    batch = tf.constant(np.random.default_rng(3).uniform(0, 255, (4, 40, 40, 3)).astype(np.float32))
    first = augment_batch(batch, AugmentParams(), tf.constant([9, 9]))
    again = augment_batch(batch, AugmentParams(), tf.constant([9, 9]))
    other = augment_batch(batch, AugmentParams(), tf.constant([9, 10]))
    compiled = augment_batch(batch, AugmentParams(), tf.constant([9, 9]), compiled=True)
    np.testing.assert_array_equal(first.numpy(), again.numpy())
    assert not np.allclose(first.numpy(), other.numpy())
    np.testing.assert_allclose(compiled.numpy(), first.numpy(), atol=0.05)


@pytest.mark.parametrize("fill_mode", ["nearest", "reflect", "constant"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_matches_tensorflow_projective_transform(fill_mode, interpolation):
    rng = np.random.default_rng(4)
    images = tf.constant(rng.uniform(0, 255, (4, 30, 36, 3)).astype(np.float32))
    params = AugmentParams(rotation_range=60, zoom_range=0.4, width_shift_range=0.3)
    matrices = random_transforms(30, 36, 4, params, tf.constant([1, 2]))
    expected = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=matrices, output_shape=[30, 36], fill_value=7.0,
        interpolation=interpolation.upper(), fill_mode=fill_mode.upper())
    ours = apply_transforms(images, matrices, fill_mode, interpolation, cval=7.0)
    np.testing.assert_allclose(ours.numpy(), expected.numpy(), atol=0.01)


def _packed(images: list[np.ndarray]) -> tuple[tf.Tensor, tf.Tensor]:
    """Images of several sizes in ``resample_sources``' layout: pixel rows padded to the longest, and sizes."""
    length = max(i.shape[0] * i.shape[1] for i in images)
    rows = [np.pad(i.reshape(-1, 3), [[0, length - i.shape[0] * i.shape[1]], [0, 0]], constant_values=255)
            for i in images]
    return tf.constant(np.stack(rows)), tf.constant([i.shape[:2] for i in images], tf.int32)


SOURCE_SHAPES = [(40, 60, 3), (45, 17, 3), (9, 12, 3)]  # down, mixed and up from 24 px


def _smooth(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    """Gradients and a low frequency: an image two bilinear passes and one resample alike."""
    rows, cols = np.meshgrid(np.linspace(0, 1, shape[0]), np.linspace(0, 1, shape[1]), indexing="ij")
    phase = np.random.default_rng(seed).uniform(0, 6, 3)
    return np.stack([127 + 120 * np.sin(3 * rows + 2 * cols + p) for p in phase], -1).astype(np.uint8)


def test_resample_sources_with_the_identity_is_tensorflows_bilinear_resize():
    images = [np.random.default_rng(i).integers(0, 256, s).astype(np.uint8) for i, s in enumerate(SOURCE_SHAPES)]
    sources, sizes = _packed(images)
    identity = tf.constant([[1.0, 0, 0, 0, 1, 0, 0, 0]] * len(images))
    ours = resample_sources(sources, sizes, identity, 24).numpy()
    for out, image in zip(ours, images):
        np.testing.assert_allclose(out, tf.image.resize(image, [24, 24]).numpy(), atol=1e-3)


def test_resample_sources_flip_is_the_mirrored_resize():
    images = [np.random.default_rng(i).integers(0, 256, s).astype(np.uint8) for i, s in enumerate(SOURCE_SHAPES)]
    sources, sizes = _packed(images)
    zeros, ones = tf.zeros([3]), tf.ones([3])
    flips = affine_transforms(24, 24, zeros, zeros, zeros, zeros, ones, ones, tf.constant([True, True, False]))
    ours = resample_sources(sources, sizes, flips, 24).numpy()
    for out, image, flipped in zip(ours, images, [True, True, False]):
        expected = tf.image.resize(image, [24, 24]).numpy()
        np.testing.assert_allclose(out, expected[:, ::-1] if flipped else expected, atol=1e-3)


@pytest.mark.parametrize("fill_mode", ["nearest", "reflect", "constant"])
def test_resample_sources_transforms_as_resizing_then_transforming(fill_mode):
    images = [_smooth(s, i) for i, s in enumerate(SOURCE_SHAPES)]
    sources, sizes = _packed(images)
    matrices = random_transforms(24, 24, 3, AugmentParams(rotation_range=60, zoom_range=0.4), tf.constant([3, 4]))
    ours = resample_sources(sources, sizes, matrices, 24, fill_mode, cval=7.0).numpy()
    resized = tf.stack([tf.image.resize(i, [24, 24]) for i in images])
    two_passes = apply_transforms(resized, matrices, fill_mode, cval=7.0).numpy()
    unmoved = resized.numpy()
    # One interpolation instead of two changes pixels a little; the content moved the same way.
    assert np.abs(ours - two_passes).mean() < 3.0 < np.abs(ours - unmoved).mean()


def test_identity_parameters_skip_resampling():
    batch = tf.constant(np.arange(2 * 5 * 5 * 3, dtype=np.float32).reshape(2, 5, 5, 3))
    assert NO_AUGMENTATION.is_identity and not AugmentParams().is_identity
    assert augment_batch(batch, NO_AUGMENTATION, tf.constant([1, 2])) is batch


def test_invalid_parameters_are_refused():
    with pytest.raises(ValueError, match="fill_mode"):
        AugmentParams(fill_mode="mirror")
    with pytest.raises(ValueError, match="rotation_range"):
        AugmentParams(rotation_range=-1)
    with pytest.raises(ValueError, match="zoom_range"):
        AugmentParams(zoom_range=1.5)


def test_random_affine_layer_trains_only_and_round_trips(tmp_path):
    batch = np.random.default_rng(5).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, RandomAffine(AugmentParams(rotation_range=30), seed=1)(inputs))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(batch, training=False)), batch)
    assert not np.allclose(keras.ops.convert_to_numpy(model(batch, training=True)), batch)
    model.save(tmp_path / "augment.keras")
    reloaded = keras.models.load_model(tmp_path / "augment.keras")  # safe mode: no Lambda needed
    layer = reloaded.layers[-1]
    assert isinstance(layer, RandomAffine) and layer.params == AugmentParams(rotation_range=30)


def test_matches_imagedatagenerator_when_tf_keras_is_installed():
    image_module = pytest.importorskip("tf_keras.preprocessing.image")
    pytest.importorskip("scipy")
    rng = np.random.default_rng(6)
    image = rng.uniform(0, 255, (SIZE, SIZE, 3)).astype(np.float32)
    # Keras 2 calls the column shift "tx" (it is drawn from height_shift_range there: a known swap).
    expected = image_module.apply_affine_transform(image, theta=25, tx=3, ty=-2, shear=8, zx=1.1, zy=0.9,
                                                   row_axis=0, col_axis=1, channel_axis=2, order=1)
    ours = transform(image[None], theta=math.radians(25), shift_x=3, shift_y=-2, shear=math.radians(8),
                     zoom_x=1.1, zoom_y=0.9)
    np.testing.assert_allclose(ours[0], expected, atol=0.05)
