"""Evaluate a model on a labelled split folder: predict every image, score against the folder's labels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from catsdogs.config import SPLITS
from catsdogs.data.files import ImageFolder, read_image_folder
from catsdogs.errors import UserError
from catsdogs.inference.metrics import compute_metrics, most_confident_mistakes
from catsdogs.inference.predict import PredictionReport, predict_files
from catsdogs.models.saving import ModelInfo


@dataclass
class Evaluation:
    """What ``evaluate_folder`` found: the metrics (``metrics.json``), the predictions and true labels."""

    metrics: dict[str, Any]
    report: PredictionReport
    labels: np.ndarray  # true class index per result


def resolve_split_folder(data_dir: str | Path, split: str | None = None) -> Path:
    """``data_dir`` itself when it is a split folder, or its ``split`` (default ``test``) in a data_prep output."""
    data_dir = Path(data_dir)
    if data_dir.exists() and not data_dir.is_dir():
        raise UserError(f"data folder {data_dir} is a file; pass a folder of class sub-folders or a data_prep output")
    if not data_dir.is_dir():
        raise UserError(f"data folder {data_dir} does not exist")
    if split is not None and split not in SPLITS:
        raise UserError(f"--split must be one of {', '.join(SPLITS)}, not {split!r}")
    present = [name for name in SPLITS if (data_dir / name).is_dir()]
    chosen = split or SPLITS[-1]
    if chosen in present:
        return data_dir / chosen
    if present or split is not None:
        raise UserError(f"{data_dir} has no {chosen}/ split (found {', '.join(present) or 'none'}); "
                        "pass --split or point --data-dir at a folder of class sub-folders")
    return data_dir


def evaluate_folder(model: keras.Model, info: ModelInfo, folder: str | Path | ImageFolder, batch_size: int = 32,
                    top_k: int = 2, mistakes: int = 16, progress: bool | None = False) -> Evaluation:
    """Predict every image of a split folder and score the predictions against the folder's labels.

    The folder's classes must be the model's. Files that do not decode are left out of the
    scores and listed under ``failures``.
    """
    if not isinstance(folder, ImageFolder):
        folder = read_image_folder(folder)
    if list(folder.class_names) != list(info.class_names):
        raise UserError(f"{folder.root} has the classes {list(folder.class_names)} but the model was trained on "
                        f"{list(info.class_names)}")
    if not 1 <= top_k <= len(info.class_names):
        raise UserError(f"--top-k must be between 1 and the number of classes ({len(info.class_names)}), not {top_k}")
    report = predict_files(model, info, folder.paths, batch_size, progress)
    label_of = dict(zip(folder.paths, folder.labels))
    labels = np.array([label_of[result.path] for result in report.results], int)
    if not report.results:
        raise UserError(f"no image in {folder.root} could be decoded")
    metrics = {"data": str(folder.root), **compute_metrics(report.probabilities, labels, info.class_names, top_k)}
    metrics["most_confident_mistakes"] = most_confident_mistakes(report, labels, mistakes)
    metrics["skipped"] = len(report.failures)  # beside "images", the number evaluated
    metrics["failures"] = [{"path": f.path, "error": f.error} for f in report.failures]
    return Evaluation(metrics, report, labels)
