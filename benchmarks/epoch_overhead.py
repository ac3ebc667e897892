"""The per-epoch work outside the training steps, timed directly: each of ``train``'s callbacks at an epoch's end.

    python benchmarks/epoch_overhead.py [--epochs 20] [--models small_cnn,mobilenet]

Wall-time ratios of whole epochs swing with the machine's load; this times only what happens between
epochs, callback by callback, on a compiled model (optimizer state built, as after a real epoch) with
the run folder on the disk a real run uses. Each figure is the median over ``--epochs`` simulated epoch
ends, in milliseconds, wall and CPU; ``BestWeights`` is made to improve every epoch (its worst case).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
from common import print_table, write_results

from catsdogs.config import DEFAULT_IMAGE_SIZE, TrainConfig
from catsdogs.models import create_model
from catsdogs.training.callbacks import make_callbacks
from catsdogs.training.checkpoints import SnapshotWriter

SIZES = {"small_cnn": DEFAULT_IMAGE_SIZE, "mobilenet": 224}


def built_model(name: str, size: int) -> keras.Model:
    model = create_model(name, image_size=size, weights=None, alpha=0.25 if name == "mobilenet" else 1.0,
                         unfreeze="all")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"])
    images = np.zeros((2, size, size, 3), np.float32)
    model.train_on_batch(images, np.zeros((2, 1), np.float32))  # builds the optimizer's state, as a real epoch does
    return model


def time_callbacks(name: str, epochs: int, folder: Path) -> list[dict]:
    size = SIZES[name]
    model = built_model(name, size)
    config = TrainConfig(model=name, image_size=size, weights=None, verbose=0)
    writer = SnapshotWriter()  # the checkpoints' writes run behind, as in training; waited for at the end
    callbacks = make_callbacks(config, folder, model, "train", True, None, writer)
    wall: dict[str, list[float]] = {type(c).__name__: [] for c in callbacks}
    cpu: dict[str, list[float]] = {type(c).__name__: [] for c in callbacks}
    for callback in callbacks:
        callback.set_model(model)
        callback.on_train_begin()
    for epoch in range(epochs):
        logs = {"loss": 0.5, "accuracy": 0.5 + epoch / 100, "val_loss": 0.5, "val_accuracy": 0.5 + epoch / 100}
        for callback in callbacks:
            callback.on_epoch_begin(epoch)
        for callback in callbacks:
            started, started_cpu = time.perf_counter(), time.process_time()
            callback.on_epoch_end(epoch, logs)
            wall[type(callback).__name__].append(1000 * (time.perf_counter() - started))
            cpu[type(callback).__name__].append(1000 * (time.process_time() - started_cpu))
    for callback in callbacks:
        callback.on_train_end()
    writer.flush()
    rows = [{"model": name, "callback": key, "wall_ms": statistics.median(wall[key]),
             "cpu_ms": statistics.median(cpu[key])} for key in wall]
    rows.append({"model": name, "callback": "all", "wall_ms": sum(r["wall_ms"] for r in rows),
                 "cpu_ms": sum(r["cpu_ms"] for r in rows)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--models", default="small_cnn,mobilenet")
    parser.add_argument("--dir", help="where the run folder goes (default: a temporary folder)")
    parser.add_argument("--results", default="epoch_overhead", help="benchmarks/results/NAME.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        for name in args.models.split(","):
            rows += time_callbacks(name, args.epochs, Path(scratch) / name)
    print_table(rows, ["model", "callback", "wall_ms", "cpu_ms"])
    write_results(args.results, {"epochs": args.epochs, "rows": rows})


if __name__ == "__main__":
    main()
