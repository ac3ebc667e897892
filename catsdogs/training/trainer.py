"""``train(config) -> Run``: the datasets, the model, the phases, and what a finished run leaves behind.

``train`` reads the split folders, builds the datasets and the model (before the run directory, so
missing weights or a bad ``--unfreeze`` leave no empty run behind), records the resolved settings in
``config.json``, fits the phases (on images, or on cached features), then puts the best weights back,
scores the test split and saves the model with its metadata in the run directory and in
``saved_models/``. With ``resume_dir`` it continues an interrupted run from its last finished epoch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np

from catsdogs.config import SPLITS, TrainConfig
from catsdogs.data.files import Failure, ImageFolder, data_fingerprint, describe_data, read_splits
from catsdogs.data.images import check_folder
from catsdogs.data.sources import pipeline_module
from catsdogs.errors import UserError, parameter
from catsdogs.metadata import DataRecord, ModelExtra, ModelInfo, TemperatureFit, TrainingMetrics
from catsdogs.metrics import compute_metrics
from catsdogs.modelcard import write_card
from catsdogs.models.calibration import calibrated, calibration_record, logits_model
from catsdogs.models.heads import class_probabilities
from catsdogs.models.registry import check_trainable, get_spec, set_trainable
from catsdogs.models.saving import save_model, update_model_info
from catsdogs.outputs import check_apart, publish_versioned, write_json
from catsdogs.plots import plot_history
from catsdogs.training.callbacks import BEST, existing_checkpoint, load_checkpoint
from catsdogs.training.fitting import Phase, class_weights, compile_model, fit_phases, plan_phases
from catsdogs.training.rundir import (
    library_versions,
    new_run_dir,
    phase_starts,
    read_history,
    read_state,
    write_state,
)
from catsdogs.training.settings import describe_recipe, model_from_config
from catsdogs.training.strategy import has_accelerator, make_strategy, process_of

try:  # cached features are tf.data datasets: not where JAX trains without TensorFlow (--pipeline pydataset)
    from catsdogs.training.features import train_with_cached_features
except ModuleNotFoundError as missing:
    if missing.name != "tensorflow":
        raise
    train_with_cached_features = None  # type: ignore[assignment]

log = logging.getLogger(__name__)


@dataclass
class Run:
    """What ``train`` returns: the trained (best) model and where everything went."""

    config: TrainConfig
    run_dir: Path
    model: keras.Model
    class_names: tuple[str, ...]  # the model's outputs, in order: in every process
    history: dict[str, list[float]]
    metrics: dict[str, Any]
    model_path: Path | None  # None in the processes other than 0 of a multi-process run: they save nothing
    info: ModelInfo | None  # what the saved model carries: classes, image size, preprocessing, metrics
    saved_model_path: Path | None = None


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
    return needed < (physical_memory() or ASSUMED_MEMORY) / 5


ASSUMED_MEMORY = 8 * 2**30  # where the machine's memory cannot be read: a modest laptop's


def physical_memory() -> int | None:
    """The machine's memory in bytes (POSIX ``sysconf``), or None where it cannot be read: Windows has no
    ``os.sysconf``."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _augment_in_model(config: TrainConfig) -> bool:
    if not config.augment or config.augment_params.is_identity:
        return False
    if config.augment_in == "auto":  # the accelerator is idle while the CPU prepares data; PyDataset is slow at it
        return config.pipeline == "pydataset" or has_accelerator()
    return config.augment_in == "model"


