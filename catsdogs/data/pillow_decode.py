"""A checked image file -> uint8 RGB at a model's size, with Pillow and NumPy, as TensorFlow's decoder does it.

What runs without TensorFlow (the exported-model runtime, ``--pipeline pydataset``) must feed models what the
Keras models were trained and evaluated on (``catsdogs.data.decode.decode_and_resize``):

- JPEGs decode at the same reduced libjpeg scale (Pillow's draft mode, ``images.jpeg_scale``'s rule);
  other formats in full, the first frame of a GIF;
- the EXIF orientation found by the file check turns the image upright;
- the resize is TensorFlow's bilinear one (half-pixel centres, no antialiasing), written here in
  NumPy because Pillow's ``BILINEAR`` antialiases when it shrinks, which moves pixels by several
  levels against what the model saw in training.

What remains is libjpeg's inverse DCT: TensorFlow decodes JPEGs with the fast integer IDCT by default
and Pillow offers only the accurate one, so JPEG pixels differ by about 1 level on average, 4 at most
on the Kaggle photos (PNGs come out identical). ``tests/test_runtime.py`` pins both figures.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from PIL import Image

from catsdogs.data.files import Failure
from catsdogs.data.images import ImageCheck, jpeg_scale, pillow_limits_off

# EXIF orientation -> the transpose that turns the image upright (Pillow's ImageOps.exif_transpose table).
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}


def _axis_weights(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TensorFlow's ``compute_interpolation_weights`` with half-pixel centres: lower and upper source
    indices and the weight of the upper one, per output index."""
    position = (np.arange(size_out, dtype=np.float32) + np.float32(0.5)) * np.float32(size_in / size_out) \
        - np.float32(0.5)
    floor = np.floor(position)
    lower = np.maximum(floor, 0).astype(np.int64)
    upper = np.minimum(np.ceil(position), size_in - 1).astype(np.int64)
    return lower, upper, (position - floor).astype(np.float32)


def resize_bilinear(image: np.ndarray, size: int) -> np.ndarray:
    """``tf.image.resize(image, [size, size], "bilinear")`` for an (H, W, C) array: float32, TensorFlow's arithmetic.

    Columns first, on every row: ``rows = left + (right - left) * x_lerp`` is TensorFlow's ``top`` and
    ``bottom`` for whichever rows they need, so the result is the same to the bit, and each source
    row is interpolated once (twice as fast as gathering the four corners per output pixel).
    """
    top_i, bottom_i, y_lerp = _axis_weights(image.shape[0], size)
    left_i, right_i, x_lerp = _axis_weights(image.shape[1], size)
    left = np.take(image, left_i, axis=1).astype(np.float32)
    right = np.take(image, right_i, axis=1).astype(np.float32)
    rows = left + (right - left) * x_lerp[None, :, None]
    top, bottom = np.take(rows, top_i, axis=0), np.take(rows, bottom_i, axis=0)
    return top + (bottom - top) * y_lerp[:, None, None]


def decode_checked(check: ImageCheck, image_size: int) -> np.ndarray:
    """A file that passed ``check_image_file`` -> uint8 ``(image_size, image_size, 3)`` RGB, upright."""
    with pillow_limits_off(), Image.open(check.path) as image:
        if image.format == "JPEG":
            scale = jpeg_scale(image.width, image.height, image_size)
            if scale > 1:
                image.draft("RGB", (image.width // scale, image.height // scale))
        rgb = image.convert("RGB")
    if check.orientation in _UPRIGHT:
        rgb = rgb.transpose(_UPRIGHT[check.orientation])
    resized = resize_bilinear(np.asarray(rgb), image_size)
    return np.clip(np.round(resized), 0, 255).astype(np.uint8)


def decoded_batches(checks: Sequence[ImageCheck], image_size: int, batch_size: int,
                    failures: list[Failure]) -> Iterator[tuple[list[str], np.ndarray]]:
    """``(paths, float32 images)`` batches of the files that decode; the others are added to ``failures``."""
    paths: list[str] = []
    images: list[np.ndarray] = []
    for check in checks:
        try:
            images.append(decode_checked(check, image_size))
            paths.append(check.path)
        except Exception as exc:  # noqa: BLE001 (passed the check, yet Pillow failed: say how, go on)
            failures.append(Failure(check.path, f"cannot be decoded ({type(exc).__name__}: {str(exc)[:80]})"))
        if len(paths) == batch_size:
            yield paths, np.stack(images).astype(np.float32)
            paths, images = [], []
    if paths:
        yield paths, np.stack(images).astype(np.float32)
