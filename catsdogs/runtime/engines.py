"""Exported models as ``runtime.classifier.Classifier``s: ``forward(raw RGB batch) -> class probabilities``.

Every export (``catsdogs.exports``) takes float32 ``(N, size, size, 3)`` RGB in 0-255 under the input
name ``image`` and answers ``(N, classes)`` probabilities, whatever the format; the sidecar
``catsdogs.json`` beside it gives the class names and the size. Each runtime is imported when a model
of its format is opened: ``ai-edge-litert`` and ``onnxruntime`` (the ``runtime`` extra), and
TensorFlow itself for a SavedModel folder. So a ``.tflite`` prediction never pays for TensorFlow or
``onnxruntime``, and an install without the extra still trains and predicts ``.keras`` models.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from catsdogs.errors import UserError, require_optional
from catsdogs.metadata import ModelInfo, read_sidecar
from catsdogs.outputs import captured_native_output
from catsdogs.runtime.classifier import Classifier

log = logging.getLogger(__name__)

INPUT_NAME = "image"  # every export's input: raw RGB 0-255, (N, size, size, 3) float32
OUTPUT_NAME = "probabilities"  # and its output, (N, classes), in class_names order
SAVED_MODEL_FILE = "saved_model.pb"
SERVING_DEFAULT = "serving_default"  # a SavedModel's signature on image tensors
BYTES_SIGNATURE = "serving_bytes"  # and on encoded images
BYTES_INPUT = "image_bytes"  # TF Serving's convention: a string input named *_bytes takes {"b64": ...}
RUNTIME_EXTRA = "pip install 'catsdogs[runtime]'"


def require_module(module: str, package: str, purpose: str, fix: str = RUNTIME_EXTRA) -> ModuleType:
    """``errors.require_optional`` with the runtime extra as the fix."""
    return require_optional(module, package, purpose, fix)


class Engine(Classifier):
    """A loaded exported model: its temperature is inside its graph, so ``forward`` is the runtime's answer."""

    def __init__(self, path: Path, info: ModelInfo, threads: int | None = None) -> None:
        super().__init__(path, info)

    def describe(self) -> str:
        """``model: exports/m-litert-int8/m.tflite (LiteRT int8 export of mobilenet, 224 px, cats/dogs, test 0.958
        (of the Keras model))``."""
        quantize = self.info.extra.export.quantize if self.info.extra.export else "none"
        flavour = "" if quantize == "none" else f" {quantize}"
        kind = f"{self.kind}{flavour} export of {self.info.model_name or 'a model'}"
        test = self.info.test_accuracy
        scores = f", test {test:.3f} (of the Keras model)" if test is not None else ""
        return f"model: {self.path} ({kind}, {self.info.image_size} px, {'/'.join(self.info.class_names)}{scores})"


class LiteRTEngine(Engine):
    """A ``.tflite`` file through ``ai-edge-litert``'s interpreter (its signature runner resizes the batch)."""

    kind = "LiteRT"
    thread_safe = False  # one interpreter holds one set of tensors

    def __init__(self, path: Path, info: ModelInfo, threads: int | None = None) -> None:
        super().__init__(path, info)
        interpreter_module = require_module("ai_edge_litert.interpreter", "ai-edge-litert (LiteRT)",
                                            f"{path}: reading it")
        try:
            with captured_native_output((2,)):  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
                self._interpreter = interpreter_module.Interpreter(model_path=str(path),
                                                                   num_threads=threads or os.cpu_count())
                self._runner = self._interpreter.get_signature_runner()
        except (ValueError, RuntimeError) as exc:
            raise UserError(f"{path} is not a LiteRT model LiteRT can load: {str(exc).splitlines()[0]}") from None
        self._input = next(iter(self._runner.get_input_details()))

    def forward(self, images: np.ndarray) -> np.ndarray:
        outputs = self._runner(**{self._input: np.asarray(images, np.float32)})
        return np.asarray(next(iter(outputs.values())), np.float32)


