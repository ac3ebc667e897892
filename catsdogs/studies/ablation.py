"""``ablate``: a grid over settings, each cell trained over several seeds, reported as mean and spread.

``--vary dropout=0,0.5 --vary batchnorm=off,on`` makes four cells; each is trained ``--seeds`` times
(seeds ``seed``, ``seed + 1``, ...) as an ordinary run in ``<folder>/runs`` (``runs.run_once``: an
interrupted grid continues where it stopped). Any ``TrainConfig`` setting can vary, and so can
``augment_params.<name>``; every cell's settings are resolved (the model's recipe beneath, the common
flags above it, the cell's values on top) and checked before the first run trains, so a bad value
fails in a second, not after an hour.

The table gives each cell's mean test accuracy and its standard deviation over the seeds (the spread a
reader would meet on re-running, which the binomial interval of one run does not show), the weights
the model has (what the classic documents quote beside an accuracy), epochs and minutes.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import re
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from catsdogs.config import DEFAULT_SEED, AugmentParams, TrainConfig
from catsdogs.errors import UserError, parameter
from catsdogs.models.registry import option_fields
from catsdogs.outputs import write_json, write_text
from catsdogs.plots import effect_figure, save_figure
from catsdogs.studies.compare import csv_table, markdown_table
from catsdogs.studies.runs import run_once
from catsdogs.training.rundir import read_history, read_json
from catsdogs.training.settings import resolve_config

log = logging.getLogger(__name__)

STATE_FILE = "ablate.json"
TRUE_WORDS, FALSE_WORDS = ("on", "true", "yes", "1"), ("off", "false", "no", "0")
NESTED = ("augment_params", "model_options")  # settings of settings: varied by their own names
LIST_SEPARATOR = "+"  # inside one value of a list setting: --vary units=400+200,800
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Variation:
    """One ``--vary``: a setting and the values it takes, as typed values and as the user wrote them."""

    key: str  # a TrainConfig field, or augment_params.<field>
    values: tuple[Any, ...]
    labels: tuple[str, ...]


def _field_types() -> dict[str, Any]:
    """Every setting ``--vary`` accepts and its type: TrainConfig's fields, ``augment_params.<field>`` and the
    models' own options by their names (``alpha``, ``units``...)."""
    types = {name: hint for name, hint in typing.get_type_hints(TrainConfig).items()
             if name in {f.name for f in dataclasses.fields(TrainConfig)} and name not in NESTED}
    types.update({f"augment_params.{name}": hint for name, hint in typing.get_type_hints(AugmentParams).items()
                  if name in {f.name for f in dataclasses.fields(AugmentParams)}})
    types.update({name: option.annotation for name, option in option_fields().items()})
    return types


def parse_value(text: str, hint: Any, key: str) -> Any:
    """``text`` as a value of type ``hint`` (on/off for booleans, ``none``, ``a+b`` for lists); TrainConfig
    checks the bounds afterwards."""
    if typing.get_origin(hint) is typing.Annotated:  # a model option's bounded type: the type it bounds
        return parse_value(text, typing.get_args(hint)[0], key)
    if typing.get_origin(hint) is tuple:  # a model option's sizes
        (item, _) = typing.get_args(hint)  # tuple[item, ...]
        return [parse_value(part, item, key) for part in text.split(LIST_SEPARATOR) if part]
    options = [arg for arg in typing.get_args(hint) if arg is not type(None)] if typing.get_args(hint) else [hint]
    if type(None) in typing.get_args(hint) and text.lower() == "none":
        return None
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        return [parse_value(part, item, key) for part in text.split(LIST_SEPARATOR) if part]
    if bool in options:
        if text.lower() in TRUE_WORDS + FALSE_WORDS:
            return text.lower() in TRUE_WORDS
        raise UserError(f"{parameter('vary')} {key}: {text!r} is not on or off")
    for simple in (int, float):
        if simple in options:
            try:
                return simple(text)
            except ValueError:
                kind = "a whole number" if simple is int else "a number"
                raise UserError(f"{parameter('vary')} {key}: {text!r} is not {kind}") from None
    return text


