"""Three classes end to end, through the commands users type: data_prep (fractions), train (softmax), predict
(top-k), evaluate (a 3 x 3 confusion matrix, top-k accuracy), visualize (Grad-CAM for a chosen class, activations)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers.images import make_split_folder

from catsdogs.errors import UserError
from catsdogs.evaluate import main as evaluate_main
from catsdogs.predict import main as predict_main
from catsdogs.train import main as train_main
from catsdogs.visualize import main as visualize_main
from data_prep.cli import main as prep_main

CLASSES = ("birds", "cats", "dogs")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("three")
    source = make_split_folder(root / "photos", {"all": 16}, classes=CLASSES) / "all"
    with pytest.raises(SystemExit) as exited:
        prep_main(["--source", str(source), "--out", str(root / "data"), "--quiet",
                   "--train", "0.5", "--val", "0.25", "--test", "0.25"])
    assert exited.value.code == 0
    assert train_main(["--data-dir", str(root / "data"), "--model", "small_cnn", "--image-size", "48", "--epochs", "4",
                       "--batch-size", "8", "--optimizer", "adam", "--lr", "0.001", "--no-augment",
                       "--output", str(root / "runs"), "--saved-models-dir", str(root / "saved"),
                       "--verbose", "0"]) == 0
    [run] = (root / "runs").iterdir()
    return root, run / "model.keras"


def test_data_prep_split_each_class_by_the_fractions(trained):
    root, _ = trained
    summary = json.loads((root / "data" / "summary.json").read_text())
    assert summary["classes"] == list(CLASSES)
    assert all(summary["counts"][split] == dict.fromkeys(CLASSES, n)
               for split, n in (("train", 8), ("validation", 4), ("test", 4)))


def test_training_uses_a_softmax_over_the_three_classes(trained):
    root, model_path = trained
    [run] = (root / "runs").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["images"] == 12 and np.array(metrics["test"]["confusion_matrix"]["matrix"]).shape == (3, 3)
    assert metrics["parameters"]["total"] > 0
    import keras

    assert keras.models.load_model(model_path).get_layer("output").get_config()["activation"] == "softmax"


def test_predict_prints_the_top_k_classes_most_probable_first(trained, capsys):
    root, model_path = trained
    assert predict_main([str(root / "data" / "test" / "dogs"), "--model", str(model_path), "--top-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    for line in lines:
        ranked = [part.rsplit(" ", 1) for part in line.split(": ", 1)[1].split(", ")]
        assert sorted(name for name, _ in ranked) == list(CLASSES)
        percents = [float(value.rstrip("%")) for _, value in ranked]
        assert percents == sorted(percents, reverse=True) and abs(sum(percents) - 100) < 0.3
    with pytest.raises(UserError, match="--top-k must be at least 1"):
        predict_main([str(root / "data" / "test"), "--model", str(model_path), "--top-k", "0"])


def test_evaluate_writes_a_3_by_3_confusion_matrix_and_top_k_accuracy(trained, tmp_path):
    root, model_path = trained
    assert evaluate_main(["--model", str(model_path), "--data-dir", str(root / "data"), "--top-k", "2",
                          "--output", str(tmp_path / "eval")]) == 0
    confusion = json.loads((tmp_path / "eval" / "confusion.json").read_text())
    matrix = np.array(confusion["matrix"])
    assert confusion["class_names"] == list(CLASSES) and matrix.shape == (3, 3)
    assert matrix.sum(axis=1).tolist() == [4, 4, 4]  # each true class's 4 test images, each counted once
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(np.trace(matrix) / 12)
    assert metrics["accuracy"] <= metrics["top_2_accuracy"] <= 1
    assert (tmp_path / "eval" / "confusion.png").stat().st_size > 5000


def test_grad_cam_explains_the_class_asked_for_and_activations_work(trained, tmp_path):
    root, model_path = trained
    image = sorted((root / "data" / "test" / "cats").iterdir())[0]
    maps = {}
    for name in ("birds", "dogs"):
        assert visualize_main(["gradcam", "--model", str(model_path), "--image", str(image), "--class", name,
                               "--output", str(tmp_path / name)]) == 0
        [heatmap] = (tmp_path / name).glob("*.npy")
        maps[name] = np.load(heatmap)
    assert maps["birds"].shape == maps["dogs"].shape and not np.allclose(maps["birds"], maps["dogs"])
    with pytest.raises(UserError, match="'fish' is not a class of this model; choose one of birds, cats, dogs"):
        visualize_main(["gradcam", "--model", str(model_path), "--image", str(image), "--class", "fish",
                        "--output", str(tmp_path / "fish")])
    assert not list((tmp_path / "fish").glob("*.png"))  # refused before any overlay
    assert visualize_main(["activations", "--model", str(model_path), "--image", str(image),
                           "--output", str(tmp_path / "activations")]) == 0
    assert list(Path(tmp_path / "activations").glob("*.png"))
