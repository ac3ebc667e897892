"""One model, two Keras backends: a ``.keras`` model saved under TensorFlow predicts the same under JAX, and
the other way round; gradient tools say in one line that they need TensorFlow.

Each backend runs in its own process (Keras picks its backend once, at import). Skipped, loudly, where JAX
is not installed (``pip install -e ".[jax]"``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("jax", reason="JAX is not installed: pip install -e '.[jax]' runs these tests")

SIZE = 48
# Trains a model with every custom layer (Preprocess, RandomAffine inside the model, BatchNormalization) for
# one step on random data, saves it with its metadata, and prints its predictions for fixed images.
SAVE_AND_PREDICT = """
import json, sys
import keras, numpy as np
from catsdogs.config import AugmentParams
from catsdogs.metadata import ModelInfo
from catsdogs.models import create_model
from catsdogs.models.saving import save_model
keras.utils.set_random_seed(0)
model = create_model("small_cnn", image_size={size}, weights=None, batchnorm=True, augmentation=AugmentParams())
model.compile(optimizer="adam", loss="binary_crossentropy")
rng = np.random.default_rng(0)
model.train_on_batch(rng.uniform(0, 255, (4, {size}, {size}, 3)).astype("float32"), np.array([0, 1, 0, 1]))
save_model(model, sys.argv[1], ModelInfo(class_names=["cats", "dogs"], image_size={size}, model_name="small_cnn"))
images = np.random.default_rng(1).uniform(0, 255, (3, {size}, {size}, 3)).astype("float32")
print(json.dumps({{"backend": keras.backend.backend(),
                  "predictions": keras.ops.convert_to_numpy(model(images, training=False)).tolist()}}))
"""
LOAD_AND_PREDICT = """
import json, sys
import keras, numpy as np
from catsdogs.models.saving import load_model
model, info = load_model(sys.argv[1])
images = np.random.default_rng(1).uniform(0, 255, (3, {size}, {size}, 3)).astype("float32")
print(json.dumps({{"backend": keras.backend.backend(), "classes": info.class_names,
                  "predictions": keras.ops.convert_to_numpy(model(images, training=False)).tolist()}}))
"""


def run_python(code: str, backend: str, *args: str) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", code.format(size=SIZE), *args], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["backend"] == backend
    return result


@pytest.fixture(scope="module")
def saved_under_tensorflow(tmp_path_factory) -> tuple[Path, dict]:
    """One model saved under TensorFlow for every test that starts from one (a process each costs seconds)."""
    path = tmp_path_factory.mktemp("tensorflow") / "model.keras"
    return path, run_python(SAVE_AND_PREDICT, "tensorflow", str(path))


@pytest.mark.parametrize("saved_under, loaded_under", [("tensorflow", "jax"), ("jax", "tensorflow")])
def test_a_model_saved_under_one_backend_predicts_the_same_under_the_other(tmp_path, saved_under, loaded_under,
                                                                         saved_under_tensorflow):
    if saved_under == "tensorflow":
        path, saved = saved_under_tensorflow
    else:
        path = tmp_path / "model.keras"
        saved = run_python(SAVE_AND_PREDICT, saved_under, str(path))
    loaded = run_python(LOAD_AND_PREDICT, loaded_under, str(path))
    assert loaded["classes"] == ["cats", "dogs"]
    np.testing.assert_allclose(loaded["predictions"], saved["predictions"], atol=1e-5)
    assert np.ptp(saved["predictions"]) > 0  # a model that answers the same for everything would prove nothing


# The three commands as a user runs them (their cli(): the one-line error and the exit status), in one process.
RUN_COMMANDS = """
import contextlib, io, json, sys
import keras
from catsdogs import predict, visualize
results = []
for command, argv in json.loads(sys.argv[1]):
    stderr = io.StringIO()
    sys.argv = [command, *argv]
    with contextlib.redirect_stderr(stderr):
        try:
            {{"predict": predict, "visualize": visualize}}[command].cli()
            code = 0
        except SystemExit as exc:
            code = exc.code
    results.append([code, stderr.getvalue()])
