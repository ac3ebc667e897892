"""Test-time augmentation: the views against TensorFlow's own crop and resize, the averaging, and the mode chosen on
the validation split, recorded in the metadata and used by predict and evaluate."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.images import make_split_folder
from helpers.training import tiny_config

from catsdogs.data.decode import load_image
from catsdogs.errors import UserError
from catsdogs.evaluate import main as evaluate_main
from catsdogs.models.saving import load_model
from catsdogs.predict import main as predict_main
from catsdogs.runtime.tta import CROP_FRACTION, VIEWS, averaged, views
from catsdogs.training.trainer import train


def test_the_views_are_tensorflows_flip_and_crop_and_resize():
    import tensorflow as tf

    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    assert [len(views(images, mode)) for mode in VIEWS] == list(VIEWS.values())
    flipped = views(images, "flip")
    np.testing.assert_array_equal(flipped[0], images)
    np.testing.assert_array_equal(flipped[1], tf.image.flip_left_right(images).numpy())
    crops = views(images, "crops")
    assert all(view.shape == images.shape for view in crops)
    side = round(32 * CROP_FRACTION)
    offset = (32 - side) // 2
    centre = tf.image.resize(tf.image.crop_to_bounding_box(images, offset, offset, side, side), [32, 32]).numpy()
    np.testing.assert_allclose(crops[2], centre, atol=1e-4)  # [whole, whole flipped, centre, centre flipped, ...]
    np.testing.assert_allclose(crops[3], tf.image.flip_left_right(centre).numpy(), atol=1e-4)
    corner = tf.image.resize(tf.image.crop_to_bounding_box(images, 32 - side, 32 - side, side, side), [32, 32])
    np.testing.assert_allclose(crops[10], corner.numpy(), atol=1e-4)
    with pytest.raises(UserError, match="tta must be one of none, flip, crops"):
        views(images, "rotate")


def test_averaging_takes_the_mean_over_the_views():
    images = np.zeros((1, 4, 4, 3), np.float32)
    images[:, :, :2] = 1.0  # the left half lit

    def left_half(batch: np.ndarray) -> np.ndarray:  # a "model" that only looks at the left half
        value = batch[:, :, :2].mean(axis=(1, 2, 3))
        return np.stack([1 - value, value], axis=1)

    np.testing.assert_allclose(averaged(left_half, images, "none"), [[0.0, 1.0]])
    np.testing.assert_allclose(averaged(left_half, images, "flip"), [[0.5, 0.5]])  # mirrored: the left half dark


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("tta")
    data = make_split_folder(root / "data", {"train": 8, "validation": 6, "test": 6})
    return data, train(tiny_config(data, root, epochs=2))


def test_predict_with_tta_flip_averages_the_image_and_its_mirror(trained, capsys):
    data, run = trained
    model, _ = load_model(run.saved_model_path)
    path = sorted((data / "test" / "dogs").iterdir())[0]
    assert predict_main([str(path), "--model", str(run.saved_model_path), "--tta", "flip", "--format", "json"]) == 0
    served = json.loads(capsys.readouterr().out)["predictions"][0]["probabilities"]["dogs"]
    image = load_image(path, 48).numpy()[None]
    expected = (model.predict_on_batch(image)[0, 0] + model.predict_on_batch(image[:, :, ::-1])[0, 0]) / 2
    assert served == pytest.approx(float(expected), abs=1e-5)
    with pytest.raises(UserError, match="no test-time augmentation chosen on validation; run python -m catsdogs"):
        predict_main([str(path), "--model", str(run.saved_model_path), "--tta"])


def test_choose_tta_records_every_modes_validation_accuracy_and_predict_uses_the_choice(trained, tmp_path, capsys):
    data, run = trained
    assert evaluate_main(["--model", str(run.saved_model_path), "--data-dir", str(data), "--choose-tta",
                          "--output", str(tmp_path / "chosen")]) == 0
    tuned = run.saved_model_path.with_name(f"{run.saved_model_path.stem}-tta.keras")
    _, info = load_model(tuned)
    record = info.extra.tta
    assert set(record.accuracy) == set(VIEWS) and record.split == "validation" and record.images == 12
    best = max(record.accuracy.values())
    assert record.accuracy[record.mode] == best
    assert all(VIEWS[mode] >= VIEWS[record.mode] for mode, value in record.accuracy.items() if value == best)
    for mode, accuracy in record.accuracy.items():  # each figure is what evaluate --tta MODE measures there
        assert evaluate_main(["--model", str(run.saved_model_path), "--data-dir", str(data), "--split", "validation",
                              "--tta", mode, "--output", str(tmp_path / mode)]) == 0
        assert json.loads((tmp_path / mode / "metrics.json").read_text())["accuracy"] == accuracy
    assert json.loads((tmp_path / "chosen" / "metrics.json").read_text())["tta"] == record.mode
    capsys.readouterr()
    path = str(sorted((data / "test" / "cats").iterdir())[0])
    assert predict_main([path, "--model", str(tuned), "--tta", "--format", "json"]) == 0
    by_choice = json.loads(capsys.readouterr().out)["predictions"][0]["probabilities"]
    assert predict_main([path, "--model", str(tuned), "--tta", record.mode, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["predictions"][0]["probabilities"] == by_choice
