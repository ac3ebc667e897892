"""A model to serve, whatever its form: ``.keras`` (with Grad-CAM) or an export (LiteRT, ONNX, SavedModel).

A request's image goes through two steps:

- ``prepare(bytes)``, in a request thread: the file checks on the bytes (empty, truncated, not an image,
  over the pixel limit), then, for an export, the Pillow decode (``runtime.images``, as ``predict`` does
  for exports); for a ``.keras`` model only the checks, as ``Encoded`` bytes;
- ``predict_items(items)``, in the batcher's thread: a ``.keras`` model decodes its ``Encoded`` images
  and runs the batch in one TensorFlow graph call, with the training pipeline's decoder (``data.decode``:
  C++, the images in parallel, the pixels ``predict`` gives); an export runs the decoded batch.

Measured with 8 clients (BENCHMARKS.md section 10): decoding each upload in its request thread instead,
one graph call per image, served 172 images/s against 227 for the one call per batch.
TF Serving's tensor requests skip the decoding: their items are arrays already.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from catsdogs.data.decode import decode_and_resize
from catsdogs.errors import UserError
from catsdogs.explain.gradcam import grad_cam
from catsdogs.metadata import ModelInfo
from catsdogs.models.calibration import calibrated
from catsdogs.models.catalog import load_chosen_model, model_line
from catsdogs.models.heads import class_probabilities
from catsdogs.plots import overlay_figure
from catsdogs.runtime.engines import Engine, exported_format, open_engine
from catsdogs.runtime.images import check_bytes, decode_bytes

Item = Any  # an np.ndarray (S, S, 3) RGB 0-255, or Encoded


@dataclass(frozen=True)
class Encoded:
    """Checked image bytes and their EXIF orientation, decoded later in the batch."""

    data: bytes
    orientation: int


@dataclass
class Predictor:
    """One loaded model: ``prepare`` and ``predict_items`` for requests, ``explain`` where gradients exist."""

    path: Path
    info: ModelInfo
    kind: str  # "keras", or the export's format: "LiteRT", "ONNX", "SavedModel"
    description: str
    model: Any  # a keras.Model or a runtime Engine

    def __post_init__(self) -> None:
        if isinstance(self.model, keras.Model):
            size, model = self.info.image_size, calibrated(self.model, self.info)  # explain keeps the raw one
            encoded = [tf.TensorSpec((None,), tf.string), tf.TensorSpec((None,), tf.int32)]

            def decode(data: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
                return tf.map_fn(lambda pair: tf.cast(decode_and_resize(pair[0], size, pair[1]), tf.float32),
                                 (data, orientation), fn_output_signature=tf.TensorSpec((size, size, 3), tf.float32),
                                 parallel_iterations=8)

            self._decode = tf.function(decode, input_signature=encoded)
            self._decode_and_forward = tf.function(
                lambda data, orientation: model(decode(data, orientation), training=False), input_signature=encoded)
            self._forward = tf.function(lambda images: model(images, training=False),
                                        input_signature=[tf.TensorSpec((None, size, size, 3), tf.float32)])

    @property
    def concurrent_batches(self) -> int:
        """Batches that may run at once: two overlap one's decoding with the other's model (measured: 250
        against 206-227 images/s for .keras); one for a runtime that is not thread-safe (LiteRT)."""
        return 1 if isinstance(self.model, Engine) and not self.model.thread_safe else 2

    @property
    def can_explain(self) -> bool:
        return isinstance(self.model, keras.Model)

    def prepare(self, data: bytes) -> Item:
        """A checked upload (decoded, for an export); an ``ImageError`` (a UserError) says what is wrong."""
        if self.can_explain:
            return Encoded(data, check_bytes(data, self.info.image_size).orientation)
        return decode_bytes(data, self.info.image_size)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """float32 ``(N, S, S, 3)`` RGB 0-255 -> ``(N, classes)``."""
        if isinstance(self.model, Engine):
            return self.model.predict(np.asarray(images, np.float32))
        return self._probabilities(self._forward(tf.constant(images, tf.float32)))

    def predict_items(self, items: list[Item]) -> np.ndarray:
        """Prepared uploads and arrays, in order -> ``(N, classes)``."""
        encoded = [i for i, item in enumerate(items) if isinstance(item, Encoded)]
        data = [tf.constant([items[i].data for i in encoded]), tf.constant([items[i].orientation for i in encoded])]
        if encoded and len(encoded) == len(items):  # uploads only, the usual batch: one graph call
            return self._probabilities(self._decode_and_forward(*data))
        images = np.empty((len(items), self.info.image_size, self.info.image_size, 3), np.float32)
        for i, item in enumerate(items):
            if not isinstance(item, Encoded):
                images[i] = item
        if encoded:
            images[encoded] = self._decode(*data).numpy()
        return self.predict(images)

    def _probabilities(self, outputs: tf.Tensor) -> np.ndarray:
        return class_probabilities(outputs.numpy(), len(self.info.class_names))

    def explain(self, data: bytes, probabilities: np.ndarray) -> bytes:
        """The Grad-CAM overlay of the predicted class over the (model-size) image, as PNG bytes."""
        if not self.can_explain:
            raise UserError(f"Grad-CAM needs the model's gradients: {self.path} is an exported ({self.kind}) model")
        image = decode_bytes(data, self.info.image_size)
        heatmap = grad_cam(self.model, image[None].astype(np.float32))[0]
        index = int(np.argmax(probabilities))
        title = f"{self.info.class_names[index]} {100 * probabilities[index]:.1f}%"
        buffer = io.BytesIO()
        overlay_figure(image, heatmap, title).savefig(buffer, format="png", dpi=100)
        return buffer.getvalue()


def open_predictor(model: str | Path | None, saved_models_dir: str | Path, unsafe: bool = False) -> Predictor:
    """``--model`` (a ``.keras`` file or an export) or the default model in ``saved_models_dir``, loaded once."""
    if model and exported_format(model):
        engine = open_engine(model)
        return Predictor(engine.path, engine.info, engine.format, f"model: {engine.describe()}", engine)
    loaded, info, path = load_chosen_model(model, saved_models_dir, unsafe)
    return Predictor(path, info, "keras", model_line(path, info, not model), loaded)
