"""The app without TensorFlow: in a virtual environment with keras, jax, pillow and numpy but no tensorflow,
``KERAS_BACKEND=jax`` trains small_cnn through ``--pipeline pydataset``, predicts and evaluates with it.

The environment is built by ``.ci/run`` (README: Without TensorFlow), which passes its interpreter as
``CATSDOGS_PYTHON_WITHOUT_TENSORFLOW``; without it these tests skip and say why.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest


def interpreter_from_environment() -> str:
    """``CATSDOGS_PYTHON_WITHOUT_TENSORFLOW`` made absolute against the folder pytest was started in: the tests run
    their commands from other folders, where a relative path would name nothing."""
    value = os.environ.get("CATSDOGS_PYTHON_WITHOUT_TENSORFLOW", "")
    return str(Path(value).absolute()) if value else ""


PYTHON = interpreter_from_environment()
needs_environment = pytest.mark.skipif(
    not PYTHON, reason="NOT RUN: no TensorFlow-free environment; build one as README's 'Without TensorFlow' says "
                       "(.ci/run does) and set CATSDOGS_PYTHON_WITHOUT_TENSORFLOW to its python")


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(Path(__file__).parents[1])}
    return subprocess.run([PYTHON, *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=600)


@needs_environment
def test_the_environment_has_no_tensorflow(tmp_path):
    probe = run("-c", "import importlib.util as u; print(u.find_spec('tensorflow'), u.find_spec('jax') is not None)",
                cwd=tmp_path)
    assert probe.stdout.split() == ["None", "True"], probe.stderr


@needs_environment
def test_train_predict_and_evaluate_without_tensorflow(tmp_path):
    prepared = run("-m", "data_prep", "--synthetic", "40", "--out", "data", cwd=tmp_path)
    assert prepared.returncode == 0, prepared.stderr
    trained = run("-m", "catsdogs.train", "--data-dir", "data", "--model", "small_cnn", "--image-size", "48",
                  "--epochs", "4", "--pipeline", "pydataset", "--verbose", "0", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    [run_dir] = (tmp_path / "runs").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    assert metrics["test"]["images"] == 20 and config["run"]["versions"]["tensorflow"] == "none"
    assert config["run"]["versions"]["backend"] == "jax"
    model = tmp_path / "saved_models" / "small_cnn.keras"
    predicted = run("-m", "catsdogs.predict", "--model", str(model), "--format", "json", "data/test/cats", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    assert len(json.loads(predicted.stdout)["predictions"]) == 10
    evaluated = run("-m", "catsdogs.evaluate", "--model", str(model), "--data-dir", "data", "--output", "evaluation",
                    cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    scored = json.loads((tmp_path / "evaluation" / "metrics.json").read_text())
    assert scored["accuracy"] == pytest.approx(metrics["test"]["accuracy"], abs=0.05)  # Pillow's IDCT: ~1 level


@needs_environment
def test_the_tf_data_pipeline_without_tensorflow_is_a_one_line_error(tmp_path):
    prepared = run("-m", "data_prep", "--synthetic", "10", "--out", "data", cwd=tmp_path)
    assert prepared.returncode == 0, prepared.stderr
    refused = run("-m", "catsdogs.train", "--data-dir", "data", "--epochs", "1", cwd=tmp_path)
    assert refused.returncode == 2 and refused.stderr.strip().count("\n") == 0, refused.stderr
    assert "--pipeline pydataset" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@needs_environment
@pytest.mark.parametrize("command", [["catsdogs.export", "--format", "onnx"],
                                     ["catsdogs.visualize", "activations", "--image", "x.jpg", "--output", "out"]])
def test_commands_that_need_tensorflow_say_so_in_one_line(tmp_path, command):
    refused = run("-m", *command, cwd=tmp_path)
    assert refused.returncode == 2 and refused.stderr.strip().count("\n") == 0, refused.stderr
    assert "needs TensorFlow, which is not installed" in refused.stderr and not (tmp_path / "out").exists()


def test_a_relative_interpreter_path_is_taken_from_where_pytest_started(monkeypatch, tmp_path):
    monkeypatch.setenv("CATSDOGS_PYTHON_WITHOUT_TENSORFLOW", ".venv-jax/bin/python")
    monkeypatch.chdir(tmp_path)
    assert interpreter_from_environment() == str(tmp_path / ".venv-jax" / "bin" / "python")
