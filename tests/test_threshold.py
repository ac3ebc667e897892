"""Unbalanced classes at evaluation: balanced accuracy and the worst class against scikit-learn's, a decision
threshold chosen on validation (``evaluate --choose-threshold``) against a brute-force search, and a recorded
threshold deciding the label in predict, evaluate, the server and an export."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
from helpers.serving import serving
from helpers.training import train_tiny

from catsdogs.errors import UserError
from catsdogs.evaluate import main as evaluate_main
from catsdogs.metadata import ThresholdChoice
from catsdogs.metrics import balanced_accuracy, choose_threshold, compute_metrics, confusion_matrix, decide
from catsdogs.models.saving import load_model, update_model_info
from catsdogs.predict import main as predict_main
from catsdogs.runtime.opening import open_classifier
from catsdogs.runtime.prediction import predict_files
from catsdogs.server.app import create_app


def test_balanced_accuracy_and_the_worst_class_are_scikit_learns():
    metrics_module = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    labels = rng.choice(3, 200, p=[0.7, 0.2, 0.1])
    probabilities = rng.dirichlet([1, 1, 1], 200)
    probabilities[np.arange(200), labels] += rng.uniform(0, 1, 200)  # better than chance, unequally per class
    probabilities /= probabilities.sum(1, keepdims=True)
    metrics = compute_metrics(probabilities, labels, ["a", "b", "c"])
    predicted = probabilities.argmax(1)
    assert metrics["balanced_accuracy"] == pytest.approx(metrics_module.balanced_accuracy_score(labels, predicted))
    recalls = metrics_module.recall_score(labels, predicted, average=None)
    assert metrics["worst_class"] == {"name": "abc"[int(np.argmin(recalls))], "recall": pytest.approx(recalls.min())}


@pytest.mark.parametrize("seed", range(5))
def test_the_chosen_threshold_has_the_best_balanced_accuracy_of_any(seed):
    rng = np.random.default_rng(seed)
    labels = (rng.uniform(size=120) < 0.15).astype(int)  # unbalanced: about 18 of the second class
    scores = np.clip(0.25 * labels + rng.normal(0.3, 0.15, 120), 0, 1).round(2)  # ties, as real scores have

    def balanced_at(threshold: float) -> float:
        return balanced_accuracy(confusion_matrix(labels, decide(np.stack([1 - scores, scores], 1), threshold), 2))

    threshold, best = choose_threshold(scores, labels)
    every = [balanced_at(t) for t in np.linspace(-0.01, 1.01, 2041)]  # finer than the scores' 0.01 steps
    assert best == pytest.approx(max(every)) and balanced_at(threshold) == pytest.approx(best)
    assert best >= balanced_at(0.5)
    assert not np.isin(threshold, scores)  # between images, not on one


def test_ties_go_to_the_plain_half_and_one_class_is_refused():
    assert choose_threshold(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1]))[0] == 0.5
    with pytest.raises(ValueError, match="both classes"):
        choose_threshold(np.array([0.1, 0.9]), np.array([1, 1]))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("threshold"), "small_cnn", 48, ("cats", "dogs"), False)


def test_choose_threshold_records_the_validation_choice_and_evaluate_scores_by_it(trained, tmp_path, capsys):
    model_path, data = trained
    assert evaluate_main(["--model", str(model_path), "--data-dir", str(data), "--choose-threshold",
                          "--output", str(tmp_path / "chosen")]) == 0
    out, err = capsys.readouterr()
    tuned = model_path.with_name(f"{model_path.stem}-threshold.keras")
    _, info = load_model(tuned)
    choice = info.extra.threshold
    assert choice.second_class == "dogs" and choice.split == "validation" and choice.images == 6
    assert "decision threshold on 6 validation images: dogs at P >=" in err and "balanced accuracy" in out
    assert load_model(model_path)[1].extra.threshold is None  # the original is left as it was
    card = tuned.with_suffix(".md").read_text()
    assert f"It answers dogs when P(dogs) >= {choice.threshold:.4f}" in card
    assert evaluate_main(["--model", str(tuned), "--data-dir", str(data), "--split", "validation",
                          "--output", str(tmp_path / "validation")]) == 0
    scored = json.loads((tmp_path / "validation" / "metrics.json").read_text())
    assert scored["threshold"] == choice.threshold and scored["balanced_accuracy"] == choice.balanced_accuracy


@pytest.fixture(scope="module")
def shifted(trained, tmp_path_factory):
    """The model with a threshold above every test image's P(dogs): by it every image is a cat, though the
    probabilities say dogs for half of them."""
    model_path, data = trained
    images = sorted(str(p) for p in (data / "test").rglob("*.jpg"))
    plain = predict_files(open_classifier(model_path), images)
    assert {result.class_name for result in plain.results} == {"cats", "dogs"}
    _, info = load_model(model_path)
    path = tmp_path_factory.mktemp("shifted") / "shifted.keras"
    path.write_bytes(model_path.read_bytes())
    update_model_info(path, info.with_extra(threshold=ThresholdChoice(
        threshold=float(plain.probabilities[:, 1].max()) + 1e-4, second_class="dogs", split="validation", images=6,
        balanced_accuracy=0.5, balanced_accuracy_at_half=1.0)))
    return path, images, plain


def test_a_recorded_threshold_decides_in_predict_and_evaluate(trained, shifted, tmp_path, capsys):
    _, data = trained
    shifted, images, plain = shifted
    decided = predict_files(open_classifier(shifted), images)
    assert {result.class_name for result in decided.results} == {"cats"}
    np.testing.assert_allclose(decided.probabilities, plain.probabilities)  # the probabilities are the same
    assert predict_main([images[-1], "--model", str(shifted), "--format", "json", "--min-confidence", "0.6"]) == 0
    answer = json.loads(capsys.readouterr().out)["predictions"][0]
    assert answer["probabilities"]["dogs"] > 0.6 and (answer["predicted"], answer["answer"]) == ("cats", "unsure")

    assert evaluate_main(["--model", str(shifted), "--data-dir", str(data / "test"),
                          "--output", str(tmp_path / "evaluation")]) == 0
    metrics = json.loads((tmp_path / "evaluation" / "metrics.json").read_text())
    assert metrics["per_class"]["dogs"]["recall"] == 0 and metrics["worst_class"]["name"] == "dogs"


def test_a_recorded_threshold_decides_in_the_server_and_an_export(shifted, tmp_path):
    shifted, images, _ = shifted
    with serving(create_app(open_classifier(shifted), "pets")) as url:
        files = [("image", (p, open(p, "rb").read(), "image/jpeg")) for p in images[-2:]]
        served = httpx.post(f"{url}/predict", files=files).json()["results"]
    assert [result["label"] for result in served] == ["cats", "cats"]

    pytest.importorskip("tf2onnx", reason="the export extra is not installed")
    from catsdogs.exports.exporter import export_model

    exported = open_classifier(export_model(shifted, "onnx", output=tmp_path / "exports").model_path)
    assert {result.class_name for result in predict_files(exported, images).results} == {"cats"}


def test_choose_threshold_refuses_a_model_of_three_classes(tmp_path):
    model_path, data = train_tiny(tmp_path, "small_cnn", 48, ("a", "b", "c"), False)
    with pytest.raises(UserError, match="--choose-threshold needs a two-class model; this one has 3 classes"):
        evaluate_main(["--model", str(model_path), "--data-dir", str(data), "--choose-threshold",
                       "--output", str(tmp_path / "out")])
