"""Defaults that work: recipes per model, config files and their round trip, the learning-rate finder,
the default model and the saved-models listing, and ImageNet weights of another training size."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers.images import write_legacy_h5_weights

from catsdogs import predict, saved
from catsdogs.cli import run_cli
from catsdogs.config import ConfigError, TrainConfig, read_settings_file
from catsdogs.errors import UserError
from catsdogs.models.recipes import DEFAULT_RECIPE, SMALL_CNN, TRANSFER, VGG
from catsdogs.models.registry import create_model, get_spec
from catsdogs.models.saving import ModelInfo, save_model
from catsdogs.runtime.catalog import choose_model, list_saved_models
from catsdogs.train import config_from_args, parse_arguments
from catsdogs.train import main as train_main
from catsdogs.training.lr_finder import find_learning_rate, suggest_rate
from catsdogs.training.settings import describe_recipe, resolve_config
from catsdogs.training.trainer import train

SIZE = 48


def parse(*flags: object) -> TrainConfig:
    return config_from_args(parse_arguments([str(flag) for flag in flags]))


# ------------------------------------------------------------------------------------------ recipes
@pytest.mark.parametrize(("model", "recipe"), [("small_cnn", SMALL_CNN[DEFAULT_RECIPE]),
                                               ("mobilenet", TRANSFER[DEFAULT_RECIPE]),
                                               ("efficientnet_b0", TRANSFER[DEFAULT_RECIPE]),
                                               ("vgg19", VGG[DEFAULT_RECIPE])])
def test_each_model_starts_from_its_recipe(model, recipe):
    config = parse("--model", model)
    assert {key: getattr(config, key) for key in recipe} == dict(recipe)
    assert config.recipe == DEFAULT_RECIPE


def test_the_report_recipe_is_a_named_option_and_flags_override_any_part():
    report = parse("--model", "small_cnn", "--recipe", "report")
    assert (report.optimizer, report.lr, report.epochs) == ("rmsprop", 1e-4, 100)
    tuned = parse("--model", "mobilenet", "--lr", "0.003", "--epochs", "2")
    assert (tuned.lr, tuned.epochs, tuned.optimizer) == (0.003, 2, TRANSFER[DEFAULT_RECIPE]["optimizer"])
    line = describe_recipe(tuned)
    assert line.startswith("recipe default for mobilenet: optimizer adam") and "changed by the config file or " \
        "flags: lr, epochs" in line


def test_an_unknown_recipe_names_the_choices():
    with pytest.raises(UserError, match="unknown recipe 'fast' for small_cnn; choose default, report, modern"):
        parse("--model", "small_cnn", "--recipe", "fast")


def test_every_recipe_is_a_valid_config():
    for model in ("small_cnn", "mobilenet", "vgg16"):
        for name in get_spec(model).recipes:
            assert resolve_config({"model": model, "recipe": name}).recipe == name


# ------------------------------------------------------------------------------------------ config files
def test_a_runs_config_json_reproduces_its_config_and_a_flag_after_it_wins(tiny_split, tmp_path):
    run = train(parse("--data-dir", tiny_split, "--image-size", SIZE, "--epochs", 1, "--batch-size", 8, "--quiet",
                      "--output", tmp_path / "runs", "--saved-models-dir", tmp_path / "saved", "--lr", "0.002",
                      "--rotation-range", 5))
    again = parse("--config", run.run_dir / "config.json")
    assert again == run.config
    changed = parse("--config", run.run_dir / "config.json", "--seed", 7, "--zoom-range", 0.1)
    assert changed.seed == 7 and changed.augment_params.zoom_range == 0.1
    assert changed.augment_params.rotation_range == 5 and changed.lr == 0.002  # the file's, under the flags


@pytest.mark.parametrize(("name", "text"), [
    ("recipe.yaml", "model: mobilenet\nlr: 0.002\naugment_params:\n  rotation_range: 10\n"),
    ("recipe.toml", 'model = "mobilenet"\nlr = 0.002\n[augment_params]\nrotation_range = 10\n'),
    ("recipe.json", '{"model": "mobilenet", "lr": 0.002, "augment_params": {"rotation_range": 10}}'),
])
def test_yaml_toml_and_json_config_files_sit_between_the_recipe_and_the_flags(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    config = parse("--config", tmp_path / name, "--epochs", 3)
    assert (config.model, config.lr, config.epochs, config.augment_params.rotation_range) == ("mobilenet", 0.002, 3,
                                                                                             10.0)
    assert config.fine_tune_lr == TRANSFER[DEFAULT_RECIPE]["fine_tune_lr"]  # from the recipe


@pytest.mark.parametrize(("name", "text", "words"), [
    ("bad.yaml", "lr: [unclosed", "is not valid YAML"),
    ("bad.toml", "lr = = 1", "is not valid TOML"),
    ("list.json", "[1, 2]", "must hold a mapping"),
    ("typo.json", '{"epoch": 3}', "did you mean 'epochs'"),
    ("bad.ini", "[x]", "give a .json, .yaml or .toml file"),
])
def test_a_bad_config_file_is_a_one_line_error(tmp_path, capsys, name, text, words):
    (tmp_path / name).write_text(text)
    with pytest.raises(SystemExit) as exited:
        run_cli(train_main, ["--config", str(tmp_path / name), "--print-config"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and words in err and err.count("\n") == 1


def test_print_config_prints_the_resolved_settings(capsys):
    with pytest.raises(SystemExit) as exited:
        run_cli(train_main, ["--model", "mobilenet", "--alpha", "0.25", "--epochs", "3", "--print-config"])
    printed = json.loads(capsys.readouterr().out)
    assert exited.value.code == 0
    assert TrainConfig.from_dict(printed) == parse("--model", "mobilenet", "--alpha", "0.25", "--epochs", "3")


def test_read_settings_file_names_a_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        read_settings_file(tmp_path / "missing.json")


def test_name_names_the_run_folder_and_the_model(tiny_split, tmp_path):
    run = train(parse("--data-dir", tiny_split, "--image-size", SIZE, "--epochs", 1, "--batch-size", 8, "--quiet",
                      "--output", tmp_path / "runs", "--saved-models-dir", tmp_path / "saved", "--name", "first-try"))
    assert run.run_dir.name.endswith("-first-try") and run.saved_model_path.name == "first-try.keras"


# ------------------------------------------------------------------------------------------ learning rate
def test_suggest_rate_is_the_steepest_fall_before_the_minimum():
    rates = list(np.logspace(-7, 1, 81))
    losses = [0.7 - 0.5 / (1 + np.exp(-(np.log10(r) + 3) * 3)) for r in rates]  # falls fastest at 1e-3
    losses = [loss if r < 0.1 else 5.0 for loss, r in zip(losses, rates)]  # then diverges
    assert suggest_rate(rates, losses) == pytest.approx(1e-3, rel=0.3)


def test_find_lr_writes_the_curve_and_a_rate_inside_the_sweep(tiny_split, tmp_path):
    config = parse("--data-dir", tiny_split, "--image-size", SIZE, "--batch-size", 4, "--quiet",
                   "--output", tmp_path / "runs")
    found = find_learning_rate(config, steps=30)
    assert found.plot.is_file() and found.plot.stat().st_size > 5000
    recorded = json.loads(found.data.read_text())
    assert 1e-7 <= found.suggestion <= 10 and recorded["suggestion"] == found.suggestion
    assert len(recorded["rates"]) == len(recorded["loss"]) <= 30
    assert all(b > a for a, b in zip(recorded["rates"], recorded["rates"][1:]))  # an exponential sweep upwards
    assert not list((tmp_path / "runs").glob("*/model.keras"))  # nothing trained is kept


# ------------------------------------------------------------------------------------------ choosing a model
def tiny_classifier(classes: int = 1) -> keras.Model:
    inputs = keras.Input((SIZE, SIZE, 3))
    outputs = keras.layers.Dense(classes, activation="sigmoid" if classes == 1 else "softmax")(
        keras.layers.GlobalAveragePooling2D()(inputs))
    return keras.Model(inputs, outputs)


def save_scored(folder: Path, name: str, val: float | None, test: float, classes: list[str]) -> Path:
    metrics = {"test": {"accuracy": test}, **({"best_val_accuracy": val} if val is not None else {})}
    path = save_model(tiny_classifier(1 if len(classes) == 2 else len(classes)), folder / f"{name}.keras",
                      ModelInfo(classes, SIZE, model_name=name, extra={"metrics": metrics, "trained": name}))
    time.sleep(0.01)  # distinct modification times: the later one is the newer
    return path


@pytest.fixture
def three_models(tmp_path) -> Path:
    folder = tmp_path / "saved_models"
    save_scored(folder, "good", 0.95, 0.94, ["cats", "dogs"])
    save_scored(folder, "newest-but-worse", 0.80, 0.79, ["cats", "dogs"])
    save_scored(folder, "no-validation", None, 0.99, ["cats", "dogs"])
    save_scored(folder, "flowers", 0.99, 0.99, ["daisy", "rose", "tulip"])
    (folder / "plain.keras").write_bytes(b"not a model")
    return folder


def test_the_default_model_is_the_best_validation_accuracy_for_the_classes(three_models):
    assert choose_model(three_models).name == "flowers.keras"  # any classes: the best of all
    assert choose_model(three_models, ["cats", "dogs"]).name == "good.keras"
    assert [m.path.name for m in list_saved_models(three_models)][:3] == ["flowers.keras", "good.keras",
                                                                          "newest-but-worse.keras"]
    with pytest.raises(UserError, match="no .keras model for the classes"):
        choose_model(three_models, ["cars", "bikes"])


def test_predict_names_the_model_it_uses_on_its_first_line(three_models, tmp_path, capsys):
    os.remove(three_models / "flowers.keras")
    image = tmp_path / "cat.jpg"
    keras.utils.save_img(image, np.full((60, 60, 3), 128, np.uint8))
    with pytest.raises(SystemExit):
        run_cli(predict.main, [str(image), "--saved-models-dir", str(three_models)])
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"model: {three_models / 'good.keras'} (good, {SIZE} px, cats/dogs, validation 0.950, "
                             "test 0.940), the default")


def test_saved_lists_every_model_the_default_first(three_models, capsys):
    with pytest.raises(SystemExit) as exited:
        run_cli(saved.main, ["--saved-models-dir", str(three_models), "--format", "json"])
    rows = json.loads(capsys.readouterr().out)
    assert exited.value.code == 0
    assert [(row["file"], row["default"]) for row in rows][:2] == [("flowers.keras", True), ("good.keras", False)]
    assert {row["file"] for row in rows} == {"good.keras", "newest-but-worse.keras", "no-validation.keras",
                                             "flowers.keras", "plain.keras"}
    with pytest.raises(SystemExit):
        run_cli(saved.main, ["--saved-models-dir", str(three_models)])
    table = capsys.readouterr().out.splitlines()
    assert table[1].startswith("*  flowers.keras") and "0.990" in table[1]


# ------------------------------------------------------------------------------------------ weights
def test_weights_of_another_training_size_are_used_when_the_exact_file_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("CATSDOGS_OFFLINE", "1")
    reference = keras.applications.MobileNet(alpha=0.25, include_top=False, weights=None, input_shape=(224, 224, 3))
    (tmp_path / "keras" / "models").mkdir(parents=True)
    write_legacy_h5_weights(reference, tmp_path / "keras" / "models" / "mobilenet_2_5_224_tf_no_top.h5")
    model = create_model("mobilenet", image_size=128, alpha=0.25, weights="imagenet")
    assert "trained at 224 px (mobilenet_2_5_224_tf_no_top.h5); mobilenet_2_5_128_tf_no_top.h5 is not cached" in \
        capsys.readouterr().err
    base = model.get_layer("mobilenet")
    np.testing.assert_array_equal(base.get_layer("conv1").kernel.numpy(), reference.get_layer("conv1").kernel.numpy())
    os.remove(tmp_path / "keras" / "models" / "mobilenet_2_5_224_tf_no_top.h5")
    with pytest.raises(UserError, match="mobilenet_2_5_128_tf_no_top.h5"):  # none cached: the exact one is named
        create_model("mobilenet", image_size=128, alpha=0.25, weights="imagenet")
