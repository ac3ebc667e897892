"""``python -m catsdogs.evaluate`` (``catsdogs-evaluate``): a saved model's scores on a labelled split folder.

Examples:
    python -m catsdogs.evaluate --data-dir data/cats_vs_dogs_small --output evaluation/
    python -m catsdogs.evaluate --model saved_models/vgg19-block5.keras --data-dir data/x/test --output eval/
    python -m catsdogs.evaluate --data-dir data/x --split validation --output eval/ --top-k 3

``--data-dir`` is a split folder (one sub-folder per class) or a ``data_prep`` output, whose
``--split`` (default ``test``) is then used; its class folders must be the model's classes. The
output folder receives ``metrics.json`` (accuracy, loss, per-class precision / recall / F1, ROC AUC,
top-k accuracy with more than 2 classes, the confusion matrix, the most confidently wrong images),
``confusion.png`` / ``confusion.json``, ``wrong.png`` (a gallery of those mistakes) and
``predictions.csv``. The metrics are numpy only: scikit-learn is not a dependency.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from catsdogs.cli import ArgumentParser, UserError, quiet_tensorflow, run_cli
from catsdogs.predict import (
    PredictionReport,
    add_model_arguments,
    load_model_from_args,
    predict_files,
    report_failures,
)

if TYPE_CHECKING:
    import keras

    from catsdogs.data import ImageFolder
    from catsdogs.saving import ModelInfo

_EPSILON = 1e-7  # Keras's: probabilities are clipped to [eps, 1 - eps] in the cross-entropy


# ------------------------------------------------------------------------------------------- metrics
def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """``matrix[true, predicted]`` counts."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (np.asarray(labels, int), np.asarray(predicted, int)), 1)
    return matrix


def roc_auc(is_positive: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve by the rank (Mann-Whitney) formula; tied scores share their average rank.

    The probability that a random positive scores above a random negative (ties count half).
    None when only one kind is present.
    """
    is_positive = np.asarray(is_positive, bool)
    positives, negatives = int(is_positive.sum()), int((~is_positive).sum())
    if positives == 0 or negatives == 0:
        return None
    _, tie_group, tie_counts = np.unique(np.asarray(scores, np.float64), return_inverse=True, return_counts=True)
    # Ranks 1..N in score order; a group of tied scores shares the mean of the ranks it spans.
    group_last_rank = np.cumsum(tie_counts)
    average_ranks = (group_last_rank - (tie_counts - 1) / 2.0)[tie_group]
    positive_rank_sum = average_ranks[is_positive].sum()
    return float((positive_rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def cross_entropy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-probability of the true class, clipped as Keras clips it."""
    true_class = np.asarray(probabilities, np.float64)[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(true_class, _EPSILON, 1.0 - _EPSILON))))


