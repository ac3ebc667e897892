"""Export: every format and quantization round-trips with parity, binary and 3-class; the TF Serving hand-off;
exported models in predict and evaluate (without TensorFlow for LiteRT and ONNX); model cards."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers.images import make_split_folder
from helpers.training import train_tiny

from catsdogs.config import AugmentParams
from catsdogs.data.files import read_image_folder
from catsdogs.errors import EXIT_CHECK_FAILED, UserError
from catsdogs.evaluate import main as evaluate_main
from catsdogs.export import main as export_main
from catsdogs.exports import parity
from catsdogs.exports.exporter import decode_folder, export_model
from catsdogs.metadata import LABELS_FILE, METADATA_ENTRY, ModelInfo
from catsdogs.modelcard import card_path
from catsdogs.models import calibration, create_model
from catsdogs.models.heads import class_probabilities
from catsdogs.models.saving import load_model, save_model
from catsdogs.predict import main as predict_main
from catsdogs.runtime.engines import BYTES_SIGNATURE, SERVING_DEFAULT
from catsdogs.runtime.opening import open_classifier
from catsdogs.runtime.tfserving import request_values, response_body

ROOT = Path(__file__).resolve().parents[1]
# The binary model carries an augmentation layer (the export must leave it out), the 3-class one BatchNormalization.
CASES = {"binary": ("small_cnn", 48, ("cats", "dogs"), False), "three": ("small_cnn", 48, ("birds", "cats", "dogs"), True)}
EXPORTS = [("saved_model", "none"), ("litert", "none"), ("litert", "float16"), ("litert", "dynamic"),
           ("litert", "int8"), ("onnx", "none"), ("onnx", "float16"), ("onnx", "int8")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    return {case: train_tiny(tmp_path_factory.mktemp(case), *spec) for case, spec in CASES.items()}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("export_format, quantize", EXPORTS)
def test_every_format_and_quantization_round_trips_with_parity(trained, tmp_path, case, export_format, quantize):
    model_path, data = trained[case]
    export = export_model(model_path, export_format, quantize, tmp_path / "exports")  # data from the metadata
    assert export.passed, export.parity
    engine = open_classifier(export.model_path)
    # Independently of the exporter's own check: the Keras model and the export on the test images.
    model, info = load_model(model_path)
    images, labels, _ = decode_folder(read_image_folder(data / "test"), info.image_size, 100)
    expected = class_probabilities(model.predict(images, verbose=0), len(info.class_names))
    got = engine.predict(images)
    assert got.shape == expected.shape
    if quantize == "none":
        assert np.abs(got - expected).max() <= 1e-4
    if quantize in ("none", "float16"):
        assert (got.argmax(1) == expected.argmax(1)).all()
    else:
        assert np.mean(got.argmax(1) == labels) >= np.mean(expected.argmax(1) == labels) - 0.01
    # The labels, size and card travel with it.
    assert engine.info.class_names == info.class_names and engine.info.image_size == info.image_size
    assert (export.folder / LABELS_FILE).read_text().split() == info.class_names
    sidecar = json.loads((export.folder / METADATA_ENTRY).read_text())
    assert sidecar["extra"]["export"]["format"] == export_format and sidecar["extra"]["export"]["quantize"] == quantize
    assert json.loads((export.folder / "parity.json").read_text()) == sidecar["extra"]["export"]["parity"]
    card = card_path(export.model_path).read_text()
    assert f"Format: {export_format}, quantization `{quantize}`" in card and "parity" in card.lower()
    if quantize == "int8":
        assert sidecar["extra"]["export"]["representative_data"]["folder"] == str(data / "train")


def test_the_export_leaves_augmentation_out_and_names_its_input(trained, tmp_path):
    import onnx

    model_path, _ = trained["binary"]
    assert any(layer.name == "augment" for layer in load_model(model_path)[0].layers)
    export = export_model(model_path, "onnx", output=tmp_path)
    graph = onnx.load(str(export.model_path)).graph
    assert [value.name for value in graph.input] == ["image"]
    assert not {node.op_type for node in graph.node} & {"ImageProjectiveTransformV3", "StatelessRandomUniformV2",
                                                          "RandomUniform"}
    litert = open_classifier(export_model(model_path, "litert", output=tmp_path).model_path)
    assert list(litert._runner.get_input_details()) == ["image"]


def test_a_network_with_skip_connections_exports_with_its_temperature(tmp_path):
    keras.utils.set_random_seed(3)
    model = create_model("mini_xception", image_size=48, weights=None, augmentation=AugmentParams(), seed=0)
    data = make_split_folder(tmp_path / "data", {"train": 2, "validation": 2, "test": 3}, size=48)
    info = ModelInfo(["cats", "dogs"], 48, "mini_xception", extra={"data": {"dir": str(data)}, "temperature": 0.05})
    export = export_model(save_model(model, tmp_path / "mini_xception.keras", info), "onnx", output=tmp_path)
    images, _, _ = decode_folder(read_image_folder(data / "test"), 48, 100)
    logits = calibration.logits_model(model).predict(images, verbose=0)[:, 0]
    expected = keras.ops.convert_to_numpy(keras.ops.sigmoid(logits / 0.05))  # a sharp temperature: it shows
    np.testing.assert_allclose(open_classifier(export.model_path).predict(images)[:, 1], expected, atol=1e-4)


def test_tf_servings_rest_json_feeds_the_saved_models_signatures(trained, tmp_path):
    """The hand-off without Docker: TF Serving's bodies, both shapes, through both signatures."""
    model_path, data = trained["three"]
    export = export_model(model_path, "saved_model", output=tmp_path)
    assert (export.folder / "1" / "saved_model.pb").is_file()  # <base>/<version>/, TF Serving's layout
    engine = open_classifier(export.folder)
    signatures = engine.loaded.signatures
    assert set(signatures) == {SERVING_DEFAULT, BYTES_SIGNATURE}
    model, info = load_model(model_path)
    paths = sorted((data / "test").rglob("*.jpg"))[:4]
    images, _, _ = decode_folder(read_image_folder(data / "test"), info.image_size, 100)
    expected = class_probabilities(model.predict(images[:4], verbose=0), 3)

    row = json.loads(json.dumps({"instances": images[:4].tolist()}))  # as it comes over the wire
    values, is_row = request_values(row, "image")
    answer = response_body(engine.predict(np.array(values, np.float32)), is_row)
    np.testing.assert_allclose(answer["predictions"], expected, atol=1e-4)
    columnar = json.loads(json.dumps({"inputs": {"image": images[:4].tolist()}}))
    values, is_row = request_values(columnar, "image")
    np.testing.assert_allclose(response_body(engine.predict(np.array(values, np.float32)), is_row)["outputs"],
                               expected, atol=1e-4)

    encoded = [base64.b64encode(path.read_bytes()).decode() for path in paths]
    body = json.loads(json.dumps({"signature_name": BYTES_SIGNATURE, "instances": [{"b64": e} for e in encoded]}))
    values, _ = request_values(body, "image_bytes")
    from_bytes = engine.predict_bytes(values)  # decoded inside the graph by the training pipeline's decoder
    from_files = open_classifier(export.folder).predict(
        np.stack([decode_folder(read_image_folder(data / "test"), info.image_size, 100)[0][0]]))
    assert from_bytes.shape == (4, 3) and np.allclose(from_bytes.sum(1), 1, atol=1e-5)
    assert from_bytes.argmax(1).tolist() == [["birds", "cats", "dogs"].index(p.parent.name) for p in paths]
    assert from_files.shape == (1, 3)


