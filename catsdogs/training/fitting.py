"""Fitting: the phases of a run, the optimizer, compiling, and ``fit_phases`` that runs them in order.

With ``unfreeze`` set on a pretrained base, training has two phases, as in the Keras
transfer-learning guide: the head first with the base frozen (``warmup_epochs`` at ``lr``), then
the chosen blocks unfrozen and the model recompiled at ``fine_tune_lr``. Epochs count across phases.
A finished phase is recorded in ``state.json``, so a resumed run skips it.
"""

from __future__ import annotations

import logging
import math
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from catsdogs.config import OPTIMIZERS, TrainConfig
from catsdogs.errors import UserError
from catsdogs.models.registry import get_spec
from catsdogs.training.callbacks import BACKUP_DIR, existing_checkpoint, load_checkpoint, make_callbacks
from catsdogs.training.checkpoints import SNAPSHOT_SUFFIX, SnapshotWriter, model_variables, save_snapshot
from catsdogs.training.rundir import read_history, read_state, write_state

log = logging.getLogger(__name__)


@dataclass
class Phase:
    """A stretch of epochs with one set of trainable layers and one learning rate."""

    name: str
    epochs: int
    unfreeze: str
    learning_rate: float


def plan_phases(config: TrainConfig) -> list[Phase]:
    """One phase from scratch or fine-tuning without warm-up; warm-up then fine-tuning otherwise."""
    fine_tuning = config.unfreeze != "none" and get_spec(config.model).is_pretrained_base
    if fine_tuning and config.warmup_epochs > 0:
        return [Phase("warmup", config.warmup_epochs, "none", config.lr),
                Phase("fine_tune", config.epochs, config.unfreeze, config.fine_tune_lr)]
    if fine_tuning:
        return [Phase("fine_tune", config.epochs, config.unfreeze, config.fine_tune_lr)]
    return [Phase("train", config.epochs, config.unfreeze, config.lr)]


def make_optimizer(config: TrainConfig, learning_rate: float) -> keras.optimizers.Optimizer:
    """The config's optimizer at ``learning_rate``. ``ema`` > 0 keeps a moving average of the weights (Polyak
    averaging) for validation and checkpoints; ``weight_decay`` is Keras's decoupled decay, which every
    optimizer takes (``adamw`` is Adam with it)."""
    common: dict[str, Any] = {"use_ema": True, "ema_momentum": config.ema} if config.ema else {}
    if config.weight_decay:
        common["weight_decay"] = config.weight_decay
    if config.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate, **common)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate, **common)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate, **{"weight_decay": 0.0, **common})
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=config.momentum, **common)
    raise UserError(f"unknown optimizer {config.optimizer!r}; choose {', '.join(OPTIMIZERS)}")


def _dense_targets(y_true: Any, y_pred: Any, num_classes: int) -> Any:
    """Targets as ``y_pred``'s shape: soft targets (mixup, CutMix) as they are, integer labels one-hot."""
    if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == y_pred.shape[-1]:
        return keras.ops.cast(y_true, y_pred.dtype)
    return keras.ops.one_hot(keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,)), num_classes)


@keras.saving.register_keras_serializable(package="catsdogs")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of integer labels or soft targets (mixup, CutMix), with label smoothing, which Keras's
    sparse loss lacks: the labels are made one-hot and given to ``CategoricalCrossentropy``."""

    def __init__(self, num_classes: int, label_smoothing: float, name: str = "smoothed_sparse_crossentropy",
                 **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.num_classes, self.label_smoothing = num_classes, label_smoothing
        self._categorical = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing, reduction=None)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return self._categorical(_dense_targets(y_true, y_pred, self.num_classes), y_pred)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_classes": self.num_classes, "label_smoothing": self.label_smoothing}


def soft_target_accuracy(num_classes: int) -> keras.metrics.Metric:
    """Accuracy against integer labels or soft targets: a blended image counts as its larger part's class."""
    def agrees(y_true: Any, y_pred: Any) -> Any:
        if num_classes == 2:
            truth = keras.ops.reshape(keras.ops.cast(y_true, "float32"), (-1,)) > 0.5
            return keras.ops.cast(truth == (keras.ops.reshape(y_pred, (-1,)) > 0.5), "float32")
        truth = keras.ops.argmax(_dense_targets(y_true, y_pred, num_classes), axis=-1)
        return keras.ops.cast(truth == keras.ops.argmax(y_pred, axis=-1), "float32")

    return keras.metrics.MeanMetricWrapper(agrees, name="accuracy")


