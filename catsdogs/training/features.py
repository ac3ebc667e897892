"""Cached-feature training: run the frozen layers once, train the rest on their stored outputs.

With a frozen base, every epoch recomputes the same features; on a CPU that is nearly all the time
(VGG19 forward: about 4 images/s here). ``--cache-features`` splits the classifier at the input of
its first trainable layer:

    prefix = Preprocess -> base layers below the cut        (frozen: run once per image)
    suffix = base layers above the cut -> head -> output    (trained, sharing the full model's layers)

The prefix's outputs for the training and validation sets are stored on disk under a key made of
everything they depend on (model, alpha, image size, cut, the frozen weights themselves, the data's
fingerprint, augmentation and copies), so a stale cache is never used. Training the suffix trains
the full model's own layers, so the saved model is an ordinary base + head that predicts from pixels.

Augmentation cannot change fixed features; ``--augment-copies K`` stores K augmented versions of
each training image besides the original, and every epoch draws one of the K + 1 per image.
With ``--unfreeze blockK`` the fine-tuning phase caches the output of block K-1, so only the
unfrozen blocks run per step.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from catsdogs.config import TrainConfig
from catsdogs.data.files import ImageFolder, data_fingerprint
from catsdogs.data.pipeline import make_dataset
from catsdogs.errors import UserError, parameter
from catsdogs.models.introspection import find_base
from catsdogs.models.registry import set_trainable
from catsdogs.outputs import temporary_path, write_json
from catsdogs.training.fitting import Phase, class_weights, compile_model, fit_phases, keras_verbosity

log = logging.getLogger(__name__)

CACHE_FORMAT = 1  # bump when the stored layout changes


def split_at_first_trainable(model: keras.Model) -> tuple[keras.Model, keras.Model, str]:
    """(prefix, suffix, cut name) of a classifier whose trainable flags are already set.

    The cut is the input of the base's first trainable layer, or the base's output when the whole
    base is frozen. Bases whose skip connections cross the cut cannot be split there.
    """
    base = find_base(model)
    if base is None:
        raise UserError(f"{parameter('cache_features')} needs a pretrained base; {model.name} has no frozen part")
    first_trainable = next((layer for layer in base.layers if layer.trainable and layer.weights), None)
    if first_trainable is None:
        cut, cut_name = base.output, f"{base.name}_output"
    else:
        cut, cut_name = first_trainable.input, f"{first_trainable.name}_input"
    try:
        lower = keras.Model(base.input, cut, name="frozen_lower")
        upper = keras.Model(cut, base.output, name="trainable_upper") if first_trainable is not None else None
    except ValueError as exc:
        below = first_trainable.name if first_trainable is not None else "its output"
        raise UserError(f"{base.name} cannot be cut below {below} (connections cross it): "
                        f"choose another {parameter('unfreeze')} or drop {parameter('cache_features')} "
                        f"({str(exc).splitlines()[0]})") from None

    images = keras.Input(model.input_shape[1:], name="image")
    prefix = keras.Model(images, lower(model.get_layer("preprocess")(images), training=False), name="prefix")

    features = keras.Input(tuple(cut.shape[1:]), name="features")
    x = upper(features, training=False) if upper is not None else features
    for layer in model.layers[model.layers.index(base) + 1:]:  # the head: a chain after the base
        x = layer(x)
    suffix = keras.Model(features, x, name="suffix")
    return prefix, suffix, cut_name


def frozen_layers_below_cut(model: keras.Model) -> int:
    """How many base layers with weights lie below the first trainable one (all of them if none trains)."""
    count, base = 0, find_base(model)
    for layer in base.layers if base is not None else []:
        if layer.trainable and layer.weights:
            break
        count += bool(layer.weights)
    return count


def weights_digest(model: keras.Model) -> str:
    digest = hashlib.sha256()
    for variable in model.weights:
        digest.update(variable.path.encode())
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(variable)).tobytes())
    return digest.hexdigest()


def cache_key(config: TrainConfig, prefix: keras.Model, cut_name: str, split: str, folder: ImageFolder) -> str:
    """Everything the stored features depend on; any change gives another key."""
    augmented = split == "train" and config.augment_copies > 0
    parts = {
        "format": CACHE_FORMAT, "model": config.model, "model_options": config.model_options,
        "image_size": config.image_size,
        "cut": cut_name, "weights": weights_digest(prefix), "data": data_fingerprint(config.data_dir),
        "files": folder.digest(),  # the files used, after the check left out the unusable ones
        "split": split, "copies": config.augment_copies if augmented else 0,
        "augment": config.augment_params.to_dict() if augmented else None, "seed": config.seed if augmented else None,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def compute_features(prefix: keras.Model, folder: ImageFolder, config: TrainConfig, copies: int,
                     batch_size: int) -> np.ndarray:
    """(1 + copies, N, ...) float32: the original images, then ``copies`` augmented passes."""
    passes = []
    for copy in range(1 + copies):
        augment = config.augment_params if copy > 0 else None
        dataset = make_dataset(folder, config.image_size, batch_size, augment=augment, seed=config.seed + copy)
        images = dataset.map(lambda x, y: x)
        passes.append(prefix.predict(images, verbose=keras_verbosity(config.verbose)))
    return np.stack(passes).astype(np.float32)


def cached_features(prefix: keras.Model, folder: ImageFolder, config: TrainConfig, cut_name: str, split: str,
                    batch_size: int) -> np.ndarray:
    """Load the split's features from the cache, computing and storing them first if needed."""
    key = cache_key(config, prefix, cut_name, split, folder)
    directory = Path(config.feature_cache) / key
    path = directory / "features.npy"
    if path.is_file():
        if config.verbose:
            log.info("features for %s from cache %s", split, directory)
        return np.load(path)
    copies = config.augment_copies if split == "train" else 0
    if config.verbose:
        log.info("computing %s features below the cut (%s) for %d images%s", split, cut_name, len(folder),
                 f" x {1 + copies} versions" if copies else "")
    features = compute_features(prefix, folder, config, copies, batch_size)
    # Whole or absent: written under a temporary name of its own (a concurrent run has another), then renamed.
    partial = temporary_path(directory)
    partial.mkdir(parents=True)
    try:
        np.save(partial / "features.npy", features)
        write_json(partial / "key.json", {"split": split, "cut": cut_name, "images": len(folder),
                                          "shape": list(features.shape)})
        partial.rename(directory)
    except OSError:
        if not (directory / "features.npy").is_file():  # not a concurrent run that stored the same features first
            raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return features


