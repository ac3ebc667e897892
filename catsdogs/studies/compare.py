"""``compare``: finished runs side by side, read from what each run folder already holds.

A row per run: its folder, model, recipe, the data's fingerprint (the manifest's hash: runs on the
same data share it), the test accuracy with its Wilson 95 % interval, the epochs and the minutes of
training (the history's per-epoch seconds). Nothing is re-computed from the model, so a comparison
of a hundred runs takes a moment and never needs TensorFlow's attention beyond reading CSVs.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catsdogs.config import COMPARE_SORT_KEYS
from catsdogs.data.files import Failure
from catsdogs.errors import UserError, parameter
from catsdogs.metrics import wilson_interval
from catsdogs.training.rundir import read_history, read_json

COLUMNS = ("run", "model", "recipe", "data", "test_accuracy", "interval_95", "test_images", "epochs", "minutes")


@dataclass
class RunSummary:
    """What ``compare`` knows about one run folder."""

    path: Path
    row: dict[str, Any]
    history: dict[str, list[float]]


def read_run(run_dir: Path) -> RunSummary:
    """One run folder's row; a UserError when it is not a run folder (no ``config.json``)."""
    config = read_json(run_dir / "config.json")
    if not isinstance(config, dict):
        raise UserError("no readable config.json: not a catsdogs run folder")
    metrics = read_json(run_dir / "metrics.json") or {}
    history = read_history(run_dir / "history.csv")
    test = metrics.get("test") or {}
    accuracy, images = test.get("accuracy"), test.get("images")
    interval = ""
    if isinstance(accuracy, (int, float)) and isinstance(images, int) and images > 0:
        low, high = test.get("accuracy_interval_95") or wilson_interval(round(accuracy * images), images)
        interval = f"{low:.3f}-{high:.3f}"
    seconds = [s for s in history.get("seconds", []) if not math.isnan(s)]
    fingerprint = (config.get("run") or {}).get("data_fingerprint") or ""
    label = config.get("model", "?") + (f" {config['alpha']}" if config.get("alpha") not in (None, 1.0) else "")
    row = {"run": run_dir.name, "model": label, "recipe": config.get("recipe", ""), "data": fingerprint[:8],
           "test_accuracy": accuracy, "interval_95": interval, "test_images": images,
           "epochs": metrics.get("epochs", len(history.get("epoch", []))),
           "minutes": round(sum(seconds) / 60, 1) if seconds else None}
    return RunSummary(run_dir, row, history)


def find_runs(runs_dir: Path) -> list[Path]:
    """The run folders in ``runs_dir`` (with a ``config.json``), oldest first (their names start with the time)."""
    if not runs_dir.is_dir():
        raise UserError(f"{runs_dir} is not a folder of runs; pass {parameter('runs_dir')} or run folders")
    return sorted(p for p in runs_dir.iterdir() if (p / "config.json").is_file())


def read_runs(paths: Sequence[Path]) -> tuple[list[RunSummary], list[Failure]]:
    """Each folder's summary; a folder that is not a run is named with its problem and left out."""
    runs, failures = [], []
    for path in paths:
        try:
            runs.append(read_run(path))
        except UserError as exc:
            failures.append(Failure(str(path), str(exc)))
    return runs, failures


def sort_runs(runs: list[RunSummary], key: str) -> list[RunSummary]:
    """By ``key``; accuracy best first; a run without the value last."""
    if key not in COMPARE_SORT_KEYS:
        raise UserError(f"{parameter('sort')} must be one of {', '.join(COMPARE_SORT_KEYS)}, not {key!r}")
    descending = key == "test_accuracy"
    present = [run for run in runs if run.row.get(key) is not None]
    missing = [run for run in runs if run.row.get(key) is None]
    return sorted(present, key=lambda run: run.row[key], reverse=descending) + missing


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)  # 0.9561, 11.3


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = COLUMNS) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(column)) for column in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def csv_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = COLUMNS) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([[_cell(row.get(column)) for column in columns] for row in rows])
    return buffer.getvalue()
