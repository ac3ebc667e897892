"""Prediction: one interface for every model a user can hand the app, and what prediction runs share.

- ``classifier``: ``Classifier``, the interface: ``predict(images, tta)`` (the recorded temperature applied),
  its decoder, ``prepare`` / ``predict_items`` for the server, ``describe()`` (the ``model:`` line),
  ``can_explain`` and ``keras_model()``.
- ``opening``: ``open_classifier``, the only place that asks what kind of file a model is.
- ``keras_classifier``: a ``.keras`` model as a ``Classifier`` (the one module here that imports Keras, and
  only when such a file is opened).
- ``engines``: the exports as ``Classifier``s: LiteRT, ONNX and SavedModel, each runtime imported when a model
  of its format is opened (``ai-edge-litert`` or ``onnxruntime``: the ``runtime`` extra; TensorFlow).
- ``catalog``: the saved-models folder and the default model (the best validation accuracy), from the
  archives' metadata alone.
- ``prediction``: ``predict_files``, batched prediction over files with per-file failures, for any classifier.
- ``results``: ``Prediction`` and ``PredictionReport``, the results of any prediction run.
- ``images``: uploaded bytes -> uint8 RGB at the model's size with Pillow, under the file checks.
- ``writers``: predictions as JSON, CSV and Kaggle's submission file.
- ``tfserving``: TensorFlow Serving's REST request and response bodies.
- ``tta``: test-time augmentation's views in NumPy, so that every model gets the same ones.

Nothing here but ``keras_classifier`` imports TensorFlow or Keras (an import-linter contract), and the
tests check that ``predict``, ``evaluate`` and ``serve`` on a ``.tflite`` or ``.onnx`` model never do.
"""
