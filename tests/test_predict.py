"""predict: same numbers as model.predict, every input accounted for, bad files named, models loaded safely."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers.commands import run_command
from helpers.images import make_split_folder, write_image
from PIL import Image

from catsdogs.config import DECODABLE_EXTENSIONS, TrainConfig
from catsdogs.data.decode import load_image
from catsdogs.data.files import expand_inputs
from catsdogs.errors import UserError
from catsdogs.models.saving import ModelInfo, load_model, save_model
from catsdogs.outputs import TEMP_PREFIX
from catsdogs.predict import main
from catsdogs.runtime.catalog import choose_model
from catsdogs.runtime.opening import open_classifier
from catsdogs.runtime.prediction import predict_files
from catsdogs.training.trainer import train

SIZE = 48


def run_predict(argv: list, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    return run_command(main, argv, capsys)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small_cnn trained one epoch on the tiny split, saved the way `catsdogs.train` saves it."""
    root = tmp_path_factory.mktemp("predict")
    data = make_split_folder(root / "data", {"train": 6, "validation": 3, "test": 3})
    run = train(TrainConfig(data_dir=str(data), image_size=SIZE, epochs=1, verbose=0, output=str(root / "runs"),
                            saved_models_dir=str(root / "saved_models")))
    return {"data": data, "model": run.saved_model_path, "saved_models": root / "saved_models"}


@pytest.fixture(scope="module")
def model_and_info(trained):
    return load_model(trained["model"])


def bad_inputs(folder: Path) -> dict[str, Path]:
    """One of each kind of bad input the issue lists, by the words its error line must contain."""
    folder.mkdir(parents=True, exist_ok=True)
    good = write_image(folder / "source.jpg", np.random.default_rng(0).integers(0, 256, (40, 40, 3)))
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "random.jpg").write_bytes(np.random.default_rng(0).bytes(2000))
    (folder / "truncated.jpg").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (folder / "empty_folder").mkdir(exist_ok=True)
    good.unlink()
    return {"no such file": folder / "missing.jpg", "empty file": folder / "zero.jpg",
            "not an image": folder / "random.jpg", "truncated": folder / "truncated.jpg",
            "holds no images": folder / "empty_folder"}


def good_inputs(folder: Path) -> list[Path]:
    rng = np.random.default_rng(1)
    images = [write_image(folder / f"good{i}.jpg", rng.integers(0, 256, (40 + 10 * i, 50, 3))) for i in range(3)]
    images.append(write_image(folder / "png_named.jpg", rng.integers(0, 256, (30, 30, 3)), format="PNG"))
    return images


def test_cli_probabilities_equal_model_predict(trained, model_and_info, tmp_path, capsys):
    files = good_inputs(tmp_path)
    code, out, err = run_predict([*files, "--model", trained["model"], "--format", "json", "--batch-size", 3], capsys)
    [line] = err.splitlines()
    assert code == 0 and line.startswith(f"model: {trained['model']} (small_cnn, 48 px, cats/dogs, validation ")
    printed = json.loads(out)
    model, info = model_and_info
    expected = model.predict(np.stack([load_image(path, SIZE).numpy() for path in files]).astype("float32"), verbose=0)
    assert [record["path"] for record in printed["predictions"]] == [str(path) for path in files]
    got = np.array([record["probabilities"][info.class_names[1]] for record in printed["predictions"]])
    np.testing.assert_allclose(got, expected[:, 0], rtol=1e-5, atol=1e-6)
    for record, p in zip(printed["predictions"], expected[:, 0]):
        assert record["predicted"] == info.class_names[int(p > 0.5)]
        assert sum(record["probabilities"].values()) == pytest.approx(1.0)


def test_text_lines_name_the_class_as_stored_and_the_default_model_is_the_newest(trained, tmp_path, capsys):
    files = good_inputs(tmp_path)
    code, out, _ = run_predict([*files, "--saved-models-dir", trained["saved_models"]], capsys)
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == len(files)
    for line, path in zip(lines, files):
        assert re.fullmatch(rf"{re.escape(str(path))}: (cats|dogs) \d+\.\d%", line)