def class_weights(config: TrainConfig, labels: Sequence[int], num_classes: int) -> list[float] | None:
    """``--class-weight balanced``: ``N / (classes * N_c)`` per class c of the training labels (scikit-learn's
    ``compute_class_weight("balanced")``), so that every class's weights sum to the same; None for ``none``."""
    if config.class_weight == "none":
        return None
    counts = np.bincount(np.asarray(labels, int), minlength=num_classes)
    return [float(len(labels) / (num_classes * count)) if count else 0.0 for count in counts]


@keras.saving.register_keras_serializable(package="catsdogs")
class ClassWeightedLoss(keras.losses.Loss):
    """``loss`` with each image weighted by its class's weight, as Keras's ``fit(class_weight=...)`` weighs it
    (the weight joins the sample weight the loss is reduced with), but from the targets themselves: a blended
    image (mixup, CutMix) weighs ``lam * w_a + (1 - lam) * w_b``, the blend its labels have, where Keras's own
    ``class_weight`` takes integer labels only; and it works alike on every pipeline, backend and cached features,
    since it lives in the compiled loss rather than in one input pipeline."""

    def __init__(self, loss: Any, class_weights: Sequence[float], name: str = "class_weighted", **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.loss = keras.losses.get(loss) if isinstance(loss, dict | str) else loss
        self.class_weights = [float(weight) for weight in class_weights]

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        weights = self.weights_of(y_true, y_pred)
        if sample_weight is not None:
            weights = weights * keras.ops.reshape(keras.ops.cast(sample_weight, weights.dtype), (-1,))
        return self.loss(y_true, y_pred, sample_weight=weights)

    def weights_of(self, y_true: Any, y_pred: Any) -> Any:
        """Each image's weight: its (soft) target's mix of the class weights."""
        table = keras.ops.convert_to_tensor(self.class_weights, "float32")
        if len(self.class_weights) == 2:  # the target is the second class's share
            share = keras.ops.reshape(keras.ops.cast(y_true, "float32"), (-1,))
            return (1.0 - share) * table[0] + share * table[1]
        return keras.ops.matmul(keras.ops.cast(_dense_targets(y_true, y_pred, len(self.class_weights)), "float32"),
                                table)

    def call(self, y_true: Any, y_pred: Any) -> Any:  # only __call__ is used; Loss declares this abstract
        return self.loss.call(y_true, y_pred)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "loss": keras.losses.serialize(self.loss), "class_weights": self.class_weights}


# The mean over the images that weigh something: without sample weights the plain mean; with the blanks that
# even out several processes' evaluation batches (weight 0), their zeros are left out of the divisor too.
MEAN = "mean_with_sample_weight"


def compile_model(model: keras.Model, config: TrainConfig, learning_rate: float, num_classes: int,
                  weights: Sequence[float] | None = None) -> None:
    """Binary or sparse categorical cross-entropy (label-smoothed when asked) and accuracy, with the config's
    optimizer and XLA choice; with mixup or CutMix, a loss and an accuracy that take their soft targets; with
    class ``weights`` (``class_weights``), the loss weighted by them (the accuracy stays the plain one)."""
    mixing = bool(config.mixup or config.cutmix)
    if num_classes == 2:
        loss = keras.losses.BinaryCrossentropy(label_smoothing=config.label_smoothing, reduction=MEAN)
        accuracy = soft_target_accuracy(2) if mixing else keras.metrics.BinaryAccuracy(name="accuracy")
    else:
        loss = (SmoothedSparseCrossentropy(num_classes, config.label_smoothing, reduction=MEAN)
                if config.label_smoothing or mixing else keras.losses.SparseCategoricalCrossentropy(reduction=MEAN))
        accuracy = soft_target_accuracy(num_classes) if mixing else keras.metrics.SparseCategoricalAccuracy(
            name="accuracy")
    if weights is not None:
        loss = ClassWeightedLoss(loss, weights)
    jit = {"auto": "auto", "on": True, "off": False}[config.jit_compile]
    # Weighted, so the blank images that even out several processes' evaluation batches (weight 0) do not count;
    # without sample weights it is the plain accuracy.
    model.compile(optimizer=make_optimizer(config, learning_rate), loss=loss, weighted_metrics=[accuracy],
                  jit_compile=jit)


def phase_schedule(config: TrainConfig, phase: Phase, first_epoch: int) -> list[keras.callbacks.Callback]:
    """``--schedule cosine``: the phase's rate, warmed up linearly over ``lr_warmup`` epochs, then decayed along a
    half cosine to 0 at the phase's end; per epoch, from the absolute epoch number, so a resumed run continues
    the curve where it stopped. Nothing for ``constant``."""
    if config.schedule != "cosine":
        return []
    warmup, total, base = min(config.lr_warmup, phase.epochs), phase.epochs, phase.learning_rate

    def rate(epoch: int, current: float = 0.0) -> float:
        step = epoch - first_epoch
        if step < warmup:
            return base * (step + 1) / (warmup + 1)
        return base * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))

    return [keras.callbacks.LearningRateScheduler(rate)]


