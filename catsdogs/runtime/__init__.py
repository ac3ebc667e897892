"""Prediction without TensorFlow: exported models (LiteRT ``.tflite``, ONNX ``.onnx``) and what they share.

- ``results``: ``Prediction`` and ``PredictionReport``, the results of any prediction run.
- ``images``: a checked file -> uint8 RGB at the model's size with Pillow, under the TensorFlow
  decoder's rules (reduced-scale JPEG, EXIF orientation, pixel limit, TensorFlow's bilinear resize).
- ``engines``: ``Engine`` (raw RGB batches in, class probabilities out) and ``open_engine``, which
  loads an exported model with its runtime (``ai-edge-litert`` or ``onnxruntime``, the ``runtime`` extra).
- ``predict``: ``predict_images``, batched prediction over files with per-file failures.
- ``writers``: predictions as JSON, CSV and Kaggle's submission file.
- ``tfserving``: TensorFlow Serving's REST request and response bodies.
- ``tta``: test-time augmentation's views in NumPy, so that exports get them too.

Nothing here imports TensorFlow or Keras (an import-linter contract): ``python -m catsdogs.predict``
on a ``.tflite`` or ``.onnx`` model starts in a fraction of a second.
"""
