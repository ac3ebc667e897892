"""``train(config) -> Run``: the datasets, the model, the phases, and what a finished run leaves behind.

``train`` reads the split folders, builds the datasets and the model (before the run directory, so
missing weights or a bad ``--unfreeze`` leave no empty run behind), records the resolved settings in
``config.json``, fits the phases (on images, or on cached features), then puts the best weights back,
scores the test split and saves the model with its metadata in the run directory and in
``saved_models/``. With ``resume_dir`` it continues an interrupted run from its last finished epoch.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from catsdogs.config import SPLITS, TrainConfig
from catsdogs.data.files import Failure, ImageFolder, data_fingerprint, describe_data, read_splits
from catsdogs.data.images import check_folder
from catsdogs.data.mixing import mix_dataset
from catsdogs.data.pipeline import make_dataset
from catsdogs.errors import UserError
from catsdogs.metadata import ModelInfo
from catsdogs.metrics import compute_metrics
from catsdogs.modelcard import write_card
from catsdogs.models.calibration import TEMPERATURE_KEY, calibrated, calibration_record, logits_model
from catsdogs.models.heads import class_probabilities
from catsdogs.models.registry import get_spec, set_trainable
from catsdogs.models.saving import save_model, update_model_info
from catsdogs.outputs import publish_versioned, write_json
from catsdogs.plots import plot_history
from catsdogs.training.callbacks import BEST_WEIGHTS, load_checkpoint
from catsdogs.training.features import train_with_cached_features
from catsdogs.training.fitting import Phase, compile_model, fit_phases, plan_phases
from catsdogs.training.rundir import (
    library_versions,
    new_run_dir,
    phase_starts,
    read_history,
    read_state,
    write_state,
)
from catsdogs.training.settings import describe_recipe, model_from_config
from catsdogs.training.strategy import make_strategy


@dataclass
class Run:
    """What ``train`` returns: the trained (best) model and where everything went."""

    config: TrainConfig
    run_dir: Path
    model: keras.Model
    history: dict[str, list[float]]
    metrics: dict[str, Any]
    model_path: Path
    info: ModelInfo  # what the saved model carries: classes, image size, preprocessing, metrics
    saved_model_path: Path | None = None

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.info.class_names)


def _cache_setting(config: TrainConfig, folders: dict[str, ImageFolder]) -> bool | str:
    """auto: keep decoded images in memory when they need under a fifth of the machine's memory.

    A file path is a prefix: each split gets its own cache files (``build_datasets``).
    """
    if config.cache in ("none", "", "off"):
        return False
    if config.cache == "memory":
        return True
    if config.cache != "auto":
        return config.cache
    images = sum(len(folder) for folder in folders.values())
    needed = images * config.image_size**2 * 3
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return needed < total / 5


def _augment_in_model(config: TrainConfig) -> bool:
    if not config.augment or config.augment_params.is_identity:
        return False
    if config.augment_in == "auto":  # the accelerator is idle while the CPU prepares data
        return bool(tf.config.list_logical_devices("GPU"))
    return config.augment_in == "model"


def build_datasets(config: TrainConfig, folders: dict[str, ImageFolder], global_batch: int,
                   augment_in_model: bool) -> dict[str, tf.data.Dataset]:
    cache = _cache_setting(config, folders)
    augment = config.augment_params if config.augment and not augment_in_model else None

    def split_cache(split: str) -> bool | str:
        """A cache file per split, image size and file list: another split or data folder never reads it."""
        if not isinstance(cache, str):
            return cache
        return f"{cache}-{split}-{config.image_size}px-{folders[split].digest()}"

    datasets = {"train": make_dataset(folders["train"], config.image_size, global_batch, shuffle=True,
                                      augment=augment, cache=split_cache("train"), seed=config.seed)}
    if config.mixup or config.cutmix:
        datasets["train"] = mix_dataset(datasets["train"], folders["train"].num_classes, config.mixup, config.cutmix,
                                        config.seed)
    for split in SPLITS[1:]:
        if split in folders:
            datasets[split] = make_dataset(folders[split], config.image_size, global_batch,
                                           cache=split_cache(split) if split == "validation" else False)
    return datasets


def check_splits(folders: dict[str, ImageFolder], image_size: int,
                 verbose: int) -> tuple[dict[str, ImageFolder], list[Failure]]:
    """Every file of every split checked before epoch 1 (``data.images.check_folder``); bad ones left out.

    Each is named on stderr with its problem, then a summary; the run goes on without them. A split
    left with no usable image of some class is a UserError: there is nothing to train or score on.
    """
    checked, failures = {}, []
    for split, folder in folders.items():
        checked[split], bad = check_folder(folder, image_size, progress=bool(verbose))
        failures += bad
        empty = [name for label, name in enumerate(folder.class_names) if label not in checked[split].labels]
        if empty:
            raise UserError(f"{folder.root / empty[0]} holds no usable image ({len(bad)} unusable in {split}/, "
                            f"e.g. {bad[0] if bad else 'none'}); add images or remove the folder")
    for failure in failures:
        print(f"skipped {failure}", file=sys.stderr)
    if failures:
        total = sum(len(folder) for folder in folders.values())
        print(f"{len(failures)} of {total} files skipped; training goes on with the others", file=sys.stderr)
    return checked, failures


def train(config: TrainConfig, resume_dir: str | Path | None = None,
          callbacks: Sequence[keras.callbacks.Callback] = ()) -> Run:
    """Train as ``config`` says; with ``resume_dir``, continue that run from its last finished epoch."""
    if resume_dir is not None:
        run_dir = Path(resume_dir)
        if not (run_dir / "config.json").is_file():
            raise UserError(f"{run_dir} is not a run directory (no config.json); pass the folder a run created")
        config = TrainConfig.load(run_dir / "config.json")
    folders, skipped = check_splits(read_splits(config.data_dir), config.image_size, config.verbose)
    class_names = folders["train"].class_names
    num_classes = len(class_names)
    phases = plan_phases(config)

    keras.utils.set_random_seed(config.seed)
    previous_policy = keras.mixed_precision.global_policy()
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        strategy = make_strategy(config.strategy, config.devices)
        replicas = strategy.num_replicas_in_sync
        global_batch = config.batch_size * replicas
        augment_in_model = _augment_in_model(config)
        datasets = build_datasets(config, folders, global_batch, augment_in_model)
        # The model before the run directory: missing weights or a bad --unfreeze leave no empty run behind.
        with strategy.scope():
            model = model_from_config(config, num_classes, phases[0].unfreeze, augment_in_model)

        if resume_dir is None:
            run_dir = new_run_dir(config)
            # The settings as given, plus what they resolved to on this machine for this data.
            config.save(run_dir / "config.json", run={
                "versions": library_versions(), "data_fingerprint": data_fingerprint(config.data_dir),
                "class_names": list(class_names), "images": {split: len(f) for split, f in folders.items()},
                "skipped": [{"path": f.path, "error": f.error} for f in skipped],
                "replicas": replicas, "global_batch_size": global_batch,
                "augment_in": "model" if augment_in_model else "pipeline",
                "cache": _cache_setting(config, folders), "phases": [phase.__dict__ for phase in phases],
                "started": datetime.now().isoformat(timespec="seconds")})
        if config.verbose:
            print(f"run directory: {run_dir} ({replicas} replica(s), global batch {global_batch})")
            print(describe_recipe(config))
        try:
            _fit(model, config, phases, folders, datasets, run_dir, strategy, callbacks)
        except BaseException:
            if resume_dir is None and not (run_dir / "history.csv").exists():
                shutil.rmtree(run_dir, ignore_errors=True)  # no epoch finished: nothing to resume or look at
            raise
        return _finish(model, config, run_dir, datasets, folders, len(skipped))
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def _fit(model: keras.Model, config: TrainConfig, phases: list[Phase], folders: dict[str, ImageFolder],
         datasets: dict[str, tf.data.Dataset], run_dir: Path, strategy: tf.distribute.Strategy,
         callbacks: Sequence[keras.callbacks.Callback]) -> None:
    """The phases, on images or on cached features; the model left compiled for evaluation."""
    num_classes = len(folders["train"].class_names)
    if config.cache_features:
        train_with_cached_features(model, config, phases, folders, datasets, run_dir, strategy, callbacks)
    else:
        def on_images(phase: Phase) -> tuple[keras.Model, dict[str, tf.data.Dataset]]:
            with strategy.scope():
                set_trainable(model, phase.unfreeze)
                compile_model(model, config, phase.learning_rate, num_classes)
            return model, datasets

        fit_phases(model, config, phases, run_dir, strategy, num_classes, callbacks, on_images)
    with strategy.scope():  # cached-feature runs fitted only part of it; evaluate needs it compiled
        compile_model(model, config, phases[-1].learning_rate, num_classes)


def _finish(model: keras.Model, config: TrainConfig, run_dir: Path, datasets: dict[str, tf.data.Dataset],
            folders: dict[str, ImageFolder], skipped: int) -> Run:
    """Best weights back in, the model saved, then test metrics and curves, then the model published.

    The model is written before the test split is scored, so nothing trained is lost if scoring fails;
    its metadata is then updated with the scores.
    """
    # best.weights.h5: a run from before snapshots, resumed; a newer best of the same run is the snapshot.
    best = next((path for path in (run_dir / BEST_WEIGHTS, run_dir / "best.weights.h5") if path.is_file()), None)
    if best is not None:
        load_checkpoint(model, best, with_optimizer=False)
    history = read_history(run_dir / "history.csv")
    metrics: dict[str, Any] = {"epochs": len(history.get("epoch", [])),
                               "images": {split: len(folder) for split, folder in folders.items()},
                               "skipped": skipped, "parameters": count_parameters(model)}
    if history.get("seconds"):
        metrics["seconds_per_epoch"] = float(np.median(history["seconds"]))
    if not np.all(np.isnan(history.get("val_accuracy", [np.nan]))):  # a run without validation has none
        best_index = int(np.nanargmax(history["val_accuracy"]))
        metrics["best_epoch"] = best_index + 1
        metrics["best_val_accuracy"] = history["val_accuracy"][best_index]
    extra: dict[str, Any] = {}
    if config.calibrate and "validation" in datasets:
        fit = metrics["calibration_fit"] = fit_calibration(model, datasets["validation"])
        extra = {TEMPERATURE_KEY: fit["temperature"], "calibration_fit": fit}
        if config.verbose:
            print(f"calibrated: temperature {fit['temperature']:.3f}, validation NLL {fit['nll_before']:.4f} -> "
                  f"{fit['nll_after']:.4f}")
    info = ModelInfo(class_names=list(folders["train"].class_names), image_size=config.image_size,
                     model_name=config.model, preprocessing=get_spec(config.model).preprocessing,
                     extra={"run_dir": str(run_dir), "unfreeze": config.unfreeze, "alpha": config.alpha,
                            "recipe": config.recipe, "data_fingerprint": data_fingerprint(config.data_dir),
                            "data": describe_data(config.data_dir), **extra,
                            "metrics": metrics, "trained": datetime.now().isoformat(timespec="seconds")})
    model_path = save_model(model, run_dir / "model.keras", info)
    if "test" in datasets:
        metrics["test"] = score_dataset(calibrated(model, info), datasets["test"], info.class_names)
        update_model_info(model_path, info)  # info.extra holds ``metrics``, now with the test scores
        if config.verbose:
            print(f"test accuracy {metrics['test']['accuracy']:.4f}, loss {metrics['test']['loss']:.4f} "
                  f"({metrics['test']['images']} images)")
    write_json(run_dir / "metrics.json", metrics)
    if history:
        plot_history(history, run_dir / "curves.png", title=config.run_label,
                     phase_starts=phase_starts([phase.__dict__ for phase in plan_phases(config)]))
    saved = _publish(model_path, config, run_dir)
    if saved is not None:
        write_card(saved, info)
    return Run(config, run_dir, model, history, metrics, model_path, info, saved)


def count_parameters(model: keras.Model) -> dict[str, int]:
    """Weights in all (what the documents quote beside an accuracy) and those the last phase trained."""
    return {"total": int(model.count_params()),
            "trainable": int(sum(np.prod(weight.shape) for weight in model.trainable_weights))}


def fit_calibration(model: keras.Model, dataset: tf.data.Dataset) -> dict[str, Any]:
    """The temperature that makes the validation split's likelihood highest, and that likelihood before and after."""
    labels = np.concatenate([batch_labels.numpy() for _, batch_labels in dataset])
    logits = logits_model(model).predict(dataset.map(lambda images, _: images), verbose=0)
    return calibration_record(logits, labels, "validation")


