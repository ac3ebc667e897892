"""train(config): the run directory, two-phase fine-tuning, resume, MirroredStrategy and the CLI's errors."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers.commands import run_command
from helpers.images import make_split_folder
from helpers.training import StopAfter, tiny_config

from catsdogs.config import TrainConfig
from catsdogs.data.pipeline import make_dataset
from catsdogs.errors import UserError
from catsdogs.models import find_base
from catsdogs.models.saving import load_model
from catsdogs.train import main as train_main
from catsdogs.training.rundir import read_history
from catsdogs.training.trainer import train


class EpochRecorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.started: list[int] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.started.append(epoch)


def test_a_run_directory_holds_config_history_curves_metrics_and_the_model(tiny_split, tmp_path):
    run = train(tiny_config(tiny_split, tmp_path))
    files = {p.name for p in run.run_dir.iterdir()}
    assert {"config.json", "history.csv", "curves.png", "metrics.json", "model.keras", "best.weights.npz"} <= files
    saved = json.loads((run.run_dir / "config.json").read_text())
    assert saved["model"] == "small_cnn" and saved["image_size"] == 48 and saved["augment_params"]["rotation_range"] == 40
    assert {"tensorflow", "keras", "numpy"} <= set(saved["run"]["versions"])
    assert len(saved["run"]["data_fingerprint"]) == 64 and saved["run"]["class_names"] == ["cats", "dogs"]
    assert TrainConfig.load(run.run_dir / "config.json") == run.config
    assert read_history(run.run_dir / "history.csv")["epoch"] == [0.0, 1.0]
    metrics = json.loads((run.run_dir / "metrics.json").read_text())
    assert 0 <= metrics["test"]["accuracy"] <= 1 and metrics["epochs"] == 2
    assert (run.run_dir / "curves.png").stat().st_size > 1000

    model, info = load_model(run.saved_model_path)  # saved_models/<name>.keras, no flags needed
    assert run.saved_model_path.name == "small_cnn.keras"
    assert info.class_names == ["cats", "dogs"] and info.image_size == 48 and info.preprocessing == "rescale"
    images = next(iter(make_dataset(tiny_split / "test", 48, 6)))[0].numpy()
    np.testing.assert_allclose(model.predict(images, verbose=0), run.model.predict(images, verbose=0), rtol=1e-5)


def test_fine_tuning_warms_up_the_head_then_unfreezes_block5(tiny_split, tmp_path):
    config = tiny_config(tiny_split, tmp_path, model="vgg19", image_size=32, unfreeze="block5",
                         warmup_epochs=1, epochs=1, augment=False)
    run = train(config)
    assert read_history(run.run_dir / "history.csv")["learning_rate"] == pytest.approx([1e-4, 1e-5])
    trainable = {layer.name for layer in find_base(run.model).layers if layer.trainable and layer.weights}
    assert trainable == {f"block5_conv{i}" for i in range(1, 5)}
    assert json.loads((run.run_dir / "state.json").read_text())["completed_phases"] == ["warmup", "fine_tune"]
    assert run.saved_model_path.name == "vgg19-block5.keras"


def test_resume_continues_at_the_first_unfinished_epoch(tiny_split, tmp_path):
    config = tiny_config(tiny_split, tmp_path, epochs=4, augment=False)
    with pytest.raises(KeyboardInterrupt):
        train(config, callbacks=[StopAfter(2)])
    run_dir = next((tmp_path / "runs").iterdir())
    assert (run_dir / "backup").is_dir() and not (run_dir / "model.keras").exists()

    recorder = EpochRecorder()
    run = train(TrainConfig(), resume_dir=run_dir, callbacks=[recorder])  # the run's own config.json wins
    assert recorder.started == [2, 3]
    assert read_history(run_dir / "history.csv")["epoch"] == [0.0, 1.0, 2.0, 3.0]
    assert run.run_dir == run_dir and (run_dir / "model.keras").is_file() and not (run_dir / "backup").exists()


def test_resume_in_the_fine_tuning_phase_keeps_the_phase(tiny_split, tmp_path):
    config = tiny_config(tiny_split, tmp_path, model="vgg16", image_size=32, unfreeze="block5",
                         warmup_epochs=1, epochs=3, augment=False)
    with pytest.raises(KeyboardInterrupt):
        train(config, callbacks=[StopAfter(2)])  # warm-up done, one fine-tuning epoch done
    run_dir = next((tmp_path / "runs").iterdir())
    recorder = EpochRecorder()
    train(config, resume_dir=run_dir, callbacks=[recorder])
    assert recorder.started == [2, 3]
    assert read_history(run_dir / "history.csv")["learning_rate"] == pytest.approx([1e-4, 1e-5, 1e-5, 1e-5])


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="MirroredStrategy is TensorFlow's; JAX's data-parallel is tests/test_distribution.py")
def test_mirrored_strategy_over_two_cpus_trains_and_saves_a_model_that_reloads(tiny_split, tmp_path):
    config = tiny_config(tiny_split, tmp_path, epochs=1, strategy="mirrored", devices=["/cpu:0", "/cpu:1"])
    run = train(config)
    saved = json.loads((run.run_dir / "config.json").read_text())
    assert saved["run"]["replicas"] == 2 and saved["run"]["global_batch_size"] == 16
    model, _ = load_model(run.model_path)
    images = np.random.default_rng(0).uniform(0, 255, (3, 48, 48, 3)).astype(np.float32)
    np.testing.assert_allclose(model.predict(images, verbose=0), run.model.predict(images, verbose=0), rtol=1e-5)


def test_augmentation_inside_the_model_is_saved_and_inert_at_inference(tiny_split, tmp_path):
    run = train(tiny_config(tiny_split, tmp_path, epochs=1, augment_in="model"))
    assert "augment" in [layer.name for layer in run.model.layers]
    images = np.random.default_rng(1).uniform(0, 255, (2, 48, 48, 3)).astype(np.float32)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(run.model(images, training=False)), keras.ops.convert_to_numpy(run.model(images, training=False)))


def test_cli_maps_flags_onto_the_config_and_trains(tiny_split, tmp_path, capsys):
    code = train_main(["--data-dir", str(tiny_split), "--model", "small_cnn", "--image-size", "48", "--epochs", "1",
                       "--batch-size", "4", "--no-augment", "--output", str(tmp_path / "runs"),
                       "--saved-models-dir", str(tmp_path / "models"), "--name", "tiny", "--quiet"])
    assert code == 0
    run_dir = next((tmp_path / "runs").iterdir())
    config = TrainConfig.load(run_dir / "config.json")
    assert (config.batch_size, config.augment, config.epochs) == (4, False, 1)
    assert (tmp_path / "models" / "tiny.keras").is_file()
    assert "test accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("flags,message", [
    (["--model", "vgg21"], "unknown model 'vgg21'"),
    (["--model", "vgg19", "--unfreeze", "block9", "--weights", "none"], "no block9"),
    (["--model", "xception", "--image-size", "64", "--weights", "none"], "at least 71 px"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--zoom-range", "2"], "zoom_range"),
])
def test_cli_refuses_bad_settings_with_a_user_error(tiny_split, tmp_path, capsys, flags, message):
    code, _, err = run_command(train_main, ["--data-dir", tiny_split, "--output", tmp_path / "runs", "--quiet", *flags],
                               capsys)
    assert code == 2 and message in err and err.count("\n") == 1, err
    # Refused before anything trains, so no run is left behind (a bad fine-tuning choice once waited for the warm-up).
    assert not list((tmp_path / "runs").glob("*"))


def test_cli_refuses_a_missing_or_empty_data_dir(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        train_main(["--data-dir", str(tmp_path / "nothing"), "--quiet"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no train/ folder"):
        train_main(["--data-dir", str(tmp_path / "empty"), "--quiet"])


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user's shell
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "catsdogs.train", *args], capture_output=True, text=True,
                          env=environment, timeout=300)


def test_cli_errors_are_one_line_with_exit_code_2(tmp_path):
    result = run_cli("--data-dir", str(tmp_path / "missing"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr
    bad_flag = run_cli("--epochs", "many")
    assert bad_flag.returncode == 2 and bad_flag.stderr.strip().count("\n") == 0 and "--epochs" in bad_flag.stderr


def test_cli_vgg19_block5_end_to_end_and_imagenet_offline_message(tiny_split, tmp_path):
    common = ["--data-dir", str(tiny_split), "--model", "vgg19", "--unfreeze", "block5", "--epochs", "1",
              "--image-size", "64", "--output", str(tmp_path / "runs"), "--saved-models-dir", str(tmp_path / "m")]
    result = run_cli(*common, "--weights", "none", "--warmup-epochs", "1", "--quiet")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "m" / "vgg19-block5.keras").is_file()
    offline = run_cli(*common, "--weights", "imagenet",
                      env={"CATSDOGS_OFFLINE": "1", "KERAS_HOME": str(tmp_path / "keras")})
    assert offline.returncode == 2 and offline.stderr.strip().count("\n") == 0, offline.stderr
    assert "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5" in offline.stderr
    assert len(list((tmp_path / "runs").iterdir())) == 1  # the failed start left no run directory behind


def _synthetic_split(tmp_path: Path, mix_labels: bool) -> Path:
    """data_prep's synthetic set, split 60/30 per class; optionally with labels mixed across all images."""
    from data_prep import SplitCounts, make_synthetic_source, prepare_split

    source = make_synthetic_source(tmp_path / "source", 90, seed=0)
    data = tmp_path / "data"
    prepare_split(source, data, counts=SplitCounts(60, 30, 0), progress=False)
    if mix_labels:  # every image gets a random class folder: nothing is left to learn
        rng = np.random.default_rng(0)
        files = sorted(data.glob("*/*/*.jpg"))
        for path, target in zip(files, rng.permutation(["cats", "dogs"] * (len(files) // 2))):
            path.rename(path.parent.parent / target / f"mixed-{path.name}")
    return data


@pytest.mark.parametrize("mix_labels", [False, True])
def test_small_cnn_learns_the_synthetic_set_and_mixed_labels_stay_at_chance(tmp_path, mix_labels):
    data = _synthetic_split(tmp_path, mix_labels)
    run = train(tiny_config(data, tmp_path, image_size=64, epochs=8, batch_size=16, optimizer="adam", lr=1e-3))
    accuracy = run.metrics["best_val_accuracy"]
    if mix_labels:
        assert accuracy <= 0.7, accuracy  # the best of 8 epochs on 60 images: chance plus luck
    else:
        assert accuracy >= 0.9, accuracy  # through our pipeline, augmentation and labels


def test_weight_averaging_validates_and_saves_the_averaged_weights(tiny_split, tmp_path):
    run = train(tiny_config(tiny_split, tmp_path, epochs=2, ema=0.5, augment=False))
    assert run.model.optimizer.use_ema
    images = next(iter(make_dataset(tiny_split / "validation", 48, 6)))[0].numpy()
    model, _ = load_model(run.model_path)
    np.testing.assert_allclose(model.predict(images, verbose=0), run.model.predict(images, verbose=0), rtol=1e-5)
    history = read_history(run.run_dir / "history.csv")
    assert len(history["val_accuracy"]) == 2


def test_history_reads_csvloggers_na_as_missing(tmp_path):
    # CSVLogger writes "NA" for a metric an epoch lacks (a run without a validation split).
    (tmp_path / "history.csv").write_text("epoch,accuracy,val_accuracy\n0,0.5,NA\n1,0.75,0.8\n1,0.7,0.9\n")
    history = read_history(tmp_path / "history.csv")
    assert history["accuracy"] == [0.5, 0.7] and np.isnan(history["val_accuracy"][0])
    assert history["val_accuracy"][1] == 0.9


def test_a_split_with_only_train_images_trains_and_checkpoints_on_training_accuracy(tmp_path):
    data = make_split_folder(tmp_path / "data", {"train": 6})
    run = train(tiny_config(data, tmp_path))
    metrics = json.loads((run.run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and "test" not in metrics and "best_val_accuracy" not in metrics
    assert (run.run_dir / "best.weights.npz").is_file()


def test_the_automatic_cache_decides_without_os_sysconf(tiny_split, tmp_path, monkeypatch):
    """Windows has no os.sysconf: --cache auto still decides, from an assumed memory size."""
    from catsdogs.data.files import read_splits
    from catsdogs.training import trainer

    folders = read_splits(tiny_split)
    assert trainer._cache_setting(tiny_config(tiny_split, tmp_path, cache="auto"), folders) is True
    monkeypatch.delattr(os, "sysconf")
    assert trainer.physical_memory() is None
    assert trainer._cache_setting(tiny_config(tiny_split, tmp_path, cache="auto"), folders) is True
    many = dataclasses.replace(folders["train"], paths=folders["train"].paths * 100, labels=folders["train"].labels * 100)
    assert trainer._cache_setting(tiny_config(tiny_split, tmp_path, cache="auto", image_size=2048), {"train": many}) is False


def test_every_process_of_a_multi_process_run_knows_the_class_names(tiny_split, tmp_path, monkeypatch):
    """A process other than 0 saves nothing, but its Run still says what the model's outputs are."""
    from catsdogs.training import trainer

    monkeypatch.setattr(trainer, "process_of", lambda strategy: (1, 2))
    run = trainer.train(tiny_config(tiny_split, tmp_path, epochs=1))
    assert run.model_path is None and run.class_names == ("cats", "dogs")