def run_predict_without_tensorflow(model: Path, images: list[Path]) -> tuple[dict, bool]:
    code = ("import json, sys\nfrom catsdogs.predict import main\n"
            f"code = main([*{[str(p) for p in images]!r}, '--model', {str(model)!r}, '--format', 'json'])\n"
            "print(json.dumps({'code': code, 'tensorflow': 'tensorflow' in sys.modules, 'keras': 'keras' in sys.modules}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert result.returncode == 0, result.stderr
    *predictions, status = result.stdout.strip().rsplit("\n", 1)
    return json.loads("\n".join(predictions)), json.loads(status)


@pytest.mark.parametrize("export_format", ["litert", "onnx"])
def test_predict_with_an_exported_model_never_imports_tensorflow(trained, tmp_path, export_format):
    model_path, data = trained["binary"]
    export = export_model(model_path, export_format, output=tmp_path)
    images = sorted((data / "test").rglob("*.jpg"))
    predictions, status = run_predict_without_tensorflow(export.model_path, images)
    assert status == {"code": 0, "tensorflow": False, "keras": False}
    assert [p["predicted"] for p in predictions["predictions"]] == [p.parent.name for p in images]
    assert predictions["class_names"] == ["cats", "dogs"] and predictions["image_size"] == 48


# Each command as a user runs it, in a fresh process that then says what it imported; serve's socket loop is
# replaced by one request through Starlette's test client.
COMMANDS_ON_AN_EXPORT = {
    "predict": "from catsdogs.predict import main\ncode = main([IMAGE, '--model', MODEL])",
    "evaluate": "from catsdogs.evaluate import main\ncode = main(['--model', MODEL, '--data-dir', DATA, '--output', OUT])",
    "serve": ("from starlette.testclient import TestClient\nimport catsdogs.server.app as app\nanswers = []\n"
              "def run(application, sock, on_ready):\n    on_ready()\n    with TestClient(application) as client:\n"
              "        answers.append(client.post('/predict', content=open(IMAGE, 'rb').read()).status_code)\n"
              "app.run = run\nfrom catsdogs.serve import main\n"
              "code = main(['--model', MODEL, '--port', '0']) + sum(a != 200 for a in answers) + (not answers)"),
}


@pytest.mark.parametrize("command", COMMANDS_ON_AN_EXPORT)
@pytest.mark.parametrize("export_format", ["litert", "onnx"])
def test_no_command_imports_tensorflow_or_keras_for_an_export(trained, tmp_path_factory, export_format, command):
    model_path, data = trained["binary"]
    exported = tmp_path_factory.getbasetemp() / f"imports-{export_format}"
    if not exported.exists():  # one export per format, shared by the commands
        export_model(model_path, export_format, output=exported, check_images=0)
    model = next(exported.glob(f"*/*{'.tflite' if export_format == 'litert' else '.onnx'}"))
    values = {"MODEL": str(model), "IMAGE": str(next((data / "test").rglob("*.jpg"))), "DATA": str(data),
              "OUT": str(tmp_path_factory.mktemp("evaluation"))}
    code = ("".join(f"{name} = {value!r}\n" for name, value in values.items()) + COMMANDS_ON_AN_EXPORT[command]
            + "\nimport sys\nprint(code, sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "0 []", result.stdout + result.stderr


def test_predict_and_evaluate_read_exports_like_keras_models(trained, tmp_path, capsys):
    model_path, data = trained["three"]
    export = export_model(model_path, "litert", output=tmp_path / "exports")
    assert evaluate_main(["--model", str(model_path), "--data-dir", str(data), "--output", str(tmp_path / "k")]) == 0
    assert evaluate_main(["--model", str(export.model_path), "--data-dir", str(data),
                          "--output", str(tmp_path / "e")]) == 0
    keras_metrics = json.loads((tmp_path / "k" / "metrics.json").read_text())
    export_metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert export_metrics["images"] == keras_metrics["images"] == 18
    assert abs(export_metrics["accuracy"] - keras_metrics["accuracy"]) <= 1 / 18  # one image may cross
    assert "LiteRT export of small_cnn" in capsys.readouterr().err
    with pytest.raises(UserError, match="tune a .keras model; tune that one, then export it again"):
        evaluate_main(["--model", str(export.model_path), "--data-dir", str(data), "--calibrate",
                       "--output", str(tmp_path / "tuned")])
    assert not (tmp_path / "tuned").exists()  # refused before any output
    with pytest.raises(UserError, match="needs the model's gradients"):
        predict_main([str(next((data / "test").rglob("*.jpg"))), "--model", str(export.model_path),
                      "--explain", str(tmp_path / "cam")])
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    assert predict_main([str(bad), str(next((data / "test").rglob("*.jpg"))), "--model", str(export.model_path)]) == 0
    assert f"skipped {bad}" in capsys.readouterr().err


def test_a_failed_parity_check_is_a_non_zero_exit_and_the_export_is_kept(trained, tmp_path, monkeypatch, capsys):
    model_path, data = trained["binary"]
    monkeypatch.setitem(parity.CRITERIA, "none", parity.Criteria(min_agreement=1.0, max_abs_difference=-1.0))
    code = export_main(["--model", str(model_path), "--format", "onnx", "--output", str(tmp_path)])
    assert code == EXIT_CHECK_FAILED
    assert "FAILED (max |dp|" in capsys.readouterr().out
    report = json.loads((tmp_path / "small_cnn-onnx" / "parity.json").read_text())
    assert report["passed"] is False and report["images"] == 12


def test_export_refusals_are_one_line(trained, tmp_path):
    model_path, data = trained["binary"]
    with pytest.raises(UserError, match="quantize is for litert and onnx"):
        export_model(model_path, "saved_model", "int8", tmp_path)
    with pytest.raises(UserError, match="export_format=.onnx. quantize=.dynamic. is refused: .* ConvInteger"):
        export_model(model_path, "onnx", "dynamic", tmp_path)
    moved = ModelInfo(["cats", "dogs"], 48, "small_cnn", extra={"data": {"dir": str(tmp_path / "gone")}})
    elsewhere = save_model(load_model(model_path)[0], tmp_path / "moved.keras", moved)
    with pytest.raises(UserError, match="pass data_dir "):
        export_model(elsewhere, "litert", output=tmp_path)
    assert export_model(elsewhere, "litert", output=tmp_path, data_dir=data).passed  # --data-dir instead
    skipped = export_model(elsewhere, "litert", output=tmp_path, check_images=0)
    assert skipped.parity is None and not (skipped.folder / "parity.json").exists()
    assert not list(tmp_path.glob(".tmp-*"))  # nothing half-written left behind


def test_an_export_is_published_whole_and_an_unchecked_one_is_refused(trained, tmp_path, monkeypatch):
    model_path, data = trained["binary"]
    from catsdogs.exports import exporter

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed after the model and the parity check, before the card")

    with monkeypatch.context() as patched:
        patched.setattr(exporter, "write_card", killed)
        with pytest.raises(KeyboardInterrupt):
            export_model(model_path, "onnx", output=tmp_path / "exports")
    assert not list((tmp_path / "exports").iterdir())  # no folder a later command would open, no temporary one
    # What a release that exported in place left when killed: the model and its sidecar, never checked.
    export = export_model(model_path, "onnx", output=tmp_path / "old")
    sidecar = json.loads((export.folder / METADATA_ENTRY).read_text())
    del sidecar["extra"]["export"]["parity"], sidecar["extra"]["export"]["parity_skipped"]
    (export.folder / METADATA_ENTRY).write_text(json.dumps(sidecar))
    with pytest.raises(UserError, match="never checked against its Keras model"):
        predict_main([str(next((data / "test").rglob("*.jpg"))), "--model", str(export.model_path)])
    # Unchecked by choice (--check-images 0) opens.
    assert open_classifier(export_model(model_path, "onnx", output=tmp_path / "skip", check_images=0).model_path)
