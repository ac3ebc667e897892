"""Test-time augmentation: a batch seen several ways, the class probabilities averaged.

- ``none``: the image as it is;
- ``flip``: and its mirror image (2 views): the report's augmentation flips, so the model has seen both;
- ``crops``: the whole image and five crops of ``CROP_FRACTION`` of its side (centre and corners), each
  scaled back to the model's size, each also mirrored (12 views): the zooms and shifts of training.

Which one helps a given model is an empirical question, so ``evaluate --choose-tta`` answers it on the
validation split and records the answer in the model's metadata. In NumPy, with the runtime's own
TensorFlow-exact bilinear resize, so exported models (LiteRT, ONNX) get the same views as Keras models.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from catsdogs.config import TTA_MODES
from catsdogs.data.pillow_decode import resize_bilinear
from catsdogs.errors import UserError, parameter
from catsdogs.metadata import ModelInfo

CROP_FRACTION = 0.875  # the side of each crop: the classic 224-of-256
VIEWS = {"none": 1, "flip": 2, "crops": 12}  # one per TTA_MODES


def _crops(images: np.ndarray) -> list[np.ndarray]:
    """The centre and the four corner crops of every image, scaled back to the batch's size."""
    size = images.shape[1]
    side = max(1, round(size * CROP_FRACTION))
    starts = [((size - side) // 2, (size - side) // 2), (0, 0), (0, size - side), (size - side, 0),
              (size - side, size - side)]
    return [np.stack([resize_bilinear(image[top:top + side, left:left + side], size) for image in images])
            for top, left in starts]


def views(images: np.ndarray, mode: str) -> list[np.ndarray]:
    """The batch ``(N, S, S, 3)`` as ``mode`` sees it: ``VIEWS[mode]`` batches of the same shape."""
    if mode not in TTA_MODES:
        raise UserError(f"{parameter('tta')} must be one of {', '.join(TTA_MODES)}, not {mode!r}")
    images = np.asarray(images, np.float32)
    if mode == "none":
        return [images]
    upright = [images] if mode == "flip" else [images, *_crops(images)]
    return [view for batch in upright for view in (batch, batch[:, :, ::-1])]


def averaged(forward: Callable[[np.ndarray], np.ndarray], images: np.ndarray, mode: str) -> np.ndarray:
    """The mean of ``forward`` (a batch -> ``(N, classes)`` probabilities) over the views of ``images``."""
    return np.mean([np.asarray(forward(view), np.float64) for view in views(images, mode)], axis=0)


def chosen_mode(requested: str | None, info: ModelInfo, model_path: Path | str) -> str:
    """``--tta``'s mode: as given, ``none`` when not given, or with ``auto`` (``--tta`` alone) the mode chosen on
    validation and recorded in the model's metadata (a UserError when it has none)."""
    if requested is None:
        return "none"
    if requested != "auto":
        return requested
    record = info.extra.tta
    if record is None:
        raise UserError(f"{model_path} has no test-time augmentation chosen on validation; run python -m "
                        f"catsdogs.evaluate --choose-tta on it, or name the mode: {parameter('tta', 'flip')} or "
                        f"{parameter('tta', 'crops')}")
    return record.mode