print(json.dumps({{"backend": keras.backend.backend(), "results": results}}))
"""


def test_gradient_tools_refuse_in_one_line_under_jax(tmp_path, saved_under_tensorflow):
    path = str(saved_under_tensorflow[0])
    image = tmp_path / "cat.png"
    Image.fromarray(np.full((SIZE, SIZE, 3), 120, np.uint8)).save(image)
    commands = [["visualize", ["gradcam", "--image", str(image), "--model", path, "--output", str(tmp_path / "g")]],
                ["visualize", ["filters", "--model", path, "--output", str(tmp_path / "f")]],
                ["predict", [str(image), "--model", path, "--explain", str(tmp_path / "e")]]]
    results = run_python(RUN_COMMANDS, "jax", json.dumps(commands))["results"]
    for command, (code, stderr) in zip(commands, results):
        assert code not in (0, None), command
        last = stderr.strip().splitlines()[-1]
        assert "Traceback" not in stderr and "TensorFlow backend" in last and "KERAS_BACKEND=tensorflow" in last
    # refused before any work: nothing written but the output folder's own marker
    assert not [path for path in tmp_path.glob("[gfe]/*") if path.name != ".catsdogs-output"]


SERVE_ONE = """
import json, sys
import keras
from starlette.testclient import TestClient
from catsdogs.runtime.opening import open_classifier
from catsdogs.server.app import create_app
classifier = open_classifier(sys.argv[1])
with TestClient(create_app(classifier, "pets")) as client:
    answer = client.post("/predict", content=open(sys.argv[2], "rb").read())
    tensors = client.post("/v1/models/pets:predict", json={{"instances": [[[[120, 120, 120]] * {size}] * {size}]}})
print(json.dumps({{"backend": keras.backend.backend(), "status": [answer.status_code, tensors.status_code],
                  "probability": answer.json()["results"][0]["probabilities"]["cats"],
                  "predictions": tensors.json()["predictions"]}}))
"""


def test_serve_answers_on_jax_as_on_tensorflow(tmp_path, saved_under_tensorflow):
    path, image = saved_under_tensorflow[0], tmp_path / "cat.png"
    Image.fromarray(np.full((SIZE, SIZE, 3), 120, np.uint8)).save(image)
    answers = {backend: run_python(SERVE_ONE, backend, str(path), str(image)) for backend in ("jax", "tensorflow")}
    assert answers["jax"]["status"] == answers["tensorflow"]["status"] == [200, 200]
    # A flat grey PNG decodes to the same pixels through Pillow (JAX) and TensorFlow's decoder.
    assert abs(answers["jax"]["probability"] - answers["tensorflow"]["probability"]) < 1e-5
    np.testing.assert_allclose(answers["jax"]["predictions"], answers["tensorflow"]["predictions"], atol=1e-5)


def test_export_under_jax_runs_itself_on_tensorflow(tmp_path, saved_under_tensorflow):
    # LiteRT, the format Keras writes only from TensorFlow's backend; the command reruns whole on TensorFlow, so every
    # format then goes as tests/test_export.py checks it there.
    export_format = "litert"
    path = saved_under_tensorflow[0]
    data = tmp_path / "data" / "test"
    for index, name in enumerate(("cats", "dogs")):
        (data / name).mkdir(parents=True)
        Image.fromarray(np.full((SIZE, SIZE, 3), 60 + 100 * index, np.uint8)).save(data / name / "a.png")
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-m", "catsdogs.export", "--model", str(path), "--format", export_format,
                           "--data-dir", str(tmp_path / "data"), "--output", str(tmp_path / "exports")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "exporting on the TensorFlow backend (KERAS_BACKEND is jax)" in done.stderr
    assert "parity on 2 held-out images: passed" in done.stdout, done.stdout
