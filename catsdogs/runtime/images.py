"""Encoded image bytes (an upload) -> uint8 RGB at a model's size, under the same checks as a file, without
TensorFlow: the bytes are spooled to a temporary file so that ``data.images``' file rules and
``data.pillow_decode``'s copy of TensorFlow's decoder apply exactly.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from catsdogs.data.images import ImageCheck, check_image_file
from catsdogs.data.pillow_decode import decode_checked
from catsdogs.errors import UserError


class ImageError(UserError):
    """Bytes that are not a usable image; the message says why (the file checks' words)."""


@contextmanager
def _spooled(data: bytes) -> Iterator[str]:
    """The bytes as a temporary file, for the length of the block: the file rules then apply exactly."""
    with tempfile.NamedTemporaryFile(prefix="catsdogs-upload-") as spool:
        spool.write(data)
        spool.flush()
        yield spool.name


def check_bytes(data: bytes, image_size: int) -> ImageCheck:
    """The file checks on encoded bytes (an upload): empty, truncated, not an image, over the pixel limit.

    The returned check's orientation applies to the bytes; its path is gone.
    """
    with _spooled(data) as path:
        check = check_image_file(path, image_size)
    if not check.ok:
        raise ImageError(check.problem or "not a usable image")
    return check


def decode_bytes(data: bytes, image_size: int) -> np.ndarray:
    """Encoded image bytes (an upload) -> uint8 RGB at ``image_size``, under the same checks as a file."""
    with _spooled(data) as path:
        check = check_image_file(path, image_size)
        if not check.ok:
            raise ImageError(check.problem or "not a usable image")
        try:
            return decode_checked(check, image_size)
        except Exception as exc:  # noqa: BLE001 (passed the check, yet Pillow failed: say how)
            raise ImageError(f"cannot be decoded ({type(exc).__name__}: {str(exc)[:80]})") from None