def score_dataset(model: keras.Model, dataset: tf.data.Dataset, class_names: Sequence[str]) -> dict[str, Any]:
    """Every score of ``metrics.json`` (accuracy and its interval, loss, per class, confusion) on a labelled dataset."""
    labels = np.concatenate([batch_labels.numpy() for _, batch_labels in dataset])  # in order: never shuffled
    # predict (not predict_on_batch) splits batches over a strategy's replicas and puts the results back in order.
    outputs = model.predict(dataset.map(lambda images, _: images), verbose=0)
    return compute_metrics(class_probabilities(outputs, len(class_names)), labels, class_names)


def _publish(model_path: Path, config: TrainConfig, run_dir: Path) -> Path | None:
    """Copy the model into ``saved_models/`` under a name no other model has (``vgg19``, ``vgg19-2``, ...).

    The name is recorded in ``state.json``: a resumed run that had published already does not again.
    """
    if not config.saved_models_dir:
        return None
    state = read_state(run_dir)
    if state.get("published") and Path(state["published"]).is_file():
        return Path(state["published"])
    saved = publish_versioned(model_path, config.saved_models_dir, config.model_name, ".keras")
    write_state(run_dir, {**state, "published": str(saved)})
    if config.verbose:
        taken = "" if saved.stem == config.model_name else f" ({config.model_name}.keras exists and is kept)"
        print(f"saved {saved}{taken}")
    return saved