def test_json_and_csv_cover_every_input_with_an_error_field_for_failures(trained, tmp_path, capsys):
    files = good_inputs(tmp_path / "good")
    bad = bad_inputs(tmp_path / "bad")
    argv = [*files, *bad.values(), "--model", trained["model"]]
    code, out, _ = run_predict([*argv, "--format", "json"], capsys)
    records = {record["path"]: record for record in json.loads(out)["predictions"]}
    assert code == 0 and set(records) == {str(p) for p in [*files, *bad.values()]}
    assert all("error" in records[str(p)] and "probabilities" not in records[str(p)] for p in bad.values())
    assert all(set(records[str(p)]["probabilities"]) == {"cats", "dogs"} for p in files)

    code, out, _ = run_predict([*argv, "--format", "csv"], capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and {row["path"] for row in rows} == set(records)
    assert list(rows[0]) == ["path", "predicted", "probability_cats", "probability_dogs", "error"]
    for row in rows:
        if row["path"] in map(str, files):
            assert row["error"] == "" and float(row["probability_cats"]) + float(row["probability_dogs"]) == \
                pytest.approx(1.0, abs=1e-5)
            assert row["probability_dogs"] == f"{records[row['path']]['probabilities']['dogs']:.6f}"
        else:
            assert row["error"] == records[row["path"]]["error"] and row["predicted"] == ""


def test_kaggle_submission_is_id_label_sorted_by_number(trained, model_and_info, tmp_path, capsys):
    test1 = tmp_path / "test1"
    rng = np.random.default_rng(2)
    for image_id in (10, 2, 1, 100):
        write_image(test1 / f"{image_id}.jpg", rng.integers(0, 256, (40, 40, 3)))
    submission = tmp_path / "submission.csv"
    code, _, err = run_predict([test1, "--model", trained["model"], "--kaggle-submission", submission], capsys)
    assert code == 0 and f"wrote {submission}" in err
    lines = submission.read_text().splitlines()
    assert lines[0] == "id,label"
    ids, labels = zip(*[(int(i), float(label)) for i, label in (line.split(",") for line in lines[1:])])
    assert list(ids) == [1, 2, 10, 100]
    model, _ = model_and_info
    images = np.stack([load_image(test1 / f"{i}.jpg", SIZE).numpy() for i in ids]).astype("float32")
    np.testing.assert_allclose(labels, model.predict(images, verbose=0)[:, 0], atol=1e-6)  # P(dogs)


def test_good_and_bad_files_in_a_user_shell(trained, tmp_path):
    """Results for the good files, one clear line per bad one and a count, status 0 (the good ones were done),
    no traceback, no TF chatter."""
    files = good_inputs(tmp_path / "good")
    bad = bad_inputs(tmp_path / "bad")
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    command = [sys.executable, "-m", "catsdogs.predict", *map(str, files), *map(str, bad.values()),
               "--model", str(trained["model"])]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert [line.split(": ")[0] for line in result.stdout.splitlines()] == [str(p) for p in files]
    model_line, *errors = result.stderr.splitlines()
    assert model_line.startswith(f"model: {trained['model']} (small_cnn")
    assert errors[-1] == f"{len(bad)} input(s) skipped, {len(files)} processed"
    assert len(errors) == len(bad) + 1, result.stderr
    for words, path in bad.items():
        [line] = [line for line in errors if line.startswith(f"skipped {path}: ")]
        assert words in line, line
    assert "Traceback" not in result.stderr


def test_nothing_to_predict_is_reported_not_a_crash(trained, tmp_path, capsys):
    bad = bad_inputs(tmp_path)
    code, out, err = run_predict([bad["no such file"], bad["holds no images"], "--model", trained["model"]], capsys)
    assert code == 1 and out == "" and len(err.splitlines()) == 2


def test_predict_files_aligns_results_and_failures_across_batches(trained, tmp_path):
    files = [str(p) for p in good_inputs(tmp_path)]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"GIF89a not really")
    paths = [files[0], str(broken), *files[1:], str(broken)]
    report = predict_files(open_classifier(trained["model"]), paths, batch_size=2)
    assert [r.path for r in report.results] == files
    assert [f.path for f in report.failures] == [str(broken)] * 2
    assert report.probabilities.shape == (len(files), 2)


