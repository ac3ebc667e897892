"""Encoded image bytes -> uint8 RGB at a square size, upright: the one decoder training and inference share.

JPEGs at least twice the target on their short side decode at 1/2, 1/4 or 1/8 scale (libjpeg's DCT
scaling is far cheaper than decoding at full size and resizing; ``catsdogs.data.images.jpeg_scale``
picks the scale and the pixel limit counts it); PNG, GIF (first frame), BMP and WebP decode at full
size. Grayscale and RGBA become RGB. The EXIF orientation found by the file check turns the image
upright, as Pillow's ``ImageOps.exif_transpose`` does. The image is then squashed to a square, as the
report's ``flow_from_directory`` did.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import tensorflow as tf

from catsdogs.data.files import require_image_file
from catsdogs.data.images import JPEG_SCALES, check_image_file
from catsdogs.errors import UserError

# EXIF orientation 2-8 -> the ops that turn a decoded (H, W, C) image upright (1, or anything else: as it is).
UPRIGHT = {
    2: tf.image.flip_left_right,  # mirrored
    3: lambda image: tf.image.rot90(image, 2),  # upside down
    4: tf.image.flip_up_down,  # mirrored upside down
    5: lambda image: tf.transpose(image, [1, 0, 2]),  # mirrored, rotated: x and y swapped
    6: lambda image: tf.image.rot90(image, 3),  # taken rotated: turn 90 degrees clockwise
    7: lambda image: tf.image.rot90(tf.transpose(image, [1, 0, 2]), 2),  # transverse
    8: lambda image: tf.image.rot90(image, 1),  # turn 90 degrees counter-clockwise
}


def upright(image: tf.Tensor, orientation: int) -> tf.Tensor:
    """``image`` turned upright by a known EXIF orientation (a Python int: no control flow in the graph)."""
    turn = UPRIGHT.get(orientation)
    return turn(image) if turn else image


def apply_orientation(image: tf.Tensor, orientation: tf.Tensor | int) -> tf.Tensor:
    """Turn a decoded (H, W, C) image upright by its EXIF orientation 1-8 (anything else: unchanged)."""
    branches = [lambda value=value: upright(image, value) for value in range(1, 9)]
    index = tf.cast(orientation, tf.int32) - 1
    return tf.switch_case(tf.where((index >= 0) & (index < 8), index, 0), branches)


def _squared(image: tf.Tensor, image_size: int) -> tf.Tensor:
    """A decoded upright image squashed to uint8 (image_size, image_size, 3)."""
    image = tf.image.resize(image, [image_size, image_size], method="bilinear")
    image = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
    image.set_shape([image_size, image_size, 3])
    return image


def decode_and_resize(contents: tf.Tensor, image_size: int, orientation: tf.Tensor | int = 1) -> tf.Tensor:
    """Encoded image bytes -> uint8 (image_size, image_size, 3) RGB, upright."""

    def decode_jpeg() -> tf.Tensor:
        shape = tf.image.extract_jpeg_shape(contents)
        short_side = tf.minimum(shape[0], shape[1])
        # Largest libjpeg ratio that keeps the short side >= the target size (images.jpeg_scale's rule).
        index = tf.reduce_sum(tf.cast(short_side >= tf.constant(JPEG_SCALES[1:]) * image_size, tf.int32))
        branches = [lambda r=r: tf.io.decode_jpeg(contents, channels=3, ratio=r) for r in JPEG_SCALES]
        return tf.switch_case(index, branches)

    def decode_other() -> tf.Tensor:
        return tf.io.decode_image(contents, channels=3, expand_animations=False)

    image = tf.cond(tf.io.is_jpeg(contents), decode_jpeg, decode_other)
    return _squared(apply_orientation(image, orientation), image_size)


def decode_known(contents: tf.Tensor, image_size: int, scale: int, orientation: int) -> tf.Tensor:
    """``decode_and_resize`` of a file whose scale (0: not a JPEG) and orientation the file check found
    (``images.decode_scale``): the same pixels, with no control flow in the graph. tf.data runs each ``cond`` and
    ``switch_case`` of a map function as function calls per image, which took about a third of the decoder's time
    (BENCHMARKS section 1); ``pipeline.make_dataset`` maps each (scale, orientation) group with its own function."""
    return _squared(decode_upright(contents, scale, orientation), image_size)


def decode_upright(contents: tf.Tensor, scale: int, orientation: int) -> tf.Tensor:
    """A checked file's bytes -> uint8 (H, W, 3) RGB, upright, at its decode scale (0: not a JPEG) and not resized:
    ``decode_known`` before its resize, and what a fused augmentation resamples from (``affine.resample_sources``)."""
    if scale:
        image = tf.io.decode_jpeg(contents, channels=3, ratio=scale)
    else:
        image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    return upright(image, orientation)


def load_image(path: str | Path, image_size: int) -> tf.Tensor:
    """One file -> uint8 (image_size, image_size, 3), checked and decoded as the pipeline does it.

    A file the check refuses (empty, truncated, too large, not an image) is a UserError naming it.
    """
    check = check_image_file(path, image_size)
    if not check.ok:
        raise UserError(f"image {path}: {check.problem}")
    return decode_and_resize(tf.io.read_file(str(path)), image_size, check.orientation)


def describe_decode_failure(path: str, image_size: int) -> str:
    """Why ``path`` does not decode, in words: the file check's reason, else TensorFlow's own."""
    check = check_image_file(path, image_size)
    if not check.ok:
        return check.problem or ""
    try:
        decode_and_resize(tf.io.read_file(path), image_size, check.orientation)
    except tf.errors.OpError as exc:
        # TensorFlow's message minus its "{{function_node ...}}" prefix and "[Op:...]" suffix.
        reason = re.sub(r"\{\{.*?\}\}|\[Op:.*$", "", str(exc).splitlines()[0]).strip()
        if "Unknown image file format" in reason:
            return "not an image (the bytes are not JPEG, PNG, GIF, BMP or WebP)"
        if "Invalid JPEG data" in reason:
            return "corrupt or truncated JPEG data"
        return f"cannot be decoded: {reason}"
    return "cannot be decoded"


def read_image_file(path: str | Path, image_size: int) -> np.ndarray:
    """One image file at ``image_size`` (uint8 RGB) through the pipeline's decoder; problems as UserError."""
    path = require_image_file(path)
    try:
        return load_image(path, image_size).numpy()
    except tf.errors.OpError:
        raise UserError(f"image {path}: {describe_decode_failure(str(path), image_size)}") from None
