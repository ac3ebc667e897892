"""--pipeline pydataset: the tf.data pipeline's batches from Pillow and NumPy (pixels, labels, order, shuffling,
remainders, mixup and CutMix), training through it, and prediction's decoder where TensorFlow is absent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers.images import make_split_folder, write_image
from helpers.training import tiny_config

from catsdogs.config import AugmentParams
from catsdogs.data import sources
from catsdogs.data.files import read_image_folder
from catsdogs.data.images import checked_folder
from catsdogs.data.pipeline import make_dataset as make_tf_dataset
from catsdogs.data.pydataset import FolderBatches, images_only, make_dataset
from catsdogs.errors import UserError
from catsdogs.models.saving import load_model
from catsdogs.runtime.opening import open_classifier
from catsdogs.runtime.prediction import predict_files
from catsdogs.training.trainer import train


def collect(dataset) -> tuple[np.ndarray, ...]:
    batches = [dataset[i] for i in range(len(dataset))]
    return tuple(np.concatenate(parts) for parts in zip(*batches))


def tf_collect(dataset) -> tuple[np.ndarray, ...]:
    return tuple(np.concatenate(parts) for parts in zip(*[[t.numpy() for t in batch] for batch in dataset]))


def png_split(root: Path, count: int = 5) -> Path:
    rng = np.random.default_rng(1)
    for name in ("cats", "dogs"):
        for i in range(count):
            write_image(root / name / f"{name}.{i}.png", rng.integers(0, 256, (30 + 3 * i, 41, 3)), format="PNG")
    return root


def test_batches_match_the_tf_data_pipeline_pixel_for_pixel_on_pngs_and_within_the_idct_on_jpegs(tmp_path,
                                                                                                   tiny_split):
    folder = png_split(tmp_path / "png")
    ours, theirs = collect(make_dataset(folder, 24, 4)), tf_collect(make_tf_dataset(folder, 24, 4))
    assert ours[0].dtype == np.float32 and ours[1].dtype == np.int32
    np.testing.assert_array_equal(ours[1], theirs[1])
    np.testing.assert_array_equal(ours[0], theirs[0])
    jpeg_ours, jpeg_theirs = collect(make_dataset(tiny_split / "train", 32, 5)), tf_collect(
        make_tf_dataset(tiny_split / "train", 32, 5))
    np.testing.assert_array_equal(jpeg_ours[1], jpeg_theirs[1])
    assert np.abs(jpeg_ours[0] - jpeg_theirs[0]).mean() < 1.5  # libjpeg's accurate against fast IDCT


def test_each_epoch_is_a_new_order_of_every_image_and_the_same_seed_repeats_it(tiny_split):
    first, second = make_dataset(tiny_split / "train", 16, 5, shuffle=True, seed=3), make_dataset(
        tiny_split / "train", 16, 5, shuffle=True, seed=3)
    epochs = []
    for _ in range(2):
        epochs.append(first.order.copy())
        np.testing.assert_array_equal(first.order, second.order)
        np.testing.assert_array_equal(np.sort(first.order), np.arange(12))
        first.on_epoch_end()
        second.on_epoch_end()
    assert not np.array_equal(*epochs)
    labels = collect(first)[1]
    assert sorted(labels.tolist()) == [0] * 6 + [1] * 6


def test_remainders_are_dropped_for_training_and_padded_with_weightless_blanks_for_evaluation(tiny_split):
    dropped = make_dataset(tiny_split / "train", 16, 5, drop_remainder=True)
    assert len(dropped) == 2 and all(len(dropped[i][0]) == 5 for i in range(2))
    padded = make_dataset(tiny_split / "train", 16, 5, pad_remainder=True)
    images, labels, weights = collect(padded)
    assert len(padded) == 3 and images.shape == (15, 16, 16, 3)
    np.testing.assert_array_equal(weights, [1] * 12 + [0] * 3)
    assert not images[12:].any() and images[:12].any()
    assert len(images_only(padded)[2]) == 1 and len(images_only(padded)[2][0]) == 2  # the labels left out


def test_augmentation_in_the_pydataset_draws_anew_each_epoch_and_repeats_for_a_seed(tiny_split):
    params = AugmentParams(rotation_range=30, zoom_range=0.2, horizontal_flip=True)
    first, second = (make_dataset(tiny_split / "train", 24, 4, augment=params, seed=5) for _ in range(2))
    plain = make_dataset(tiny_split / "train", 24, 4)
    epoch_one = first[0][0]
    np.testing.assert_allclose(epoch_one, second[0][0], atol=1e-4)
    assert np.abs(epoch_one - plain[0][0]).mean() > 1  # augmented
    first.on_epoch_end()
    assert np.abs(first[0][0] - epoch_one).mean() > 1  # new draws


def test_the_pipeline_module_is_chosen_by_name_and_tf_data_without_tensorflow_is_a_one_line_error(monkeypatch):
    assert sources.pipeline_module("pydataset").make_dataset is make_dataset
    assert sources.pipeline_module("tf.data").make_dataset is make_tf_dataset
    monkeypatch.setattr(sources, "pipeline", None)
    with pytest.raises(UserError, match="pipeline='pydataset'"):
        sources.pipeline_module("tf.data")


def test_training_through_pydataset_augments_in_the_model_mixes_and_saves_a_model_that_reloads(tiny_split, tmp_path):
    run = train(tiny_config(tiny_split, tmp_path, pipeline="pydataset", mixup=0.2, cutmix=1.0, epochs=2))
    config = json.loads((run.run_dir / "config.json").read_text())
    assert config["pipeline"] == "pydataset" and config["run"]["augment_in"] == "model"
    assert run.metrics["test"]["images"] == 6 and len(run.history["loss"]) == 2
    model, info = load_model(run.model_path)
    images = collect(make_dataset(tiny_split / "test", 48, 6))[0]
    np.testing.assert_allclose(model.predict(images, verbose=0), run.model.predict(images, verbose=0), atol=1e-5)


def test_small_cnn_learns_through_pydataset(tmp_path):
    data = make_split_folder(tmp_path / "data", {"train": 24, "validation": 8, "test": 8}, size=48)
    run = train(tiny_config(data, tmp_path, pipeline="pydataset", image_size=48, epochs=6, batch_size=8,
                            optimizer="adam", lr=1e-3))
    assert run.metrics["best_val_accuracy"] >= 0.9, run.metrics


def test_prediction_decodes_with_pillow_where_tensorflow_is_absent_and_still_names_bad_files(tiny_split, tmp_path,
                                                                                             monkeypatch):
    paths = list(read_image_folder(tiny_split / "test").paths)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(Path(paths[0]).read_bytes()[:200])
    classifier = open_classifier(train(tiny_config(tiny_split, tmp_path, epochs=1)).model_path)
    with_tf = predict_files(classifier, [*paths, str(broken)])
    monkeypatch.setattr(sources, "pipeline", None)
    without_tf = predict_files(classifier, [*paths, str(broken)])
    assert [r.path for r in without_tf.results] == [r.path for r in with_tf.results] == paths
    assert [f.path for f in without_tf.failures] == [str(broken)]
    np.testing.assert_allclose([r.probabilities for r in without_tf.results],
                               [r.probabilities for r in with_tf.results], atol=0.02)


def test_a_folder_given_by_path_is_checked_first(tmp_path):
    folder = png_split(tmp_path / "png", count=2)
    (folder / "cats" / "empty.png").write_bytes(b"")
    with pytest.warns(UserWarning, match="unusable"):
        dataset = make_dataset(folder, 16, 4)
    assert isinstance(dataset, FolderBatches) and len(dataset.folder) == 4
    assert checked_folder(dataset.folder, 16) is dataset.folder  # checked already: as it is
