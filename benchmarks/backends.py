"""Training throughput on the TensorFlow and JAX backends, and two processes against one (JAX, data-parallel).

    python benchmarks/backends.py [--images 512] [--epochs 3] [--only "small_cnn jax,small_cnn jax 2 processes"]

Every row is ``python -m catsdogs.train`` in fresh processes (the backend is chosen at import), on the first
``--images`` training images (half per class) of the real subset split by id, training only, at each
model's benchmark size, batch 32 per device, augmentation in the pipeline (in the model with ``--pipeline
pydataset``, its default there), images cached in memory,
``weights=None`` (MobileNet fine-tunes its whole base). A row's figure is the median of the epochs after the
first (which traces and compiles), from the run's own ``history.csv`` (``seconds``), as images per second.
The two-process row starts two processes on 127.0.0.1 with one CPU device each (global batch
64), so on a 2-core machine both share the cores that one process had to itself: it measures the cost of
the coordination, not a speed-up.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import prepare_data, print_table, write_results
from training import train_only_subset

MODELS = {"small_cnn": ["--image-size", "150"],
          "mobilenet": ["--image-size", "160", "--alpha", "0.25", "--unfreeze", "all"]}  # the whole base trains
ROWS = {  # name: (model, backend, processes, pipeline)
    "small_cnn tensorflow": ("small_cnn", "tensorflow", 1, "tf.data"),
    "small_cnn jax": ("small_cnn", "jax", 1, "tf.data"),
    "mobilenet tensorflow": ("mobilenet", "tensorflow", 1, "tf.data"),
    "mobilenet jax": ("mobilenet", "jax", 1, "tf.data"),
    "small_cnn jax 2 processes": ("small_cnn", "jax", 2, "tf.data"),
    "small_cnn tensorflow pydataset": ("small_cnn", "tensorflow", 1, "pydataset"),
    "small_cnn jax pydataset": ("small_cnn", "jax", 1, "pydataset"),
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_row(name: str, data: Path, epochs: int) -> dict[str, Any]:
    model, backend, processes, pipeline = ROWS[name]
    scratch = Path(tempfile.mkdtemp())
    args = [sys.executable, "-m", "catsdogs.train", "--data-dir", str(data), "--model", model, *MODELS[model],
            "--weights", "none", "--epochs", str(epochs), "--batch-size", "32", "--cache", "memory",
            "--warmup-epochs", "0", "--quiet", "--output", str(scratch / "runs"),
            "--saved-models-dir", "", "--pipeline", pipeline]
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PLATFORMS": "cpu"}
    if processes > 1:
        port = free_port()
        commands = [args + ["--coordinator", f"127.0.0.1:{port}", "--num-processes", str(processes),
                            "--process-id", str(index)] for index in range(processes)]
    else:
        commands = [args]
    running = [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
               for command in commands]
    for process in running:
        _, errors = process.communicate(timeout=3600)
        if process.returncode:
            raise RuntimeError(f"{name} failed:\n{errors[-3000:]}")
    [history] = list((scratch / "runs").glob("*/history.csv"))
    with history.open() as file:
        seconds = [float(row["seconds"]) for row in csv.DictReader(file)]
    shutil.rmtree(scratch, ignore_errors=True)
    images = sum(1 for _ in (data / "train").rglob("*.jpg"))
    epoch_s = statistics.median(seconds[1:])
    return {"row": name, "backend": backend, "processes": processes, "pipeline": pipeline, "images": images,
            "epoch_s": epoch_s,
            "images_per_s": images / epoch_s, "first_epoch_s": seconds[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=512, help="training images per epoch (half per class)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated row names (default: all)")
    parser.add_argument("--results", default="backends", help="benchmarks/results/NAME.json")
    args = parser.parse_args()
    data = train_only_subset(prepare_data(), args.images)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(ROWS)
    rows = []
    for name in names:
        rows.append(run_row(name, data, args.epochs))
        print(f"{name}: {rows[-1]['images_per_s']:.1f} images/s ({rows[-1]['epoch_s']:.1f} s/epoch)", flush=True)
    print()
    print_table(rows, ["row", "images", "epoch_s", "images_per_s", "first_epoch_s"])
    write_results(args.results, {"images_per_epoch": args.images, "epochs": args.epochs, "rows": rows,
                                 "command": " ".join(sys.argv)})


if __name__ == "__main__":
    main()
