"""``train(config) -> Run``: strategy, datasets, two-phase fine-tuning, callbacks and the run directory.

A run directory ``runs/<time>-<label>/`` holds everything needed to understand and reproduce a run:
``config.json`` (every resolved setting, library versions, the data's fingerprint), ``history.csv``,
``curves.png``, ``best.weights.h5`` (best validation accuracy), ``model.keras`` (the best model,
with its metadata), ``metrics.json`` (test accuracy and loss when a test split exists), TensorBoard
``logs/`` and, while training, a ``backup/`` that ``--resume`` continues from.

With ``unfreeze`` set on a pretrained base, training has two phases, as in the Keras
transfer-learning guide: the head first with the base frozen (``warmup_epochs`` at ``lr``), then
the chosen blocks unfrozen and the model recompiled at ``fine_tune_lr``. Epochs count across phases.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

import catsdogs
from catsdogs.cli import UserError
from catsdogs.config import TrainConfig
from catsdogs.data import ImageFolder, data_fingerprint, make_dataset, read_splits
from catsdogs.models import create_model, get_spec, set_trainable
from catsdogs.saving import ModelInfo, save_model


@dataclass
class Phase:
    name: str
    epochs: int
    unfreeze: str
    learning_rate: float


@dataclass
class Run:
    """What ``train`` returns: the trained (best) model and where everything went."""

    config: TrainConfig
    run_dir: Path
    model: keras.Model
    history: dict[str, list[float]]
    metrics: dict[str, Any]
    model_path: Path
    saved_model_path: Path | None = None
    class_names: tuple[str, ...] = field(default_factory=tuple)


# ----------------------------------------------------------------------------------------- strategy
def configure_logical_cpus(count: int) -> None:
    """Split the CPU into ``count`` logical devices, so MirroredStrategy can run without GPUs.

    Only possible before TensorFlow initialises its devices: call it first thing in a process.
    """
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:
        if len(tf.config.list_logical_devices("CPU")) < count:
            raise UserError(f"{count} CPU devices were asked for after TensorFlow started; "
                            "pass --devices on the command line (it configures them first)") from None


def make_strategy(name: str = "auto", devices: Sequence[str] = ()) -> tf.distribute.Strategy:
    """auto: MirroredStrategy over all GPUs when there are 2 or more, else the default strategy."""
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        return tf.distribute.MirroredStrategy() if len(gpus) >= 2 else tf.distribute.get_strategy()
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one-device":
        device = devices[0] if devices else ("/gpu:0" if gpus else "/cpu:0")
        return tf.distribute.OneDeviceStrategy(device)
    if name == "mirrored":
        known = {d.name.lower() for d in tf.config.list_logical_devices()}
        wanted = [_canonical_device(d) for d in devices]
        missing = [d for d in wanted if d.lower() not in known]
        if missing:
            raise UserError(f"devices {missing} do not exist here; available: {sorted(known)}")
        return tf.distribute.MirroredStrategy(devices=wanted or None)
    raise UserError(f"unknown strategy {name!r}; choose auto, mirrored, one-device or default")


def _canonical_device(device: str) -> str:
    """``/cpu:1`` or ``gpu:0`` -> ``/device:CPU:1`` (the name TensorFlow lists logical devices by)."""
    kind, _, index = device.strip().lstrip("/").replace("device:", "").partition(":")
    return f"/device:{kind.upper()}:{index or 0}"


# --------------------------------------------------------------------------------------------- data
def _cache_setting(config: TrainConfig, folders: dict[str, ImageFolder]) -> bool | str:
    """auto: keep decoded images in memory when they need under a fifth of the machine's memory."""
    if config.cache in ("none", "", "off"):
        return False
    if config.cache == "memory":
        return True
    if config.cache != "auto":
        return config.cache  # a file path
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
    datasets = {"train": make_dataset(folders["train"], config.image_size, global_batch, shuffle=True,
                                      augment=augment, cache=cache, seed=config.seed)}
    for split in ("validation", "test"):
        if split in folders:
            datasets[split] = make_dataset(folders[split], config.image_size, global_batch,
                                           cache=cache if split == "validation" else False)
    return datasets


# -------------------------------------------------------------------------------------------- model
def plan_phases(config: TrainConfig) -> list[Phase]:
    fine_tuning = config.unfreeze != "none" and get_spec(config.model).is_pretrained_base
    if fine_tuning and config.warmup_epochs > 0:
        return [Phase("warmup", config.warmup_epochs, "none", config.lr),
                Phase("fine_tune", config.epochs, config.unfreeze, config.fine_tune_lr)]
    if fine_tuning:
        return [Phase("fine_tune", config.epochs, config.unfreeze, config.fine_tune_lr)]
    return [Phase("train", config.epochs, config.unfreeze, config.lr)]


