"""Settings tuned on the validation split and saved as a new ``.keras`` model: the test-time augmentation that
scores best, a temperature (``models.calibration``) fitted through its views, and a two-class model's decision
threshold chosen on the probabilities those give. Keras models only: an export
carries what its model was tuned with.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from catsdogs.config import TTA_MODES
from catsdogs.data.files import Failure, ImageFolder
from catsdogs.errors import UserError
from catsdogs.inference.evaluation import evaluate_folder
from catsdogs.metadata import ModelInfo, ThresholdChoice, TTAChoice
from catsdogs.metrics import balanced_accuracy, choose_threshold, confusion_matrix, decide
from catsdogs.modelcard import write_card
from catsdogs.models.calibration import calibration_record, logits_model, with_temperature
from catsdogs.models.saving import save_model
from catsdogs.outputs import publish_versioned
from catsdogs.runtime.classifier import Classifier
from catsdogs.runtime.prediction import run_batches
from catsdogs.runtime.tta import VIEWS, chosen_mode, views


def fit_folder_temperature(classifier: Classifier, folder: ImageFolder, batch_size: int = 32,
                           tta: str = "none") -> tuple[ModelInfo, list[Failure]]:
    """The classifier's info with a temperature fitted on ``folder`` (a validation split: labelled, not the test
    images) seen through ``tta``'s views, the way the model will answer, and the files that could not be used."""
    info = classifier.info
    if list(folder.class_names) != list(info.class_names):
        raise UserError(f"{folder.root} has the classes {list(folder.class_names)} but the model was trained on "
                        f"{list(info.class_names)}")
    logits_of = logits_model(classifier.keras_model()).predict_on_batch

    def view_logits(images: np.ndarray) -> np.ndarray:  # (batch, views, classes)
        return np.stack([np.asarray(logits_of(view)) for view in views(images, tta)], axis=1)

    kept, logits, failures = run_batches(classifier, view_logits, folder.paths, batch_size)
    label_of = dict(zip(folder.paths, folder.labels))
    record = calibration_record(logits, np.array([label_of[path] for path in kept], int), folder.root.name, tta)
    return with_temperature(info, record), failures


def choose_tta(classifier: Classifier, validation: ImageFolder, batch_size: int = 32) -> ModelInfo:
    """The classifier's info with the test-time augmentation that scores best on ``validation`` (ties: the fewer
    views), and every mode's validation accuracy and loss beside it."""
    info = classifier.info
    scores = {mode: evaluate_folder(classifier, validation, batch_size, mistakes=0, tta=mode).metrics
              for mode in TTA_MODES}
    best = max(TTA_MODES, key=lambda mode: (scores[mode]["accuracy"], -VIEWS[mode]))
    return info.with_extra(tta=TTAChoice(mode=best, split=validation.root.name, images=scores[best]["images"],
                                         accuracy={mode: scores[mode]["accuracy"] for mode in TTA_MODES},
                                         loss={mode: scores[mode]["loss"] for mode in TTA_MODES}))


def choose_decision_threshold(classifier: Classifier, validation: ImageFolder, batch_size: int = 32,
                              tta: str = "none") -> tuple[ModelInfo, list[Failure]]:
    """The classifier's info with the threshold on its second class's probability that gives the best balanced
    accuracy on ``validation`` through ``tta``'s views and its temperature (``metrics.choose_threshold``), and the
    files that could not be used. Two classes only (``tune_on_validation`` refuses more: no single threshold
    decides between three)."""
    info = classifier.info
    kept, probabilities, failures = run_batches(classifier, lambda images: classifier.predict(images, tta),
                                                validation.paths, batch_size)
    label_of = dict(zip(validation.paths, validation.labels))
    labels = np.array([label_of[path] for path in kept], int)
    if len(set(labels.tolist())) < 2:
        raise UserError(f"--choose-threshold needs validation images of both classes; {validation.root} has "
                        f"usable images of one")
    threshold, best = choose_threshold(probabilities[:, 1], labels)
    at_half = balanced_accuracy(confusion_matrix(labels, decide(probabilities), 2))
    return info.with_extra(threshold=ThresholdChoice(
        threshold=threshold, second_class=info.class_names[1], split=validation.root.name, images=len(kept),
        balanced_accuracy=best, balanced_accuracy_at_half=at_half)), failures


def save_tuned(classifier: Classifier, info: ModelInfo, suffix: str) -> Path:
    """The classifier's Keras model with settings tuned on validation (``info``) saved with its card under a new
    name beside it, ``<stem>-<suffix>.keras`` (``-2``... when taken); the original is left as it was."""
    model_path = classifier.path
    with tempfile.TemporaryDirectory(dir=model_path.parent) as scratch:
        written = save_model(classifier.keras_model(), Path(scratch) / model_path.name, info)
        saved = publish_versioned(written, model_path.parent, f"{model_path.stem}-{suffix}", ".keras")
    write_card(saved, info)
    return saved


def tune_on_validation(classifier: Classifier, validation: ImageFolder, calibrate: bool, choose: bool,
                       tta: str | None = None, batch_size: int = 32,
                       threshold: bool = False) -> tuple[Classifier, list[Failure]]:
    """The TTA mode (``choose``), then the temperature (``calibrate``), then the decision threshold
    (``threshold``) fitted on ``validation``, the last two through the views of ``tta`` (``--tta``'s request,
    ``runtime.tta.chosen_mode``); the model saved with them as ``<stem>-calibrated|tta|threshold....keras``.
    Returns that model, opened, and the validation files that could not be used.

    The mode is chosen first, by accuracy, which a temperature hardly moves; the temperature then fits the
    probabilities the model will answer with: averaging views softens them, so one fitted on one view falls short.
    The threshold comes last, on the probabilities as they will be answered.
    """
    failures: list[Failure] = []
    tuned = classifier
    if threshold and not classifier.info.binary:  # refused before any other tuning runs
        raise UserError(f"--choose-threshold needs a two-class model; this one has "
                        f"{len(classifier.info.class_names)} classes")
    if choose:
        tuned = tuned.with_info(choose_tta(tuned, validation, batch_size))
    if calibrate:
        mode = chosen_mode(tta, tuned.info, classifier.path)
        info, failures = fit_folder_temperature(tuned, validation, batch_size, mode)
        tuned = tuned.with_info(info)
    if threshold:
        mode = chosen_mode(tta, tuned.info, classifier.path)
        info, failures = choose_decision_threshold(tuned, validation, batch_size, mode)
        tuned = tuned.with_info(info)
    suffix = "-".join(name for name, done in (("calibrated", calibrate), ("tta", choose), ("threshold", threshold))
                      if done)
    return tuned.with_info(tuned.info, save_tuned(classifier, tuned.info, suffix)), failures
