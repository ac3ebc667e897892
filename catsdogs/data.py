"""tf.data pipelines from split folders: the one input path that training, evaluation and notebooks share.

A split folder holds one sub-folder per class (``train/cats``, ``train/dogs``); labels are the
sorted sub-folder names, as in ``image_dataset_from_directory``. The pipeline reads files in parallel,
decodes JPEGs at reduced scale when they are at least twice the target size (libjpeg's DCT scaling
is far cheaper than decoding full size and resizing), resizes to a square ``image_size`` (squashing,
as the report's ``flow_from_directory`` did), optionally caches the decoded uint8 images, shuffles,
batches, augments a whole batch with one fused affine transform per image, and prefetches.

Images leave the pipeline as float32 RGB in 0-255: every model does its own preprocessing inside.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from catsdogs.augment import AugmentParams, augment_batch
from catsdogs.cli import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
SPLITS = ("train", "validation", "test")
DEFAULT_IMAGE_SIZE = 150
DEFAULT_SEED = 1337
_JPEG_SCALES = (1, 2, 4, 8)  # the ratios libjpeg can decode at


@dataclass(frozen=True)
class ImageFolder:
    """The images of one split: file paths and integer labels indexing ``class_names``."""

    root: Path
    class_names: tuple[str, ...]
    paths: tuple[str, ...]
    labels: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def read_image_folder(directory: str | Path, class_names: Sequence[str] | None = None) -> ImageFolder:
    """List a split folder's images. ``class_names`` (e.g. the training split's) must then all be present."""
    root = Path(directory)
    if not root.is_dir():
        raise UserError(f"{root} is not a folder; prepare a split with `python -m data_prep --out DIR` "
                        "and pass --data-dir DIR")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if class_names is None:
        class_names = found
        if len(class_names) < 2:
            raise UserError(f"{root} needs one sub-folder per class (at least 2), found {found or 'none'}")
    else:
        missing = [name for name in class_names if name not in found]
        if missing:
            raise UserError(f"{root} lacks the class folders {missing} (expected {list(class_names)})")
    paths: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(class_names):
        files = sorted(p for p in (root / name).iterdir() if is_image_file(p))
        if not files:
            raise UserError(f"{root / name} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        paths.extend(str(p) for p in files)
        labels.extend([label] * len(files))
    return ImageFolder(root, tuple(class_names), tuple(paths), tuple(labels))


def read_splits(data_dir: str | Path) -> dict[str, ImageFolder]:
    """The ``train`` / ``validation`` / ``test`` folders under ``data_dir`` that exist (train is required)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UserError(f"data folder {data_dir} does not exist; make one with "
                        f"`python -m data_prep --source PATH --out {data_dir}`")
    if not (data_dir / "train").is_dir():
        raise UserError(f"{data_dir} has no train/ folder; expected {data_dir}/train|validation|test/<class>/ "
                        "as written by `python -m data_prep`")
    train = read_image_folder(data_dir / "train")
    splits = {"train": train}
    for name in SPLITS[1:]:
        if (data_dir / name).is_dir():
            splits[name] = read_image_folder(data_dir / name, train.class_names)
    return splits


def data_fingerprint(data_dir: str | Path) -> str:
    """sha256 of the split's manifest.csv when data_prep wrote one, else of the sorted file list and sizes."""
    data_dir = Path(data_dir)
    manifest = data_dir / "manifest.csv"
    if manifest.is_file():
        return hashlib.sha256(manifest.read_bytes()).hexdigest()
    digest = hashlib.sha256()
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(data_dir)}\t{path.stat().st_size}\n".encode())
    return digest.hexdigest()