def build_datasets(config: TrainConfig, folders: dict[str, ImageFolder], global_batch: int,
                   augment_in_model: bool, even_batches: bool = False) -> dict[str, Any]:
    """The splits' datasets in global batches, from ``--pipeline``'s module (``data.sources``). ``even_batches``:
    every batch whole (see ``make_dataset``): training drops its short last batch, validation is padded with
    blanks weighing 0."""
    source = pipeline_module(config.pipeline)
    cache = _cache_setting(config, folders)
    augment = config.augment_params if config.augment and not augment_in_model else None

    def split_cache(split: str) -> bool | str:
        """A cache file per split, image size and file list: another split or data folder never reads it."""
        if not isinstance(cache, str):
            return cache
        return f"{cache}-{split}-{config.image_size}px-{folders[split].digest()}"

    datasets = {"train": source.make_dataset(folders["train"], config.image_size, global_batch, shuffle=True,
                                      augment=augment, cache=split_cache("train"), seed=config.seed,
                                             drop_remainder=even_batches)}
    if config.mixup or config.cutmix:
        datasets["train"] = source.mixed(datasets["train"], folders["train"].num_classes, config.mixup,
                                         config.cutmix, config.seed)
    for split in SPLITS[1:]:
        if split in folders:
            datasets[split] = source.make_dataset(folders[split], config.image_size, global_batch,
                                                  cache=split_cache(split) if split == "validation" else False,
                                                  pad_remainder=even_batches and split == "validation")
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
        log.warning("skipped %s", failure)
    if failures:
        total = sum(len(folder) for folder in folders.values())
        log.warning("%d of %d files skipped; training goes on with the others", len(failures), total)
    return checked, failures


def train(config: TrainConfig, resume_dir: str | Path | None = None,
          callbacks: Sequence[keras.callbacks.Callback] = ()) -> Run:
    """Train as ``config`` says; with ``resume_dir``, continue that run from its last finished epoch."""
    if resume_dir is not None:
        run_dir = Path(resume_dir)
        if not (run_dir / "config.json").is_file():
            raise UserError(f"{run_dir} is not a run directory (no config.json); pass the folder a run created")
        config = TrainConfig.load(run_dir / "config.json")
    for name in ("output", "saved_models_dir"):  # never among the images, where the next run would read them
        check_apart(getattr(config, name), [config.data_dir], name, may_hold_inputs=True)
    folders, skipped = check_splits(read_splits(config.data_dir), config.image_size, config.verbose)
    class_names = folders["train"].class_names
    num_classes = len(class_names)
    phases = plan_phases(config)

    keras.utils.set_random_seed(config.seed)
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(config.precision)
    try:
        strategy = make_strategy(config.strategy, config.devices)
        replicas = strategy.num_replicas_in_sync
        process_id, processes = process_of(strategy)
        global_batch = config.batch_size * replicas
        check_processes(config, global_batch, processes)
        if process_id:  # the others keep quiet: process 0 reports the run
            config = replace(config, verbose=0)
        augment_in_model = _augment_in_model(config)
        # keras.distribution splits each global batch evenly between the devices and the processes (which must also
        # run equal step counts); TensorFlow's strategies split a short last batch themselves.
        even_batches = processes > 1 or (replicas > 1 and keras.backend.backend() != "tensorflow")
        datasets = build_datasets(config, folders, global_batch, augment_in_model, even_batches)
        # The model before the run directory: missing weights or a bad --unfreeze leave no empty run behind.
        with strategy.scope():
            model = model_from_config(config, num_classes, phases[0].unfreeze, augment_in_model)
        for phase in phases[1:]:
            check_trainable(model, phase.unfreeze)  # the fine-tuning's choice, refused before the warm-up trains

        if resume_dir is None and process_id:
            # Only process 0 writes; the others read the run folder only when resuming (a shared filesystem).
            run_dir = Path(tempfile.mkdtemp(prefix=f"catsdogs-process-{process_id}-"))
        elif resume_dir is None:
            run_dir = new_run_dir(config)
        try:
            if resume_dir is None and not process_id:
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
                log.info("run directory: %s (%d replica(s), global batch %d)", run_dir, replicas, global_batch)
                log.info("%s", describe_recipe(config))
            _fit(model, config, phases, folders, datasets, run_dir, strategy, callbacks, writes=not process_id)
        except BaseException:
            if resume_dir is None and not (run_dir / "history.csv").exists():
                shutil.rmtree(run_dir, ignore_errors=True)  # no epoch finished: nothing to resume or look at
            raise
        if processes > 1:
            log.info("process %d of %d: trained, weights fingerprint %s", process_id, processes,
                     weights_fingerprint(model))
            if process_id:
                if resume_dir is None:
                    shutil.rmtree(run_dir, ignore_errors=True)  # the scratch folder: nothing was written in it
                return Run(config, run_dir, model, class_names, {}, {}, None, None)
            datasets = build_datasets(config, folders, config.batch_size, augment_in_model)
        if processes > 1 or config.precision != "float32":
            # Process 0 scores, saves and publishes alone, so the model leaves the processes' distribution; and it is
            # saved in float32 whatever it trained in: a mixed policy saved with the layers would follow the model
            # into every runtime and export (ONNX refuses a graph that mixes float16 or bfloat16 with float32).
            keras.mixed_precision.set_global_policy("float32")
            model = _plain_copy(model, config, num_classes, phases[-1], augment_in_model)
        return _finish(model, config, run_dir, datasets, folders, len(skipped))
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def check_processes(config: TrainConfig, global_batch: int, processes: int) -> None:
    """One-line errors for what several processes cannot do."""
    if processes == 1:
        return
    if config.pipeline == "pydataset":
        raise UserError(f"{parameter('pipeline', 'pydataset')} feeds one process; train on several with the tf.data "
                        f"pipeline ({parameter('pipeline', 'tf.data')}, which needs TensorFlow installed)")
    if global_batch % processes:
        raise UserError(f"the global batch ({global_batch}) must divide by the {processes} processes; change "
                        f"{parameter('batch_size')}")
    if config.cache_features:
        raise UserError(f"{parameter('cache_features')} writes its cache from one process; train on one process "
                        f"(without {parameter('coordinator')}), or without {parameter('cache_features')}")


