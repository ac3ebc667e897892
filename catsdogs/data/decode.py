"""Encoded image bytes -> uint8 RGB at a square size, the one decoder training and inference share.

JPEGs at least twice the target on their short side decode at 1/2, 1/4 or 1/8 scale (libjpeg's DCT
scaling is far cheaper than decoding at full size and resizing); PNG, GIF (first frame) and BMP
decode at full size. Grayscale and RGBA become RGB. The image is squashed to a square, as the
report's ``flow_from_directory`` did. When a file does not decode, ``describe_decode_failure`` says
why in words a user can act on.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import tensorflow as tf

from catsdogs.data.files import require_image_file
from catsdogs.errors import UserError

_JPEG_SCALES = (1, 2, 4, 8)  # the ratios libjpeg can decode at


def decode_and_resize(contents: tf.Tensor, image_size: int) -> tf.Tensor:
    """Encoded image bytes -> uint8 (image_size, image_size, 3) RGB."""

    def decode_jpeg() -> tf.Tensor:
        shape = tf.image.extract_jpeg_shape(contents)
        short_side = tf.minimum(shape[0], shape[1])
        # Largest libjpeg ratio that keeps the short side >= the target size.
        index = tf.reduce_sum(tf.cast(short_side >= tf.constant(_JPEG_SCALES[1:]) * image_size, tf.int32))
        branches = [lambda r=r: tf.io.decode_jpeg(contents, channels=3, ratio=r) for r in _JPEG_SCALES]
        return tf.switch_case(index, branches)

    def decode_other() -> tf.Tensor:
        return tf.io.decode_image(contents, channels=3, expand_animations=False)

    image = tf.cond(tf.io.is_jpeg(contents), decode_jpeg, decode_other)
    image = tf.image.resize(image, [image_size, image_size], method="bilinear")
    image = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
    image.set_shape([image_size, image_size, 3])
    return image


def load_image(path: str | Path, image_size: int) -> tf.Tensor:
    """One file -> uint8 (image_size, image_size, 3), through the same decoder as the pipeline."""
    return decode_and_resize(tf.io.read_file(str(path)), image_size)


def describe_decode_failure(path: str, image_size: int) -> str:
    """Why ``path`` does not decode, in words: decoded again on its own to get TensorFlow's reason."""
    try:
        if os.path.getsize(path) == 0:
            return "empty file (0 bytes)"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    try:
        load_image(path, image_size)
    except tf.errors.OpError as exc:
        # TensorFlow's message minus its "{{function_node ...}}" prefix and "[Op:...]" suffix.
        reason = re.sub(r"\{\{.*?\}\}|\[Op:.*$", "", str(exc).splitlines()[0]).strip()
        if "Unknown image file format" in reason:
            return "not an image (the bytes are not JPEG, PNG, GIF or BMP)"
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
