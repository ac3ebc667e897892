"""The affine maths of augmentation: ImageDataGenerator's transforms, composed and applied in one resampling.

Keras 3 dropped ``ImageDataGenerator``. Its nearest replacement, a chain of ``Random*`` preprocessing
layers, resamples the image once per layer (blurrier, ~4x the cost) and reads some parameters
differently (see the table in README.md, "Augmentation"). Here the parameters keep ImageDataGenerator's
names and meaning, and, as ImageDataGenerator does, rotation, shift, shear, zoom and the flip are
composed into one matrix per image and applied once with ``ImageProjectiveTransformV3``.

Conventions, as in ``keras.preprocessing.image.apply_affine_transform`` (Keras 2):
- the matrix maps an *output* pixel (x = column, y = row) to the *input* position it samples from;
- ``transform = rotation @ shift @ shear @ zoom`` about the image centre, then the flips;
- ``rotation_range`` and ``shear_range`` are in degrees; shift ranges below 1 are fractions of the
  image size, 1 or more are pixels; ``zoom_range`` z draws x and y zoom independently from
  [1 - z, 1 + z] (zoom > 1 samples a wider area: the content looks smaller).

The same code runs in a ``tf.data`` map (``catsdogs.data.augment``, XLA-compiled there) and inside a model
(``catsdogs.models.layers.RandomAffine``), where it can run on the accelerator; it sits below both layers.
"""

from __future__ import annotations

import math

import tensorflow as tf

from catsdogs.config import AugmentParams

__all__ = ["affine_transforms", "apply_transforms", "augment_batch", "augment_sources", "random_transforms",
           "resample_sources"]


def affine_transforms(
    height: int | tf.Tensor,
    width: int | tf.Tensor,
    theta: tf.Tensor,
    shift_x: tf.Tensor,
    shift_y: tf.Tensor,
    shear: tf.Tensor,
    zoom_x: tf.Tensor,
    zoom_y: tf.Tensor,
    flip_horizontal: tf.Tensor | None = None,
    flip_vertical: tf.Tensor | None = None,
) -> tf.Tensor:
    """Per-image transforms, shape (batch, 8), in ``ImageProjectiveTransformV3``'s layout.

    Arguments are 1-D tensors of one length: ``theta`` and ``shear`` in radians, shifts in pixels
    (x = columns, y = rows), zooms as factors, optional boolean flips applied after the affine map.
    The composition is Keras 2's ``apply_affine_transform``, which also works in (x, y) order.
    """
    theta = tf.cast(theta, tf.float32)
    batch = tf.shape(theta)[0]
    ones, zeros = tf.ones([batch]), tf.zeros([batch])

    def matrix(rows: list[list[tf.Tensor]]) -> tf.Tensor:  # (batch, 3, 3) from a 3x3 grid of (batch,)
        return tf.stack([tf.stack([tf.cast(v, tf.float32) for v in row], axis=-1) for row in rows], axis=-2)

    cos, sin = tf.cos(theta), tf.sin(theta)
    shear = tf.cast(shear, tf.float32)
    rotation = matrix([[cos, -sin, zeros], [sin, cos, zeros], [zeros, zeros, ones]])
    shift = matrix([[ones, zeros, shift_x], [zeros, ones, shift_y], [zeros, zeros, ones]])
    shearing = matrix([[ones, -tf.sin(shear), zeros], [zeros, tf.cos(shear), zeros], [zeros, zeros, ones]])
    zoom = matrix([[zoom_x, zeros, zeros], [zeros, zoom_y, zeros], [zeros, zeros, ones]])
    transform = rotation @ shift @ shearing @ zoom

    # About the centre of the pixel grid: centre @ transform @ centre^-1. (Keras 2 centres x on the
    # height, a slip that only shows on non-square images; here each axis uses its own size.)
    center_x = (tf.cast(width, tf.float32) - 1.0) / 2.0
    center_y = (tf.cast(height, tf.float32) - 1.0) / 2.0
    to_center = matrix([[ones, zeros, center_x * ones], [zeros, ones, center_y * ones], [zeros, zeros, ones]])
    from_center = matrix([[ones, zeros, -center_x * ones], [zeros, ones, -center_y * ones], [zeros, zeros, ones]])
    transform = to_center @ transform @ from_center

    # ImageDataGenerator flips the transformed image; as a map from output to input that is transform @ flip.
    if flip_horizontal is not None:
        flip = tf.cast(flip_horizontal, tf.bool)
        sign, offset = tf.where(flip, -1.0, 1.0), tf.where(flip, 2.0 * center_x, 0.0)
        transform = transform @ matrix([[sign, zeros, offset], [zeros, ones, zeros], [zeros, zeros, ones]])
    if flip_vertical is not None:
        flip = tf.cast(flip_vertical, tf.bool)
        sign, offset = tf.where(flip, -1.0, 1.0), tf.where(flip, 2.0 * center_y, 0.0)
        transform = transform @ matrix([[ones, zeros, zeros], [zeros, sign, offset], [zeros, zeros, ones]])
    return tf.reshape(transform, [batch, 9])[:, :8]


