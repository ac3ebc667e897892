"""Training throughput and memory at 150 px, batch 32: our ``train`` vs a bare Keras loop, cached vs not.

    python benchmarks/training.py [--images 320] [--only "small_cnn ours,vgg19 block5 cached"]
    python benchmarks/training.py --gpu --images 2000      # on a GPU machine

Every row runs in a fresh process (so its peak memory is its own) on the first ``--images`` training images
(half per class) of the real subset split by id, with augmentation in the pipeline as a real run has it, and
no validation split, so an epoch is training only. A row's figure is the median of epochs 2 to ``--epochs``
(4 by default; the first includes tracing), as wall time and as this process's CPU time (user + system, all
threads): on a shared machine the wall time moves with the other processes' load, the CPU time much less, so
the ratios are given on both. The epoch is timed by a callback placed after all of ``train``'s, from its
start to the end of the last callback's epoch-end work, and ``outside_steps_s`` is that minus the wall time
from the first step's start to the last step's end: the per-epoch work outside the steps (checkpoints, logs,
iterator start), measured directly; ``before_steps_s`` is its part before the first step (the iterator's
start and the wait for the first batch), the rest is epoch-end work.

- ``ours``: ``catsdogs.training.trainer.train`` with all its callbacks (checkpoint, CSV, TensorBoard, backup);
- ``bare``: ``create_model`` + ``compile`` + ``fit`` on the same dataset, nothing else;
- ``cached``: ``train(..., cache_features=True)``: the epoch trains on stored features; the one-off
  feature extraction is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import peak_rss_mb, prepare_data, print_table, run_isolated, write_results

from catsdogs.config import DEFAULT_IMAGE_SIZE

SIZE, BATCH = DEFAULT_IMAGE_SIZE, 32
EPOCHS = 4  # the figures are medians over epochs 2 to EPOCHS, unless --epochs says otherwise
ROWS = {  # name: (model, unfreeze, mode, extra config)
    "small_cnn ours": ("small_cnn", "none", "ours", {}),
    "small_cnn bare": ("small_cnn", "none", "bare", {}),
    "small_cnn ours XLA": ("small_cnn", "none", "ours", {"jit_compile": "on"}),
    "mobilenet ours": ("mobilenet", "none", "ours", {}),
    "mobilenet bare": ("mobilenet", "none", "bare", {}),
    "vgg19 frozen ours": ("vgg19", "none", "ours", {}),
    "vgg19 frozen bare": ("vgg19", "none", "bare", {}),
    "vgg19 frozen cached": ("vgg19", "none", "ours", {"cache_features": True}),
    "vgg19 block5 ours": ("vgg19", "block5", "ours", {}),
    "vgg19 block5 bare": ("vgg19", "block5", "bare", {}),
    "vgg19 block5 cached": ("vgg19", "block5", "ours", {"cache_features": True}),
}
# With a GPU (--gpu): mixed precision, XLA, augmentation inside the model, and MirroredStrategy scaling.
GPU_ROWS = {
    "vgg19 block5 ours gpu": ("vgg19", "block5", "ours", {"augment_in": "model"}),
    "vgg19 block5 ours gpu mixed": ("vgg19", "block5", "ours", {"augment_in": "model", "precision": "mixed_float16"}),
    "vgg19 block5 ours gpu mixed XLA": ("vgg19", "block5", "ours",
                                        {"augment_in": "model", "precision": "mixed_float16", "jit_compile": "on"}),
    "vgg19 block5 ours all gpus": ("vgg19", "block5", "ours", {"augment_in": "model", "strategy": "mirrored"}),
}
ROWS.update(GPU_ROWS)


def train_only_subset(data: Path, images: int) -> Path:
    """A train-only split with the first images/2 of each class (hard links into the prepared split)."""
    subset = Path(tempfile.gettempdir()) / f"catsdogs-bench-train-{images}"
    if subset.is_dir():
        return subset
    for class_dir in sorted((data / "train").iterdir()):
        target = subset / "train" / class_dir.name
        target.mkdir(parents=True)
        for path in sorted(class_dir.iterdir())[: images // 2]:
            (target / path.name).hardlink_to(path)
    return subset


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def epoch_time_callback() -> Any:
    """A Keras callback recording each epoch's wall and CPU seconds, whole and over its steps alone.

    Whole: from the epoch's start to this callback's epoch end, which comes after every other
    callback's (it is the last in the list), so checkpoints and logs are inside. ``steps``: from the
    first batch's start to the last batch's end, i.e. without what happens once per epoch, which a
    short benchmark epoch would over-weight. (Keras is imported in the children only.)
    """
    import keras

    clocks = {"wall": time.perf_counter, "cpu": cpu_seconds}

    class EpochTime(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: dict[str, list[float]] = {name: [] for name in clocks}
            self.steps: dict[str, list[float]] = {name: [] for name in clocks}
            self.before_steps: dict[str, list[float]] = {name: [] for name in clocks}

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._start = {name: clock() for name, clock in clocks.items()}
            self._first_step: dict[str, float] | None = None

        def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            if self._first_step is None:
                self._first_step = {name: clock() for name, clock in clocks.items()}

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self._last_step = {name: clock() for name, clock in clocks.items()}

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            for name, clock in clocks.items():
                self.seconds[name].append(clock() - self._start[name])
                self.steps[name].append(self._last_step[name] - (self._first_step or self._start)[name])
                self.before_steps[name].append((self._first_step or self._start)[name] - self._start[name])

    return EpochTime()


def child(name: str, data_dir: str, epochs: int) -> None:
    """One row, in this process; prints its result as the last line (JSON)."""
    import keras

    from catsdogs.config import TrainConfig
    from catsdogs.data.files import read_image_folder
    from catsdogs.data.pipeline import make_dataset
    from catsdogs.models import create_model
    from catsdogs.training.fitting import compile_model
    from catsdogs.training.trainer import train

    model_name, unfreeze, mode, extra = ROWS[name]
    folder = read_image_folder(Path(data_dir) / "train")
    scratch = Path(tempfile.mkdtemp())
    config = TrainConfig(data_dir=data_dir, image_size=SIZE, model=model_name, weights=None, unfreeze=unfreeze,
                         warmup_epochs=0, epochs=epochs, batch_size=BATCH, cache="memory", output=str(scratch / "runs"),
                         saved_models_dir="", feature_cache=str(scratch / "features"), verbose=0, **extra)
    result = {"row": name, "images": len(folder)}
    timer = epoch_time_callback()
    if mode == "bare":
        keras.utils.set_random_seed(config.seed)
        model = create_model(model_name, image_size=SIZE, num_classes=2, weights=None, unfreeze=unfreeze)
        compile_model(model, config, 1e-4, 2)
        dataset = make_dataset(folder, SIZE, BATCH, shuffle=True, augment=config.augment_params, cache=True)
        model.fit(dataset, epochs=epochs, verbose=0, callbacks=[timer])
    else:
        start = time.perf_counter()
        train(config, callbacks=[timer])
        total = time.perf_counter() - start
        if config.cache_features:
            result["feature_extraction_s"] = total - sum(timer.seconds["wall"])  # the one-off pass (plus set-up)
    def after_the_first(values: list[float]) -> float:  # the first epoch traces the functions
        return statistics.median(values[1:])

    epoch_s = after_the_first(timer.seconds["wall"])
    result.update(epoch_s=epoch_s, images_per_s=len(folder) / epoch_s,
                  epoch_cpu_s=after_the_first(timer.seconds["cpu"]), steps_cpu_s=after_the_first(timer.steps["cpu"]),
                  outside_steps_s=after_the_first([whole - steps for whole, steps in zip(timer.seconds["wall"],
                                                                                        timer.steps["wall"])]),
                  before_steps_s=after_the_first(timer.before_steps["wall"]),
                  peak_rss_mb=peak_rss_mb(), load_average=os.getloadavg()[0])
    shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=320, help="training images per epoch (half per class)")
    parser.add_argument("--only", default="", help="comma-separated row names (default: all CPU rows)")
    parser.add_argument("--gpu", action="store_true", help="the GPU rows instead (mixed precision, XLA, all GPUs)")
    parser.add_argument("--epochs", type=int, default=EPOCHS,
                        help="epochs per row; figures are medians after the first")
    parser.add_argument("--results", default="training", help="benchmarks/results/NAME.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.data_dir, args.epochs)
        return
    data = train_only_subset(prepare_data(), args.images)
    default = list(GPU_ROWS) if args.gpu else [name for name in ROWS if name not in GPU_ROWS]
    names = [n.strip() for n in args.only.split(",") if n.strip()] or default
    rows = []
    for name in names:
        row = run_isolated(Path(__file__), "--child", name, "--data-dir", str(data), "--epochs", str(args.epochs))
        rows.append(row)
        print(f"{name}: {row['images_per_s']:.1f} images/s, {row['epoch_s']:.1f} s/epoch "
              f"({row['epoch_cpu_s']:.1f} CPU s), peak {row['peak_rss_mb']:.0f} MB", flush=True)
    by_name = {row["row"]: row for row in rows}
    ratios = {}
    def epoch_ratio(label: str, numerator: str, denominator: str) -> None:
        if numerator in by_name and denominator in by_name:
            ratios[label] = by_name[numerator]["epoch_s"] / by_name[denominator]["epoch_s"]
            ratios[f"{label} (CPU time)"] = by_name[numerator]["epoch_cpu_s"] / by_name[denominator]["epoch_cpu_s"]
            ratios[f"{label} (CPU time of the steps)"] = (by_name[numerator]["steps_cpu_s"]
                                                           / by_name[denominator]["steps_cpu_s"])

    for model in ("small_cnn", "mobilenet", "vgg19 frozen", "vgg19 block5"):
        epoch_ratio(f"{model}: ours / bare step time", f"{model} ours", f"{model} bare")
    for model in ("vgg19 frozen", "vgg19 block5"):
        epoch_ratio(f"{model}: uncached / cached epoch", f"{model} ours", f"{model} cached")
    epoch_ratio("small_cnn: XLA / no XLA epoch", "small_cnn ours XLA", "small_cnn ours")
    print()
    print_table(rows, ["row", "images", "epoch_s", "outside_steps_s", "before_steps_s", "epoch_cpu_s", "steps_cpu_s",
                       "images_per_s", "peak_rss_mb", "feature_extraction_s", "load_average"])
    print()
    for key, value in ratios.items():
        print(f"{key}: {value:.2f}")
    write_results(args.results, {"image_size": SIZE, "batch_size": BATCH, "images_per_epoch": args.images,
                               "rows": rows, "ratios": ratios, "command": " ".join(sys.argv)})


if __name__ == "__main__":
    main()