def top_k_accuracy(probabilities: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Share of images whose true class is among the ``k`` most probable."""
    top_k = np.argsort(-np.asarray(probabilities), axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top_k == np.asarray(labels)[:, None], axis=1)))


def per_class_scores(matrix: np.ndarray, class_names: Sequence[str]) -> dict[str, dict[str, float | int]]:
    """Precision, recall, F1 and support per class from the confusion matrix (0 where undefined)."""
    true_positives = np.diag(matrix).astype(float)
    predicted, actual = matrix.sum(axis=0), matrix.sum(axis=1)
    precision = np.divide(true_positives, predicted, out=np.zeros_like(true_positives), where=predicted > 0)
    recall = np.divide(true_positives, actual, out=np.zeros_like(true_positives), where=actual > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(both), where=both > 0)
    return {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(actual[i])} for i, name in enumerate(class_names)}


def compute_metrics(probabilities: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                    top_k: int = 2) -> dict[str, Any]:
    """Every score of ``metrics.json`` from ``(N, classes)`` probabilities and true class indices."""
    probabilities, labels = np.asarray(probabilities, np.float64), np.asarray(labels, int)
    num_classes = len(class_names)
    predicted = np.argmax(probabilities, axis=1)
    matrix = confusion_matrix(labels, predicted, num_classes)
    per_class = per_class_scores(matrix, class_names)
    metrics: dict[str, Any] = {
        "images": len(labels),
        "accuracy": float(np.trace(matrix) / max(matrix.sum(), 1)),
        "loss": cross_entropy(probabilities, labels),
        "per_class": per_class,
        "macro_f1": float(np.mean([scores["f1"] for scores in per_class.values()])),
    }
    if num_classes == 2:  # the score is P(class 1), what the sigmoid gives
        metrics["roc_auc"] = roc_auc(labels == 1, probabilities[:, 1])
    else:
        one_vs_rest = {name: roc_auc(labels == i, probabilities[:, i]) for i, name in enumerate(class_names)}
        defined = [value for value in one_vs_rest.values() if value is not None]
        metrics["roc_auc"] = float(np.mean(defined)) if defined else None
        metrics["roc_auc_one_vs_rest"] = one_vs_rest
        metrics[f"top_{top_k}_accuracy"] = top_k_accuracy(probabilities, labels, top_k)
    metrics["confusion_matrix"] = {"class_names": list(class_names), "rows": "true class",
                                   "columns": "predicted class", "matrix": matrix.tolist()}
    return metrics


def most_confident_mistakes(report: PredictionReport, labels: np.ndarray, count: int = 16) -> list[dict[str, Any]]:
    """The wrong predictions with the highest probability on the (wrong) predicted class, most confident first."""
    wrong = [(result, int(label)) for result, label in zip(report.results, labels) if result.class_index != label]
    wrong.sort(key=lambda pair: -pair[0].confidence)
    return [{"path": result.path, "true": report.class_names[label], "predicted": result.class_name,
             "probabilities": {name: float(p) for name, p in zip(report.class_names, result.probabilities)}}
            for result, label in wrong[:count]]


# ---------------------------------------------------------------------------------------- evaluating
@dataclass
class Evaluation:
    """What ``evaluate_folder`` found: the metrics (``metrics.json``), the predictions and true labels."""

    metrics: dict[str, Any]
    report: PredictionReport
    labels: np.ndarray  # true class index per result


def resolve_split_folder(data_dir: str | Path, split: str | None = None) -> Path:
    """``data_dir`` itself when it is a split folder, or its ``split`` (default ``test``) in a data_prep output."""
    from catsdogs.data import SPLITS

    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UserError(f"data folder {data_dir} does not exist")
    if split is not None and split not in SPLITS:
        raise UserError(f"--split must be one of {', '.join(SPLITS)}, not {split!r}")
    present = [name for name in SPLITS if (data_dir / name).is_dir()]
    chosen = split or "test"
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
    from catsdogs.data import ImageFolder, read_image_folder

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
    metrics["failures"] = [{"path": f.path, "error": f.error} for f in report.failures]
    return Evaluation(metrics, report, labels)


# ------------------------------------------------------------------------------------------- writing
def plot_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], path: str | Path) -> Path:
    """The counts in a grid, true class down, predicted class across."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    size = 1.2 + 0.8 * len(class_names)
    figure, axis = plt.subplots(figsize=(size + 1, size))
    image = axis.imshow(matrix, cmap="Blues")
    axis.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    axis.set_yticks(range(len(class_names)), class_names)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    for (row, column), count in np.ndenumerate(matrix):
        axis.text(column, row, str(count), ha="center", va="center",
                  color="white" if count > matrix.max() / 2 else "black")
    figure.colorbar(image, ax=axis)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def save_mistake_gallery(mistakes: Sequence[dict[str, Any]], image_size: int, path: str | Path) -> Path | None:
    """The most confidently wrong images in a grid, each titled ``true -> predicted 97%``."""
    from catsdogs.data import load_image
    from catsdogs.visualize import image_grid

    if not mistakes:
        return None
    images = [load_image(m["path"], image_size).numpy() for m in mistakes]
    titles = [f"{m['true']} -> {m['predicted']} {100 * m['probabilities'][m['predicted']]:.0f}%\n{Path(m['path']).name}"
              for m in mistakes]
    return image_grid(images, path, columns=min(len(images), 4), titles=titles)


def write_predictions_csv(evaluation: Evaluation, path: str | Path) -> Path:
    """``path, true, predicted, probability_<class>...`` per image."""
    report = evaluation.report
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["path", "true", "predicted", *(f"probability_{name}" for name in report.class_names)])
        for result, label in zip(report.results, evaluation.labels):
            writer.writerow([result.path, report.class_names[label], result.class_name,
                             *(f"{p:.6f}" for p in result.probabilities)])
    return path


