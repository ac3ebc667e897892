"""Training under stress: kill -9 then --resume, two runs at once, per-split caches, a failure before
the first epoch, and one EXIF rule from data_prep to Grad-CAM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers.images import make_split_folder
from PIL import Image

from catsdogs.config import TrainConfig
from catsdogs.data.decode import load_image
from catsdogs.data.files import read_splits
from catsdogs.data.images import check_image_file, open_upright
from catsdogs.data.pipeline import make_dataset
from catsdogs.errors import UserError
from catsdogs.training.rundir import read_history
from catsdogs.training.trainer import build_datasets, train
from data_prep.split import SplitCounts, prepare_split

SIZE = 48


def train_command(data: Path, root: Path, epochs: int) -> list[str]:
    return [sys.executable, "-m", "catsdogs.train", "--data-dir", str(data), "--image-size", str(SIZE),
            "--epochs", str(epochs), "--batch-size", "8", "--quiet", "--weights", "none",
            "--output", str(root / "runs"), "--saved-models-dir", str(root / "saved_models")]


def test_kill_9_during_training_loses_at_most_the_running_epoch(tmp_path):
    data = make_split_folder(tmp_path / "data", {"train": 12, "validation": 3, "test": 3})
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    child = subprocess.Popen(train_command(data, tmp_path, epochs=40), env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    history = None
    while time.monotonic() < deadline and child.poll() is None:
        found = list((tmp_path / "runs").glob("*/history.csv"))
        if found and len(read_history(found[0]).get("epoch", [])) >= 2:
            history = found[0]
            break
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert history is not None, "no epoch finished within two minutes"
    run_dir = history.parent
    finished = len(read_history(history)["epoch"])
    state = json.loads((run_dir / "backup" / "state.json").read_text())
    assert state["epoch"] >= finished - 1  # the backup is at most the epoch being written behind the history
    assert not (tmp_path / "saved_models").exists()  # nothing published from a killed run

    config_path = run_dir / "config.json"
    config_path.write_text(config_path.read_text().replace('"epochs": 40', f'"epochs": {state["epoch"] + 1}'))
    run = train(TrainConfig(), resume_dir=run_dir)
    epochs = read_history(run_dir / "history.csv")["epoch"]
    assert epochs == list(range(state["epoch"] + 1))  # every epoch once, the killed one redone
    assert run.saved_model_path.name == "small_cnn.keras"
    assert not (run_dir / "backup").exists()


def test_two_trains_at_once_keep_both_runs_and_both_models(tmp_path):
    data = make_split_folder(tmp_path / "data", {"train": 4, "validation": 2, "test": 2})
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    children = [subprocess.Popen(train_command(data, tmp_path, epochs=1), env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [child.communicate(timeout=300) for child in children]
    assert [child.returncode for child in children] == [0, 0], results
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2 and all((run / "model.keras").is_file() for run in runs)
    saved = sorted(p.name for p in (tmp_path / "saved_models").glob("*.keras") if not p.name.startswith("."))
    assert saved == ["small_cnn-2.keras", "small_cnn.keras"]
    cards = sorted(p.name for p in (tmp_path / "saved_models").glob("*.md"))
    assert cards == ["small_cnn-2.md", "small_cnn.md"]  # each model's own card beside it
    published = {json.loads((run / "state.json").read_text())["published"] for run in runs}
    assert published == {str(tmp_path / "saved_models" / name) for name in saved}


def test_a_cache_file_serves_each_split_its_own_images(tmp_path):
    data = make_split_folder(tmp_path / "data", {"train": 5, "validation": 2, "test": 2})
    config = TrainConfig(data_dir=str(data), image_size=SIZE, cache=str(tmp_path / "cache" / "images"),
                         batch_size=4)
    (tmp_path / "cache").mkdir()
    folders = read_splits(data)
    for _ in range(2):  # the second time reads the cache files
        datasets = build_datasets(config, folders, 4, augment_in_model=False)
        assert sum(int(labels.shape[0]) for _, labels in datasets["validation"]) == 4
        assert sum(int(labels.shape[0]) for _, labels in datasets["train"]) == 10
    other = make_split_folder(tmp_path / "other", {"train": 3, "validation": 1})  # another data folder
    datasets = build_datasets(config, read_splits(other), 4, augment_in_model=False)
    assert sum(int(labels.shape[0]) for _, labels in datasets["validation"]) == 2


def test_a_failure_before_the_first_epoch_leaves_no_run_folder(tmp_path):
    data = make_split_folder(tmp_path / "data", {"train": 3, "validation": 1})
    config = TrainConfig(data_dir=str(data), image_size=SIZE, epochs=1, batch_size=4, verbose=0, weights=None,
                         output=str(tmp_path / "runs"), saved_models_dir=str(tmp_path / "saved"),
                         cache=str(tmp_path / "no-such-folder" / "cache"))  # tf.data cannot create it
    with pytest.raises(Exception):  # noqa: B017 (whatever TensorFlow raises, the folder must go)
        train(config)
    assert not list((tmp_path / "runs").glob("*"))


def test_a_run_with_no_usable_image_of_a_class_is_a_user_error(tmp_path):
    data = make_split_folder(tmp_path / "data", {"train": 2})
    for path in (data / "train" / "dogs").iterdir():
        path.write_bytes(b"")
    with pytest.raises(UserError, match="dogs holds no usable image"):
        train(TrainConfig(data_dir=str(data), image_size=SIZE, epochs=1, verbose=0, output=str(tmp_path / "runs")))


def test_one_exif_rule_from_data_prep_to_gradcam(tmp_path):
    """A phone photo stored sideways (EXIF orientation 6) is upright everywhere: data_prep writes it
    upright, and the training pipeline, prediction and the overlay picture all turn the original."""
    upright = np.zeros((96, 48, 3), np.uint8)  # portrait: the top third white, the rest black
    upright[:32] = 255
    stored = np.rot90(upright, 1)  # as the sensor saw it: turned a quarter left (landscape)
    exif = Image.Exif()
    exif[274] = 6  # "turn 90 degrees clockwise to view"
    source = tmp_path / "source"
    for name in ("cats", "dogs"):
        (source / name).mkdir(parents=True)
        for index in range(3):
            variant = stored.copy()
            variant[40:44, 60 + 8 * index: 64 + 8 * index] = 40 + 60 * (name == "dogs")  # no duplicates
            Image.fromarray(variant).save(source / name / f"{name}.{index}.jpg", "JPEG", exif=exif, quality=100)
    photo = source / "cats" / "cats.0.jpg"
    assert check_image_file(photo, SIZE).orientation == 6

    def top_is_white(image: np.ndarray) -> bool:
        height = image.shape[0]
        return image[: height // 4].mean() > 200 and image[height // 2:].mean() < 60

    assert not top_is_white(stored)
    assert top_is_white(load_image(photo, SIZE).numpy())  # predict, evaluate, visualize activations
    assert top_is_white(open_upright(photo))  # the picture Grad-CAM draws on
    assert open_upright(photo).shape[:2] == (96, 48)
    images, _ = next(iter(make_dataset(source, SIZE, 6)))  # training
    assert all(top_is_white(image) for image in images.numpy())
    summary = prepare_split(source, tmp_path / "prepared", counts=SplitCounts(1, 1, 1))
    assert len(summary.reencoded) == 6 and all("upright" in item["reason"] for item in summary.reencoded)
    for written in (tmp_path / "prepared").rglob("*.jpg"):
        with Image.open(written) as image:
            assert image.getexif().get(274, 1) == 1 and image.size == (48, 96)
            assert top_is_white(np.asarray(image))


@pytest.mark.parametrize("edit", [{"name": "../../x"}, {"name": "/tmp/x"}, {"epochs": -1}, {"epochs": "6"},
                                  {"lr": "abc"}, {"batch_size": 0}, {"image_size": 40000}])
def test_odd_values_in_a_resumed_config_are_one_line_errors_naming_the_file(tmp_path, edit):
    run_dir = tmp_path / "run"
    TrainConfig().save(run_dir / "config.json")
    values = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**values, **edit}))
    with pytest.raises(UserError) as refused:
        train(TrainConfig(), resume_dir=run_dir)
    assert str(refused.value).startswith(f"{run_dir / 'config.json'}: {next(iter(edit))} ")  # a Python caller's words
    assert refused.value.worded().startswith(f"{run_dir / 'config.json'}: --{next(iter(edit)).replace('_', '-')} ")