def keras_verbosity(verbose: int) -> int:
    """Keras's ``verbose`` for a run's: progress bars (1) only on a terminal; into a file or a pipe, one line
    per epoch (2), since bars there become one line per step full of escape codes."""
    return 2 if verbose == 1 and not sys.stdout.isatty() else verbose


def repeated(dataset: Any) -> tuple[Any, int | None]:
    """``dataset`` repeated, with its batches per pass as the steps of an epoch (``None``: as it is).

    Given the steps, Keras keeps one iterator for the whole fit instead of starting the pipeline anew
    each epoch and running a last step into the end of the data: about 0.1 s of every epoch here, the
    time a GPU needs for a tenth of an epoch of 2,000 images. Each pass still reshuffles and draws new
    augmentation (the pipeline's random streams re-randomize per iteration). A dataset whose size is
    unknown is left as it is, and so is a ``keras.utils.PyDataset`` (``--pipeline pydataset``), which Keras
    iterates by its length and which reshuffles at each epoch's end.
    """
    if dataset is None or not hasattr(dataset, "cardinality"):
        return dataset, None
    batches = int(dataset.cardinality())
    if batches <= 0:  # unknown, infinite or empty
        return dataset, None
    return dataset.repeat(), batches


def fit_phases(model: keras.Model, config: TrainConfig, phases: list[Phase], run_dir: Path,
               strategy: Any, num_classes: int,
               extra_callbacks: Sequence[keras.callbacks.Callback],
               phase_data: Callable[[Phase], tuple[keras.Model, dict[str, Any]]],
               writes: bool = True) -> None:
    """Run the phases in order, skipping those a resumed run finished.

    ``phase_data(phase)`` sets the phase's trainable layers and returns the compiled model to fit
    and its datasets: ``model`` itself on images, or a model sharing its layers (cached features).
    Checkpoints always hold ``model``'s weights.
    ``writes=False`` (the processes other than 0 of a multi-process run): the same fit, reading the run
    folder (a resumed run's backup) but writing nothing in it.
    """
    state = read_state(run_dir)
    first_epoch = 0
    for phase in phases:
        last_epoch = first_epoch + phase.epochs
        if phase.name in state["completed_phases"]:
            finished = existing_checkpoint(run_dir, f"phase-{phase.name}")
            if finished is None:
                raise UserError(f"{run_dir} lost the weights of its finished phase {phase.name} (phase-{phase.name}"
                                ".weights.npz); start the run again")
            load_checkpoint(model, finished, with_optimizer=False)
            first_epoch = last_epoch
            continue
        fitted, datasets = phase_data(phase)
        history = read_history(run_dir / "history.csv")
        monitor = "val_accuracy" if "validation" in datasets else "accuracy"
        best = max(history[monitor]) if history.get(monitor) else None
        if config.verbose:
            trainable = sum(int(np.prod(w.shape)) for w in fitted.trainable_weights)
            log.info("phase %s: epochs %d-%d, unfreeze=%s, lr=%g, %s trainable parameters", phase.name,
                     first_epoch + 1, last_epoch, phase.unfreeze, phase.learning_rate, f"{trainable:,}")
        # A restored backup leaves its epoch on the model, which would override the next
        # phase's initial_epoch; only a restore inside this phase may set it.
        fitted._initial_epoch = None
        train, steps = repeated(datasets["train"])
        validation, validation_steps = repeated(datasets.get("validation"))
        with SnapshotWriter() as writer:
            callbacks = make_callbacks(config, run_dir, model, phase.name, "validation" in datasets, best,
                                       writer if writes else None,
                                       [*phase_schedule(config, phase, first_epoch), *extra_callbacks])
            fitted.fit(train, steps_per_epoch=steps, validation_data=validation, validation_steps=validation_steps,
                       epochs=last_epoch, initial_epoch=first_epoch, verbose=keras_verbosity(config.verbose),
                       shuffle=False, callbacks=callbacks)
        state["completed_phases"].append(phase.name)
        if writes:
            save_snapshot(run_dir / f"phase-{phase.name}{SNAPSHOT_SUFFIX}", model_variables(model, False))
            write_state(run_dir, state)
            shutil.rmtree(run_dir / BACKUP_DIR, ignore_errors=True)  # recorded as finished: never restored again
        first_epoch = last_epoch
