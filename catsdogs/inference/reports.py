"""What evaluation writes: an evaluation's files (metrics, predictions, confusion matrix, mistakes) and summary.

Predictions' own formats (JSON, CSV, Kaggle's submission) are in ``catsdogs.runtime.writers``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from catsdogs import outputs
from catsdogs.data.images import check_image_file
from catsdogs.data.pillow_decode import decode_checked
from catsdogs.inference.evaluation import Evaluation
from catsdogs.metrics import risk_coverage
from catsdogs.plots import image_grid, plot_confusion_matrix, reliability_figure, risk_coverage_figure, save_figure


def save_mistake_gallery(mistakes: Sequence[dict[str, Any]], image_size: int, path: str | Path) -> Path | None:
    """The most confidently wrong images in a grid, each titled ``true -> predicted 97%``."""
    if not mistakes:
        return None
    # Pillow's decoder (no TensorFlow needed): for display, libjpeg's IDCT difference does not show.
    images = [decode_checked(check_image_file(m["path"], image_size), image_size) for m in mistakes]
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


def write_risk_coverage_csv(curve: dict[str, Any], path: str | Path) -> Path:
    """``threshold, coverage, risk`` per image, most confident first: answer at >= threshold, get that."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["threshold", "coverage", "risk"])
    writer.writerows([f"{t:.6f}", f"{c:.6f}", f"{r:.6f}"] for t, c, r in
                     zip(curve["thresholds"], curve["coverage"], curve["risk"]))
    return outputs.write_text(path, buffer.getvalue())


def write_evaluation(evaluation: Evaluation, output_dir: str | Path, image_size: int) -> dict[str, Path]:
    """Every file of an evaluation in ``output_dir``, all of them or none (``outputs.staged_files``); returns them by
    kind."""
    output_dir = Path(output_dir)
    with outputs.staged_files(output_dir) as stage:
        files = _write_report(evaluation, stage, image_size)
    return {kind: output_dir / path.name for kind, path in files.items()}


def _write_report(evaluation: Evaluation, output_dir: Path, image_size: int) -> dict[str, Path]:
    confusion = evaluation.metrics["confusion_matrix"]
    files = {"metrics": output_dir / "metrics.json", "confusion_json": output_dir / "confusion.json",
             "predictions": write_predictions_csv(evaluation, output_dir / "predictions.csv"),
             "confusion_png": plot_confusion_matrix(np.array(confusion["matrix"]), confusion["class_names"],
                                                    output_dir / "confusion.png")}
    calibration = evaluation.metrics["calibration"]
    files["reliability_png"] = save_figure(reliability_figure(calibration["bins"], calibration["ece"]),
                                           output_dir / "reliability.png")
    curve = risk_coverage(evaluation.report.probabilities, evaluation.labels)
    files["risk_coverage_csv"] = write_risk_coverage_csv(curve, output_dir / "risk_coverage.csv")
    files["risk_coverage_png"] = save_figure(risk_coverage_figure(curve["coverage"], curve["risk"], curve["area"]),
                                             output_dir / "risk_coverage.png")
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
    if metrics.get("worst_class"):
        worst = metrics["worst_class"]
        lines.append(f"balanced accuracy {metrics['balanced_accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}; "
                     f"worst class {worst['name']} (recall {worst['recall']:.4f})"
                     + (f"; threshold {metrics['threshold']:.4f} on P({list(metrics['per_class'])[1]})"
                        if metrics.get("threshold") is not None else ""))
    lines += [f"{key.replace('_', ' ')} {value:.4f}" for key, value in metrics.items() if key.startswith("top_")]
    if "calibration" in metrics:
        calibration = metrics["calibration"]
        low, high = calibration["ece_interval_95"]
        lines.append(f"calibration: ECE {calibration['ece']:.4f} (95 % {low:.4f}-{high:.4f}), "
                     f"NLL {calibration['nll']:.4f}, Brier {calibration['brier']:.4f}")
    for name, scores in metrics["per_class"].items():
        lines.append(f"  {name:12s} precision {scores['precision']:.3f}  recall {scores['recall']:.3f}  "
                     f"F1 {scores['f1']:.3f}  ({scores['support']} images)")
    return "\n".join(lines)