def weights_fingerprint(model: keras.Model) -> str:
    """A short hash of every weight's bytes: processes that trained in step print the same one."""
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()[:16]


def _plain_copy(model: keras.Model, config: TrainConfig, num_classes: int, last: Phase,
                augment_in_model: bool) -> keras.Model:
    """The trained model rebuilt outside ``keras.distribution`` under the global dtype policy (float32 when it is
    saved), its weights copied (each process holds them all: data parallelism replicates them; a mixed policy keeps
    them in float32), so process 0 can evaluate and save it alone, as any float32 model."""
    weights = model.get_weights()
    keras.distribution.set_distribution(None)
    copy = model_from_config(config, num_classes, last.unfreeze, augment_in_model)
    set_trainable(copy, last.unfreeze)  # the same trainable flags, so the weights come in the same order
    copy.set_weights(weights)
    compile_model(copy, config, last.learning_rate, num_classes)
    return copy


def _fit(model: keras.Model, config: TrainConfig, phases: list[Phase], folders: dict[str, ImageFolder],
         datasets: dict[str, Any], run_dir: Path, strategy: Any,
         callbacks: Sequence[keras.callbacks.Callback], writes: bool = True) -> None:
    """The phases, on images or on cached features; the model left compiled for evaluation."""
    num_classes = len(folders["train"].class_names)
    weights = class_weights(config, folders["train"].labels, num_classes)
    if config.cache_features:
        if train_with_cached_features is None or config.pipeline != "tf.data":
            raise UserError(f"{parameter('cache_features')} stores features through tf.data: train with TensorFlow "
                            f"installed and {parameter('pipeline', 'tf.data')}, or without "
                            f"{parameter('cache_features')}")
        train_with_cached_features(model, config, phases, folders, datasets, run_dir, strategy, callbacks)
    else:
        def on_images(phase: Phase) -> tuple[keras.Model, dict[str, Any]]:
            with strategy.scope():
                set_trainable(model, phase.unfreeze)
                compile_model(model, config, phase.learning_rate, num_classes, weights)
            return model, datasets

        fit_phases(model, config, phases, run_dir, strategy, num_classes, callbacks, on_images, writes)
    with strategy.scope():  # cached-feature runs fitted only part of it; evaluate needs it compiled
        compile_model(model, config, phases[-1].learning_rate, num_classes, weights)


