"""Input-pipeline throughput at 150 px, batch 32, on the same 2,000 training images.

    python benchmarks/pipeline.py [--data-dir SPLIT] [--epochs 2]

Rows: a decode-only bound (read + full JPEG decode + resize, parallel, nothing else); our pipeline
without and with augmentation, first pass and from its memory cache (uncached, the augmentation resamples
the decoded image once; a row resizes first, as the cached epochs do, to compare); Keras's
image_dataset_from_directory; a chain of Keras 3 Random* layers (the report's parameters, mapped as
in README.md) in tf.data; and tf_keras's ImageDataGenerator with the report's parameters, when tf_keras
is installed (``pip install --no-deps tf_keras``). Each figure is images/s over whole epochs after
one warm-up epoch (the cached rows: the epochs after the one that fills the cache). Every dataset is built
once and iterated for each epoch, as training does (one dataset per run); until 2026-12-03 the uncached rows
rebuilt theirs each epoch, which added 0.6-1.2 s of tracing and file checks to every epoch of about 2 s.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import keras
import tensorflow as tf
from common import data_description, prepare_data, print_table, write_results

from catsdogs.config import DEFAULT_IMAGE_SIZE, AugmentParams
from catsdogs.data.files import read_image_folder
from catsdogs.data.pipeline import make_dataset

SIZE, BATCH = DEFAULT_IMAGE_SIZE, 32


def images_per_second(make_epoch: Callable[[], Iterable], epochs: int) -> tuple[float, float]:
    """Images per wall second and per CPU second (this process, all threads) over whole epochs after one
    warm-up epoch; counts what each batch really holds. On a shared machine the wall rate moves with the
    other processes' load, the CPU rate much less."""
    for _ in make_epoch():
        pass
    count, start, cpu_start = 0, time.perf_counter(), time.process_time()
    for _ in range(epochs):
        for batch in make_epoch():
            images = batch[0] if isinstance(batch, tuple) else batch
            count += int(images.shape[0])
    return count / (time.perf_counter() - start), count / (time.process_time() - cpu_start)


def decode_only(paths: list[str]) -> tf.data.Dataset:
    def load(path: tf.Tensor) -> tf.Tensor:
        return tf.image.resize(tf.io.decode_jpeg(tf.io.read_file(path), channels=3), [SIZE, SIZE])

    return tf.data.Dataset.from_tensor_slices(paths).map(load, num_parallel_calls=tf.data.AUTOTUNE) \
        .batch(BATCH).prefetch(tf.data.AUTOTUNE)


def random_layer_chain(train_dir: Path) -> tf.data.Dataset:
    """What a Keras 3 user writes today: four Random* layers, each resampling the image once."""
    params = AugmentParams()
    chain = keras.Sequential([
        keras.layers.RandomRotation(params.rotation_range / 360, fill_mode="nearest"),
        keras.layers.RandomTranslation(params.height_shift_range, params.width_shift_range, fill_mode="nearest"),
        keras.layers.RandomZoom(params.zoom_range, params.zoom_range, fill_mode="nearest"),
        keras.layers.RandomFlip("horizontal"),
    ])
    dataset = keras.utils.image_dataset_from_directory(train_dir, image_size=(SIZE, SIZE), batch_size=BATCH,
                                                       shuffle=True, seed=1, verbose=False)
    return dataset.map(lambda x, y: (chain(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE) \
        .prefetch(tf.data.AUTOTUNE)


def image_data_generator(train_dir: Path) -> Callable[[], Iterable] | None:
    try:
        from tf_keras.preprocessing.image import ImageDataGenerator
    except ImportError:
        return None
    generator = ImageDataGenerator(rescale=1.0 / 255, rotation_range=40, width_shift_range=0.2, height_shift_range=0.2,
                                   shear_range=0.2, zoom_range=0.2, horizontal_flip=True, fill_mode="nearest")
    flow = generator.flow_from_directory(str(train_dir), target_size=(SIZE, SIZE), batch_size=BATCH,
                                         class_mode="binary")
    return lambda: (flow[i] for i in range(len(flow)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, help="a split folder (default: the real subset split by id)")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per row")
    args = parser.parse_args()
    data = args.data_dir or prepare_data()
    folder = read_image_folder(data / "train")
    augment = AugmentParams()
    built = {  # each iterated once per epoch: a new pass reshuffles and draws new augmentation
        "decode-only bound (full decode + resize)": decode_only(list(folder.paths)),
        "ours, no augmentation": make_dataset(folder, SIZE, BATCH),
        "ours, augmentation (one resampling from the decoded image)": make_dataset(folder, SIZE, BATCH, shuffle=True,
                                                                                  augment=augment),
        "ours, augmentation, resize then transform": make_dataset(folder, SIZE, BATCH, shuffle=True, augment=augment,
                                                                  fused=False),
        "ours, no augmentation, memory cache": make_dataset(folder, SIZE, BATCH, cache=True),
        "ours, augmentation, memory cache": make_dataset(folder, SIZE, BATCH, shuffle=True, augment=augment,
                                                         cache=True),
        "keras image_dataset_from_directory": keras.utils.image_dataset_from_directory(
            data / "train", image_size=(SIZE, SIZE), batch_size=BATCH, verbose=False),
        "keras 3 Random* layer chain": random_layer_chain(data / "train"),
    }
    rows_spec: list[tuple[str, Callable[[], Iterable]]] = [(name, lambda d=d: d) for name, d in built.items()]
    idg = image_data_generator(data / "train")
    if idg is not None:
        rows_spec.append(("tf_keras ImageDataGenerator (report's parameters)", idg))
    rows = []
    for name, make_epoch in rows_spec:
        rate, cpu_rate = images_per_second(make_epoch, args.epochs if "ImageDataGenerator" not in name else 1)
        rows.append({"pipeline": name, "images_per_s": rate, "images_per_cpu_s": cpu_rate,
                     "load_average": os.getloadavg()[0]})
        print(f"{name}: {rate:,.0f} images/s, {cpu_rate:,.0f} images per CPU second", flush=True)
    bound = rows[0]  # the decode-only row
    for row in rows:
        row["x_decode_only"] = row["images_per_s"] / bound["images_per_s"]
        row["x_decode_only_cpu"] = row["images_per_cpu_s"] / bound["images_per_cpu_s"]
        if idg is not None:
            row["x_image_data_generator"] = row["images_per_s"] / rows[-1]["images_per_s"]
    print()
    print_table(rows, ["pipeline", "images_per_s", "x_decode_only", "x_image_data_generator", "images_per_cpu_s",
                       "x_decode_only_cpu", "load_average"])
    write_results("pipeline", {"data": data_description(data), "images": len(folder), "image_size": SIZE,
                               "batch_size": BATCH, "epochs_timed": args.epochs, "rows": rows})


if __name__ == "__main__":
    main()
