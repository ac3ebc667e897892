"""``--pipeline pydataset``: a split folder's batches from Pillow and NumPy through ``keras.utils.PyDataset``.

The same batches as the tf.data pipeline (``catsdogs.data.pipeline.make_dataset``), without TensorFlow, so
that the JAX backend trains, evaluates and predicts where TensorFlow is not installed:

- pixels from ``data.pillow_decode`` (TensorFlow's reduced-scale decode and bilinear resize; JPEGs differ by
  libjpeg's IDCT, about 1 level on average);
- float32 RGB in 0-255 and int32 labels; ``drop_remainder`` and ``pad_remainder`` as there (blanks weighing 0);
- a new order each epoch, drawn from the seed and the epoch's number, so a run repeats exactly (a run
  continued with ``--resume`` counts its epochs from the restart, so its orders are drawn anew);
- augmentation with ``affine_ops`` (the ``RandomAffine`` layer's ``keras.ops`` maths) and mixup / CutMix by
  ``data.mixing``, the one implementation both pipelines call (a Beta draw per batch, the batch's reversed
  order as partners).

It is slower than tf.data (Python threads decode, no XLA-fused warp), which is why the trainer augments
inside the model with this pipeline unless ``--augment-in pipeline`` is asked for. ``cache=True`` keeps
the decoded uint8 images in memory after their first use.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import keras
import numpy as np

from catsdogs.affine_ops import augment_batch
from catsdogs.config import DEFAULT_IMAGE_SIZE, DEFAULT_SEED, AugmentParams
from catsdogs.data.files import ImageFolder
from catsdogs.data.images import ImageCheck, checked_folder
from catsdogs.data.mixing import mix_batch
from catsdogs.data.pillow_decode import decode_checked

WORKERS = min(4, os.cpu_count() or 1)  # threads: Pillow decodes and NumPy resizes outside the GIL


class FolderBatches(keras.utils.PyDataset):
    """Batches of ``(images float32 (N, S, S, 3) in 0-255, labels int32 (N,))`` (and sample weights with
    ``pad_remainder``) from a checked split folder; ``images_only`` leaves the labels out (for ``predict``)."""

    def __init__(self, folder: ImageFolder, image_size: int = DEFAULT_IMAGE_SIZE, batch_size: int = 32,
                 shuffle: bool = False, augment: AugmentParams | None = None, cache: bool = False,
                 seed: int = DEFAULT_SEED, drop_remainder: bool = False, pad_remainder: bool = False,
                 images_only: bool = False, mixing: tuple[int, float, float] | None = None,
                 workers: int = WORKERS) -> None:
        super().__init__(workers=workers, use_multiprocessing=False)
        self.folder, self.image_size, self.batch_size = folder, image_size, batch_size
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        self.augment = augment if augment is not None and not augment.is_identity else None
        self.drop_remainder, self.pad_remainder, self.images_only = drop_remainder, pad_remainder, images_only
        self.mixing = mixing  # (classes, mixup alpha, CutMix alpha)
        self.labels = np.asarray(folder.labels, np.int32)
        self.order = self._order()
        self._cache: dict[int, np.ndarray] | None = {} if cache else None

    def __len__(self) -> int:
        if self.drop_remainder:
            return len(self.folder) // self.batch_size
        return math.ceil(len(self.folder) / self.batch_size)

    def _order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.folder))
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.folder))

    def on_epoch_end(self) -> None:
        """Keras calls this between epochs, with no batch being read: the next epoch's order."""
        self.epoch += 1
        self.order = self._order()

    def _image(self, index: int) -> np.ndarray:
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        check = ImageCheck(self.folder.paths[index], orientation=self.folder.orientations[index])
        image = decode_checked(check, self.image_size)
        if self._cache is not None:
            self._cache[index] = image
        return image

    def __getitem__(self, batch: int) -> tuple[np.ndarray, ...]:
        chosen = self.order[batch * self.batch_size:(batch + 1) * self.batch_size]
        images = np.stack([self._image(int(i)) for i in chosen]).astype(np.float32)
        labels = self.labels[chosen]
        if self.images_only:
            return (images,)
        rng_seed = [self.seed, self.epoch, batch]
        if self.augment is not None:
            images = keras.ops.convert_to_numpy(augment_batch(images, self.augment, int(np.random.default_rng(
                rng_seed).integers(2**31))))
        if self.mixing is not None:  # its own stream: not the augmentation's draws again
            return mix_batch(images, labels, *self.mixing, np.random.default_rng([*rng_seed, 1]))
        if self.pad_remainder:
            return padded(images, labels, self.batch_size)
        return images, labels


def padded(images: np.ndarray, labels: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A short batch filled with black images weighing 0, and every batch's sample weights."""
    blanks = batch_size - len(images)
    weights = np.concatenate([np.ones(len(images), np.float32), np.zeros(blanks, np.float32)])
    images = np.concatenate([images, np.zeros((blanks, *images.shape[1:]), np.float32)])
    return images, np.concatenate([labels, np.zeros(blanks, np.int32)]), weights


def make_dataset(folder: ImageFolder | str | Path, image_size: int = DEFAULT_IMAGE_SIZE, batch_size: int = 32,
                 shuffle: bool = False, augment: AugmentParams | None = None, cache: bool | str = False,
                 seed: int = DEFAULT_SEED, drop_remainder: bool = False, pad_remainder: bool = False) -> FolderBatches:
    """``pipeline.make_dataset``'s arguments and batches. ``cache=True`` keeps decoded images in memory; a cache
    file path (asked for when they would not fit) caches nothing here, since this pipeline has no file format."""
    return FolderBatches(checked_folder(folder, image_size), image_size, batch_size, shuffle, augment, cache is True,
                         seed, drop_remainder, pad_remainder)


def images_only(dataset: FolderBatches) -> FolderBatches:
    """The same batches, in the same order, without labels: what ``model.predict`` takes."""
    view = FolderBatches(dataset.folder, dataset.image_size, dataset.batch_size, images_only=True,
                         workers=dataset.workers)
    view._cache = dataset._cache  # decoded once for both
    return view


def mixed(dataset: FolderBatches, num_classes: int, mixup: float, cutmix: float, seed: int) -> FolderBatches:
    """The training batches blended by mixup or CutMix (``data.mixing``'s rules), drawn from the dataset's seed
    (``seed`` is the same: ``pipeline.mixed``'s signature)."""
    dataset.mixing = (num_classes, mixup, cutmix)
    return dataset

