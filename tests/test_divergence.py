"""A run that diverges is a failure, not a model: refused settings, a one-line stop, nothing published, a resume
from finite weights, and no NaN anywhere a later command reads (models, the default choice, JSON, parity)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers.commands import assert_one_line_error, run_command
from helpers.training import tiny_config

from catsdogs.config import ConfigError, TrainConfig
from catsdogs.errors import UserError
from catsdogs.exports.parity import compare
from catsdogs.metadata import METADATA_ENTRY, ModelInfo
from catsdogs.models import create_model
from catsdogs.models.saving import load_model, save_model
from catsdogs.outputs import json_text, write_json
from catsdogs.runtime.catalog import choose_model, list_saved_models
from catsdogs.saved import main as saved_main
from catsdogs.train import main as train_main
from catsdogs.training.callbacks import TrainingDiverged
from catsdogs.training.trainer import train


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_settings_are_refused_in_one_line(value, tiny_split, tmp_path, capsys):
    code, _, err = run_command(train_main, ["--data-dir", tiny_split, "--output", tmp_path / "runs", f"--lr={value}"],
                               capsys)
    assert_one_line_error(code, err, "--lr must be a finite number")
    with pytest.raises(ConfigError, match="finite"):
        TrainConfig(dropout=float(value))
    with pytest.raises(UserError, match="finite"):
        create_model("mobilenet", image_size=32, weights=None, alpha=float(value))


class PoisonWeights(keras.callbacks.Callback):
    """Makes a weight NaN at the end of ``epoch`` (after that epoch's backup), as a diverging step would."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch + 1 == self.epoch:
            weight = self.model.trainable_weights[0]
            weight.assign(np.full(weight.shape, np.nan, "float32"))


def test_a_diverged_run_stops_in_one_line_publishes_nothing_and_resumes_from_finite_weights(tiny_split, tmp_path):
    config = tiny_config(tiny_split, tmp_path, epochs=4)
    with pytest.raises(TrainingDiverged, match="diverged in epoch 3: the loss became nan") as stopped:
        train(config, callbacks=[PoisonWeights(2)])
    assert "lr" in str(stopped.value) and "continues from epoch 2" in str(stopped.value)
    assert not (tmp_path / "saved_models").exists() or not list((tmp_path / "saved_models").glob("*.keras"))
    [run_dir] = (tmp_path / "runs").iterdir()
    resumed = train(config, resume_dir=run_dir)  # from the backup of epoch 2, taken before the weights went bad
    assert all(np.isfinite(keras.ops.convert_to_numpy(w)).all() for w in resumed.model.weights)
    assert resumed.saved_model_path is not None and resumed.saved_model_path.is_file()


def test_the_train_command_exits_non_zero_when_the_loss_diverges(tiny_split, tmp_path, capsys):
    code, _, err = run_command(train_main, ["--data-dir", tiny_split, "--output", tmp_path / "runs", "--saved-models-dir",
                                            tmp_path / "models", "--image-size", "48", "--epochs", "2", "--lr", "1e30",
                                            "--quiet"], capsys)
    assert_one_line_error(code, err, "training diverged in epoch", "--lr")
    assert not (tmp_path / "models").exists() or not list((tmp_path / "models").iterdir())


def saved(tmp_path, name: str, val_accuracy: float, test_loss: str = "0.4") -> Path:
    """A saved model whose metadata records ``test_loss`` as written in its JSON (``NaN``: as releases before the
    typed metadata wrote a diverged run's)."""
    model = create_model("small_cnn", image_size=48, weights=None)
    info = ModelInfo(["cats", "dogs"], 48, "small_cnn", extra={"metrics": {
        "best_val_accuracy": val_accuracy, "test": {"accuracy": 0.5, "loss": 0.4}}})
    path = save_model(model, tmp_path / f"{name}.keras", info)
    with zipfile.ZipFile(path) as archive:
        entries = {item.filename: archive.read(item) for item in archive.infolist()}
    entries[METADATA_ENTRY] = entries[METADATA_ENTRY].replace(b'"loss": 0.4', f'"loss": {test_loss}'.encode())
    with zipfile.ZipFile(path, "w") as archive:
        for name_in_zip, data in entries.items():
            archive.writestr(name_in_zip, data)
    return path


def test_a_model_of_nans_never_loads_and_a_diverged_record_is_never_the_default(tmp_path, capsys):
    model = create_model("small_cnn", image_size=48, weights=None)
    model.layers[-1].weights[0].assign(np.full(model.layers[-1].weights[0].shape, np.nan, "float32"))
    nans = save_model(model, tmp_path / "nans" / "nans.keras", ModelInfo(["cats", "dogs"], 48, "small_cnn"))
    with pytest.raises(UserError, match="not finite numbers"):
        load_model(nans)
    path = saved(tmp_path, "diverged", 0.9, "NaN")  # an earlier release published these
    good_path = saved(tmp_path, "good", 0.6)
    assert choose_model(tmp_path) == good_path  # despite the diverged one's higher validation accuracy
    assert [m.path for m in list_saved_models(tmp_path)] == [good_path, path]
    code, out, _ = run_command(saved_main, ["--saved-models-dir", tmp_path, "--format", "json"], capsys)
    rows = json.loads(out)  # standard JSON: Python's reader would accept a bare NaN, so look for it too
    assert code == 0 and "NaN" not in out and [row["default"] for row in rows] == [True, False]


def test_json_never_holds_nan_or_infinity(tmp_path):
    value = {"loss": float("nan"), "scores": [np.float32("inf"), 1.5, np.int64(3)], "ok": "text"}
    text = json_text(value)
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"loss": None, "scores": [None, 1.5, 3], "ok": "text"}
    assert json.loads(write_json(tmp_path / "x.json", value).read_text())["loss"] is None


def test_the_parity_check_fails_on_outputs_that_are_not_finite():
    reference = np.array([[0.9, 0.1], [0.2, 0.8]])
    labels = np.array([0, 1])
    assert compare(reference, reference.copy(), labels, "none").passed
    exported = np.array([[np.nan, np.nan], [0.2, 0.8]])
    parity = compare(reference, exported, labels, "none")
    assert not parity.passed and any("not finite" in problem for problem in parity.problems)
