"""mixup and CutMix: the blends by their definitions, soft targets for 2 and N classes, and training with them."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from helpers.images import make_split_folder
from helpers.training import tiny_config

from catsdogs.config import ConfigError, TrainConfig
from catsdogs.data.files import read_image_folder
from catsdogs.data.mixing import mix_batch
from catsdogs.data.pipeline import make_dataset, mixed
from catsdogs.models.heads import class_probabilities
from catsdogs.training.rundir import read_history
from catsdogs.training.trainer import train


def two_images() -> tuple[np.ndarray, np.ndarray]:
    images = np.zeros((2, 8, 8, 3), np.float32)
    images[1] = 100.0  # image 0 black, image 1 grey; labels 1 and 0
    return images, np.array([1, 0], np.int32)


def test_mixup_blends_images_and_labels_with_the_same_weight():
    images, labels = two_images()
    mixed, targets = mix_batch(images, labels, 2, mixup=0.4, cutmix=0.0, rng=np.random.default_rng(7))
    lam = float(targets[0])  # label 1 blended with label 0 gives lam itself
    assert 0 < lam < 1 and float(targets[1]) == pytest.approx(1 - lam)
    np.testing.assert_allclose(mixed[0], (1 - lam) * 100.0, rtol=1e-5)  # lam of black, 1 - lam of grey
    again, _ = mix_batch(images, labels, 2, mixup=0.4, cutmix=0.0, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(again, mixed)  # the same seed, the same blend


def test_cutmix_weighs_the_labels_by_the_pasted_area():
    images, labels = two_images()
    for seed in range(5):
        mixed, targets = mix_batch(images, labels, 2, mixup=0.0, cutmix=1.0, rng=np.random.default_rng(seed))
        pasted = float(np.mean(mixed[0] == 100.0))  # the grey box inside the black image
        assert float(targets[0]) == pytest.approx(1 - pasted)
        assert set(np.unique(mixed[0])) <= {0.0, 100.0}  # pasted, not blended


def test_n_classes_get_one_hot_blends_that_sum_to_one():
    images = np.random.default_rng(1).uniform(0, 255, (4, 8, 8, 3)).astype(np.float32)
    _, targets = mix_batch(images, np.array([0, 1, 2, 0]), 3, mixup=0.2, cutmix=1.0, rng=np.random.default_rng(2))
    assert targets.shape == (4, 3) and targets.dtype == np.float32
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, rtol=1e-6)
    assert np.count_nonzero(targets[0]) in (1, 2)


@pytest.mark.parametrize("num_classes", [2, 3])
def test_the_tf_data_pipeline_mixes_through_the_same_function_with_known_shapes(num_classes):
    """One implementation: tf.data's batches are mix_batch's answer for (seed, the batch's place in the epoch)."""
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (6, 8, 8, 3)).astype(np.float32)
    labels = (np.arange(6) % num_classes).astype(np.int32)
    batches = tf.data.Dataset.from_tensor_slices((images, labels)).batch(3, drop_remainder=True)
    blended = mixed(batches, num_classes, mixup=0.2, cutmix=1.0, seed=5)
    assert blended.element_spec[0].shape == (3, 8, 8, 3)
    assert blended.element_spec[1].shape == ((3,) if num_classes == 2 else (3, num_classes))
    for index, (got_images, got_targets) in enumerate(blended):
        want_images, want_targets = mix_batch(images[3 * index:3 * index + 3], labels[3 * index:3 * index + 3],
                                              num_classes, 0.2, 1.0, np.random.default_rng([5, index]))
        np.testing.assert_array_equal(got_images.numpy(), want_images)
        np.testing.assert_array_equal(got_targets.numpy(), want_targets)
    first = [batch[1].numpy() for batch in blended]
    np.testing.assert_array_equal(first, [batch[1].numpy() for batch in blended])  # the k-th batch, every epoch


@pytest.mark.parametrize("classes", [("cats", "dogs"), ("birds", "cats", "dogs")])
def test_training_with_mixup_and_cutmix_scores_validation_against_plain_labels(tmp_path, classes):
    data = make_split_folder(tmp_path / "data", {"train": 6, "validation": 3, "test": 3}, classes=classes)
    run = train(tiny_config(data, tmp_path, epochs=2, mixup=0.2, cutmix=1.0, optimizer="adam", lr=1e-3,
                            label_smoothing=0.1))
    history = read_history(run.run_dir / "history.csv")
    # The best epoch's validation accuracy is the kept model's accuracy on the unblended images and their labels.
    validation = read_image_folder(data / "validation")
    images = make_dataset(validation, run.config.image_size, batch_size=8).map(lambda x, y: x)
    predicted = class_probabilities(run.model.predict(images, verbose=0), len(classes)).argmax(axis=1)
    assert run.metrics["best_val_accuracy"] == max(history["val_accuracy"])
    assert run.metrics["best_val_accuracy"] == pytest.approx(np.mean(predicted == np.array(validation.labels)))
    assert run.metrics["test"]["images"] == 3 * len(classes)


def test_stored_features_cannot_be_mixed():
    with pytest.raises(ConfigError, match="mixup and cutmix blend images"):
        TrainConfig(mixup=0.2, cache_features=True)
