"""evaluate: metrics that agree with each other and with model.predict, the report files, and clear refusals."""

from __future__ import annotations

import csv
import json
from itertools import product
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers.commands import run_command
from helpers.images import make_split_folder

from catsdogs.data.decode import load_image
from catsdogs.data.files import read_image_folder
from catsdogs.errors import UserError
from catsdogs.evaluate import main
from catsdogs.inference.evaluation import evaluate_folder
from catsdogs.metrics import per_class_scores, roc_auc, top_k_accuracy
from catsdogs.models import create_model
from catsdogs.models.saving import ModelInfo, save_model
from catsdogs.runtime.opening import open_classifier

SIZE = 48


def run_evaluate(argv: list, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    return run_command(main, argv, capsys)


def saved_classifier(path: Path, class_names: list[str]) -> Path:
    keras.utils.set_random_seed(3)
    model = create_model("small_cnn", image_size=SIZE, num_classes=len(class_names), weights=None)
    return save_model(model, path, ModelInfo(class_names, SIZE, "small_cnn", "rescale"))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("evaluate")
    return {"data": make_split_folder(root / "data", {"train": 2, "test": 6}),
            "three": make_split_folder(root / "three", {"test": 4}, classes=("birds", "cats", "dogs")),
            "model": saved_classifier(root / "binary.keras", ["cats", "dogs"]),
            "model3": saved_classifier(root / "three.keras", ["birds", "cats", "dogs"])}


def predict_folder(model_path: Path, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """model.predict on the folder's images decoded as the pipeline decodes them, and the true labels."""
    images = read_image_folder(folder)
    batch = np.stack([load_image(path, SIZE).numpy() for path in images.paths]).astype("float32")
    return keras.models.load_model(model_path).predict(batch, verbose=0), np.array(images.labels)


def test_report_files_and_metrics_agree_with_model_predict(setup, tmp_path, capsys):
    code, out, err = run_evaluate(["--model", setup["model"], "--data-dir", setup["data"], "--output", tmp_path], capsys)
    assert code == 0 and err.splitlines() == [f"model: {setup['model']} (small_cnn, 48 px, cats/dogs)"]
    assert "accuracy" in out
    assert {"metrics.json", "confusion.json", "confusion.png", "predictions.csv"} <= {p.name for p in tmp_path.iterdir()}
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["data"] == str(setup["data"] / "test")  # a data_prep root: its test/ split

    matrix = np.array(metrics["confusion_matrix"]["matrix"])
    assert matrix.sum() == metrics["images"] == 12
    assert np.trace(matrix) / matrix.sum() == pytest.approx(metrics["accuracy"])
    assert json.loads((tmp_path / "confusion.json").read_text())["matrix"] == matrix.tolist()

    p_dog, labels = predict_folder(setup["model"], setup["data"] / "test")
    assert metrics["accuracy"] == pytest.approx(np.mean((p_dog[:, 0] > 0.5) == labels))
    assert metrics["loss"] == pytest.approx(float(keras.losses.binary_crossentropy(labels[:, None], p_dog).numpy().mean()),
                                            rel=1e-4)
    assert metrics["roc_auc"] == pytest.approx(roc_auc(labels == 1, p_dog[:, 0]))
    assert "top_2_accuracy" not in metrics and set(metrics["per_class"]) == {"cats", "dogs"}

    with (tmp_path / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12 and list(rows[0]) == ["path", "true", "predicted", "probability_cats", "probability_dogs"]
    assert [row["true"] for row in rows] == [["cats", "dogs"][label] for label in labels]
    np.testing.assert_allclose([float(row["probability_dogs"]) for row in rows], p_dog[:, 0], atol=1e-6)


def test_the_most_confident_mistakes_are_listed_and_shown(setup, tmp_path, capsys):
    run_evaluate(["--model", setup["model"], "--data-dir", setup["data"] / "test", "--output", tmp_path,
                  "--mistakes", 3], capsys)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    mistakes = metrics["most_confident_mistakes"]
    wrong = int(np.array(metrics["confusion_matrix"]["matrix"]).sum() - np.trace(metrics["confusion_matrix"]["matrix"]))
    assert len(mistakes) == min(3, wrong)
    confidences = [m["probabilities"][m["predicted"]] for m in mistakes]
    assert confidences == sorted(confidences, reverse=True)
    assert all(m["true"] != m["predicted"] and Path(m["path"]).is_file() for m in mistakes)
    assert (tmp_path / "wrong.png").is_file() == bool(mistakes)


def test_three_classes_report_top_k_and_one_vs_rest_auc(setup, tmp_path, capsys):
    argv = ["--model", setup["model3"], "--data-dir", setup["three"], "--output", tmp_path]
    code, _, _ = run_evaluate(argv, capsys)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    probabilities, labels = predict_folder(setup["model3"], setup["three"] / "test")
    assert code == 0 and metrics["top_2_accuracy"] == pytest.approx(top_k_accuracy(probabilities, labels, 2))
    assert set(metrics["roc_auc_one_vs_rest"]) == {"birds", "cats", "dogs"}
    run_evaluate([*argv, "--top-k", "3"], capsys)
    assert json.loads((tmp_path / "metrics.json").read_text())["top_3_accuracy"] == 1.0
    code, _, err = run_evaluate([*argv, "--top-k", "4"], capsys)
    assert code == 2 and "error: --top-k must be between 1 and the number of classes (3), not 4" in err
    # The library names its parameter to a Python caller; the command above named its flag.
    with pytest.raises(UserError, match=r"^top_k must be between 1 and the number of classes \(3\), not 4$"):
        evaluate_folder(open_classifier(setup["model3"]), setup["three"] / "test", top_k=4)


def test_roc_auc_is_the_share_of_correctly_ordered_pairs_with_ties_counting_half():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 60).astype(bool)
    scores = np.round(rng.random(60), 1)  # many ties
    pairs = [(1.0 if s_pos > s_neg else 0.5 if s_pos == s_neg else 0.0)
             for s_pos, s_neg in product(scores[labels], scores[~labels])]
    assert roc_auc(labels, scores) == pytest.approx(np.mean(pairs))
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0 and roc_auc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]) == 0.0
    assert roc_auc([1, 1], [0.2, 0.9]) is None


