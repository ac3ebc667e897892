"""Calibration: ECE, Brier and risk-coverage by their definitions; temperature scaling fitted, stored and applied by
predict, evaluate and the exports; abstention below --min-confidence."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers.images import make_split_folder
from helpers.training import tiny_config

from catsdogs.config import AugmentParams
from catsdogs.evaluate import main as evaluate_main
from catsdogs.exports.exporter import export_model
from catsdogs.metrics import brier_score, calibration_bins, expected_calibration_error, risk_coverage
from catsdogs.models import create_model
from catsdogs.models.calibration import (
    calibrated,
    fit_temperature,
    log_probabilities,
    logits_model,
    negative_log_likelihood,
)
from catsdogs.models.saving import ModelInfo, load_model
from catsdogs.predict import main as predict_main
from catsdogs.runtime.opening import open_classifier
from catsdogs.training.trainer import train


def two_class(p_second: list[float]) -> np.ndarray:
    p = np.asarray(p_second, np.float64)
    return np.stack([1 - p, p], axis=1)


def test_ece_is_zero_when_confidence_matches_accuracy_and_the_gap_when_it_does_not():
    honest = two_class([0.8] * 10)
    labels = np.array([1] * 8 + [0] * 2)  # 80 % right at 80 % confidence
    assert expected_calibration_error(honest, labels) == pytest.approx(0.0)
    overconfident = two_class([0.99] * 10)
    assert expected_calibration_error(overconfident, labels) == pytest.approx(0.19)
    # Two bins, weighted by their images: 0.95-confident half all right (gap 0.05), 0.6-confident half half right.
    mixed = two_class([0.95] * 4 + [0.6] * 4)
    bins = calibration_bins(mixed, np.array([1, 1, 1, 1, 1, 1, 0, 0]))
    assert [(b["images"], round(b["accuracy"], 3)) for b in bins] == [(4, 0.5), (4, 1.0)]
    assert expected_calibration_error(mixed, np.array([1, 1, 1, 1, 1, 1, 0, 0])) == pytest.approx(
        0.5 * 0.1 + 0.5 * 0.05)


def test_brier_and_risk_coverage_by_their_definitions():
    assert brier_score(two_class([0.8]), np.array([1])) == pytest.approx(0.08)  # 0.2^2 + 0.2^2
    assert brier_score(np.array([[0.7, 0.2, 0.1]]), np.array([2])) == pytest.approx(0.49 + 0.04 + 0.81)
    curve = risk_coverage(two_class([0.9, 0.4, 0.99, 0.7]), np.array([1, 0, 1, 0]))  # only the 0.7 one is wrong
    assert curve["thresholds"] == [0.99, 0.9, 0.7, 0.6]
    assert curve["risk"] == [0, 0, pytest.approx(1 / 3), pytest.approx(1 / 4)]
    assert curve["coverage"] == [0.25, 0.5, 0.75, 1.0]


def test_log_probabilities_match_tensorflows_log_sigmoid_and_log_softmax():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    several = rng.normal(0, 30, (50, 4))  # large logits: where a naive log(softmax) underflows
    np.testing.assert_allclose(log_probabilities(several), tf.nn.log_softmax(several).numpy(), atol=1e-9)
    one = rng.normal(0, 30, (50, 1))
    expected = np.concatenate([tf.math.log_sigmoid(-one).numpy(), tf.math.log_sigmoid(one).numpy()], axis=1)
    np.testing.assert_allclose(log_probabilities(one), expected, atol=1e-9)


@pytest.mark.parametrize("classes", [1, 5])
def test_the_fit_recovers_the_temperature_that_made_a_model_overconfident(classes):
    rng = np.random.default_rng(1)
    honest = rng.normal(0, 2, (20000, classes))
    probabilities = np.exp(log_probabilities(honest))
    labels = np.array([rng.choice(probabilities.shape[1], p=row) for row in probabilities])
    overconfident = 3.0 * honest
    temperature = fit_temperature(overconfident, labels)
    assert temperature == pytest.approx(3.0, rel=0.08)
    assert negative_log_likelihood(overconfident, labels, temperature) < negative_log_likelihood(overconfident, labels)


def test_with_views_the_likelihood_is_of_their_averaged_probabilities_and_the_fit_sharpens_for_it():
    rng = np.random.default_rng(4)
    honest = rng.normal(0, 2, (4000, 1))
    labels = (rng.uniform(size=4000) < 1 / (1 + np.exp(-honest[:, 0]))).astype(int)
    views = 3.0 * honest[:, None] + rng.normal(0, 3, (4000, 12, 1))  # overconfident, and the views disagree
    p_dog = (1 / (1 + np.exp(-views / 2.0)))[..., 0].mean(axis=1)  # by the definition, at T = 2
    by_definition = -np.mean(np.log(np.where(labels == 1, p_dog, 1 - p_dog)))
    assert negative_log_likelihood(views, labels, 2.0) == pytest.approx(by_definition, rel=1e-9)
    assert negative_log_likelihood(views[:, :1], labels) == pytest.approx(negative_log_likelihood(views[:, 0], labels))
    one_view, averaged = fit_temperature(views[:, 0], labels), fit_temperature(views, labels)
    assert averaged < one_view  # averaging softened the probabilities: less to undo
    assert negative_log_likelihood(views, labels, averaged) < negative_log_likelihood(views, labels, one_view) - 0.005


@pytest.mark.parametrize("name", ["small_cnn", "mini_xception", "resnet_small"])  # a chain, and skip connections
def test_logits_are_the_output_layers_pre_activation_and_the_temperature_keeps_every_class(name):
    images = np.random.default_rng(2).uniform(0, 255, (6, 48, 48, 3)).astype("float32")
    for num_classes, activation in ((2, keras.activations.sigmoid), (3, keras.activations.softmax)):
        # With the augmentation layer, which the logits leave out and the model skips in inference.
        model = create_model(name, image_size=48, num_classes=num_classes, augmentation=AugmentParams(), seed=0)
        logits = keras.ops.convert_to_numpy(logits_model(model)(images))
        raw = keras.ops.convert_to_numpy(model(images))
        np.testing.assert_allclose(keras.ops.convert_to_numpy(activation(logits)), raw, atol=1e-6)
        info = ModelInfo(["a", "b", "c"][:num_classes], 48, extra={"temperature": 2.5})
        scaled = keras.ops.convert_to_numpy(calibrated(model, info)(images))
        np.testing.assert_allclose(scaled, keras.ops.convert_to_numpy(activation(logits / 2.5)), atol=1e-6)
        assert calibrated(model, ModelInfo(["a", "b"], 48)) is model  # no temperature: the model itself
        if num_classes > 2:
            assert (scaled.argmax(axis=1) == raw.argmax(axis=1)).all()


@pytest.fixture(scope="module")
def calibrated_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("calibrated")
    data = make_split_folder(root / "data", {"train": 8, "validation": 6, "test": 6})
    run = train(tiny_config(data, root, epochs=3, calibrate=True, optimizer="adam", lr=1e-3))
    return root, data, run


def test_training_with_calibrate_stores_the_temperature_and_predict_applies_it(calibrated_run, capsys):
    root, data, run = calibrated_run
    model, info = load_model(run.saved_model_path)
    fit = json.loads((run.run_dir / "metrics.json").read_text())["calibration_fit"]
    assert info.extra.temperature == fit["temperature"] > 0 and fit["images"] == 12
    assert fit["nll_after"] <= fit["nll_before"]
    assert "temperature-scaled (T = " in run.saved_model_path.with_suffix(".md").read_text()
    image = sorted((data / "test" / "dogs").iterdir())[0]
    assert predict_main([str(image), "--model", str(run.saved_model_path), "--format", "json"]) == 0
    predicted = json.loads(capsys.readouterr().out)["predictions"][0]["probabilities"]["dogs"]
    from catsdogs.data.decode import load_image

    logit = float(logits_model(model)(load_image(image, 48)[None]).numpy()[0, 0])
    assert predicted == pytest.approx(1 / (1 + np.exp(-logit / fit["temperature"])), abs=1e-5)


def test_an_export_carries_the_temperature_and_its_parity_check_covers_it(calibrated_run, tmp_path):
    root, data, run = calibrated_run
    export = export_model(run.saved_model_path, "litert", output=tmp_path)
    assert export.passed
    model, info = load_model(run.saved_model_path)
    images = np.stack([np.asarray(keras.utils.load_img(p, target_size=(48, 48)), np.float32)
                       for p in sorted((data / "test" / "cats").iterdir())[:3]])
    expected = keras.ops.convert_to_numpy(calibrated(model, info)(images))[:, 0]
    np.testing.assert_allclose(open_classifier(export.model_path).predict(images)[:, 1], expected, atol=1e-5)


def test_the_server_answers_the_calibrated_probabilities(calibrated_run, tmp_path):
    from catsdogs.models.saving import save_model

    root, data, run = calibrated_run
    model, info = load_model(run.saved_model_path)
    hot = save_model(model, tmp_path / "hot.keras", info.with_extra(temperature=3.0))
    classifier = open_classifier(hot)
    path = sorted((data / "test" / "dogs").iterdir())[0]
    served = classifier.predict_items([classifier.prepare(path.read_bytes())])[0]
    decode, _ = classifier._graphs
    image = decode(*[np.array([path.read_bytes()]), np.array([1], np.int32)]).numpy()
    logit = float(logits_model(model)(image).numpy()[0, 0])
    assert served[1] == pytest.approx(1 / (1 + np.exp(-logit / 3.0)), abs=1e-5)
    assert abs(served[1] - 1 / (1 + np.exp(-logit))) > 1e-3  # the raw model would answer otherwise


def test_evaluate_calibrate_saves_a_new_model_beside_the_original_and_reports_reliability(tmp_path, capsys):
    data = make_split_folder(tmp_path / "data", {"train": 8, "validation": 6, "test": 6})
    run = train(tiny_config(data, tmp_path, epochs=2))
    original = hashlib.sha256(run.saved_model_path.read_bytes()).hexdigest()
    assert evaluate_main(["--model", str(run.saved_model_path), "--data-dir", str(data), "--calibrate",
                          "--output", str(tmp_path / "eval")]) == 0
    assert hashlib.sha256(run.saved_model_path.read_bytes()).hexdigest() == original  # the user's file untouched
    calibrated_path = run.saved_model_path.with_name(f"{run.saved_model_path.stem}-calibrated.keras")
    _, info = load_model(calibrated_path)
    assert info.extra.calibration_fit.split == "validation" and info.extra.temperature > 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["model"] == str(calibrated_path)
    calibration = metrics["calibration"]
    assert calibration["ece_interval_95"][0] <= calibration["ece_interval_95"][1]
    assert sum(b["images"] for b in calibration["bins"]) == metrics["images"] == 12
    assert {"reliability.png", "risk_coverage.png", "risk_coverage.csv"} <= {p.name for p in (tmp_path / "eval").iterdir()}
    rows = (tmp_path / "eval" / "risk_coverage.csv").read_text().splitlines()
    assert rows[0] == "threshold,coverage,risk" and len(rows) == 13
    assert "calibration: ECE" in capsys.readouterr().out
    assert info.extra.calibration_fit.tta == "none"
    # Through the views evaluate is given, and the fit says which.
    assert evaluate_main(["--model", str(run.saved_model_path), "--data-dir", str(data), "--calibrate", "--tta",
                          "crops", "--output", str(tmp_path / "crops")]) == 0
    crops_path = Path(json.loads((tmp_path / "crops" / "metrics.json").read_text())["model"])
    _, crops = load_model(crops_path)
    assert crops.extra.calibration_fit.tta == "crops"
    assert "images seen through --tta crops: NLL" in crops_path.with_suffix(".md").read_text()
    # The tiny model is sure of these few images (either fit may end at the range's end), but the likelihood it
    # started from is that of 12 views averaged, not one.
    assert crops.extra.calibration_fit.nll_before != pytest.approx(info.extra.calibration_fit.nll_before,
                                                                          rel=1e-5)
    assert "(test-time augmentation crops)" in capsys.readouterr().err


def test_min_confidence_answers_unsure_below_the_threshold(calibrated_run, capsys):
    root, data, run = calibrated_run
    images = [str(p) for p in sorted((data / "test" / "cats").iterdir())]
    assert predict_main([*images, "--model", str(run.saved_model_path), "--format", "json",
                         "--min-confidence", "0.75"]) == 0
    records = json.loads(capsys.readouterr().out)["predictions"]
    for record in records:
        confidence = record["probabilities"][record["predicted"]]
        assert record["answer"] == ("unsure" if confidence < 0.75 else record["predicted"])
    assert predict_main([*images, "--model", str(run.saved_model_path), "--min-confidence", "1"]) == 0
    assert all(": unsure (" in line for line in capsys.readouterr().out.splitlines())
    with pytest.raises(Exception, match="--min-confidence is a probability from 0 to 1"):
        predict_main([*images, "--model", str(run.saved_model_path), "--min-confidence", "75"])


def test_a_model_without_logits_cannot_be_calibrated():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="relu")(inputs), name="odd")
    with pytest.raises(Exception, match="does not end in a sigmoid or softmax Dense layer"):
        logits_model(model)


def test_tuning_needs_a_validation_split_and_says_so_before_any_work(tmp_path):
    """(That it needs a .keras model, not an export, is tested with a real export in test_export.)"""
    from catsdogs.errors import UserError

    make_split_folder(tmp_path / "plain", {"test": 2})
    with pytest.raises(UserError, match="has no validation/ folder"):
        evaluate_main(["--model", str(tmp_path / "m.keras"), "--data-dir", str(tmp_path / "plain"), "--calibrate",
                       "--choose-tta", "--output", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
