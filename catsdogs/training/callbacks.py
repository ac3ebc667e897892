"""The callbacks of a run: backup for ``--resume``, the best checkpoint, history, early stopping, schedules.

Every file they write goes through ``catsdogs.outputs``: a temporary name, then a rename, so that a
``kill -9`` at any moment leaves the previous complete file, and ``--resume`` loses at most the epoch
that was running. Keras's ``BackupAndRestore`` and ``CSVLogger`` write in place (a kill inside the
write leaves a backup that does not load, or half a line of history), so this module has its own.
The two weight checkpoints are snapshots written on a background thread (``training.checkpoints``), so
an epoch's end costs a memory copy rather than a file write.
"""

from __future__ import annotations

import csv
import io
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from catsdogs.config import TrainConfig
from catsdogs.data.sources import tensorflow_installed
from catsdogs.errors import UserError, parameter
from catsdogs.outputs import write_json, write_text
from catsdogs.training.checkpoints import SNAPSHOT_SUFFIX, SnapshotWriter, load_snapshot, model_variables
from catsdogs.training.rundir import read_history, read_json

BACKUP_DIR = "backup"  # in the run directory, while a phase trains
BACKUP_STATE = "state.json"
BEST = "best"  # best.weights.npz in the run directory


class TrainingDiverged(UserError):
    """The loss or the weights stopped being finite numbers: the run stops and publishes nothing."""


class StopOnDivergence(keras.callbacks.Callback):
    """Stop at the first non-finite loss (each batch) or weight (each epoch's end), before the epoch's backup.

    It raises instead of setting ``stop_training`` (Keras's ``TerminateOnNaN``): the epoch's end callbacks would
    still run, write NaN weights into the backup that ``--resume`` continues from, and the run would publish a
    model of NaNs. Raising leaves the last finished epoch's backup as it was, so ``--resume`` starts from finite
    weights. It must come first among the callbacks."""

    def __init__(self, run_dir: Path, learning_rate: str) -> None:
        super().__init__()
        self.run_dir, self.learning_rate, self.epoch = run_dir, learning_rate, 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            self._stop(f"the loss became {float(loss)} in batch {batch + 1}")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if not all(np.isfinite(keras.ops.convert_to_numpy(weight)).all() for weight in self.model.weights):
            self._stop("a weight is no longer a finite number")

    def _stop(self, what: str) -> None:
        resume = (f"; {parameter('resume', self.run_dir)} continues from epoch {self.epoch}, the last finished one"
                  if self.epoch else "")
        raise TrainingDiverged(f"training diverged in epoch {self.epoch + 1}: {what}; no model was saved. Lower "
                               f"{parameter(self.learning_rate)} and train again{resume}")


class EpochLog(keras.callbacks.Callback):
    """Adds the epoch's wall time and learning rate to the logs (and so to history.csv)."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["seconds"] = time.perf_counter() - self._start
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


def load_model_weights(model: keras.Model, path: Path) -> None:
    """Load saved weights; the optimizer state saved beside them may be another phase's, so it is skipped."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(path)


def existing_checkpoint(directory: Path, stem: str) -> Path | None:
    """``<stem>.weights.npz``, else ``<stem>.weights.h5`` (a run from before snapshots, resumed), else None."""
    return next((path for path in (directory / f"{stem}{SNAPSHOT_SUFFIX}", directory / f"{stem}.weights.h5")
                 if path.is_file()), None)


def load_checkpoint(model: keras.Model, path: Path, with_optimizer: bool) -> None:
    """Load a checkpoint a run wrote: a snapshot, or (runs from before snapshots) a Keras weights file."""
    if path.name.endswith(SNAPSHOT_SUFFIX):
        load_snapshot(path, model_variables(model, with_optimizer))
    else:
        load_model_weights(model, path)


class BestWeights(keras.callbacks.Callback):
    """Save ``model``'s weights (without optimizer state) whenever ``monitor`` improves.

    Unlike ModelCheckpoint it saves a given model, not the one being fitted: with cached features
    the fitted model is only the upper part, and the checkpoint must hold the whole classifier.
    """

    def __init__(self, model: keras.Model, path: Path, monitor: str, best: float | None, writer: SnapshotWriter):
        super().__init__()
        self.classifier, self.path, self.monitor, self.writer = model, path, monitor, writer
        self.best = -np.inf if best is None else best

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is not None and value > self.best:
            self.best = float(value)
            self.writer.save(self.path, model_variables(self.classifier, with_optimizer=False))


