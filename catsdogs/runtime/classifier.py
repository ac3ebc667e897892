"""One prediction interface: every model a user can hand the app opens through ``open_classifier`` as a ``Classifier``.

A ``.keras`` file, a LiteRT ``.tflite``, an ONNX ``.onnx`` and a SavedModel folder all answer the same calls:

- ``predict(images, tta)``: float32 ``(N, size, size, 3)`` RGB 0-255 -> ``(N, classes)`` probabilities, with
  the model's recorded temperature and, when asked, test-time augmentation (``runtime.tta``) averaged;
- ``decoded_batches``: the decoder its files are read with (``runtime.prediction.predict_files`` batches with it);
- ``prepare`` / ``predict_items``: an upload checked in a request thread, then predicted in a shared batch
  (the server);
- ``describe()``: the ``model:`` line every reading command starts with;
- ``can_explain`` and ``keras_model()``: Grad-CAM, calibration and the other tools that need the Keras
  model's gradients or layers.

Its implementations: ``runtime.keras_classifier`` and ``runtime.engines`` (LiteRT, ONNX, SavedModel).
``runtime.opening`` is the only module that asks what kind of file a model is.
Exports carry their temperature inside their graph (``exports.graph``); the Keras implementation
applies the recorded one: neither applies it twice.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from catsdogs.data.files import Failure
from catsdogs.data.images import ImageCheck
from catsdogs.data.pillow_decode import decoded_batches as pillow_batches
from catsdogs.errors import UserError
from catsdogs.metadata import ModelInfo
from catsdogs.runtime.images import decode_bytes
from catsdogs.runtime.tta import averaged


@dataclass(frozen=True)
class Encoded:
    """Checked image bytes and their EXIF orientation, decoded later with the rest of their batch."""

    data: bytes
    orientation: int


Item = np.ndarray | Encoded  # a prepared upload: (S, S, 3) RGB 0-255, or bytes to decode in the batch


class Classifier:
    """A loaded model with its metadata. Subclasses implement ``forward``; the rest is shared."""

    kind = ""  # "keras", or an export's format: "LiteRT", "ONNX", "SavedModel" (the server reports it)
    thread_safe = True  # whether two threads may call forward at once
    can_explain = False  # whether keras_model() gives a model with gradients and layers (Grad-CAM, calibration)

    def __init__(self, path: Path, info: ModelInfo) -> None:
        self.path, self.info = path, info

    def forward(self, images: np.ndarray) -> np.ndarray:
        """float32 ``(N, S, S, 3)`` RGB 0-255 -> ``(N, classes)`` probabilities at the recorded temperature."""
        raise NotImplementedError

    def predict(self, images: np.ndarray, tta: str = "none") -> np.ndarray:
        """``forward`` averaged over ``tta``'s views (``runtime.tta``; ``none``: one view)."""
        return averaged(self.forward, np.asarray(images, np.float32), tta)

    def decoded_batches(self, checks: Sequence[ImageCheck], batch_size: int,
                        failures: list[Failure]) -> Iterator[tuple[list[str], np.ndarray]]:
        """``(paths, float32 images)`` batches of checked files at the model's size; failures are appended."""
        return pillow_batches(checks, self.info.image_size, batch_size, failures)

    def prepare(self, data: bytes) -> Item:
        """An upload, checked (and decoded here unless the batch decodes it); an ``ImageError`` says what is wrong."""
        return decode_bytes(data, self.info.image_size)

    def predict_items(self, items: Sequence[Item]) -> np.ndarray:
        """Prepared uploads and arrays, in order -> ``(N, classes)``."""
        return self.forward(np.stack([np.asarray(item, np.float32) for item in items]))

    def describe(self) -> str:
        """The ``model: PATH (what it is)`` line."""
        raise NotImplementedError

    def with_info(self, info: ModelInfo, path: Path | None = None) -> Classifier:
        """The same model answering by ``info`` (a temperature or TTA tuned on validation), known as ``path`` once
        saved; nothing is loaded again. Only a Keras model can be tuned: an export carries what it was exported with."""
        self.keras_model()  # an export: the UserError that says so
        raise NotImplementedError

    def keras_model(self) -> Any:
        """The Keras model, without the temperature (Grad-CAM and calibration work on the raw one)."""
        raise UserError(f"{self.path} is an exported ({self.kind}) model; this needs the .keras file it was exported "
                        "from (saved_models/ holds them): Grad-CAM, activations, filters, calibration and export need "
                        "the Keras model, while predict, evaluate and serve also read exports")
