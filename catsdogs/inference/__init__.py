"""Evaluation of a labelled folder, its report files, and settings tuned on validation.

- ``evaluation``: ``evaluate_folder`` -> ``Evaluation`` (metrics against a split folder's labels), for any
  ``runtime.classifier.Classifier``: without TensorFlow for an export.
- ``tuning``: the test-time augmentation and the temperature fitted on validation, saved as a new ``.keras``
  model (Keras models only).
- ``reports``: an evaluation's files: ``metrics.json``, the confusion matrix, the reliability diagram, the
  risk-coverage curve, the most confident mistakes.

The scores themselves are ``catsdogs.metrics`` (NumPy only); prediction is ``catsdogs.runtime``.
"""
