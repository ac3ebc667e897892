"""Model cards: beside every saved model, written from the records, figures equal to metrics.json."""

from __future__ import annotations

import json

import pytest
from helpers.training import tiny_config

from catsdogs.metadata import ModelInfo
from catsdogs.metrics import compute_metrics, wilson_interval
from catsdogs.modelcard import card_path, render_card
from catsdogs.models import create_model
from catsdogs.models.saving import save_model
from catsdogs.training.trainer import train


def test_the_wilson_interval_matches_published_values():
    # Newcombe (1998), table I: 81/263 -> 0.2553 to 0.3662; and the symmetric 50/100 case.
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=5e-5)
    assert wilson_interval(50, 100) == pytest.approx((0.4038, 0.5962), abs=5e-5)
    low, high = wilson_interval(10, 10)
    assert high == pytest.approx(1.0) and 0.69 < low < 0.73  # stays inside [0, 1] and is not a point at 100 %


def test_a_trained_models_card_shows_the_figures_of_metrics_json(tiny_split, tmp_path):
    run = train(tiny_config(tiny_split, tmp_path))
    metrics = json.loads((run.run_dir / "metrics.json").read_text())
    test = metrics["test"]
    for model in (run.saved_model_path, run.run_dir / "model.keras"):
        card = card_path(model).read_text()
        total, correct = test["images"], round(test["accuracy"] * test["images"])
        low, high = wilson_interval(correct, total)
        assert f"Accuracy: {100 * test['accuracy']:.1f} % (95 % interval {100 * low:.1f} % to {100 * high:.1f} %, " \
               f"{correct}/{total})" in card
        assert test["accuracy_interval_95"] == pytest.approx([low, high])
        for name, scores in test["per_class"].items():
            assert f"| {name} | {scores['support']} | {scores['precision']:.3f} | {scores['recall']:.3f} |" in card
        assert str(tiny_split.resolve()) in card and metrics["images"]["train"] == 12
        assert "train 12, validation 6, test 6" in card and "Recipe: `default`" in card
        assert "layers trained: `all (trained from scratch)`" in card  # small_cnn has no base to leave frozen
        assert json.loads((run.run_dir / "config.json").read_text())["run"]["data_fingerprint"] in card


def test_every_saved_model_gets_a_card_and_missing_figures_are_said_missing(tmp_path):
    model = create_model("small_cnn", image_size=48, weights=None)
    path = save_model(model, tmp_path / "plain.keras", ModelInfo(["cats", "dogs"], 48, "small_cnn"))
    card = card_path(path).read_text()
    assert card_path(path) == tmp_path / "plain.md"
    assert "No test split was scored" in card and "Not recorded" in card


def test_the_card_lists_per_class_recall_intervals_for_n_classes():
    import numpy as np

    probabilities = np.eye(3)[[0, 0, 1, 2, 2, 1]]
    metrics = compute_metrics(probabilities, np.array([0, 0, 1, 2, 1, 1]), ["a", "b", "c"])
    card = render_card(ModelInfo(["a", "b", "c"], 64, extra={"metrics": {"test": metrics}}), "x.keras")
    assert "| b | 3 | 1.000 | 0.667 |" in card and "Accuracy: 83.3 % (95 % interval" in card
