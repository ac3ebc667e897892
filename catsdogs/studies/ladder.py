"""``ladder``: the report's four experiments as ordinary runs, compared on the same test images.

1. ``small_cnn``: the report's CNN from scratch, its own recipe (RMSprop 1e-4), no augmentation;
2. ``augmented``: the same with the report's augmentation;
3. ``frozen``: the chosen base frozen, a head trained on its cached features (no augmentation: the
   report's fast feature extraction);
4. ``fine_tuned``: the base's own recipe with its top layers trained (VGG: block5; the pooling-head
   bases: a head warm-up, then every layer).

Each step is a run folder of its own (``train``) inside the ladder's folder, so ``--resume`` reuses
finished steps and continues an interrupted one; ``ladder.json`` lists them. Each step's saved model is then
scored on the test split; consecutive steps are compared image by image with McNemar's exact test
(``metrics.mcnemar``), which asks whether the step up is better on these images, not on average over
the splits one might have drawn: that is what the seeds' spread shows, a different question.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from catsdogs.config import DEFAULT_SEED, SPLITS, TrainConfig
from catsdogs.data.files import read_image_folder
from catsdogs.errors import UserError
from catsdogs.inference.evaluation import evaluate_folder
from catsdogs.metrics import mcnemar, wilson_interval
from catsdogs.outputs import write_json, write_text
from catsdogs.plots import ladder_figure, save_figure
from catsdogs.runtime.opening import open_classifier
from catsdogs.studies.compare import csv_table, markdown_table
from catsdogs.studies.runs import run_once
from catsdogs.training.rundir import read_history, read_json
from catsdogs.training.settings import resolve_config


@dataclass(frozen=True)
class Step:
    key: str
    label: str
    report_accuracy: float  # the report's test accuracy (VGG19, 150 px, 1000/500/500 per class)
    settings: Callable[[str, Mapping[str, int]], dict[str, Any]]  # (base, the budget's epochs) -> settings


STEPS = (
    Step("small_cnn", "small CNN", 0.733,
         lambda base, epochs: {"model": "small_cnn", "recipe": "report", "augment": False,
                               "epochs": epochs["from_scratch"]}),
    Step("augmented", "+ augmentation", 0.818,
         lambda base, epochs: {"model": "small_cnn", "recipe": "report", "augment": True,
                               "epochs": epochs["augmented"]}),
    Step("frozen", "base frozen", 0.884,
         lambda base, epochs: {"model": base, "recipe": "frozen", "cache_features": True, "augment": False,
                               "epochs": epochs["frozen"]}),
    Step("fine_tuned", "top fine-tuned", 0.941,
         lambda base, epochs: {"model": base, "recipe": "default", "warmup_epochs": epochs["warmup"],
                               "epochs": epochs["fine_tune"]}),
)
# Epochs per step. report: the report's own; quick: meant to finish on 2 CPU cores with MobileNet 0.25;
# smoke: one epoch each, to try the command (and for the tests).
BUDGETS: dict[str, dict[str, int]] = {  # one per config.LADDER_BUDGETS
    "smoke": {"from_scratch": 1, "augmented": 1, "frozen": 1, "warmup": 1, "fine_tune": 1},
    "quick": {"from_scratch": 15, "augmented": 15, "frozen": 15, "warmup": 4, "fine_tune": 8},
    "standard": {"from_scratch": 30, "augmented": 50, "frozen": 30, "warmup": 8, "fine_tune": 30},
    "report": {"from_scratch": 30, "augmented": 100, "frozen": 30, "warmup": 30, "fine_tune": 100},
}
STATE_FILE = "ladder.json"


def run_name(step: Step, seed_index: int) -> str:
    return f"ladder-{step.key}-seed{seed_index}"


def step_config(step: Step, base: str, budget: str, seed_index: int, common: Mapping[str, Any],
                runs_dir: Path) -> TrainConfig:
    """The step's run settings: the model's recipe beneath, the step's choices and the common flags above."""
    seed = int(common.get("seed", DEFAULT_SEED)) + seed_index - 1
    # Every file the ladder writes stays under its folder: the runs, and the frozen step's feature cache.
    settings = {"feature_cache": str(runs_dir.parent / "cache" / "features"), **common,
                **step.settings(base, BUDGETS[budget]), "seed": seed, "output": str(runs_dir),
                "saved_models_dir": "", "name": run_name(step, seed_index), "verbose": common.get("verbose", 1)}
    if step.key in ("small_cnn", "augmented"):
        settings.pop("alpha", None)  # the base's width and weights, not the small CNN's
        settings.pop("weights", None)
    return resolve_config(settings)