def write_evaluation(evaluation: Evaluation, output_dir: str | Path, image_size: int) -> dict[str, Path]:
    """Every file of an evaluation in ``output_dir``; returns them by kind."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    confusion = evaluation.metrics["confusion_matrix"]
    files = {"metrics": output_dir / "metrics.json", "confusion_json": output_dir / "confusion.json",
             "predictions": write_predictions_csv(evaluation, output_dir / "predictions.csv"),
             "confusion_png": plot_confusion_matrix(np.array(confusion["matrix"]), confusion["class_names"],
                                                    output_dir / "confusion.png")}
    gallery = save_mistake_gallery(evaluation.metrics["most_confident_mistakes"], image_size, output_dir / "wrong.png")
    if gallery is not None:
        files["mistakes_png"] = gallery
    files["confusion_json"].write_text(json.dumps(confusion, indent=2) + "\n")
    files["metrics"].write_text(json.dumps(evaluation.metrics, indent=2) + "\n")
    return files


def summary(metrics: dict[str, Any]) -> str:
    """A few lines for the console."""
    lines = [f"{metrics['images']} images: accuracy {metrics['accuracy']:.4f}, loss {metrics['loss']:.4f}"
             + (f", ROC AUC {metrics['roc_auc']:.4f}" if metrics.get("roc_auc") is not None else "")]
    lines += [f"{key.replace('_', ' ')} {value:.4f}" for key, value in metrics.items() if key.startswith("top_")]
    for name, scores in metrics["per_class"].items():
        lines.append(f"  {name:12s} precision {scores['precision']:.3f}  recall {scores['recall']:.3f}  "
                     f"F1 {scores['f1']:.3f}  ({scores['support']} images)")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m catsdogs.evaluate",
                            description="Score a saved model on a labelled split folder and write a report.",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--data-dir", required=True,
                        help="a split folder with one sub-folder per class, or a data_prep output (see --split)")
    parser.add_argument("--split", help="train, validation or test: the split of a data_prep output (default: test)")
    parser.add_argument("--output", default="evaluation", metavar="DIR", help="where the report files go")
    parser.add_argument("--top-k", type=int, default=2, metavar="K", help="top-k accuracy (models with > 2 classes)")
    parser.add_argument("--mistakes", type=int, default=16, metavar="N",
                        help="how many of the most confidently wrong images to show and list")
    parser.add_argument("--batch-size", type=int, default=32)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.batch_size < 1 or args.mistakes < 0:
        raise UserError("--batch-size must be at least 1 and --mistakes at least 0")
    quiet_tensorflow()
    folder = resolve_split_folder(args.data_dir, args.split)
    model, info, model_path = load_model_from_args(args)
    evaluation = evaluate_folder(model, info, folder, args.batch_size, args.top_k, args.mistakes, progress=None)
    evaluation.metrics["model"] = str(model_path)
    files = write_evaluation(evaluation, args.output, info.image_size)
    print(summary(evaluation.metrics))
    print(f"wrote {', '.join(path.name for path in files.values())} to {args.output}")
    return report_failures(evaluation.report.failures)


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