def decode_and_resize(contents: tf.Tensor, image_size: int) -> tf.Tensor:
    """Encoded image bytes -> uint8 (image_size, image_size, 3) RGB.

    JPEGs at least twice the target on their short side decode at 1/2, 1/4 or 1/8 scale; PNG, GIF
    (first frame) and BMP decode at full size. Grayscale and RGBA become RGB.
    """

    def decode_jpeg() -> tf.Tensor:
        shape = tf.image.extract_jpeg_shape(contents)
        short_side = tf.minimum(shape[0], shape[1])
        # Largest libjpeg ratio that keeps the short side >= the target size.
        index = tf.reduce_sum(tf.cast(short_side >= tf.constant(_JPEG_SCALES[1:]) * image_size, tf.int32))
        branches = [lambda r=r: tf.io.decode_jpeg(contents, channels=3, ratio=r) for r in _JPEG_SCALES]
        return tf.switch_case(index, branches)

    def decode_other() -> tf.Tensor:
        return tf.io.decode_image(contents, channels=3, expand_animations=False)

    image = tf.cond(tf.io.is_jpeg(contents), decode_jpeg, decode_other)
    image = tf.image.resize(image, [image_size, image_size], method="bilinear")
    image = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
    image.set_shape([image_size, image_size, 3])
    return image


def load_image(path: str | Path, image_size: int) -> tf.Tensor:
    """One file -> uint8 (image_size, image_size, 3), through the same decoder as the pipeline."""
    return decode_and_resize(tf.io.read_file(str(path)), image_size)


def make_dataset(
    folder: ImageFolder | str | Path,
    image_size: int = DEFAULT_IMAGE_SIZE,
    batch_size: int = 32,
    shuffle: bool = False,
    augment: AugmentParams | None = None,
    cache: bool | str = False,
    seed: int = DEFAULT_SEED,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Batches of ``(images float32 (N, S, S, 3) in 0-255, labels int32 (N,))`` from a split folder.

    ``cache=True`` keeps the decoded uint8 images in memory after the first pass (a string caches to
    that file instead); shuffling happens after the cache, so every epoch has a new order.
    The dataset is deterministic for a given ``seed``: order and augmentation repeat exactly.
    """
    if not isinstance(folder, ImageFolder):
        folder = read_image_folder(folder)
    autotune = tf.data.AUTOTUNE
    dataset = tf.data.Dataset.from_tensor_slices((list(folder.paths), list(folder.labels)))
    if shuffle and not cache:  # shuffling names is cheaper than shuffling decoded images
        dataset = dataset.shuffle(len(folder), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(
        lambda path, label: (decode_and_resize(tf.io.read_file(path), image_size), tf.cast(label, tf.int32)),
        num_parallel_calls=autotune,
    )
    if cache:
        dataset = dataset.cache(cache if isinstance(cache, str) else "")
        if shuffle:
            dataset = dataset.shuffle(len(folder), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    dataset = dataset.map(lambda images, labels: (tf.cast(images, tf.float32), labels), num_parallel_calls=autotune)
    if augment is not None and not augment.is_identity:
        dataset = augment_dataset(dataset, augment, seed)
    return dataset.prefetch(autotune)


def augment_dataset(dataset: tf.data.Dataset, params: AugmentParams, seed: int = DEFAULT_SEED) -> tf.data.Dataset:
    """Augment the images of a batched ``(images, labels)`` dataset; new draws each epoch, same ones per seed."""
    # One stateless seed per batch from a seeded stream that is re-drawn every epoch.
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    return tf.data.Dataset.zip((dataset, seeds)).map(
        lambda batch, batch_seed: (augment_batch(batch[0], params, batch_seed, compiled=True), batch[1]),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def make_path_dataset(paths: Sequence[str], image_size: int, batch_size: int = 32) -> tf.data.Dataset:
    """Batches of ``(path, image float32)`` for prediction; files that fail to decode are dropped.

    The caller compares the paths that come out with those that went in to report the failures.
    """
    dataset = tf.data.Dataset.from_tensor_slices(list(paths))
    dataset = dataset.map(lambda path: (path, decode_and_resize(tf.io.read_file(path), image_size)),
                          num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.ignore_errors()
    dataset = dataset.batch(batch_size)
    dataset = dataset.map(lambda path, image: (path, tf.cast(image, tf.float32)))
    return dataset.prefetch(tf.data.AUTOTUNE)
