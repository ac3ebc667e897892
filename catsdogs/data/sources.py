"""Where batches come from, by ``--pipeline``: ``tf.data`` (``data.pipeline``) or ``pydataset`` (``data.pydataset``).

Both modules answer the same three functions: ``make_dataset`` (a split's batches), ``images_only`` (the same
batches without labels, for ``model.predict``) and ``mixed`` (training batches blended by mixup or CutMix).
TensorFlow is optional where the JAX backend trains on its own, so the tf.data module is imported only where
TensorFlow is installed; asking for it elsewhere is a one-line error that names the fix.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from types import ModuleType

import numpy as np

from catsdogs.data import pydataset
from catsdogs.data.files import Failure
from catsdogs.data.images import ImageCheck
from catsdogs.data.pillow_decode import decoded_batches as pillow_batches
from catsdogs.errors import UserError, parameter

try:
    from catsdogs.data import pipeline
except ModuleNotFoundError as missing:
    if missing.name != "tensorflow":
        raise
    pipeline = None  # type: ignore[assignment]

TENSORFLOW_MISSING = (f"{parameter('pipeline', 'tf.data')} needs TensorFlow, which is not installed here; pip install "
                      f"tensorflow, or train with {parameter('pipeline', 'pydataset')} (and KERAS_BACKEND=jax)")


def tensorflow_installed() -> bool:
    """Whether TensorFlow can be imported here (the JAX backend may run without it)."""
    return pipeline is not None


def pipeline_module(name: str) -> ModuleType:
    """The module that makes ``--pipeline name``'s datasets."""
    if name == "pydataset":
        return pydataset
    if pipeline is None:
        raise UserError(TENSORFLOW_MISSING)
    return pipeline


def decoded_batches(checks: Sequence[ImageCheck], image_size: int, batch_size: int,
                    failures: list[Failure]) -> Iterator[tuple[list[str], np.ndarray]]:
    """``(paths, float32 images)`` batches of checked files for prediction, by the decoder training used: tf.data's
    where TensorFlow is installed, Pillow's copy of it elsewhere. Files that fail are added to ``failures``."""
    batches = pipeline.path_batches if pipeline is not None else pillow_batches
    return batches(checks, image_size, batch_size, failures)
