"""Predictions as the commands write them: JSON, CSV, and Kaggle's submission file. No TensorFlow."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from catsdogs import outputs
from catsdogs.data.files import Failure
from catsdogs.metadata import ModelInfo
from catsdogs.runtime.results import Prediction


def _record(item: Prediction | Failure, class_names: Sequence[str], min_confidence: float | None) -> dict[str, Any]:
    if isinstance(item, Failure):
        return {"path": item.path, "error": item.error}
    record = {"path": item.path, "predicted": item.class_name,
              "probabilities": {name: float(p) for name, p in zip(class_names, item.probabilities)}}
    return record if min_confidence is None else {**record, "answer": item.answer(min_confidence)}


def write_json(items: Sequence[Prediction | Failure], info: ModelInfo, model_path: Path, stream: TextIO,
               min_confidence: float | None = None) -> None:
    """Every input's record; with ``min_confidence``, each prediction's ``answer`` too (its class or ``unsure``)."""
    records = [_record(item, info.class_names, min_confidence) for item in items]
    extra = {} if min_confidence is None else {"min_confidence": min_confidence}
    stream.write(outputs.json_text({"model": str(model_path), "class_names": list(info.class_names),
                                    "image_size": info.image_size, **extra, "predictions": records}))
    stream.write("\n")


def write_csv(items: Sequence[Prediction | Failure], class_names: Sequence[str], stream: TextIO,
              min_confidence: float | None = None) -> None:
    """``path, predicted, probability_<class>..., error``: one row per input, failures with ``error`` only;
    with ``min_confidence``, an ``answer`` column after ``predicted`` (the class or ``unsure``)."""
    answers = min_confidence is not None
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(["path", "predicted", *(["answer"] if answers else []),
                     *(f"probability_{name}" for name in class_names), "error"])
    for item in items:
        if isinstance(item, Failure):
            writer.writerow([item.path, "", *([""] if answers else []), *([""] * len(class_names)), item.error])
        else:
            writer.writerow([item.path, item.class_name, *([item.answer(min_confidence)] if answers else []),
                             *(f"{p:.6f}" for p in item.probabilities), ""])


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
