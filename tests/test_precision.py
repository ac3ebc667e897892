"""``--precision float32|mixed_float16|mixed_bfloat16``: one setting for the compute precision. Training computes in
the chosen policy, the model is saved in float32 whatever it trained in (so every runtime and export reads it), a
config.json from before (``mixed_precision: true``) still loads, and a wrong value is one line."""

from __future__ import annotations

import json

import keras
import pytest
from helpers.commands import run_command
from helpers.training import tiny_config

from catsdogs.config import TrainConfig
from catsdogs.runtime.opening import open_classifier
from catsdogs.runtime.prediction import predict_files
from catsdogs.train import main as train_main
from catsdogs.training.trainer import train


class ComputeDtypes(keras.callbacks.Callback):
    """The compute dtypes of the model's layers with weights, as it trains."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.seen |= {layer.compute_dtype for layer in self.model.layers if layer.weights and layer.name != "output"}


def test_bfloat16_trains_in_bfloat16_and_saves_a_float32_model_every_runtime_reads(tiny_split, tmp_path):
    seen = ComputeDtypes()
    run = train(tiny_config(tiny_split, tmp_path, precision="mixed_bfloat16"), callbacks=[seen])
    assert seen.seen == {"bfloat16"}
    assert keras.mixed_precision.global_policy().name == "float32"  # the caller's policy is back
    classifier = open_classifier(run.saved_model_path)
    assert {layer.dtype_policy.name for layer in classifier.keras_model().layers} == {"float32"}
    images = [str(path) for path in sorted((tiny_split / "test").rglob("*.jpg"))]
    keras_report = predict_files(classifier, images)
    assert keras_report.probabilities.dtype.name == "float32" and len(keras_report.results) == len(images)
    assert run.metrics["test"]["accuracy"] == pytest.approx(
        sum(r.class_index == (1 if "/dogs/" in r.path else 0) for r in keras_report.results) / len(images))
    pytest.importorskip("tf2onnx", reason="the export extra is not installed")
    from catsdogs.exports.exporter import export_model

    export = export_model(run.saved_model_path, "onnx", output=tmp_path / "exports")  # refused before: mixed types
    assert open_classifier(export.model_path).kind == "ONNX"


def test_a_config_from_before_with_mixed_precision_loads_as_mixed_float16(tiny_split, tmp_path):
    values = tiny_config(tiny_split, tmp_path).to_dict()
    del values["precision"]
    for legacy, expected in ((True, "mixed_float16"), (False, "float32")):
        path = tmp_path / f"config-{legacy}.json"
        path.write_text(json.dumps({**values, "mixed_precision": legacy}))
        assert TrainConfig.load(path).precision == expected


def test_an_unknown_precision_is_one_line(tiny_split, tmp_path, capsys):
    code, _, err = run_command(train_main, ["--data-dir", tiny_split, "--precision", "float8",
                                            "--output", tmp_path / "runs"], capsys)
    assert code != 0 and "float32" in err and "mixed_bfloat16" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
