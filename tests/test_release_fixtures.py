"""Models saved by an earlier release still load and answer the same.

``tests/fixtures/release-0.1.0/`` holds a ``.keras`` model (calibrated, with a test-time augmentation chosen on
validation) and its LiteRT export, both written by catsdogs 0.1.0's own commands, and what that release
predicted for ten images through each test-time augmentation mode (``make.py`` says how). A file a user saved
must keep loading, and keep answering the same, after any change to the code or to the metadata's format.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from catsdogs.models.saving import load_model
from catsdogs.runtime.opening import open_classifier
from catsdogs.runtime.prediction import predict_files
from catsdogs.runtime.tta import chosen_mode

FIXTURES = Path(__file__).parent / "fixtures" / "release-0.1.0"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
IMAGES = sorted(str(p) for p in (FIXTURES / "images").glob("*.png"))
TOLERANCE = 1e-6


def answers(report) -> dict[str, list[float]]:
    return {Path(result.path).name: [float(p) for p in result.probabilities] for result in report.results}


def assert_same(got: dict[str, list[float]], expected: dict[str, list[float]]) -> None:
    assert sorted(got) == sorted(expected)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], atol=TOLERANCE, rtol=0, err_msg=name)


@pytest.mark.parametrize("mode", ["none", "flip", "crops"])
def test_a_keras_model_saved_by_release_0_1_0_answers_as_it_did(mode):
    classifier = open_classifier(FIXTURES / "legacy.keras")
    assert_same(answers(predict_files(classifier, IMAGES, tta=mode)), EXPECTED["keras"][mode])


@pytest.mark.parametrize("mode", ["none", "flip", "crops"])
def test_a_litert_export_made_by_release_0_1_0_answers_as_it_did(mode):
    classifier = open_classifier(FIXTURES / "legacy-litert" / "legacy-tta-calibrated.tflite")
    assert_same(answers(predict_files(classifier, IMAGES, tta=mode)), EXPECTED["litert"][mode])


def test_the_release_models_recorded_choices_still_read():
    _, info = load_model(FIXTURES / "legacy.keras")
    assert chosen_mode("auto", info, "legacy.keras") == EXPECTED["auto"] == "flip"
