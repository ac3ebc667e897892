"""Inference with TensorFlow or Keras: batched prediction, evaluation of a labelled folder, and its report files.

- ``predict``: ``predict_files`` -> ``PredictionReport`` (per-file ``Prediction``s and ``Failure``s), and
  ``run_batches``, the batching loop over checked files.
- ``evaluation``: ``evaluate_folder`` -> ``Evaluation`` (metrics against a split folder's labels), and the
  temperature and test-time augmentation fitted on validation, saved as a new model.
- ``reports``: an evaluation's files: ``metrics.json``, the confusion matrix, the reliability diagram, the
  risk-coverage curve, the most confident mistakes.

The scores themselves are ``catsdogs.metrics`` (NumPy only); exported models predict through ``catsdogs.runtime``.
"""
