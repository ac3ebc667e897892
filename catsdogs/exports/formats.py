"""One writer per format, each on Keras's own export path, and the quantizations.

- SavedModel: ``keras.export.ExportArchive`` (what ``model.export(format="tf_saved_model")`` uses) with
  two signatures: ``serving_default`` on image tensors, and ``serving_bytes`` on encoded images
  (JPEG, PNG, ...) decoded in the graph by the training pipeline's decoder, so a TF Serving client can
  send ``{"instances": [{"b64": ...}]}``. Written as ``<base>/1/``, TF Serving's layout.
- LiteRT: ``model.export(format="litert")`` (Keras: ExportArchive -> SavedModel -> converter) with the
  converter's options for ``float16``, ``dynamic`` (int8 weights) and ``int8`` (weights and
  activations, calibrated on representative images; float input and output kept).
- ONNX: ``model.export(format="onnx")`` (tf2onnx's ``from_function``), quantized by onnxruntime's own
  tools: ``quantize_static`` (QDQ, calibrated) and its float16 converter. Its dynamic quantization is
  refused (``ONNX_REFUSED``): it turns convolutions into ``ConvInteger``, which lost 5 points of
  accuracy on MobileNet 0.25 and ran 9 times slower than float32 here (BENCHMARKS.md section 9).

Every file is written under a temporary name and renamed, so a failed export leaves nothing half-made.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from catsdogs.data.decode import decode_and_resize
from catsdogs.errors import parameter
from catsdogs.metadata import ModelInfo
from catsdogs.outputs import atomic_path, captured_native_output, temporary_path
from catsdogs.runtime.engines import BYTES_INPUT, BYTES_SIGNATURE, INPUT_NAME, SERVING_DEFAULT, require_module

SAVED_MODEL_VERSION = "1"
EXPORT_EXTRA = "pip install 'catsdogs[export]'"

ONNX_REFUSED = {"dynamic": "onnxruntime's dynamic quantization turns convolutions into ConvInteger, which lost 5 "
                           "points of accuracy on MobileNet 0.25 and ran 9 times slower (BENCHMARKS.md section 9); "
                           f"use {parameter('quantize', 'int8')} (static, calibrated) or "
                           f"{parameter('export_format', 'litert')} {parameter('quantize', 'dynamic')}"}

Representative = Callable[[], Iterator[np.ndarray]]  # float32 (1, S, S, 3) batches, for int8 calibration


def image_spec(info: ModelInfo) -> tf.TensorSpec:
    return tf.TensorSpec((None, info.image_size, info.image_size, 3), tf.float32, name=INPUT_NAME)


def _require(module: str, package: str) -> Any:
    return require_module(module, package, "this export", EXPORT_EXTRA)


def write_saved_model(model: keras.Model, info: ModelInfo, base: Path) -> Path:
    """``base/1/``: the SavedModel with ``serving_default`` (tensors) and ``serving_bytes`` (encoded images)."""
    size = info.image_size

    def from_bytes(image_bytes: tf.Tensor) -> Any:
        images = tf.map_fn(lambda data: tf.cast(decode_and_resize(data, size), tf.float32), image_bytes,
                           fn_output_signature=tf.TensorSpec((size, size, 3), tf.float32))
        return model(images, training=False)

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SERVING_DEFAULT, lambda image: model(image, training=False),
                         input_signature=[image_spec(info)])
    archive.add_endpoint(BYTES_SIGNATURE, from_bytes,
                         input_signature=[tf.TensorSpec((None,), tf.string, name=BYTES_INPUT)])
    version = base / SAVED_MODEL_VERSION
    with atomic_path(version) as temporary:
        archive.write_out(str(temporary), verbose=False)
    return version


def litert_options(quantize: str, representative: Representative | None) -> dict[str, Any]:
    """The TFLite converter's settings for a quantization (Keras passes them on to the converter)."""
    if quantize == "none":
        return {}
    options: dict[str, Any] = {"optimizations": [tf.lite.Optimize.DEFAULT]}
    if quantize == "float16":
        options["target_spec"] = {"supported_types": [tf.float16]}
    elif quantize == "int8":
        if representative is None:
            raise ValueError("int8 quantization needs representative images")
        images = representative
        options["representative_dataset"] = lambda: ([batch] for batch in images())
    return options


def write_litert(model: keras.Model, info: ModelInfo, path: Path, quantize: str = "none",
                 representative: Representative | None = None) -> Path:
    with atomic_path(path) as temporary, captured_native_output():  # the converter's C++ log lines
        model.export(str(temporary), format="litert", input_signature=[image_spec(info)], verbose=False,
                     **litert_options(quantize, representative))
    return path


class _CalibrationReader:
    """onnxruntime's ``CalibrationDataReader`` protocol over the representative images."""

    def __init__(self, input_name: str, representative: Representative) -> None:
        self._batches = iter(representative())
        self._input_name = input_name

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {self._input_name: batch}


def quantize_onnx(source: Path, target: Path, quantize: str, representative: Representative | None) -> None:
    """onnxruntime's tools: float16 (float input and output kept), or int8 static quantization.

    int8 is QDQ with per-channel weights and percentile calibration, after onnxruntime's own
    pre-processing (BatchNormalization folded, shapes inferred). Measured on MobileNet 0.25: per-tensor
    MinMax answered one class for every image (0.500 against 0.956, 1,000 test images); on 400 of
    them per-channel MinMax lost 1.5 points and per-channel percentile 0.75.
    """
    if quantize == "float16":
        onnx = _require("onnx", "onnx")
        float16 = _require("onnxruntime.transformers.float16", "onnxruntime")
        converted = float16.convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
        onnx.save(converted, str(target))
        return
    quantization = _require("onnxruntime.quantization", "onnxruntime")
    if representative is None:
        raise ValueError("int8 quantization needs representative images")
    prepared = temporary_path(target)
    try:
        quantization.quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantization.quantize_static(str(prepared), str(target), _CalibrationReader(INPUT_NAME, representative),
                                     quant_format=quantization.QuantFormat.QDQ, per_channel=True,
                                     calibrate_method=quantization.CalibrationMethod.Percentile)
    finally:
        prepared.unlink(missing_ok=True)


def write_onnx(model: keras.Model, info: ModelInfo, path: Path, quantize: str = "none",
               representative: Representative | None = None) -> Path:
    _require("tf2onnx", "tf2onnx")
    with atomic_path(path) as temporary, captured_native_output():  # tf2onnx's and the quantizers' notices
        if quantize == "none":
            model.export(str(temporary), format="onnx", input_signature=[image_spec(info)], verbose=False)
        else:
            float_model = temporary_path(path)  # only the quantized model is kept
            try:
                model.export(str(float_model), format="onnx", input_signature=[image_spec(info)], verbose=False)
                quantize_onnx(float_model, temporary, quantize, representative)
            finally:
                float_model.unlink(missing_ok=True)
    return path
