"""What prediction and evaluation write: JSON, CSV, Kaggle's submission, an evaluation's files and summary."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from catsdogs import outputs
from catsdogs.data.decode import load_image
from catsdogs.data.files import Failure
from catsdogs.inference.evaluation import Evaluation
from catsdogs.inference.predict import Prediction
from catsdogs.models.saving import ModelInfo
from catsdogs.plots import image_grid, plot_confusion_matrix


def _record(item: Prediction | Failure, class_names: Sequence[str]) -> dict[str, Any]:
    if isinstance(item, Failure):
        return {"path": item.path, "error": item.error}
    return {"path": item.path, "predicted": item.class_name,
            "probabilities": {name: float(p) for name, p in zip(class_names, item.probabilities)}}


def write_json(items: Sequence[Prediction | Failure], info: ModelInfo, model_path: Path, stream: TextIO) -> None:
    records = [_record(item, info.class_names) for item in items]
    json.dump({"model": str(model_path), "class_names": list(info.class_names), "image_size": info.image_size,
               "predictions": records}, stream, indent=2)
    stream.write("\n")


def write_csv(items: Sequence[Prediction | Failure], class_names: Sequence[str], stream: TextIO) -> None:
    """``path, predicted, probability_<class>..., error``: one row per input, failures with ``error`` only."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(["path", "predicted", *(f"probability_{name}" for name in class_names), "error"])
    for item in items:
        if isinstance(item, Failure):
            writer.writerow([item.path, "", *([""] * len(class_names)), item.error])
        else:
            writer.writerow([item.path, item.class_name, *(f"{p:.6f}" for p in item.probabilities), ""])


def write_kaggle_submission(results: Sequence[Prediction], path: str | Path) -> tuple[Path, list[Failure]]:
    """Kaggle's ``id,label`` file: id from ``N.jpg``, label = P(class 1), sorted by id.

    Files whose name is not a number are left out and returned as failures.
    """
    rows, problems = [], []
    for result in results:
        stem = Path(result.path).stem
        if stem.isdigit():
            rows.append((int(stem), float(result.probabilities[1])))
        else:
            problems.append(Failure(result.path,
                                    "not in the Kaggle test set's N.jpg naming; left out of the submission"))
    lines = ["id,label", *(f"{image_id},{label:.6f}" for image_id, label in sorted(rows))]
    return outputs.write_text(path, "\n".join(lines) + "\n"), problems


def save_mistake_gallery(mistakes: Sequence[dict[str, Any]], image_size: int, path: str | Path) -> Path | None:
    """The most confidently wrong images in a grid, each titled ``true -> predicted 97%``."""
    if not mistakes:
        return None
    images = [load_image(m["path"], image_size).numpy() for m in mistakes]
    titles = [f"{m['true']} -> {m['predicted']} {100 * m['probabilities'][m['predicted']]:.0f}%\n{Path(m['path']).name}"
              for m in mistakes]
    return image_grid(images, path, columns=min(len(images), 4), titles=titles)


def write_predictions_csv(evaluation: Evaluation, path: str | Path) -> Path:
    """``path, true, predicted, probability_<class>...`` per image."""
    report = evaluation.report
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "true", "predicted", *(f"probability_{name}" for name in report.class_names)])
    for result, label in zip(report.results, evaluation.labels):
        writer.writerow([result.path, report.class_names[label], result.class_name,
                         *(f"{p:.6f}" for p in result.probabilities)])
    return outputs.write_text(path, buffer.getvalue())


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
    outputs.write_json(files["confusion_json"], confusion)
    outputs.write_json(files["metrics"], evaluation.metrics)
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