def parse_variation(text: str) -> Variation:
    """``key=v1,v2,...`` as a Variation; a UserError naming the fix for an unknown key or a bad value."""
    key, equals, values = text.partition("=")
    key = key.strip().replace("-", "_")
    types = _field_types()
    if not equals or not values.strip():
        raise UserError(f"{parameter('vary')} needs KEY=V1,V2 (e.g. dropout=0,0.5), not {text!r}")
    if key not in types:
        raise UserError(f"{parameter('vary')} {key}: not a setting; choose one of {', '.join(sorted(types))}")
    labels = tuple(value.strip() for value in values.split(",") if value.strip())
    if len(set(labels)) != len(labels):
        raise UserError(f"{parameter('vary')} {key}: a value is given twice in {values!r}")
    return Variation(key, tuple(parse_value(label, types[key], key) for label in labels), labels)


def parse_settings(texts: Sequence[str]) -> dict[str, Any]:
    """``--set key=value`` flags as settings (one value each), typed like ``--vary``'s."""
    settings: dict[str, Any] = {}
    for text in texts:
        variation = parse_variation(text)
        if len(variation.values) != 1:
            raise UserError(f"{parameter('set')} takes one value ({text!r}); to try several, use {parameter('vary')}")
        _put(settings, variation.key, variation.values[0])
    return settings


def _put(settings: dict[str, Any], key: str, value: Any) -> None:
    if key in option_fields():  # a model's own option
        key = f"model_options.{key}"
    head, _, tail = key.partition(".")
    if tail:
        settings[head] = {**settings.get(head, {}), tail: value}
    else:
        settings[head] = value


@dataclass(frozen=True)
class Cell:
    """One point of the grid: a value per variation."""

    labels: tuple[tuple[str, str], ...]  # (key, label as given) per variation
    settings: Mapping[str, Any]

    @property
    def name(self) -> str:
        """A run-name-safe ``dropout-0.5_batchnorm-on``."""
        return "_".join(f"{key.rpartition('.')[2]}-{_UNSAFE.sub('-', label)}" for key, label in self.labels)


def grid(variations: Sequence[Variation]) -> list[Cell]:
    """Every combination, in the order the values were given (the last variation changing fastest)."""
    keys = [variation.key for variation in variations]
    if len(set(keys)) != len(keys):
        raise UserError(f"each setting may be varied once; {', '.join(k for k in keys if keys.count(k) > 1)} "
                        "is given twice")
    cells = []
    for combination in itertools.product(*(zip(v.values, v.labels) for v in variations)):
        settings: dict[str, Any] = {}
        for key, (value, _) in zip(keys, combination):
            _put(settings, key, value)
        cells.append(Cell(tuple((key, label) for key, (_, label) in zip(keys, combination)), settings))
    return cells


def cell_config(cell: Cell, seed_index: int, common: Mapping[str, Any], runs_dir: Path) -> TrainConfig:
    """The cell's run settings: the model's recipe, the common settings, the cell's values, the seed."""
    seed = int(common.get("seed", DEFAULT_SEED)) + seed_index - 1
    # Every file the grid writes stays under its folder: the runs, and a feature cache unless one is given.
    return resolve_config({"feature_cache": str(runs_dir.parent / "cache" / "features")}, common, cell.settings,
                          {"seed": seed, "output": str(runs_dir), "saved_models_dir": "",
                           "name": run_name(cell, seed_index)},
                          source=f"the cell {cell.name}")


def run_name(cell: Cell, seed_index: int) -> str:
    return f"ablate-{cell.name}-seed{seed_index}"


def check_grid(cells: Sequence[Cell], common: Mapping[str, Any], runs_dir: Path) -> None:
    """Resolve every cell's settings before anything trains: a bad value or combination fails now."""
    for cell in cells:
        cell_config(cell, 1, common, runs_dir)