class Backup(keras.callbacks.Callback):
    """What ``--resume`` continues from: the fitted model's weights (optimizer state included) after the
    last finished epoch of ``phase``, and that epoch's number.

    Each epoch's weights go to a new file, then ``state.json`` is replaced to name it, then the old file
    is removed: a kill at any point leaves a consistent pair. A backup of another phase is not restored.
    The folder stays after training; ``fit_phases`` removes it once the phase is recorded as finished.
    """

    def __init__(self, directory: Path, phase: str, writer: SnapshotWriter | None):
        super().__init__()
        self.directory, self.phase, self.writer = directory, phase, writer

    def on_train_begin(self, logs: dict | None = None) -> None:
        state = read_json(self.directory / BACKUP_STATE)
        if not state or state.get("phase") != self.phase or not (self.directory / state["weights"]).is_file():
            return
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)  # so its state can be loaded too
        load_checkpoint(self.model, self.directory / state["weights"], with_optimizer=True)
        # Keras's fit starts at this epoch (the attribute BackupAndRestore itself sets).
        self.model._initial_epoch = int(state["epoch"])

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.writer is None:  # restores only
            return
        name = f"epoch-{epoch + 1}{SNAPSHOT_SUFFIX}"

        def name_it_and_remove_the_others() -> None:  # on the writer thread, once the snapshot is whole
            write_json(self.directory / BACKUP_STATE, {"phase": self.phase, "epoch": epoch + 1, "weights": name})
            for old in self.directory.glob("epoch-*.weights.*"):
                if old.name != name:
                    old.unlink(missing_ok=True)

        self.writer.save(self.directory / name, model_variables(self.model, with_optimizer=True),
                         then=name_it_and_remove_the_others)


class History(keras.callbacks.Callback):
    """``history.csv``: one row per epoch, rewritten whole after each epoch (a kill never leaves half a row).

    Rows of epochs before this fit's first epoch are kept (earlier phases, a resumed run); a repeated
    epoch replaces its row. Columns are ``epoch`` and the sorted union of the logged metrics; a metric
    an epoch lacks is ``NA``, as Keras's CSVLogger writes it.
    """

    def __init__(self, path: Path):
        super().__init__()
        self.path = path
        self.rows: dict[int, dict[str, Any]] = {}

    def on_train_begin(self, logs: dict | None = None) -> None:
        history = read_history(self.path)
        self.rows = {int(epoch): {key: values[index] for key, values in history.items() if key != "epoch"}
                     for index, epoch in enumerate(history.get("epoch", []))}

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.rows[epoch] = {key: float(value) for key, value in (logs or {}).items()}
        self.rows = {e: row for e, row in self.rows.items() if e <= epoch}  # a resumed run redoes later epochs
        keys = sorted({key for row in self.rows.values() for key in row})
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["epoch", *keys])
        for number in sorted(self.rows):
            row = self.rows[number]
            writer.writerow([number, *(row[key] if key in row and not np.isnan(row[key]) else "NA" for key in keys)])
        write_text(self.path, buffer.getvalue())


def make_callbacks(config: TrainConfig, run_dir: Path, model: keras.Model, phase: str, has_validation: bool,
                   best_so_far: float | None, writer: SnapshotWriter | None,
                   extra: Sequence[keras.callbacks.Callback] = ()) -> list[keras.callbacks.Callback]:
    """The callbacks of one phase's ``fit``; ``writer`` writes both checkpoints, in the order they are taken
    (the caller waits for it once ``fit`` ends). Without a writer nothing is written (a process other than 0
    of a multi-process run): the backup is only restored, and what decides (early stopping, the learning
    rate) runs as in process 0, on the same global metrics."""
    monitor = "val_accuracy" if has_validation else "accuracy"
    # Order matters at each epoch's end: the time is logged, the row written, then the backup taken (so a
    # resumed run never lacks a row of an epoch it skips), and only then the averaged weights swapped in
    # for the best checkpoint (the backup must hold the raw weights that training continues from).
    writing = writer is not None
    learning_rate = "fine_tune_lr" if phase == "fine_tune" else "lr"
    callbacks: list[keras.callbacks.Callback] = [
        StopOnDivergence(run_dir, learning_rate), EpochLog(), *([History(run_dir / "history.csv")] if writing else []),
        Backup(run_dir / BACKUP_DIR, phase, writer)]
    if config.ema:
        callbacks.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    if writer is not None:
        callbacks.append(BestWeights(model, run_dir / f"{BEST}{SNAPSHOT_SUFFIX}", monitor, best_so_far, writer))
    if writing and tensorflow_installed():  # Keras writes TensorBoard logs with tf.summary: none without TensorFlow
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "logs"), write_graph=False))
    if config.early_stopping:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, mode="max", patience=config.early_stopping))
    if config.reduce_lr:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode="max", factor=0.5,
                                                           patience=config.reduce_lr, min_lr=1e-7))
    return callbacks + list(extra)
