"""Checkpoints that cost the training loop a memory copy, not a file write.

Keras's h5 weight writer spent 60-150 ms of CPU per checkpoint here (one HDF5 group per layer; BENCHMARKS
section 15), and a run writes two per epoch (the backup, the best weights): on a GPU, where an epoch of
2,000 images takes about a second, that alone is a quarter of the run. So a checkpoint is taken in two
halves:

- on the training thread, a *snapshot*: every variable copied to NumPy (consistent, since the next step
  has not started; about 20 ms for the small CNN's 41 MB of weights and Adam state);
- on one background thread, the *write*: the snapshot as an uncompressed ``.npz`` through a temporary
  name, then whatever must follow it (``state.json`` naming it, the old file's removal), in the order
  the snapshots were taken.

A ``kill -9`` loses no more than before: the last complete file stays in place until its successor is
whole, and the durable state lags the epoch's end by the write's duration either way (before, the write
blocked the next epoch; now it overlaps its first steps). ``flush`` waits for the writes; the writer is
a context manager around ``fit`` that waits for them however ``fit`` ends (an interruption included),
so what follows reads finished files.

The format is ours, not Keras's: the variables in the order a model (and its optimizer) lists them,
their shapes checked on loading, so a snapshot only loads into a model built like the one it came from.
The finished phases' weights are snapshots too (written at once): Keras's h5 saver also runs collectives
when several processes train, so process 0 could not call it alone. Weights meant to leave the run
(``model.keras``) go through Keras's own saver.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import keras
import numpy as np

from catsdogs.outputs import atomic_path

SNAPSHOT_SUFFIX = ".weights.npz"
PATHS_KEY = "variable_paths"


def model_variables(model: keras.Model, with_optimizer: bool) -> list[keras.Variable]:
    """The variables a snapshot holds, in a fixed order: the model's, then (if built) its optimizer's."""
    variables = list(model.variables)
    if with_optimizer and model.optimizer is not None and model.optimizer.built:
        variables += list(model.optimizer.variables)
    return variables


def take_snapshot(variables: Sequence[keras.Variable]) -> list[np.ndarray]:
    """Copies of the variables' values (``convert_to_numpy`` copies), safe to write while training goes on.

    A copy is needed: holding the backend's tensors instead is not a snapshot (TensorFlow's optimizer
    updates a variable's buffer in place under a live read, and Keras's JAX trainer donates the old
    arrays to the update; ``tests/test_checkpoints.py`` catches both).
    """
    return [keras.ops.convert_to_numpy(variable) for variable in variables]


def write_snapshot(path: Path, variables: Sequence[keras.Variable], values: Sequence[np.ndarray]) -> None:
    """The values as an uncompressed ``.npz`` (compression would cost more CPU than the write), atomically."""
    arrays: dict[str, Any] = {str(index): value for index, value in enumerate(values)}
    arrays[PATHS_KEY] = np.array([variable.path for variable in variables])
    with atomic_path(path) as temporary, open(temporary, "wb") as file:
        np.savez(file, **arrays)


def save_snapshot(path: Path, variables: Sequence[keras.Variable]) -> None:
    """Snapshot and write now (once a phase ends; nothing to overlap with)."""
    write_snapshot(path, variables, take_snapshot(variables))


def load_snapshot(path: Path, variables: Sequence[keras.Variable]) -> None:
    """Assign a snapshot's values; a snapshot of another model (count or shapes differ) is refused whole.

    Shapes, not paths, are compared: a path holds names Keras makes unique per process (``dense_3``), so
    the same model built in a resumed run's process may carry other paths. They are stored for a reader.
    """
    with np.load(path) as stored:
        count = len(stored.files) - 1
        if count != len(variables):
            raise ValueError(f"{path} holds the weights of another model ({count} variables, "
                             f"this one has {len(variables)})")
        values = [stored[str(index)] for index in range(count)]
    for variable, value in zip(variables, values):
        if tuple(variable.shape) != value.shape:
            raise ValueError(f"{path} holds the weights of another model: {variable.path} has shape "
                             f"{tuple(variable.shape)}, the stored value {value.shape}")
    for variable, value in zip(variables, values):
        variable.assign(value)


class SnapshotWriter:
    """One background thread writing snapshots in submission order; a write's error surfaces at the next call.

    One writer is shared by every checkpoint of a fit, so a ``state.json`` submitted after a snapshot
    is never written before it.
    """

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint-writer")
        self._pending: list[Future] = []
        self._lock = threading.Lock()

    def submit(self, work: Callable[[], None]) -> None:
        self._raise_failures()
        with self._lock:
            self._pending.append(self._executor.submit(work))

    def save(self, path: Path, variables: Sequence[keras.Variable], then: Callable[[], None] | None = None) -> None:
        """Snapshot now, write in the background, then run ``then`` (on the writer thread, after the write)."""
        values = take_snapshot(variables)
        variables = list(variables)

        def work() -> None:
            write_snapshot(path, variables, values)
            if then is not None:
                then()

        self.submit(work)

    def __enter__(self) -> SnapshotWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: object) -> None:
        """Wait for the writes even when training failed or was interrupted, so the last checkpoint is whole;
        a write's own failure is raised only if nothing else is."""
        try:
            self.flush()
        except Exception:
            if kind is None:
                raise
        finally:
            self._executor.shutdown(wait=True)

    def flush(self) -> None:
        """Wait for every submitted write; re-raise the first that failed."""
        with self._lock:
            pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def _raise_failures(self) -> None:
        with self._lock:
            done = [future for future in self._pending if future.done()]
            self._pending = [future for future in self._pending if not future.done()]
        for future in done:
            future.result()
