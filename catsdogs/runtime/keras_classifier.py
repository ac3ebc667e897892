"""A ``.keras`` model as a ``runtime.classifier.Classifier``: the one implementation that imports Keras.

``runtime.opening`` imports this module only when a ``.keras`` file is opened. Files are decoded by the
decoder training used (``data.sources.decoded_batches``: tf.data where TensorFlow is installed, Pillow's
copy of it elsewhere), and the recorded temperature is applied by ``models.calibration.calibrated``.

The server's uploads are only checked in their request threads (``prepare``) and decoded in the batcher's
thread, with the batch's model call, in one TensorFlow graph call (``data.decode``: C++, the images in
parallel, the pixels ``predict`` gives). Measured with 8 clients (BENCHMARKS.md section 10): decoding each
upload in its request thread instead, one graph call per image, served 172 images/s against 227. That graph
needs the TensorFlow backend; on another (JAX), uploads are decoded as an export's are (Pillow, in the request
thread) and the batch goes through the model's own call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import keras
import numpy as np

from catsdogs.data.files import Failure
from catsdogs.data.images import ImageCheck
from catsdogs.data.sources import decoded_batches
from catsdogs.metadata import ModelInfo
from catsdogs.models.calibration import calibrated
from catsdogs.models.heads import class_probabilities
from catsdogs.models.saving import load_model
from catsdogs.runtime.catalog import model_line
from catsdogs.runtime.classifier import Classifier, Encoded, Item
from catsdogs.runtime.images import check_bytes


class KerasClassifier(Classifier):
    """A Keras model and its metadata; ``keras_model()`` is the raw model, ``forward`` applies the temperature."""

    kind = "keras"
    can_explain = True

    def __init__(self, path: Path, info: ModelInfo, model: keras.Model, by_default: bool = False) -> None:
        super().__init__(path, info)
        self._model, self._by_default = model, by_default
        self._calibrated = calibrated(model, info)  # the model itself when info records no temperature

    @classmethod
    def load(cls, path: Path, unsafe: bool = False, by_default: bool = False) -> KerasClassifier:
        """The ``.keras`` file at ``path`` (safe mode unless ``unsafe``); ``by_default``: chosen, not named."""
        model, info = load_model(path, unsafe=unsafe)
        return cls(path, info, model, by_default)

    def forward(self, images: np.ndarray) -> np.ndarray:
        return class_probabilities(self._calibrated.predict_on_batch(images), len(self.info.class_names))

    def decoded_batches(self, checks: Sequence[ImageCheck], batch_size: int,
                        failures: list[Failure]) -> Iterator[tuple[list[str], np.ndarray]]:
        return decoded_batches(checks, self.info.image_size, batch_size, failures)

    @cached_property
    def _in_graph(self) -> bool:
        """Whether the server's batches decode and predict in one TensorFlow graph (the TensorFlow backend only)."""
        return keras.backend.backend() == "tensorflow"

    def prepare(self, data: bytes) -> Item:
        if not self._in_graph:
            return super().prepare(data)
        return Encoded(data, check_bytes(data, self.info.image_size).orientation)

    @cached_property
    def _graphs(self) -> tuple[Callable[..., Any], Callable[..., Any]]:
        """The server's graph calls, built on the first batch: encoded images -> pixels, and -> model outputs."""
        # deferred: TensorFlow, for the server only; prediction from files also runs where only JAX is installed
        import tensorflow as tf

        from catsdogs.data.decode import decode_and_resize  # deferred: TensorFlow too

        size, model = self.info.image_size, self._calibrated
        encoded = [tf.TensorSpec((None,), tf.string), tf.TensorSpec((None,), tf.int32)]

        def decode(data: Any, orientation: Any) -> Any:
            return tf.map_fn(lambda pair: tf.cast(decode_and_resize(pair[0], size, pair[1]), tf.float32),
                             (data, orientation), fn_output_signature=tf.TensorSpec((size, size, 3), tf.float32),
                             parallel_iterations=8)

        return (tf.function(decode, input_signature=encoded),
                tf.function(lambda data, orientation: model(decode(data, orientation), training=False),
                            input_signature=encoded))

    def predict_items(self, items: Sequence[Item]) -> np.ndarray:
        if not self._in_graph:
            return super().predict_items(items)
        decode, decode_and_forward = self._graphs
        encoded = [i for i, item in enumerate(items) if isinstance(item, Encoded)]
        data = [[item.data for item in items if isinstance(item, Encoded)],
                np.array([item.orientation for item in items if isinstance(item, Encoded)], np.int32)]
        if encoded and len(encoded) == len(items):  # uploads only, the usual batch: one graph call
            return class_probabilities(decode_and_forward(*data).numpy(), len(self.info.class_names))
        images = np.empty((len(items), self.info.image_size, self.info.image_size, 3), np.float32)
        for i, item in enumerate(items):
            if not isinstance(item, Encoded):
                images[i] = item
        if encoded:
            images[encoded] = decode(*data).numpy()
        return self.forward(images)

    def describe(self) -> str:
        return model_line(self.path, self.info, self._by_default)

    def with_info(self, info: ModelInfo, path: Path | None = None) -> KerasClassifier:
        return KerasClassifier(path or self.path, info, self._model, self._by_default and path is None)

    def keras_model(self) -> keras.Model:
        return self._model