class OnnxEngine(Engine):
    """An ``.onnx`` file through ``onnxruntime`` on the CPU."""

    kind = "ONNX"

    def __init__(self, path: Path, info: ModelInfo, threads: int | None = None) -> None:
        super().__init__(path, info)
        runtime: Any = require_module("onnxruntime", "onnxruntime", f"{path}: reading it")
        options = runtime.SessionOptions()
        options.log_severity_level = 3  # errors only: its warnings are about graph optimisations
        if threads:
            options.intra_op_num_threads = threads
        try:
            self._session = runtime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 (onnxruntime raises its own exception types, not importable up front)
            raise UserError(f"{path} is not an ONNX model onnxruntime can load: {str(exc).splitlines()[0]}") from None
        self._input = self._session.get_inputs()[0].name

    def forward(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(self._session.run(None, {self._input: np.asarray(images, np.float32)})[0], np.float32)


def version_folder(path: Path) -> Path:
    """``path`` itself when it holds ``saved_model.pb``, else its highest numbered version (TF Serving's rule)."""
    if (path / SAVED_MODEL_FILE).is_file():
        return path
    versions = sorted((p for p in path.iterdir() if p.name.isdigit() and (p / SAVED_MODEL_FILE).is_file()),
                      key=lambda p: int(p.name))
    if not versions:
        raise UserError(f"{path} holds no SavedModel ({SAVED_MODEL_FILE}, or numbered version folders with one)")
    return versions[-1]


class SavedModelEngine(Engine):
    """A catsdogs SavedModel folder through TensorFlow: ``serving_default``, and ``serving_bytes`` for encoded
    images (``predict_bytes``). TensorFlow is imported here, when such a folder is opened, like the other runtimes."""

    kind = "SavedModel"

    def __init__(self, path: Path, info: ModelInfo, threads: int | None = None) -> None:
        super().__init__(path, info)
        self._tf: Any = require_module("tensorflow", "TensorFlow", f"{path}: reading it")
        folder = version_folder(path)
        try:
            with captured_native_output((2,)):
                self.loaded: Any = self._tf.saved_model.load(str(folder))
        except Exception as exc:  # noqa: BLE001 (TensorFlow fails in many ways on a foreign folder)
            raise UserError(f"{folder} could not be loaded as a SavedModel: {str(exc).splitlines()[0]}") from None
        if SERVING_DEFAULT not in self.loaded.signatures:
            raise UserError(f"{folder} has no {SERVING_DEFAULT} signature; re-export it with catsdogs")

    def forward(self, images: np.ndarray) -> np.ndarray:
        signature = self.loaded.signatures[SERVING_DEFAULT]
        return signature(**{INPUT_NAME: self._tf.constant(images, self._tf.float32)})[OUTPUT_NAME].numpy()

    def predict_bytes(self, encoded: list[bytes]) -> np.ndarray:
        """Encoded images (JPEG, PNG, ...) through the ``serving_bytes`` signature."""
        signature = self.loaded.signatures[BYTES_SIGNATURE]
        return signature(**{BYTES_INPUT: self._tf.constant(encoded, self._tf.string)})[OUTPUT_NAME].numpy()


ENGINES: dict[str, type[Engine]] = {"litert": LiteRTEngine, "onnx": OnnxEngine, "saved_model": SavedModelEngine}


def open_engine(path: Path, kind: str, threads: int | None = None, being_checked: bool = False) -> Engine:
    """The exported model at ``path`` of ``kind`` (``litert``, ``onnx``, ``saved_model``: ``runtime.opening``
    tells) with its sidecar metadata; a UserError names any problem.

    An export that was never checked against its Keras model (one interrupted before its parity check, which
    releases that wrote in place left behind) is refused, unless ``being_checked``: the check itself opens it.
    One whose check failed opens with a warning: it was kept to inspect."""
    info = read_sidecar(path)
    export = info.extra.export
    if export is not None and not export.checked and not being_checked:
        raise UserError(f"{path} is an export that was never checked against its Keras model (interrupted before "
                        "its parity check?); export it again with `python -m catsdogs.export`")
    if export is not None and export.parity is not None and not export.parity.passed:
        log.warning("%s failed its parity check (%s): its answers may differ from its Keras model's", path,
                    "; ".join(export.parity.problems))
    engine = ENGINES[kind](path, info, threads)
    with captured_native_output((2,)):  # LiteRT announces its CPU delegate on the first call
        probe = engine.forward(np.zeros((1, info.image_size, info.image_size, 3), np.float32))
    if probe.shape != (1, len(info.class_names)):
        raise UserError(f"{path} answers shape {probe.shape[1:]} for {len(info.class_names)} classes in its "
                        "catsdogs.json; re-export the model")
    return engine
