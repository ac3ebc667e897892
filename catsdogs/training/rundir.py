"""The run directory: its creation, ``state.json`` (finished phases), ``history.csv`` and library versions.

A run directory ``runs/<time>-<label>/`` holds everything needed to understand and reproduce a run:
``config.json`` (every resolved setting, library versions, the data's fingerprint), ``history.csv``,
``curves.png`` (and ``curves.json``), ``best.weights.npz`` (best validation accuracy; a snapshot, see
``training.checkpoints``), ``model.keras`` (the best model, with its metadata), ``metrics.json`` (test
accuracy and loss when a test split exists), TensorBoard ``logs/`` and, while training, a ``backup/`` that
``--resume`` continues from.
"""

from __future__ import annotations

import csv
import json
import platform
from collections.abc import Mapping, Sequence
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import keras
import numpy as np

from catsdogs import __version__
from catsdogs.config import TrainConfig
from catsdogs.errors import UserError
from catsdogs.outputs import new_folder, write_json
from catsdogs.plots import plot_history


def new_run_dir(config: TrainConfig) -> Path:
    """A new ``<output>/<time>-<name>`` folder (``--name``, else the model's label, e.g. ``vgg19-block5``),
    created exclusively (``-2``, ``-3``... when the name is taken, by a run started the same second, say)."""
    return new_folder(config.output, f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{config.model_name}")


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or None when it is missing or unreadable (a resumed run then starts afresh)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def installed_version(package: str) -> str:
    """``package``'s installed version, or ``none`` (TensorFlow is absent where the JAX backend trains alone)."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "none"


def library_versions() -> dict[str, str]:
    """What a run's figures depend on besides its settings: the libraries and the platform."""
    return {"catsdogs": __version__, "tensorflow": installed_version("tensorflow"), "keras": keras.__version__,
            "backend": keras.backend.backend(), "numpy": np.__version__, "python": platform.python_version(),
            "platform": platform.platform()}


def read_history(path: Path) -> dict[str, list[float]]:
    """history.csv as columns; an epoch logged twice (a resumed run) keeps its last row."""
    if not path.is_file():
        return {}
    rows: dict[int, dict[str, str]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            rows[int(row["epoch"])] = row
    ordered = [rows[epoch] for epoch in sorted(rows)]
    columns = ordered[0].keys() if ordered else []
    # CSVLogger writes "NA" for a metric an epoch lacks (no validation split, a key added later).
    return {key: [float(row[key]) if row.get(key) not in (None, "", "NA") else float("nan") for row in ordered]
            for key in columns}


def read_state(run_dir: Path) -> dict[str, Any]:
    state = read_json(run_dir / "state.json")
    return state if isinstance(state, dict) and isinstance(state.get("completed_phases"), list) else {
        "completed_phases": []}


def write_state(run_dir: Path, state: dict[str, Any]) -> None:
    write_json(run_dir / "state.json", state)


def phase_starts(phases: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Each phase after the first -> its first epoch (1-based), from phases' ``name`` and ``epochs``:
    where the curves mark that fine-tuning began."""
    starts, first = {}, 1
    for index, phase in enumerate(phases):
        if index:
            starts[str(phase["name"])] = first
        first += int(phase["epochs"])
    return starts


def save_curves(source: str | Path, output_dir: str | Path) -> Path:
    """``curves.png`` (accuracy and loss, training vs validation) and ``curves.json`` from a run's history.

    ``source``: a run directory written by ``catsdogs.train`` or its ``history.csv``.
    """
    source = Path(source)
    if not source.exists():
        raise UserError(f"{source} does not exist; pass a run directory (runs/<time>-<model>) or its history.csv")
    history_path = source / "history.csv" if source.is_dir() else source
    if not history_path.is_file():
        raise UserError(f"{source} has no history.csv; pass a run directory written by python -m catsdogs.train "
                        "(runs/<time>-<model>) or a history.csv")
    try:
        history = read_history(history_path)
    except (KeyError, ValueError):  # no epoch column, or cells that are not numbers
        history = {}
    if not history.get("loss"):
        raise UserError(f"{history_path} holds no training history (no loss column); pass the history.csv "
                        "that python -m catsdogs.train writes in its run directory")
    output_dir = Path(output_dir)
    title = source.name if source.is_dir() else source.parent.name
    recorded = read_json(history_path.parent / "config.json")  # the run's phases, when it is a run folder
    run_record = recorded.get("run") if isinstance(recorded, dict) else None
    phases = run_record.get("phases", []) if isinstance(run_record, dict) else []
    path = plot_history(history, output_dir / "curves.png", title=title, phase_starts=phase_starts(phases))
    summary: dict[str, Any] = {"source": str(history_path), "history": history}
    if history.get("val_accuracy"):
        best = int(np.nanargmax(history["val_accuracy"]))
        summary.update(best_epoch=best + 1, best_val_accuracy=history["val_accuracy"][best])
    write_json(output_dir / "curves.json", summary)
    return path