def random_transforms(height: int | tf.Tensor, width: int | tf.Tensor, batch: int | tf.Tensor,
                      params: AugmentParams, seed: tf.Tensor) -> tf.Tensor:
    """Draw ``batch`` transforms the way ImageDataGenerator.get_random_transform does, from a stateless seed."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=7)
    height_f, width_f = tf.cast(height, tf.float32), tf.cast(width, tf.float32)

    def uniform(index: int, low: float, high: float) -> tf.Tensor:
        return tf.random.stateless_uniform([batch], seeds[index], minval=low, maxval=high)

    def shift(index: int, value: float, size: tf.Tensor) -> tf.Tensor:
        pixels = uniform(index, -value, value)
        return pixels * size if value < 1 else pixels  # < 1: a fraction of the size, as in Keras 2

    theta = uniform(0, -params.rotation_range, params.rotation_range) * (math.pi / 180.0)
    shift_x = shift(1, params.width_shift_range, width_f)
    shift_y = shift(2, params.height_shift_range, height_f)
    shear = uniform(3, -params.shear_range, params.shear_range) * (math.pi / 180.0)
    zoom_low, zoom_high = params.zoom_bounds
    zx, zy = uniform(4, zoom_low, zoom_high), uniform(5, zoom_low, zoom_high)
    coins = tf.random.stateless_uniform([2, batch], seeds[6])
    flip_h = coins[0] < 0.5 if params.horizontal_flip else None
    flip_v = coins[1] < 0.5 if params.vertical_flip else None
    return affine_transforms(height, width, theta, shift_x, shift_y, shear, zx, zy, flip_h, flip_v)


def _map_coordinates(coords: tf.Tensor, size: tf.Tensor, fill_mode: str) -> tf.Tensor:
    """Bring sampling coordinates back inside [0, size - 1] the way ``ImageProjectiveTransformV3`` does."""
    last = size - 1.0
    if fill_mode == "reflect":  # d c b a | a b c d | d c b a
        period = tf.math.floormod(coords, 2.0 * size)
        coords = tf.where(period >= size, 2.0 * size - 1.0 - period, period)
    elif fill_mode == "wrap":  # a b c d | a b c d | a b c d
        coords = tf.math.floormod(coords, size)
    elif fill_mode == "constant":  # neighbours outside read cval
        return coords
    return tf.clip_by_value(coords, 0.0, last)


def apply_transforms(images: tf.Tensor, transforms: tf.Tensor, fill_mode: str = "nearest",
                     interpolation: str = "bilinear", cval: float = 0.0) -> tf.Tensor:
    """Resample a batch (N, H, W, C) once with per-image affine (N, 8) transforms.

    Same semantics as ``tf.raw_ops.ImageProjectiveTransformV3`` for affine maps, written as gathers
    so that XLA can fuse it into one loop (``augment_batch(..., compiled=True)``): on a 2-core CPU
    that is about 1.8x faster than TensorFlow's kernel, which recomputes each coordinate per channel.
    """
    images = tf.convert_to_tensor(images)
    shape = tf.shape(images)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    x, y = _sampled_positions(transforms, height, width)
    x = _map_coordinates(x, tf.cast(width, tf.float32), fill_mode)
    y = _map_coordinates(y, tf.cast(height, tf.float32), fill_mode)
    out = _sample(tf.reshape(images, [batch, height * width, channels]), height, width, x, y, interpolation, cval)
    out = tf.reshape(out, shape)
    if images.dtype.is_integer:
        out = tf.round(out)
    return tf.cast(out, images.dtype)


def resample_sources(sources: tf.Tensor, sizes: tf.Tensor, transforms: tf.Tensor, image_size: int,
                     fill_mode: str = "nearest", interpolation: str = "bilinear", cval: float = 0.0) -> tf.Tensor:
    """Squash each image of a batch to ``image_size`` and transform it, in one resampling: float32 (N, S, S, C).

    ``sources`` (N, P, C) holds each image's pixels row by row (its width ``sizes[i, 1]``, its height
    ``sizes[i, 0]``), padded at the end to a common length: images of any size in one tensor, so that the
    gathers run batched through XLA. ``transforms`` are drawn for the square output, as ``apply_transforms``
    takes them; each sampled position is then carried onto the image's own grid the way ``tf.image.resize``
    maps pixel centres. Compared with resizing first and transforming the resized image, this reads the
    decoded image once and interpolates once (no blur of a second bilinear pass), and the identity
    transform gives ``tf.image.resize``'s bilinear pixels. Fill modes act on the square grid, as in
    ``apply_transforms``; a neighbour past the image's own border reads its edge (``constant``: ``cval``).
    """
    sizes = tf.cast(sizes, tf.int32)
    heights, widths = sizes[:, 0:1], sizes[:, 1:2]  # (N, 1), broadcast over each image's output pixels
    x, y = _sampled_positions(transforms, image_size, image_size)
    size = float(image_size)
    x = (_map_coordinates(x, size, fill_mode) + 0.5) * (tf.cast(widths, tf.float32) / size) - 0.5
    y = (_map_coordinates(y, size, fill_mode) + 0.5) * (tf.cast(heights, tf.float32) / size) - 0.5
    out = _sample(sources, heights, widths, x, y, interpolation, cval, clamp=fill_mode != "constant")
    return tf.reshape(out, [-1, image_size, image_size, tf.shape(sources)[2]])


def _sampled_positions(transforms: tf.Tensor, height: int | tf.Tensor, width: int | tf.Tensor
                       ) -> tuple[tf.Tensor, tf.Tensor]:
    """Where each output pixel of a (height, width) grid samples, under per-image (N, 8) transforms: x, y (N, H*W)."""
    rows, cols = tf.meshgrid(tf.range(tf.cast(height, tf.float32)), tf.range(tf.cast(width, tf.float32)),
                             indexing="ij")
    rows, cols = tf.reshape(rows, [1, -1]), tf.reshape(cols, [1, -1])
    t = tf.cast(transforms, tf.float32)[:, :, None]
    return t[:, 0] * cols + t[:, 1] * rows + t[:, 2], t[:, 3] * cols + t[:, 4] * rows + t[:, 5]


def _sample(pixels: tf.Tensor, height: tf.Tensor | int, width: tf.Tensor | int, x: tf.Tensor, y: tf.Tensor,
            interpolation: str, cval: float, clamp: bool = False) -> tf.Tensor:
    """Float32 values (N, M, C) of images stored as pixel rows (N, P, C), ``height`` x ``width`` each (scalars or
    (N, 1)), at positions x, y (N, M). A neighbour outside the image reads ``cval``; ``clamp`` reads the edge.
    Pixels are gathered in their own dtype (uint8 moves a quarter of the bytes) and converted after."""
    fill = tf.cast(cval, tf.float32)

    def read(yi: tf.Tensor, xi: tf.Tensor) -> tf.Tensor:  # (N, M, C)
        index = tf.clip_by_value(yi, 0, height - 1) * width + tf.clip_by_value(xi, 0, width - 1)
        values = tf.cast(tf.gather(pixels, index, batch_dims=1), tf.float32)
        if clamp:
            return values
        inside = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
        return tf.where(inside[..., None], values, fill)

    if interpolation == "nearest":
        return read(tf.cast(tf.floor(y + 0.5), tf.int32), tf.cast(tf.floor(x + 0.5), tf.int32))
    x0, y0 = tf.floor(x), tf.floor(y)
    dx, dy = (x - x0)[..., None], (y - y0)[..., None]
    x0, y0 = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
    top = read(y0, x0) * (1.0 - dx) + read(y0, x0 + 1) * dx
    bottom = read(y0 + 1, x0) * (1.0 - dx) + read(y0 + 1, x0 + 1) * dx
    return top * (1.0 - dy) + bottom * dy


def augment_batch(images: tf.Tensor, params: AugmentParams, seed: tf.Tensor, compiled: bool = False) -> tf.Tensor:
    """Augment a float batch (N, H, W, C) with ``params``; the same ``seed`` gives the same result.

    ``compiled=True`` resamples through XLA, which fuses the gathers into one loop (for tf.data maps
    on the CPU, where nothing else compiles them). The transforms are drawn outside XLA on purpose:
    its random generators give other numbers for the same seed.
    """
    if params.is_identity:
        return images
    shape = tf.shape(images)
    transforms = random_transforms(shape[1], shape[2], shape[0], params, seed)
    apply = _apply_transforms_xla if compiled else apply_transforms
    return apply(images, transforms, params.fill_mode, params.interpolation, params.cval)


_apply_transforms_xla = tf.function(apply_transforms, jit_compile=True, reduce_retracing=True)


def augment_sources(sources: tf.Tensor, sizes: tf.Tensor, params: AugmentParams, seed: tf.Tensor,
                    image_size: int) -> tf.Tensor:
    """``augment_batch`` of images of any size (``resample_sources``' layout), squashed to ``image_size`` in the
    same resampling, through XLA: what ``make_dataset`` runs for an uncached augmented epoch. The transforms are
    drawn for the square output with the same seed, so they are the ones ``augment_batch`` draws for the resized
    batch."""
    transforms = random_transforms(image_size, image_size, tf.shape(sources)[0], params, seed)
    return _resample_sources_xla(sources, sizes, transforms, image_size, params.fill_mode, params.interpolation,
                                 params.cval)


_resample_sources_xla = tf.function(resample_sources, jit_compile=True, reduce_retracing=True)