def test_per_class_scores_from_a_known_matrix():
    scores = per_class_scores(np.array([[5, 1], [2, 2]]), ["cats", "dogs"])
    assert scores["cats"] == pytest.approx({"precision": 5 / 7, "recall": 5 / 6, "f1": 2 * (5 / 7) * (5 / 6) / (5 / 7 + 5 / 6),
                                            "support": 6})
    assert scores["dogs"]["precision"] == pytest.approx(2 / 3) and scores["dogs"]["recall"] == pytest.approx(0.5)
    assert per_class_scores(np.array([[3, 0], [3, 0]]), ["a", "b"])["b"] == {"precision": 0.0, "recall": 0.0,
                                                                             "f1": 0.0, "support": 3}


def test_wrong_folders_and_classes_are_one_line_errors(setup, tmp_path, capsys):
    model = ["--model", setup["model"], "--output", tmp_path]
    for data_flags, words in ((["--data-dir", setup["data"], "--split", "validation"], "no validation/ split"),
                              (["--data-dir", setup["three"] / "test"], "classes ['birds', 'cats', 'dogs']"),
                              (["--data-dir", tmp_path / "missing"], "does not exist")):
        code, out, err = run_evaluate([*model, *data_flags], capsys)
        assert code == 2 and out == "" and len(err.splitlines()) == 1 and words in err, err


def test_an_undecodable_image_is_named_and_the_rest_is_scored(setup, tmp_path, capsys):
    data = make_split_folder(tmp_path / "data", {"test": 2})
    broken = data / "test" / "dogs" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    code, _, err = run_evaluate(["--model", setup["model"], "--data-dir", data, "--output", tmp_path / "out"], capsys)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert code == 0 and err.splitlines()[1:] == [f"skipped {broken}: corrupt or truncated JPEG data",
                                                  "1 input(s) skipped, 4 processed"]
    assert err.startswith(f"model: {setup['model']} ")
    assert metrics["images"] == 4 and metrics["failures"] == [{"path": str(broken),
                                                               "error": "corrupt or truncated JPEG data"}]


def test_mcnemars_exact_test_matches_the_binomial_tail():
    from catsdogs.metrics import mcnemar

    # 10 discordant images, 9 of them favour B: p = 2 * (C(10,0) + C(10,1)) / 2**10 = 22 / 1024
    a = np.array([True] * 50 + [True] + [False] * 9)
    b = np.array([True] * 50 + [False] + [True] * 9)
    result = mcnemar(a, b)
    assert (result["only_first_right"], result["only_second_right"]) == (1, 9)
    assert result["p_value"] == pytest.approx(22 / 1024)
    assert mcnemar(a, a)["p_value"] == 1.0  # no discordant image: no evidence either way
    balanced = mcnemar(np.array([True, False] * 5), np.array([False, True] * 5))
    assert balanced["p_value"] == 1.0