def _finish(model: keras.Model, config: TrainConfig, run_dir: Path, datasets: dict[str, Any],
            folders: dict[str, ImageFolder], skipped: int) -> Run:
    """Best weights back in, the model saved, then test metrics and curves, then the model published.

    The model is written before the test split is scored, so nothing trained is lost if scoring fails;
    its metadata is then updated with the scores.
    """
    best = existing_checkpoint(run_dir, BEST)
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
    fit = None
    if config.calibrate and "validation" in datasets:
        fit = fit_calibration(model, images_only(config, datasets["validation"]), folders["validation"].labels)
        metrics["calibration_fit"] = fit.model_dump()
        if config.verbose:
            log.info("calibrated: temperature %.3f, validation NLL %.4f -> %.4f", fit.temperature, fit.nll_before,
                     fit.nll_after)
    spec = get_spec(config.model)
    # The layers the last phase trained: the base's unfrozen part, or every layer of a network without a base.
    trained_layers = config.unfreeze if spec.is_pretrained_base else "all (trained from scratch)"
    extra = ModelExtra(run_dir=str(run_dir), unfreeze=config.unfreeze, trained_layers=trained_layers,
                       alpha=config.model_options.get("alpha"), model_options=config.model_options or None,
                       recipe=config.recipe, data_fingerprint=data_fingerprint(config.data_dir),
                       data=DataRecord.model_validate(describe_data(config.data_dir)),
                       temperature=fit.temperature if fit else None, calibration_fit=fit,
                       metrics=TrainingMetrics.model_validate(metrics),
                       trained=datetime.now().isoformat(timespec="seconds"))
    info = ModelInfo(class_names=list(folders["train"].class_names), image_size=config.image_size,
                     model_name=config.model, preprocessing=spec.preprocessing, extra=extra)
    model_path = save_model(model, run_dir / "model.keras", info)
    if "test" in datasets:
        metrics["test"] = score_dataset(calibrated(model, info), images_only(config, datasets["test"]),
                                        folders["test"].labels, info.class_names)
        info = info.with_extra(metrics=TrainingMetrics.model_validate(metrics))
        update_model_info(model_path, info)  # now with the test scores
        if config.verbose:
            log.info("test accuracy %.4f, loss %.4f (%d images)", metrics["test"]["accuracy"],
                     metrics["test"]["loss"], metrics["test"]["images"])
    write_json(run_dir / "metrics.json", metrics)
    if history:
        plot_history(history, run_dir / "curves.png", title=config.run_label,
                     phase_starts=phase_starts([phase.__dict__ for phase in plan_phases(config)]))
    saved = _publish(model_path, config, run_dir)
    if saved is not None:
        write_card(saved, info)
    return Run(config, run_dir, model, tuple(info.class_names), history, metrics, model_path, info, saved)


def count_parameters(model: keras.Model) -> dict[str, int]:
    """Weights in all (what the documents quote beside an accuracy) and those the last phase trained."""
    return {"total": int(model.count_params()),
            "trainable": int(sum(np.prod(weight.shape) for weight in model.trainable_weights))}


def images_only(config: TrainConfig, dataset: Any) -> Any:
    """An unshuffled split's batches without their labels, in the folder's order (``data.sources``)."""
    return pipeline_module(config.pipeline).images_only(dataset)


def fit_calibration(model: keras.Model, images: Any, labels: Sequence[int]) -> TemperatureFit:
    """The temperature that makes the validation split's likelihood highest, and that likelihood before and after.

    ``images``: the split's batches without labels; ``labels``: the folder's, in the same order (never shuffled).
    """
    logits = logits_model(model).predict(images, verbose=0)[:len(labels)]  # less the blanks evening out batches
    return calibration_record(logits, np.asarray(labels), "validation")


def score_dataset(model: keras.Model, images: Any, labels: Sequence[int], class_names: Sequence[str]) -> dict[str, Any]:
    """Every score of ``metrics.json`` (accuracy and its interval, loss, per class, confusion) on a labelled split:
    its batches without labels, and the labels in the same order."""
    # predict (not predict_on_batch) splits batches over a strategy's replicas and puts the results back in order.
    outputs = model.predict(images, verbose=0)
    return compute_metrics(class_probabilities(outputs, len(class_names)), np.asarray(labels), class_names)


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
        log.info("saved %s%s", saved, taken)
    return saved