def make_optimizer(name: str, learning_rate: float, ema: float = 0.0) -> keras.optimizers.Optimizer:
    """``ema`` > 0 keeps a moving average of the weights (Polyak averaging) for validation and checkpoints."""
    averaging = {"use_ema": True, "ema_momentum": ema} if ema else {}
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate, **averaging)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate, **averaging)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9, **averaging)
    raise UserError(f"unknown optimizer {name!r}; choose {', '.join(('rmsprop', 'adam', 'sgd'))}")


def compile_model(model: keras.Model, config: TrainConfig, learning_rate: float, num_classes: int) -> None:
    if num_classes == 2:
        loss, accuracy = keras.losses.BinaryCrossentropy(), keras.metrics.BinaryAccuracy(name="accuracy")
    else:
        loss, accuracy = keras.losses.SparseCategoricalCrossentropy(), keras.metrics.SparseCategoricalAccuracy(
            name="accuracy")
    jit = {"auto": "auto", "on": True, "off": False}[config.jit_compile]
    model.compile(optimizer=make_optimizer(config.optimizer, learning_rate, config.ema), loss=loss, metrics=[accuracy],
                  jit_compile=jit)


class EpochLog(keras.callbacks.Callback):
    """Adds the epoch's wall time and learning rate to the logs (and so to history.csv)."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["seconds"] = time.perf_counter() - self._start
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class BestWeights(keras.callbacks.Callback):
    """Save ``model``'s weights whenever ``monitor`` improves.

    Unlike ModelCheckpoint it saves a given model, not the one being fitted: with cached features
    the fitted model is only the upper part, and the checkpoint must hold the whole classifier.
    """

    def __init__(self, model: keras.Model, path: Path, monitor: str, best: float | None = None):
        super().__init__()
        self.classifier, self.path, self.monitor = model, path, monitor
        self.best = -np.inf if best is None else best

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is not None and value > self.best:
            self.best = float(value)
            self.classifier.save_weights(self.path)


def make_callbacks(config: TrainConfig, run_dir: Path, model: keras.Model, has_validation: bool,
                   best_so_far: float | None,
                   extra: Sequence[keras.callbacks.Callback] = ()) -> list[keras.callbacks.Callback]:
    monitor = "val_accuracy" if has_validation else "accuracy"
    callbacks: list[keras.callbacks.Callback] = [
        # First, so an epoch is backed up before anything else reports it finished.
        keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
    ]
    if config.ema:  # validate and checkpoint the averaged weights (swapped in after the backup is written)
        callbacks.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    callbacks += [
        EpochLog(),
        BestWeights(model, run_dir / "best.weights.h5", monitor, best_so_far),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(run_dir / "logs"), write_graph=False),
        keras.callbacks.TerminateOnNaN(),
    ]
    if config.early_stopping:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, mode="max", patience=config.early_stopping))
    if config.reduce_lr:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode="max", factor=0.5,
                                                           patience=config.reduce_lr, min_lr=1e-7))
    return callbacks + list(extra)


# ---------------------------------------------------------------------------------- run directory
def new_run_dir(config: TrainConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(config.output) / f"{stamp}-{config.run_label}"
    run_dir, index = base, 1
    while run_dir.exists():
        index += 1
        run_dir = base.with_name(f"{base.name}-{index}")
    run_dir.mkdir(parents=True)
    return run_dir


def library_versions() -> dict[str, str]:
    return {"catsdogs": catsdogs.__version__, "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "python": platform.python_version(), "platform": platform.platform()}


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


def load_model_weights(model: keras.Model, path: Path) -> None:
    """Load saved weights; the optimizer state saved beside them may be another phase's, so it is skipped."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(path)


