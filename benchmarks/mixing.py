"""What mixup and CutMix cost the tf.data pipeline: the NumPy implementation through ``tf.numpy_function`` (the one
catsdogs has) against the TensorFlow-ops implementation it replaced (kept below, for this comparison only).

    python benchmarks/mixing.py [--data-dir SPLIT] [--epochs 3]

The training split (2,000 images at 150 px, batch 32) as training sees it: augmented, from the memory cache,
batches dropped at the remainder. Rows: no mixing; mixup 0.2, CutMix 1.0 and both, each through the two
implementations. Each figure is images/s (wall, and per CPU second of this process) over whole epochs after one
warm-up epoch. The reference is what decides: the ratio of each row to the TensorFlow-ops row in the same run.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterable

import tensorflow as tf
from common import data_description, prepare_data, print_table, write_results

from catsdogs.config import DEFAULT_IMAGE_SIZE, DEFAULT_SEED, AugmentParams
from catsdogs.data.files import read_image_folder
from catsdogs.data.pipeline import make_dataset, mixed

SIZE, BATCH = DEFAULT_IMAGE_SIZE, 32


# ---- the TensorFlow-ops implementation catsdogs had until 2026-12-07 (data/mixing.py), for the comparison only
def _beta(alpha: float, seed: tf.Tensor) -> tf.Tensor:
    first = tf.random.stateless_gamma([], seed, alpha=alpha)
    second = tf.random.stateless_gamma([], seed + 1, alpha=alpha)
    return first / (first + second)


def _cutmix_mask(height: int, width: int, lam: tf.Tensor, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    ratio = tf.sqrt(1.0 - lam)
    box_h, box_w = ratio * height, ratio * width
    centre = tf.random.stateless_uniform([2], seed + 2) * tf.constant([height, width], tf.float32)
    top, bottom = tf.clip_by_value(centre[0] - box_h / 2, 0, height), tf.clip_by_value(centre[0] + box_h / 2, 0, height)
    left, right = tf.clip_by_value(centre[1] - box_w / 2, 0, width), tf.clip_by_value(centre[1] + box_w / 2, 0, width)
    top, bottom, left, right = (tf.cast(tf.round(v), tf.int32) for v in (top, bottom, left, right))
    rows, columns = tf.range(height)[:, None], tf.range(width)[None, :]
    mask = tf.cast((rows >= top) & (rows < bottom) & (columns >= left) & (columns < right), tf.float32)[..., None]
    return mask, tf.reduce_mean(mask)


def tensorflow_ops_mixed(dataset: tf.data.Dataset, mixup: float, cutmix: float, seed: int) -> tf.data.Dataset:
    def mix(index: tf.Tensor, batch: tuple[tf.Tensor, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        images, labels = batch
        pair = tf.cast(tf.stack([tf.constant(seed, tf.int64), index]), tf.int32)
        targets = tf.cast(labels, tf.float32)
        partner_images, partner_targets = tf.reverse(images, [0]), tf.reverse(targets, [0])

        def by_mixup() -> tuple[tf.Tensor, tf.Tensor]:
            lam = _beta(mixup, pair)
            return lam * images + (1 - lam) * partner_images, lam * targets + (1 - lam) * partner_targets

        def by_cutmix() -> tuple[tf.Tensor, tf.Tensor]:
            mask, covered = _cutmix_mask(images.shape[1], images.shape[2], _beta(cutmix, pair), pair)
            lam = 1.0 - covered
            return images * (1 - mask) + partner_images * mask, lam * targets + (1 - lam) * partner_targets

        if mixup and cutmix:
            return tf.cond(tf.random.stateless_uniform([], pair + 3) < 0.5, by_mixup, by_cutmix)
        return by_mixup() if mixup else by_cutmix()

    return dataset.enumerate().map(mix, num_parallel_calls=tf.data.AUTOTUNE)
# ---- end of the replaced implementation


def images_per_second(dataset: Iterable, epochs: int) -> tuple[float, float]:
    for _ in dataset:  # warm-up: fills the memory cache
        pass
    count, start, cpu_start = 0, time.perf_counter(), time.process_time()
    for _ in range(epochs):
        for images, _labels in dataset:
            count += int(images.shape[0])
    return count / (time.perf_counter() - start), count / (time.process_time() - cpu_start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=lambda text: __import__("pathlib").Path(text),
                        help="a split folder (default: the real subset split by id)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per row")
    args = parser.parse_args()
    data = args.data_dir or prepare_data()
    folder = read_image_folder(data / "train")

    def training_batches() -> tf.data.Dataset:
        return make_dataset(folder, SIZE, BATCH, shuffle=True, augment=AugmentParams(), cache=True,
                            drop_remainder=True)

    rows = []
    settings = [("none", 0.0, 0.0), ("mixup 0.2", 0.2, 0.0), ("CutMix 1.0", 0.0, 1.0), ("both", 0.2, 1.0)]
    for name, mixup, cutmix in settings:
        implementations = {"no mixing": training_batches()} if not (mixup or cutmix) else {
            "TensorFlow ops (replaced)": tensorflow_ops_mixed(training_batches(), mixup, cutmix, DEFAULT_SEED),
            "NumPy through tf.numpy_function (catsdogs)": mixed(training_batches(), 2, mixup, cutmix, DEFAULT_SEED)}
        for implementation, dataset in implementations.items():
            rate, cpu_rate = images_per_second(dataset, args.epochs)
            rows.append({"mixing": name, "implementation": implementation, "images_per_s": rate,
                         "images_per_cpu_s": cpu_rate, "load_average": os.getloadavg()[0]})
            print(f"{name}, {implementation}: {rate:,.0f} images/s, {cpu_rate:,.0f} per CPU second", flush=True)
    for row in rows:
        reference = next(r for r in rows if r["mixing"] == row["mixing"] and r["implementation"] != row[
            "implementation"] and "TensorFlow" in r["implementation"]) if "NumPy" in row["implementation"] else row
        row["x_tensorflow_ops"] = row["images_per_s"] / reference["images_per_s"]
    print_table(rows, ["mixing", "implementation", "images_per_s", "images_per_cpu_s", "x_tensorflow_ops"])
    write_results("mixing", {"data": data_description(data), "image_size": SIZE, "batch_size": BATCH,
                             "epochs": args.epochs, "rows": rows})


if __name__ == "__main__":
    main()