def feature_dataset(features: np.ndarray, labels: Sequence[int], batch_size: int, shuffle: bool,
                    seed: int) -> tf.data.Dataset:
    """Batches of (features, labels); with several stored versions, one is drawn per image and epoch."""
    versions, count = features.shape[0], features.shape[1]
    stored = tf.constant(features)
    label_tensor = tf.constant(np.asarray(labels, np.int32))
    dataset = tf.data.Dataset.range(count)
    if shuffle:
        dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    choices = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(batch_size)

    def gather(indices: tf.Tensor, draws: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        version = tf.math.floormod(draws[: tf.shape(indices)[0]], versions)
        return tf.gather_nd(stored, tf.stack([version, indices], axis=1)), tf.gather(label_tensor, indices)

    return tf.data.Dataset.zip((dataset, choices)).map(gather).prefetch(tf.data.AUTOTUNE)


def train_with_cached_features(model: keras.Model, config: TrainConfig, phases: list[Phase],
                               folders: dict[str, ImageFolder], datasets: dict[str, tf.data.Dataset], run_dir: Path,
                               strategy: tf.distribute.Strategy, callbacks: Sequence[keras.callbacks.Callback]) -> None:
    """The phases of ``fitting.fit_phases``, each on the features below its own cut."""
    if find_base(model) is None:
        raise UserError(f"{parameter('cache_features')} needs a pretrained base; {config.model} trains every layer")
    if config.augment and not config.augment_copies and config.verbose:
        log.info("note: cached features are fixed; augmentation applies only through --augment-copies K")
    num_classes = len(folders["train"].class_names)
    weights = class_weights(config, folders["train"].labels, num_classes)
    global_batch = config.batch_size * strategy.num_replicas_in_sync

    def phase_data(phase: Phase) -> tuple[keras.Model, dict[str, tf.data.Dataset]]:
        """The suffix to fit for this phase and its feature datasets (or the full model and images)."""
        with strategy.scope():
            set_trainable(model, phase.unfreeze)
        if frozen_layers_below_cut(model) == 0:  # nothing below the cut to run only once
            if config.verbose:
                log.info("phase %s: every base layer trains; training on images", phase.name)
            with strategy.scope():
                compile_model(model, config, phase.learning_rate, num_classes, weights)
            return model, datasets
        prefix, suffix, cut_name = split_at_first_trainable(model)
        feature_sets: dict[str, tf.data.Dataset] = {}
        for split in ("train", "validation"):
            if split in folders:
                stored = cached_features(prefix, folders[split], config, cut_name, split, global_batch)
                feature_sets[split] = feature_dataset(stored, folders[split].labels, global_batch,
                                                      shuffle=split == "train", seed=config.seed)
        with strategy.scope():
            compile_model(suffix, config, phase.learning_rate, num_classes, weights)
        return suffix, feature_sets

    fit_phases(model, config, phases, run_dir, strategy, num_classes, callbacks, phase_data)