def _state(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "state.json"
    return json.loads(path.read_text()) if path.is_file() else {"completed_phases": []}


def _write_state(run_dir: Path, state: dict[str, Any]) -> None:
    (run_dir / "state.json").write_text(json.dumps(state, indent=2) + "\n")


# -------------------------------------------------------------------------------------------- train
def train(config: TrainConfig, resume_dir: str | Path | None = None,
          callbacks: Sequence[keras.callbacks.Callback] = ()) -> Run:
    """Train as ``config`` says; with ``resume_dir``, continue that run from its last finished epoch."""
    if resume_dir is not None:
        run_dir = Path(resume_dir)
        if not (run_dir / "config.json").is_file():
            raise UserError(f"{run_dir} is not a run directory (no config.json); pass the folder a run created")
        config = TrainConfig.load(run_dir / "config.json")
    folders = read_splits(config.data_dir)
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
            model = create_model(config.model, config.image_size, num_classes, config.weights, phases[0].unfreeze,
                                 config.dropout, config.alpha, config.batchnorm,
                                 augmentation=config.augment_params if augment_in_model else None, seed=config.seed)

        if resume_dir is None:
            run_dir = new_run_dir(config)
            # The settings as given, plus what they resolved to on this machine for this data.
            config.save(run_dir / "config.json", run={
                "versions": library_versions(), "data_fingerprint": data_fingerprint(config.data_dir),
                "class_names": list(class_names), "images": {split: len(f) for split, f in folders.items()},
                "replicas": replicas, "global_batch_size": global_batch,
                "augment_in": "model" if augment_in_model else "pipeline",
                "cache": _cache_setting(config, folders), "phases": [phase.__dict__ for phase in phases],
                "started": datetime.now().isoformat(timespec="seconds")})
        if config.verbose:
            print(f"run directory: {run_dir} ({replicas} replica(s), global batch {global_batch})")

        if config.cache_features:
            from catsdogs.features import train_with_cached_features

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
        return _finish(model, config, run_dir, datasets, class_names)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def fit_phases(model: keras.Model, config: TrainConfig, phases: list[Phase], run_dir: Path,
               strategy: tf.distribute.Strategy, num_classes: int,
               extra_callbacks: Sequence[keras.callbacks.Callback],
               phase_data: Callable[[Phase], tuple[keras.Model, dict[str, tf.data.Dataset]]]) -> None:
    """Run the phases in order, skipping those a resumed run finished.

    ``phase_data(phase)`` sets the phase's trainable layers and returns the compiled model to fit
    and its datasets: ``model`` itself on images, or a model sharing its layers (cached features).
    Checkpoints always hold ``model``'s weights.
    """
    state = _state(run_dir)
    first_epoch = 0
    for phase in phases:
        last_epoch = first_epoch + phase.epochs
        phase_weights = run_dir / f"phase-{phase.name}.weights.h5"
        if phase.name in state["completed_phases"]:
            load_model_weights(model, phase_weights)
            first_epoch = last_epoch
            continue
        fitted, datasets = phase_data(phase)
        history = read_history(run_dir / "history.csv")
        monitor = "val_accuracy" if "validation" in datasets else "accuracy"
        best = max(history[monitor]) if history.get(monitor) else None
        if config.verbose:
            trainable = sum(int(np.prod(w.shape)) for w in fitted.trainable_weights)
            print(f"phase {phase.name}: epochs {first_epoch + 1}-{last_epoch}, unfreeze={phase.unfreeze}, "
                  f"lr={phase.learning_rate:g}, {trainable:,} trainable parameters")
        # BackupAndRestore leaves a restored epoch on the model, which would override the next
        # phase's initial_epoch; only a restore inside this phase may set it.
        fitted._initial_epoch = None
        fitted.fit(datasets["train"], validation_data=datasets.get("validation"), epochs=last_epoch,
                   initial_epoch=first_epoch, verbose=config.verbose, shuffle=False,  # tf.data shuffles
                   callbacks=make_callbacks(config, run_dir, model, "validation" in datasets, best, extra_callbacks))
        model.save_weights(phase_weights)
        state["completed_phases"].append(phase.name)
        _write_state(run_dir, state)
        first_epoch = last_epoch


def _finish(model: keras.Model, config: TrainConfig, run_dir: Path, datasets: dict[str, tf.data.Dataset],
            class_names: Sequence[str]) -> Run:
    """Best weights back in, test metrics, curves, and the model saved with its metadata."""
    from catsdogs.visualize import plot_history

    best = run_dir / "best.weights.h5"
    if best.is_file():
        load_model_weights(model, best)
    history = read_history(run_dir / "history.csv")
    metrics: dict[str, Any] = {"epochs": len(history.get("epoch", []))}
    if history.get("seconds"):
        metrics["seconds_per_epoch"] = float(np.median(history["seconds"]))
    # Keras's CSVLogger adds val_* columns (all NA) to a run without validation data.
    if not np.all(np.isnan(history.get("val_accuracy", [np.nan]))):
        best_index = int(np.nanargmax(history["val_accuracy"]))
        metrics["best_epoch"] = best_index + 1
        metrics["best_val_accuracy"] = history["val_accuracy"][best_index]
    if "test" in datasets:
        loss, accuracy = model.evaluate(datasets["test"], verbose=0)
        metrics["test"] = {"accuracy": float(accuracy), "loss": float(loss)}
        if config.verbose:
            print(f"test accuracy {accuracy:.4f}, loss {loss:.4f}")
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if history:
        plot_history(history, run_dir / "curves.png", title=config.run_label)

    info = ModelInfo(class_names=list(class_names), image_size=config.image_size, model_name=config.model,
                     preprocessing=get_spec(config.model).preprocessing,
                     extra={"run_dir": str(run_dir), "unfreeze": config.unfreeze, "alpha": config.alpha,
                            "metrics": metrics, "trained": datetime.now().isoformat(timespec="seconds")})
    model_path = save_model(model, run_dir / "model.keras", info)
    saved = None
    if config.saved_models_dir:
        saved = Path(config.saved_models_dir) / f"{config.model_name}.keras"
        saved.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model_path, saved)
        if config.verbose:
            print(f"saved {saved}")
    shutil.rmtree(run_dir / "backup", ignore_errors=True)
    return Run(config, run_dir, model, history, metrics, model_path, saved, tuple(class_names))
