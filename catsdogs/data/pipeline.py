"""tf.data pipelines from split folders and file lists: the input path training, evaluation and prediction share.

The pipeline reads files in parallel, decodes them at reduced scale (``catsdogs.data.decode``),
optionally caches the decoded uint8 images, shuffles, batches, augments a whole batch with one fused
affine transform per image (``catsdogs.data.augment``), and prefetches. An augmented epoch with no cache
skips the resize: each batch holds the images as decoded, and one resampling both squashes and transforms
them (``affine.resample_sources``). Images leave the pipeline as float32 RGB in 0-255: every model does
its own preprocessing inside.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from catsdogs.config import DEFAULT_IMAGE_SIZE, DEFAULT_SEED, AugmentParams
from catsdogs.data.augment import augment_dataset, augment_sources_dataset
from catsdogs.data.decode import decode_and_resize, decode_known, decode_upright, describe_decode_failure
from catsdogs.data.files import Failure, ImageFolder
from catsdogs.data.images import ImageCheck, checked_folder
from catsdogs.data.mixing import mix_batch
from catsdogs.errors import UserError

# A fused batch holds each image as decoded; one decoding to more than this many squares of the output size is
# resized first, so that a batch stays small (a 32-image batch at 150 px: at most 17 MB).
MAX_SOURCE_SQUARES = 8


def make_dataset(
    folder: ImageFolder | str | Path,
    image_size: int = DEFAULT_IMAGE_SIZE,
    batch_size: int = 32,
    shuffle: bool = False,
    augment: AugmentParams | None = None,
    cache: bool | str = False,
    seed: int = DEFAULT_SEED,
    drop_remainder: bool = False,
    pad_remainder: bool = False,
    fused: bool = True,
) -> tf.data.Dataset:
    """Batches of ``(images float32 (N, S, S, 3) in 0-255, labels int32 (N,))`` from a split folder.

    ``cache=True`` keeps the decoded uint8 images in memory after the first pass (a string caches to
    that file instead); shuffling happens after the cache, so every epoch has a new order.
    The dataset is deterministic for a given ``seed``: order and augmentation repeat exactly.

    Several training processes need every batch whole (each takes its share of each global batch, and a
    short last batch would give them unequal steps): ``drop_remainder`` for training, whose shuffle drops
    other images each epoch, and ``pad_remainder`` for evaluation, which fills the last batch with blank
    images and adds sample weights ``(images, labels, weights)``, 0 for the blanks, so that every image
    counts once and no blank counts.

    Augmented with no cache, the resize and the augmentation are one resampling of the decoded image
    (``source_batches``), with the same order and transforms as resizing first (what every cached epoch does):
    about 0.9x the images per CPU second of decoding alone, against 0.65x resizing first, and more images per wall
    second in each of three runs on 2 cores (BENCHMARKS.md section 1). ``fused=False`` resizes first, to compare.
    """
    folder = checked_folder(folder, image_size)
    autotune = tf.data.AUTOTUNE
    if augment is not None and not augment.is_identity and fused and not cache and not pad_remainder:
        batches = source_batches(folder, image_size, batch_size, shuffle, seed, drop_remainder)
        return augment_sources_dataset(batches, augment, image_size, seed).prefetch(autotune)
    dataset = decoded_images(folder, image_size, shuffle, cache, seed)
    if pad_remainder:
        dataset = padded_with_blanks(dataset, -len(folder) % batch_size, image_size)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder or pad_remainder)
    dataset = dataset.map(lambda images, *rest: (tf.cast(images, tf.float32), *rest), num_parallel_calls=autotune)
    if augment is not None and not augment.is_identity:
        dataset = augment_dataset(dataset, augment, seed)
    return dataset.prefetch(autotune)


def decoded_images(folder: ImageFolder, image_size: int, shuffle: bool, cache: bool | str,
                   seed: int) -> tf.data.Dataset:
    """``(uint8 image, int32 label)`` per file of a checked folder, resized: in the folder's order, or shuffled anew
    each pass. ``cache`` keeps each decode group's images (in memory, or in files ``<cache>-<group>``), shuffled
    after the cache."""
    return _decoded_in_groups(folder, list(zip(folder.scales, folder.orientations)),
                              lambda path, key: decode_known(tf.io.read_file(path), image_size, *key),
                              shuffle, cache, seed)


def source_batches(folder: ImageFolder, image_size: int, batch_size: int, shuffle: bool, seed: int,
                   drop_remainder: bool = False) -> tf.data.Dataset:
    """Batches of ``((uint8 pixel rows (N, P, 3), sizes (N, 2)), labels)``: each file decoded upright at its decode
    scale and not resized, in ``affine.resample_sources``' layout, in the order ``decoded_images`` gives.

    P, the longest image in the folder, is one fixed length, so XLA compiles the resampling once (twice with a
    short last batch). A file decoding to over ``MAX_SOURCE_SQUARES`` squares of ``image_size`` is resized to the
    square first, which keeps a batch's memory bounded; it then resamples as a cached image does.
    """
    limit = MAX_SOURCE_SQUARES * image_size * image_size
    shrink = [pixels > limit for pixels in folder.pixels]
    keys = list(zip(folder.scales, folder.orientations, shrink))
    length = max(image_size * image_size if big else pixels for pixels, big in zip(folder.pixels, shrink))

    def decode(path: tf.Tensor, key: tuple[int, int, bool]) -> tuple[tf.Tensor, tf.Tensor]:
        scale, orientation, big = key
        contents = tf.io.read_file(path)
        image = decode_known(contents, image_size, scale, orientation) if big else decode_upright(
            contents, scale, orientation)
        return tf.reshape(image, [-1, 3]), tf.shape(image)[:2]

    dataset = _decoded_in_groups(folder, keys, decode, shuffle, False, seed)
    return dataset.padded_batch(batch_size, padded_shapes=(([length, 3], [2]), []), drop_remainder=drop_remainder)


def _decoded_in_groups(folder: ImageFolder, keys: list[tuple], decode: Callable[[tf.Tensor, tuple], object],
                       shuffle: bool, cache: bool | str, seed: int) -> tf.data.Dataset:
    """``(decode(path, key), label)`` per file of a checked folder, the files grouped by ``keys`` (one per file).

    Each group decodes through its own graph with no control flow: ``decode`` gets the group's key as Python
    values (``decode.decode_known``, a third faster than ``decode_and_resize``'s ``cond`` and ``switch_case``).
    A choice sequence, the files' groups in the folder's order, draws the groups back into one stream:
    unshuffled, that is the folder's order; shuffled (the choices, and each group within itself), every order
    of the files is as likely as under one shuffle of them all, and the order depends only on the seed and the
    groups, so a cached and an uncached pipeline give the same one.
    """
    if not folder.paths:
        raise UserError(f"{folder.root} holds no usable image; add images")
    groups = sorted(set(keys))
    parts = []
    for number, key in enumerate(groups):
        members = [i for i, file_key in enumerate(keys) if file_key == key]
        part = tf.data.Dataset.from_tensor_slices(([folder.paths[i] for i in members],
                                                   tf.constant([folder.labels[i] for i in members], tf.int32)))
        if shuffle and not cache:  # shuffling names is cheaper than shuffling decoded images
            part = part.shuffle(len(members), seed=seed + number, reshuffle_each_iteration=True)
        part = part.map(lambda path, label, key=key: (decode(path, key), label), num_parallel_calls=tf.data.AUTOTUNE)
        if cache:
            part = part.cache(f"{cache}-{number}" if isinstance(cache, str) else "")
            if shuffle:
                part = part.shuffle(len(members), seed=seed + number, reshuffle_each_iteration=True)
        parts.append(part)
    if len(parts) == 1:
        return parts[0]
    choices = tf.data.Dataset.from_tensor_slices(tf.constant([groups.index(key) for key in keys], tf.int64))
    if shuffle:
        choices = choices.shuffle(len(keys), seed=seed, reshuffle_each_iteration=True)
    # Its size known, so the trainer repeats it under one iterator (training.fitting.repeated).
    chosen = tf.data.Dataset.choose_from_datasets(parts, choices)
    return chosen.apply(tf.data.experimental.assert_cardinality(len(keys)))


def images_only(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """The same batches, in the same order, without labels (or weights): what ``model.predict`` takes."""
    return dataset.map(lambda images, *_: images)


def mixed(dataset: tf.data.Dataset, num_classes: int, mixup: float, cutmix: float, seed: int) -> tf.data.Dataset:
    """The training batches blended by mixup or CutMix: ``data.mixing.mix_batch`` through ``tf.numpy_function``,
    each batch drawing from a generator seeded by ``seed`` and its place in the epoch (so the k-th batch of every
    epoch draws the same blend; its images differ, since the order is reshuffled)."""
    def blend(index: np.ndarray, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        generator = np.random.default_rng([seed % 2**63, int(index)])
        return mix_batch(images, labels, num_classes, mixup, cutmix, generator)

    def mix(index: tf.Tensor, batch: tuple[tf.Tensor, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        images, labels = batch
        blended, targets = tf.numpy_function(blend, [index, images, labels], [tf.float32, tf.float32], stateful=False)
        blended.set_shape(images.shape)
        targets.set_shape(labels.shape if num_classes == 2 else labels.shape.concatenate([num_classes]))
        return blended, targets

    return dataset.enumerate().map(mix, num_parallel_calls=tf.data.AUTOTUNE)


def padded_with_blanks(dataset: tf.data.Dataset, blanks: int, image_size: int) -> tf.data.Dataset:
    """``(image, label)`` elements as ``(image, label, 1.0)``, followed by ``blanks`` black images weighing 0."""
    weighted = dataset.map(lambda image, label: (image, label, tf.constant(1.0)))
    blank = (tf.zeros([image_size, image_size, 3], tf.uint8), tf.constant(0, tf.int32), tf.constant(0.0))
    return weighted.concatenate(tf.data.Dataset.from_tensors(blank).repeat(blanks))


def make_path_dataset(paths: Sequence[str], image_size: int, batch_size: int = 32,
                      orientations: Sequence[int] | None = None) -> tf.data.Dataset:
    """Batches of ``(path, image float32)`` for prediction; files that fail to decode are dropped.

    ``orientations``: the EXIF orientation per path, from the file check (default: all upright).
    The caller compares the paths that come out with those that went in to report the failures.
    """
    orientations = list(orientations) if orientations is not None else [1] * len(paths)
    dataset = tf.data.Dataset.from_tensor_slices((list(paths), orientations))
    dataset = dataset.map(lambda path, orientation: (path, decode_and_resize(tf.io.read_file(path), image_size,
                                                                              orientation)),
                          num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.ignore_errors()
    dataset = dataset.batch(batch_size)
    dataset = dataset.map(lambda path, image: (path, tf.cast(image, tf.float32)))
    return dataset.prefetch(tf.data.AUTOTUNE)


def path_batches(checks: Sequence[ImageCheck], image_size: int, batch_size: int,
                 failures: list[Failure]) -> Iterator[tuple[list[str], np.ndarray]]:
    """``(paths, float32 images)`` batches of checked files through ``make_path_dataset``; a file that passed the
    check yet fails to decode here is dropped by the pipeline, noticed by comparing paths, and added to
    ``failures`` with its own description (the same contract as ``pillow_decode.decoded_batches``)."""
    if not checks:  # an empty list of paths would make a float dataset
        return
    paths = [check.path for check in checks]
    pending = iter(paths)  # the pipeline keeps the order and only drops files, so in and out align

    def fail(path: str) -> None:
        failures.append(Failure(path, describe_decode_failure(path, image_size)))

    for batch_paths, images in make_path_dataset(paths, image_size, batch_size, [c.orientation for c in checks]):
        batch = [p.decode() for p in batch_paths.numpy()]
        for path in batch:
            skipped = next(pending)
            while skipped != path:  # inputs the pipeline dropped before this one
                fail(skipped)
                skipped = next(pending)
        yield batch, images.numpy()
    for skipped in pending:
        fail(skipped)