def run_grid(folder: Path, cells: Sequence[Cell], seeds: int, common: Mapping[str, Any],
             state: Mapping[str, Any]) -> dict[str, list[str]]:
    """Train every cell for every seed without a finished run; returns cell name -> run folders."""
    runs_dir = folder / "runs"
    runs: dict[str, list[str]] = {}
    write_json(folder / STATE_FILE, {**state, "runs": runs})  # before the first run: a kill in it can be resumed
    for number, cell in enumerate(cells, start=1):
        for seed_index in range(1, seeds + 1):
            log.info("ablate: cell %d/%d %s, seed %d/%d", number, len(cells), cell.name, seed_index, seeds)
            run_dir = run_once(runs_dir, run_name(cell, seed_index),
                               partial(cell_config, cell, seed_index, common, runs_dir))
            runs.setdefault(cell.name, []).append(str(run_dir))
            write_json(folder / STATE_FILE, {**state, "runs": runs})
    return runs


def _run_figures(run_dir: Path) -> dict[str, Any]:
    metrics = read_json(run_dir / "metrics.json") or {}
    seconds = sum(read_history(run_dir / "history.csv").get("seconds", []))
    return {"accuracy": (metrics.get("test") or {}).get("accuracy"), "epochs": metrics.get("epochs"),
            "parameters": (metrics.get("parameters") or {}).get("total"), "seconds": seconds}


def summarise(cells: Sequence[Cell], runs: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    """A row per cell: its values, the seeds' test accuracies, their mean and standard deviation, weights,
    epochs and minutes (mean per run)."""
    rows = []
    for cell in cells:
        figures = [_run_figures(Path(run)) for run in runs[cell.name]]
        accuracies = [f["accuracy"] for f in figures if f["accuracy"] is not None]
        if not accuracies:
            raise UserError(f"the runs of {cell.name} have no test accuracy: the data folder needs a test split")
        rows.append({**dict(cell.labels), "cell": cell.name, "runs": list(runs[cell.name]),
                     "seed_accuracies": accuracies, "mean": float(np.mean(accuracies)),
                     "std": float(np.std(accuracies, ddof=1)) if len(accuracies) > 1 else None,
                     "parameters": figures[0]["parameters"], "epochs": figures[0]["epochs"],
                     "minutes": round(float(np.mean([f["seconds"] for f in figures])) / 60, 2)})
    return rows


def table_rows(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """The rows as table cells: the varied values, ``mean ± std``, seeds, weights, epochs, minutes."""
    return [{**{key: row[key] for key in keys},
             "test_accuracy": f"{row['mean']:.4f}" + ("" if row["std"] is None else f" ± {row['std']:.4f}"),
             "seeds": len(row["seed_accuracies"]), "parameters": row["parameters"], "epochs": row["epochs"],
             "minutes": row["minutes"]} for row in rows]


def table_columns(keys: Sequence[str]) -> tuple[str, ...]:
    return (*keys, "test_accuracy", "seeds", "parameters", "epochs", "minutes")


def write_results(folder: Path, rows: Sequence[Mapping[str, Any]], variations: Sequence[Variation],
                  title: str) -> dict[str, Path]:
    """results.json (everything), results.csv / .md (the table), and ``effect-<key>.png`` per variation:
    every run's accuracy against the key's values, with their mean and spread over the other keys' cells."""
    keys = [variation.key for variation in variations]
    cells, columns = table_rows(rows, keys), table_columns(keys)
    files = {"json": write_json(folder / "results.json", list(rows)),
             "csv": write_text(folder / "results.csv", csv_table(cells, columns)),
             "md": write_text(folder / "results.md", markdown_table(cells, columns))}
    for variation in variations:
        per_value = [[accuracy for row in rows if row[variation.key] == label for accuracy in row["seed_accuracies"]]
                     for label in variation.labels]
        figure = effect_figure(variation.key, variation.labels, per_value, title)
        files[f"effect-{variation.key}"] = save_figure(figure, folder / f"effect-{_UNSAFE.sub('-', variation.key)}.png")
    return files
