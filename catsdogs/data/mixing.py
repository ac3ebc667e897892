"""mixup and CutMix: training batches whose images, and labels, are blends of two images.

- mixup (Zhang et al., 2018): ``lam * x + (1 - lam) * x'``, with the labels blended the same way;
- CutMix (Yun et al., 2019): a box of ``x'`` pasted into ``x``, the labels weighted by the box's area.

``lam`` is drawn per batch from Beta(alpha, alpha); each image is paired with the batch's reversed order
(what timm does: no second pipeline, and every image is used once as each partner). With both on, each
batch uses one of the two at random. The labels leave as soft targets: a float per image for two classes
(the probability of the second, as the sigmoid reads it), a one-hot blend ``(N, classes)`` for more, which
``training.fitting``'s loss and accuracy accept beside the integer labels of the validation split.
Deterministic for a seed: the ``k``-th batch of every epoch draws the same ``lam`` (its images differ, since
the order is reshuffled each epoch).
"""

from __future__ import annotations

import tensorflow as tf


def _beta(alpha: float, seed: tf.Tensor) -> tf.Tensor:
    """One draw of Beta(alpha, alpha), as the ratio of two Gamma(alpha) draws."""
    first = tf.random.stateless_gamma([], seed, alpha=alpha)
    second = tf.random.stateless_gamma([], seed + 1, alpha=alpha)
    return first / (first + second)


def soft_targets(labels: tf.Tensor, num_classes: int) -> tf.Tensor:
    """Integer labels as the targets a blend is made of: float ``(N,)`` for two classes, one-hot otherwise."""
    if num_classes == 2:
        return tf.cast(labels, tf.float32)
    return tf.one_hot(tf.cast(labels, tf.int32), num_classes)


def cutmix_mask(height: int, width: int, lam: tf.Tensor, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """A box covering about ``1 - lam`` of the image at a uniform centre, clipped to the image, as a
    ``(H, W, 1)`` float mask (1 inside), and the share of the image it actually covers."""
    ratio = tf.sqrt(1.0 - lam)
    box_h, box_w = ratio * height, ratio * width
    centre = tf.random.stateless_uniform([2], seed + 2) * tf.constant([height, width], tf.float32)
    top, bottom = tf.clip_by_value(centre[0] - box_h / 2, 0, height), tf.clip_by_value(centre[0] + box_h / 2, 0, height)
    left, right = tf.clip_by_value(centre[1] - box_w / 2, 0, width), tf.clip_by_value(centre[1] + box_w / 2, 0, width)
    top, bottom, left, right = (tf.cast(tf.round(v), tf.int32) for v in (top, bottom, left, right))
    rows, columns = tf.range(height)[:, None], tf.range(width)[None, :]
    inside = (rows >= top) & (rows < bottom) & (columns >= left) & (columns < right)
    mask = tf.cast(inside, tf.float32)[..., None]
    return mask, tf.reduce_mean(mask)


def mix_batch(images: tf.Tensor, labels: tf.Tensor, num_classes: int, mixup: float, cutmix: float,
              seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """One batch blended by mixup or CutMix (``alpha`` 0: that one off); ``seed`` is a stateless seed pair."""
    targets = soft_targets(labels, num_classes)
    partner_images, partner_targets = tf.reverse(images, [0]), tf.reverse(targets, [0])

    def by_mixup() -> tuple[tf.Tensor, tf.Tensor]:
        lam = _beta(mixup, seed)
        return lam * images + (1 - lam) * partner_images, lam * targets + (1 - lam) * partner_targets

    def by_cutmix() -> tuple[tf.Tensor, tf.Tensor]:
        mask, covered = cutmix_mask(images.shape[1], images.shape[2], _beta(cutmix, seed), seed)
        lam = 1.0 - covered
        return images * (1 - mask) + partner_images * mask, lam * targets + (1 - lam) * partner_targets

    if mixup and cutmix:
        return tf.cond(tf.random.stateless_uniform([], seed + 3) < 0.5, by_mixup, by_cutmix)
    return by_mixup() if mixup else by_cutmix()


def mix_dataset(dataset: tf.data.Dataset, num_classes: int, mixup: float, cutmix: float,
                seed: int) -> tf.data.Dataset:
    """``dataset``'s batches (images, integer labels) blended; images keep their shape, labels become targets."""
    def mix(index: tf.Tensor, batch: tuple[tf.Tensor, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        pair = tf.stack([tf.constant(seed, tf.int64), index])
        return mix_batch(batch[0], batch[1], num_classes, mixup, cutmix, tf.cast(pair, tf.int32))

    return dataset.enumerate().map(mix, num_parallel_calls=tf.data.AUTOTUNE)
