"""Inference: batched prediction, metrics, evaluation of a labelled folder, and the reports written from them.

- ``predict``: ``predict_files`` -> ``PredictionReport`` (per-file ``Prediction``s and ``Failure``s).
- ``metrics``: accuracy, loss, per-class scores, ROC AUC, top-k, the confusion matrix (NumPy only).
- ``evaluation``: ``evaluate_folder`` -> ``Evaluation`` (metrics against a split folder's labels).
- ``reports``: JSON / CSV / Kaggle submission output, and an evaluation's files (metrics, figures).
"""