def test_expand_inputs_handles_files_folders_globs_and_problems(tmp_path):
    nested = [write_image(tmp_path / "photos" / name, np.zeros((8, 8, 3))) for name in ("a.jpg", "sub/b.png")]
    (tmp_path / "photos" / "notes.txt").write_text("not an image")
    (tmp_path / "empty").mkdir()
    files, problems = expand_inputs([tmp_path / "photos", str(tmp_path / "photos" / "*.jpg"),
                                     tmp_path / "missing.jpg", str(tmp_path / "nothing*.png"), tmp_path / "empty"])
    assert files == [str(p) for p in nested]  # folders recurse; the glob's match is not repeated
    assert [(Path(p.path).name, p.error) for p in problems] == [
        ("missing.jpg", "no such file or folder"), ("nothing*.png", "no file matches this pattern"),
        ("empty", f"folder holds no images ({', '.join(DECODABLE_EXTENSIONS)})")]


def test_a_model_being_written_is_never_chosen_and_an_empty_folder_is_explained(trained, tmp_path):
    shutil.copyfile(trained["model"], tmp_path / "done.keras")
    shutil.copyfile(trained["model"], tmp_path / f"{TEMP_PREFIX}1a2b-half.keras")  # a model being written
    os.utime(tmp_path / "done.keras", (1e9, 1e9))  # older than the one being written
    assert choose_model(tmp_path).name == "done.keras"
    (tmp_path / "none").mkdir()
    with pytest.raises(UserError, match="no .keras model in .*model='PATH'"):
        choose_model(tmp_path / "none")


def test_missing_or_invalid_models_are_one_line_errors_with_status_2(tmp_path, capsys):
    image = write_image(tmp_path / "cat.jpg", np.zeros((20, 20, 3)))
    (tmp_path / "text.keras").write_text("hello")
    with zipfile.ZipFile(tmp_path / "zip.keras", "w") as archive:
        archive.writestr("readme.txt", "a zip, but no Keras model")
    (tmp_path / "empty_dir").mkdir()
    for flags in (["--model", tmp_path / "missing.keras"], ["--model", tmp_path / "text.keras"],
                  ["--model", tmp_path / "zip.keras"], ["--saved-models-dir", tmp_path / "empty_dir"]):
        code, out, err = run_predict([image, *flags], capsys)
        assert code == 2 and out == "" and len(err.splitlines()) == 1 and err.startswith("error: "), err


def test_a_lambda_model_is_refused_in_safe_mode_and_loads_with_unsafe(tmp_path, capsys):
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Lambda(lambda images: images / 255.0)(inputs)
    outputs = keras.layers.Dense(1, activation="sigmoid")(keras.layers.GlobalAveragePooling2D()(x))
    path = save_model(keras.Model(inputs, outputs), tmp_path / "lambda.keras", ModelInfo(["cats", "dogs"], SIZE))
    image = write_image(tmp_path / "cat.jpg", np.zeros((20, 20, 3)))
    code, out, err = run_predict([image, "--model", path], capsys)
    assert code == 2 and out == "" and len(err.splitlines()) == 1 and "Lambda" in err and "--unsafe" in err
    code, out, err = run_predict([image, "--model", path, "--unsafe"], capsys)
    assert code == 0 and out.startswith(f"{image}: ")


def test_explain_writes_an_overlay_and_heatmap_per_image(trained, tmp_path, capsys):
    files = good_inputs(tmp_path / "in")
    explained = tmp_path / "explained"
    code, _, err = run_predict([*files, "--model", trained["model"], "--explain", explained], capsys)
    assert code == 0 and "wrote 4 Grad-CAM overlays" in err
    for path in files:
        overlay_png = explained / f"{path.name}.png"
        assert Image.open(overlay_png).size[0] > Image.open(path).size[0]  # the original image and a colour bar
        heatmap = np.load(overlay_png.with_suffix(".npy"))
        assert heatmap.shape == (SIZE, SIZE) and 0 <= heatmap.min() <= heatmap.max() <= 1
    code, _, err = run_predict([*files, "--model", trained["model"], "--explain", explained, "--layer", "nope"],
                               capsys)
    assert code == 2 and "no layer 'nope'" in err
