"""Evaluate a model on a labelled split folder: predict every image, score against the folder's labels.

Any ``Classifier`` (``runtime.classifier``), without TensorFlow for an export; tuning on validation, which needs the
Keras model, is ``inference.tuning``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from catsdogs.data.files import ImageFolder, read_image_folder
from catsdogs.errors import UserError, parameter
from catsdogs.metrics import compute_metrics
from catsdogs.runtime.classifier import Classifier
from catsdogs.runtime.prediction import predict_files
from catsdogs.runtime.results import PredictionReport


@dataclass
class Evaluation:
    """What ``evaluate_folder`` found: the metrics (``metrics.json``), the predictions and true labels."""

    metrics: dict[str, Any]
    report: PredictionReport
    labels: np.ndarray  # true class index per result


def evaluate_folder(classifier: Classifier, folder: str | Path | ImageFolder, batch_size: int = 32, top_k: int = 2,
                    mistakes: int = 16, progress: bool | None = False, tta: str = "none") -> Evaluation:
    """Predict every image of a split folder and score the predictions against the folder's labels.

    The folder's classes must be the model's. Files that do not decode are left out of the
    scores and listed under ``failures``.
    """
    info = classifier.info
    if not isinstance(folder, ImageFolder):
        folder = read_image_folder(folder)
    if list(folder.class_names) != list(info.class_names):
        raise UserError(f"{folder.root} has the classes {list(folder.class_names)} but the model was trained on "
                        f"{list(info.class_names)}")
    if not 1 <= top_k <= len(info.class_names):
        raise UserError(f"{parameter('top_k')} must be between 1 and the number of classes ({len(info.class_names)}), "
                        f"not {top_k}")
    report = predict_files(classifier, folder.paths, batch_size, progress, tta)
    label_of = dict(zip(folder.paths, folder.labels))
    labels = np.array([label_of[result.path] for result in report.results], int)
    if not report.results:
        raise UserError(f"no image in {folder.root} could be decoded")
    metrics = {"data": str(folder.root), **compute_metrics(report.probabilities, labels, info.class_names, top_k,
                                                                 info.decision_threshold)}
    metrics["most_confident_mistakes"] = most_confident_mistakes(report, labels, mistakes)
    metrics["skipped"] = len(report.failures)  # beside "images", the number evaluated
    metrics["failures"] = [{"path": f.path, "error": f.error} for f in report.failures]
    return Evaluation(metrics, report, labels)


def most_confident_mistakes(report: PredictionReport, labels: np.ndarray, count: int = 16) -> list[dict[str, Any]]:
    """The wrong predictions with the highest probability on the (wrong) predicted class, most confident first."""
    wrong = [(result, int(label)) for result, label in zip(report.results, labels) if result.class_index != label]
    wrong.sort(key=lambda pair: -pair[0].confidence)
    return [{"path": result.path, "true": report.class_names[label], "predicted": result.class_name,
             "probabilities": {name: float(p) for name, p in zip(report.class_names, result.probabilities)}}
            for result, label in wrong[:count]]