def run_steps(folder: Path, base: str, budget: str, seeds: int, common: Mapping[str, Any]) -> dict[str, list[str]]:
    """Train every step for every seed that has no finished run yet; returns step -> run folders.

    Runs go to ``folder/runs/<time>-ladder-<step>-seed<k>`` (``runs.run_once``: finished ones reused,
    interrupted ones continued).
    """
    runs_dir = folder / "runs"
    runs: dict[str, list[str]] = {}
    state = {"base": base, "budget": budget, "seeds": seeds, "settings": dict(common)}
    # Written before the first step, so a ladder killed in it is still one that --resume knows.
    write_json(folder / STATE_FILE, {**state, "runs": runs})
    for step in STEPS:
        for seed_index in range(1, seeds + 1):
            run_dir = run_once(runs_dir, run_name(step, seed_index),
                               partial(step_config, step, base, budget, seed_index, common, runs_dir))
            runs.setdefault(step.key, []).append(str(run_dir))
            write_json(folder / STATE_FILE, {**state, "runs": runs})
    return runs


def score_run(run_dir: Path, test_dir: Path) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    """A run's model on the test split: correctness per image (sorted by path), the paths, the metrics."""
    classifier = open_classifier(run_dir / "model.keras")
    evaluation = evaluate_folder(classifier, read_image_folder(test_dir, classifier.info.class_names))
    order = np.argsort([result.path for result in evaluation.report.results])
    predicted = np.array([result.class_index for result in evaluation.report.results])
    correct = (predicted == evaluation.labels)[order]
    return correct, sorted(result.path for result in evaluation.report.results), evaluation.metrics


def summarise(runs: Mapping[str, list[str]], test_dir: Path) -> list[dict[str, Any]]:
    """A row per step: accuracy (first seed) and its interval, the seeds' mean and spread, epochs, minutes,
    and McNemar's test against the step below on the first seed's runs."""
    rows: list[dict[str, Any]] = []
    previous: tuple[np.ndarray, list[str]] | None = None
    for step in STEPS:
        scored = [score_run(Path(run), test_dir) for run in runs[step.key]]
        correct, paths, metrics = scored[0]
        accuracies = [float(np.mean(c)) for c, _, _ in scored]
        low, high = wilson_interval(int(correct.sum()), len(correct))
        seconds = [sum(read_history(Path(run) / "history.csv").get("seconds", [])) for run in runs[step.key]]
        run_metrics = read_json(Path(runs[step.key][0]) / "metrics.json") or {}
        row = {"step": step.key, "label": step.label, "run": runs[step.key][0], "test_images": len(correct),
               "accuracy": accuracies[0], "interval_95": [low, high], "report_accuracy": step.report_accuracy,
               "seeds": len(accuracies), "seed_accuracies": accuracies,
               "seed_mean": float(np.mean(accuracies)), "seed_std": float(np.std(accuracies, ddof=1))
               if len(accuracies) > 1 else None, "epochs": run_metrics.get("epochs"),
               "minutes": round(float(np.mean(seconds)) / 60, 1)}
        if previous is not None:
            if previous[1] != paths:
                raise UserError(f"{step.key} was scored on other test images than the step before it")
            row["vs_previous"] = mcnemar(previous[0], correct)
        rows.append(row)
        previous = (correct, paths)
    return rows


def test_split(data_dir: str | Path) -> Path:
    test_dir = Path(data_dir) / SPLITS[-1]
    if not test_dir.is_dir():
        raise UserError(f"the ladder compares its steps on a test split; {data_dir} has no {SPLITS[-1]}/ folder")
    return test_dir


RESULT_COLUMNS = ("step", "accuracy", "interval_95", "report_accuracy", "seed_mean", "seed_std", "epochs", "minutes",
                  "p_value_vs_previous")


def flat_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A result row as table cells."""
    low, high = row["interval_95"]
    versus = row.get("vs_previous")
    return {"step": row["label"], "accuracy": f"{row['accuracy']:.4f}", "interval_95": f"{low:.3f}-{high:.3f}",
            "report_accuracy": f"{row['report_accuracy']:.3f}", "seed_mean": f"{row['seed_mean']:.4f}",
            "seed_std": "" if row["seed_std"] is None else f"{row['seed_std']:.4f}", "epochs": row["epochs"],
            "minutes": f"{row['minutes']:.1f}",
            "p_value_vs_previous": "" if versus is None else
            f"{versus['p_value']:.3g} ({versus['only_second_right']} vs {versus['only_first_right']} images)"}


def results_table(rows: list[dict[str, Any]]) -> str:
    """The terminal's (and results.md's) table."""
    return markdown_table([flat_row(row) for row in rows], RESULT_COLUMNS)


def write_results(folder: Path, rows: list[dict[str, Any]], base: str) -> dict[str, Path]:
    """results.json (everything), results.csv and results.md (the table), ladder.png."""
    cells = [flat_row(row) for row in rows]
    files = {"json": write_json(folder / "results.json", rows),
             "csv": write_text(folder / "results.csv", csv_table(cells, RESULT_COLUMNS)),
             "md": write_text(folder / "results.md", results_table(rows))}
    figure = ladder_figure([row["label"] for row in rows], [row["accuracy"] for row in rows],
                           [row["interval_95"] for row in rows], [row["report_accuracy"] for row in rows],
                           "the report (VGG19, 150 px)",
                           f"The ladder with {base}, {rows[0]['test_images']} test images")
    files["png"] = save_figure(figure, folder / "ladder.png")
    return files
