"""Evaluate a model on a labelled split folder: predict every image, score against the folder's labels."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import keras
import numpy as np

from catsdogs.config import TTA_MODES
from catsdogs.data.files import Failure, ImageFolder, read_image_folder
from catsdogs.errors import UserError, parameter
from catsdogs.inference.predict import predict_files, run_batches
from catsdogs.metadata import ModelInfo
from catsdogs.metrics import compute_metrics
from catsdogs.modelcard import write_card
from catsdogs.models.calibration import calibration_record, logits_model, with_temperature
from catsdogs.models.saving import save_model
from catsdogs.outputs import publish_versioned
from catsdogs.runtime.engines import Engine
from catsdogs.runtime.predict import predict_images
from catsdogs.runtime.results import PredictionReport
from catsdogs.runtime.tta import TTA_KEY, VIEWS, chosen_mode, views


@dataclass
class Evaluation:
    """What ``evaluate_folder`` found: the metrics (``metrics.json``), the predictions and true labels."""

    metrics: dict[str, Any]
    report: PredictionReport
    labels: np.ndarray  # true class index per result


def evaluate_folder(model: keras.Model | Engine, info: ModelInfo, folder: str | Path | ImageFolder,
                    batch_size: int = 32, top_k: int = 2, mistakes: int = 16,
                    progress: bool | None = False, tta: str = "none") -> Evaluation:
    """Predict every image of a split folder and score the predictions against the folder's labels.

    ``model`` is a Keras model or an exported one (``catsdogs.runtime.engines.Engine``).
    The folder's classes must be the model's. Files that do not decode are left out of the
    scores and listed under ``failures``.
    """
    if not isinstance(folder, ImageFolder):
        folder = read_image_folder(folder)
    if list(folder.class_names) != list(info.class_names):
        raise UserError(f"{folder.root} has the classes {list(folder.class_names)} but the model was trained on "
                        f"{list(info.class_names)}")
    if not 1 <= top_k <= len(info.class_names):
        raise UserError(f"{parameter('top_k')} must be between 1 and the number of classes ({len(info.class_names)}), "
                        f"not {top_k}")
    if isinstance(model, Engine):  # an exported model: decoded with Pillow as its runtime does in predict
        report = predict_images(model, folder.paths, batch_size, progress, tta)
    else:
        report = predict_files(model, info, folder.paths, batch_size, progress, tta)
    label_of = dict(zip(folder.paths, folder.labels))
    labels = np.array([label_of[result.path] for result in report.results], int)
    if not report.results:
        raise UserError(f"no image in {folder.root} could be decoded")
    metrics = {"data": str(folder.root), **compute_metrics(report.probabilities, labels, info.class_names, top_k)}
    metrics["most_confident_mistakes"] = most_confident_mistakes(report, labels, mistakes)
    metrics["skipped"] = len(report.failures)  # beside "images", the number evaluated
    metrics["failures"] = [{"path": f.path, "error": f.error} for f in report.failures]
    return Evaluation(metrics, report, labels)


def fit_folder_temperature(model: keras.Model, info: ModelInfo, folder: ImageFolder, batch_size: int = 32,
                           tta: str = "none") -> tuple[ModelInfo, list[Failure]]:
    """``info`` with a temperature fitted on ``folder`` (a validation split: labelled, not the test images) seen
    through ``tta``'s views, the way the model will answer, and the files that could not be used."""
    if list(folder.class_names) != list(info.class_names):
        raise UserError(f"{folder.root} has the classes {list(folder.class_names)} but the model was trained on "
                        f"{list(info.class_names)}")
    logits_of = logits_model(model).predict_on_batch

    def view_logits(images: np.ndarray) -> np.ndarray:  # (batch, views, classes)
        return np.stack([np.asarray(logits_of(view)) for view in views(images, tta)], axis=1)

    kept, logits, failures = run_batches(view_logits, info, folder.paths, batch_size)
    label_of = dict(zip(folder.paths, folder.labels))
    record = calibration_record(logits, np.array([label_of[path] for path in kept], int), folder.root.name, tta)
    return with_temperature(info, record), failures


def choose_tta(model: keras.Model, info: ModelInfo, validation: ImageFolder, batch_size: int = 32) -> ModelInfo:
    """``info`` with the test-time augmentation that scores best on ``validation`` (ties: the fewer views), and
    every mode's validation accuracy and loss beside it."""
    scores = {mode: evaluate_folder(model, info, validation, batch_size, mistakes=0, tta=mode).metrics
              for mode in TTA_MODES}
    best = max(TTA_MODES, key=lambda mode: (scores[mode]["accuracy"], -VIEWS[mode]))
    record = {"mode": best, "split": validation.root.name, "images": scores[best]["images"],
              "accuracy": {mode: scores[mode]["accuracy"] for mode in TTA_MODES},
              "loss": {mode: scores[mode]["loss"] for mode in TTA_MODES}}
    return replace(info, extra={**info.extra, TTA_KEY: record})


def save_tuned(model: keras.Model, info: ModelInfo, model_path: Path, suffix: str) -> Path:
    """The model with settings tuned on validation (``info``) saved with its card under a new name beside
    ``model_path``, ``<stem>-<suffix>.keras`` (``-2``... when taken); the original is left as it was."""
    with tempfile.TemporaryDirectory(dir=model_path.parent) as scratch:
        written = save_model(model, Path(scratch) / model_path.name, info)
        saved = publish_versioned(written, model_path.parent, f"{model_path.stem}-{suffix}", ".keras")
    write_card(saved, info)
    return saved


def tune_on_validation(model: keras.Model, info: ModelInfo, model_path: Path, validation: ImageFolder,
                       calibrate: bool, choose: bool, tta: str | None = None,
                       batch_size: int = 32) -> tuple[ModelInfo, Path, list[Failure]]:
    """The TTA mode (``choose``) and then the temperature (``calibrate``) fitted on ``validation``, the latter
    through the views of ``tta`` (``--tta``'s request, ``runtime.tta.chosen_mode``); the model saved with them as
    ``<stem>-calibrated|tta|calibrated-tta.keras``. Returns the new info and path, and the validation files the
    temperature could not use.

    The mode is chosen first, by accuracy, which a temperature hardly moves; the temperature then fits the
    probabilities the model will answer with: averaging views softens them, so one fitted on one view falls short.
    """
    failures: list[Failure] = []
    if choose:
        info = choose_tta(model, info, validation, batch_size)
    if calibrate:
        mode = chosen_mode(tta, info, model_path)
        info, failures = fit_folder_temperature(model, info, validation, batch_size, mode)
    suffix = "-".join(name for name, done in (("calibrated", calibrate), ("tta", choose)) if done)
    return info, save_tuned(model, info, model_path, suffix), failures


def most_confident_mistakes(report: PredictionReport, labels: np.ndarray, count: int = 16) -> list[dict[str, Any]]:
    """The wrong predictions with the highest probability on the (wrong) predicted class, most confident first."""
    wrong = [(result, int(label)) for result, label in zip(report.results, labels) if result.class_index != label]
    wrong.sort(key=lambda pair: -pair[0].confidence)
    return [{"path": result.path, "true": report.class_names[label], "predicted": result.class_name,
             "probabilities": {name: float(p) for name, p in zip(report.class_names, result.probabilities)}}
            for result, label in wrong[:count]]
