"""mixup and CutMix: training batches whose images, and labels, are blends of two images. One implementation,
in NumPy, for both pipelines: ``data.pydataset`` calls it in its worker threads, ``data.pipeline`` through
``tf.numpy_function`` (a tf.data map is a TensorFlow graph whatever the Keras backend, and Python inside it is
what ``numpy_function`` is for; its cost is measured in ``benchmarks/mixing.py``).

- mixup (Zhang et al., 2018): ``lam * x + (1 - lam) * x'``, with the labels blended the same way;
- CutMix (Yun et al., 2019): a box of ``x'`` pasted into ``x``, the labels weighted by the box's area.

``lam`` is drawn per batch from Beta(alpha, alpha); each image is paired with the batch's reversed order
(what timm does: no second pipeline, and every image is used once as each partner). With both on, each
batch uses one of the two at random. The labels leave as soft targets: a float per image for two classes
(the probability of the second, as the sigmoid reads it), a one-hot blend ``(N, classes)`` for more, which
``training.fitting``'s loss and accuracy accept beside the integer labels of the validation split.
Deterministic for a seed: the caller hands each batch its own generator, seeded by the run's seed and the
batch's place.
"""

from __future__ import annotations

import math

import numpy as np


def soft_targets(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Integer labels as the targets a blend is made of: float ``(N,)`` for two classes, one-hot otherwise."""
    labels = np.asarray(labels).astype(np.int64)
    if num_classes == 2:
        return labels.astype(np.float32)
    return np.eye(num_classes, dtype=np.float32)[labels]


def cutmix_mask(height: int, width: int, lam: float, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """A box covering about ``1 - lam`` of the image at a uniform centre, clipped to the image, as a ``(H, W, 1)``
    float mask (1 inside), and the share of the image it actually covers."""
    ratio = math.sqrt(1.0 - lam)
    centre_y, centre_x = rng.uniform(size=2) * (height, width)
    top, bottom = (round(float(np.clip(centre_y + side * ratio * height / 2, 0, height))) for side in (-1, 1))
    left, right = (round(float(np.clip(centre_x + side * ratio * width / 2, 0, width))) for side in (-1, 1))
    mask = np.zeros((height, width, 1), np.float32)
    mask[top:bottom, left:right] = 1.0
    return mask, float(mask.mean())


def mix_batch(images: np.ndarray, labels: np.ndarray, num_classes: int, mixup: float, cutmix: float,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One batch blended by mixup or CutMix (``alpha`` 0: that one off; both on: one at random), partners
    reversed; float32 images of the same shape and float32 soft targets."""
    images = np.asarray(images, np.float32)
    targets = soft_targets(labels, num_classes)
    partner_images, partner_targets = images[::-1], targets[::-1]
    use_mixup = bool(mixup) and (not cutmix or rng.uniform() < 0.5)
    if use_mixup:
        lam = float(rng.beta(mixup, mixup))
        mixed = lam * images + (1 - lam) * partner_images
    else:
        mask, covered = cutmix_mask(images.shape[1], images.shape[2], float(rng.beta(cutmix, cutmix)), rng)
        lam = 1.0 - covered
        mixed = images * (1 - mask) + partner_images * mask
    return mixed.astype(np.float32), (lam * targets + (1 - lam) * partner_targets).astype(np.float32)
