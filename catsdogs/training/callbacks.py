"""The callbacks of a run: backup for ``--resume``, the best checkpoint, logs, early stopping, schedules."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from catsdogs.config import TrainConfig


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
