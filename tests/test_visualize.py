"""visualize: every subcommand writes its grid for small_cnn and for a nested base; filters climb; bad input is one line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers.images import make_split_folder
from PIL import Image

from catsdogs.cli import run_cli
from catsdogs.explanations.activations import activation_layers, layer_activations, save_activation_grids
from catsdogs.explanations.filters import (
    STRUCTURE_THRESHOLD,
    filter_ascent,
    filter_objective,
    filter_patterns,
    low_frequency_share,
    start_images,
)
from catsdogs.models import create_model
from catsdogs.models.saving import ModelInfo, load_model, save_model
from catsdogs.plots import MOSAIC_GAP
from catsdogs.visualize import main

CNN_SIZE, BASE_SIZE = 48, 32


def run_visualize(argv: list, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """``python -m catsdogs.visualize ...`` in-process, one-line errors included: exit status, stdout, stderr."""
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, [str(arg) for arg in argv])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def mosaic_size(tiles: int, map_size: int, columns: int = 8, min_tile: int = 64) -> tuple[int, int]:
    """(width, height) of a ``save_mosaic`` PNG holding ``tiles`` square maps of ``map_size`` pixels: the
    mosaic at one pixel per pixel (at least 320 wide), without the band of the title above it."""
    columns = min(tiles, columns)
    tile = map_size * max(1, math.ceil(min_tile / map_size))
    rows = math.ceil(tiles / columns)
    return max(columns * (tile + MOSAIC_GAP) + MOSAIC_GAP, 320), rows * (tile + MOSAIC_GAP) + MOSAIC_GAP


def is_mosaic_png(path: Path, tiles: int, map_size: int) -> bool:
    """The PNG is that mosaic under a title band of one to three lines (40 to 70 pixels)."""
    width, height = mosaic_size(tiles, map_size)
    found_width, found_height = png_size(path)
    return found_width == width and 40 <= found_height - height <= 70


def png_size(path: Path) -> tuple[int, int]:
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two saved models (small_cnn at 48 px; MobileNet 0.25 nested at 32 px, random weights), images, a run."""
    root = tmp_path_factory.mktemp("visualize")
    keras.utils.set_random_seed(0)
    cnn = save_model(create_model("small_cnn", image_size=CNN_SIZE, weights=None), root / "models" / "small_cnn.keras",
                     ModelInfo(["cats", "dogs"], CNN_SIZE, "small_cnn", "rescale"))
    base = save_model(create_model("mobilenet", image_size=BASE_SIZE, weights=None, alpha=0.25), root / "models" / "mobilenet.keras",
                      ModelInfo(["cats", "dogs"], BASE_SIZE, "mobilenet", "tf"))
    data = make_split_folder(root / "data", {"test": 2})
    image = next((data / "test" / "cats").glob("*.jpg"))
    run = root / "runs" / "20261124-120000-small_cnn"
    run.mkdir(parents=True)
    (run / "history.csv").write_text("epoch,accuracy,loss,val_accuracy,val_loss\n"
                                     "0,0.55,0.69,0.5,0.70\n1,0.61,0.66,0.65,0.64\n2,0.70,0.58,0.62,0.63\n")
    not_an_image = root / "notes.jpg"
    not_an_image.write_text("not a picture")
    return {"cnn": cnn, "base": base, "data": data, "image": image, "run": run, "root": root,
            "not_an_image": not_an_image}


# ------------------------------------------------------------------------------------------ curves
def test_curves_from_a_run_directory_and_from_its_history_csv(files, tmp_path, capsys):
    code, out, _ = run_visualize(["curves", files["run"], "--output", tmp_path / "a"], capsys)
    assert code == 0 and "curves.png" in out
    assert png_size(tmp_path / "a" / "curves.png") == (1100, 400)  # plot_history: two panels, 11 x 4 in at 100 dpi
    summary = json.loads((tmp_path / "a" / "curves.json").read_text())
    assert summary["best_epoch"] == 2 and summary["history"]["val_loss"] == [0.70, 0.64, 0.63]
    code, _, _ = run_visualize(["curves", files["run"] / "history.csv", "--output", tmp_path / "b"], capsys)
    assert code == 0 and png_size(tmp_path / "b" / "curves.png") == (1100, 400)


# ------------------------------------------------------------------------------------- activations
def test_activations_of_small_cnn_one_tile_per_channel(files, tmp_path, capsys):
    code, out, err = run_visualize(["activations", "--model", files["cnn"], "--image", files["image"],
                                    "--layers", "conv1,pool2", "--max-channels", "20", "--output", tmp_path], capsys)
    assert code == 0, err
    # conv1: 46 x 46 x 32, capped at 20 tiles; pool2: 10 x 10 x 64, capped at 20.
    assert is_mosaic_png(tmp_path / "activations-conv1.png", 20, 46)
    assert is_mosaic_png(tmp_path / "activations-pool2.png", 20, 10)
    assert np.load(tmp_path / "activations-conv1.npy").shape == (46, 46, 32)  # the whole map, not just the tiles
    assert "conv1: 46x46, 20 of 32 channels" in out


def test_every_convolution_and_pooling_layer_by_default_each_with_all_its_channels(files, tmp_path):
    model, _ = load_model(files["cnn"])
    image = np.full((CNN_SIZE, CNN_SIZE, 3), 100, np.uint8)
    grids = save_activation_grids(model, image, tmp_path, max_channels=512)
    assert [grid.layer for grid in grids] == ["conv1", "pool1", "conv2", "pool2", "conv3", "pool3", "conv4", "pool4"]
    for grid in grids:
        assert grid.tiles == grid.shape[2]  # one tile per channel
        assert is_mosaic_png(grid.path, grid.tiles, grid.shape[0])


def test_activations_inside_a_nested_base_match_the_classifiers_own_forward_pass(files, tmp_path, capsys):
    model, _ = load_model(files["base"])
    assert len(activation_layers(model)) == 27  # conv1 + 13 depthwise + 13 pointwise
    image = np.random.default_rng(0).uniform(0, 255, (BASE_SIZE, BASE_SIZE, 3)).astype(np.float32)
    maps = layer_activations(model, image, ["conv1", "conv_pw_13_relu"])
    assert maps["conv1"].shape == (16, 16, 8)
    # The base's last layer is its output: what the classifier itself computes after preprocessing.
    expected = model.get_layer("mobilenet")(model.get_layer("preprocess")(image[None]), training=False)
    np.testing.assert_allclose(maps["conv_pw_13_relu"], np.asarray(expected)[0], rtol=1e-5, atol=1e-6)

    code, _, err = run_visualize(["activations", "--model", files["base"], "--image", files["image"],
                                  "--layers", "conv1,conv_dw_2,conv_pw_13_relu", "--output", tmp_path], capsys)
    assert code == 0, err
    assert is_mosaic_png(tmp_path / "activations-conv1.png", 8, 16)
    assert is_mosaic_png(tmp_path / "activations-conv_dw_2.png", 16, 8)
    assert is_mosaic_png(tmp_path / "activations-conv_pw_13_relu.png", 64, 1)  # 256 channels, 64 shown


def test_a_model_that_augments_inside_is_seen_without_augmenting():
    from catsdogs.config import AugmentParams

    model = create_model("small_cnn", image_size=CNN_SIZE, weights=None, augmentation=AugmentParams(), seed=0)
    image = np.random.default_rng(0).uniform(0, 255, (CNN_SIZE, CNN_SIZE, 3)).astype(np.float32)
    first, second = layer_activations(model, image, ["conv2"]), layer_activations(model, image, ["conv2"])
    np.testing.assert_array_equal(first["conv2"], second["conv2"])  # RandomAffine is off: no random warp
    patterns = filter_patterns(model, "conv1", 2, method="report", steps=2)
    assert patterns.shape == (2, CNN_SIZE, CNN_SIZE, 3) and np.isfinite(patterns).all()


# ----------------------------------------------------------------------------------------- filters
@pytest.mark.parametrize("method", ["report", "improved"])
@pytest.mark.parametrize("name, size, kwargs, layer", [
    # batchnorm: small_cnn's convolutions are then linear, so no filter is a dead ReLU with no gradient at all
    ("small_cnn", CNN_SIZE, {"batchnorm": True}, "conv2"),
    ("mobilenet", BASE_SIZE, {"alpha": 0.25}, "conv_pw_2"),
])
def test_gradient_ascent_raises_each_filters_activation(method, name, size, kwargs, layer):
    keras.utils.set_random_seed(0)
    model = create_model(name, image_size=size, weights=None, **kwargs)
    ascent = filter_ascent(model, layer, 4, method=method, steps=8, seed=1)
    assert ascent.patterns.shape == (4, size, size, 3) and ascent.filters == [0, 1, 2, 3]
    np.testing.assert_array_equal(ascent.starts, start_images(4, size, seed=1))  # the report's grey + noise
    assert np.all(ascent.objective_after > ascent.objective_before), (ascent.objective_before, ascent.objective_after)
    # The objective is the filter's mean activation, recomputed here independently of the ascent.
    border = ascent.settings.border
    np.testing.assert_allclose(filter_objective(model, layer, ascent.patterns, [0, 1, 2, 3], border),
                               ascent.objective_after, rtol=1e-4, atol=1e-6)
    if method == "improved":
        assert ascent.patterns.min() >= 0 and ascent.patterns.max() <= 255


def test_the_structure_measure_tells_noise_from_smooth_patterns():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, (4, 64, 64, 3))
    assert low_frequency_share(noise) == pytest.approx(np.full(4, math.pi / 64), abs=0.02)
    y, x = np.mgrid[0:64, 0:64]
    blobs = np.stack([np.sin(2 * math.pi * x / 32)[..., None] * [1, 0.5, -1],
                      np.exp(-((x - 30) ** 2 + (y - 20) ** 2) / 200.0)[..., None] * [1, 1, 1]])
    assert np.all(low_frequency_share(blobs) > 0.9)
    assert np.all(low_frequency_share(blobs) > STRUCTURE_THRESHOLD) and np.all(low_frequency_share(noise) < 0.1)
    assert low_frequency_share(np.ones((1, 8, 8, 3)))[0] == 0.0  # no change, no structure


def test_filters_subcommand_writes_the_grid_the_patterns_and_their_numbers(files, tmp_path, capsys):
    code, out, err = run_visualize(["filters", "--model", files["base"], "--layer", "conv_pw_2", "--filters", "5",
                                    "--steps", "4", "--method", "report", "--output", tmp_path], capsys)
    assert code == 0, err
    assert is_mosaic_png(tmp_path / "filters-conv_pw_2-report.png", 5, BASE_SIZE)
    assert np.load(tmp_path / "filters-conv_pw_2-report.npy").shape == (5, BASE_SIZE, BASE_SIZE, 3)
    numbers = json.loads((tmp_path / "filters-conv_pw_2-report.json").read_text())
    assert numbers["filters"] == [0, 1, 2, 3, 4] and numbers["settings"]["steps"] == 4
    assert len(numbers["structure"]) == 5 and "structured_fraction" in numbers
    # small_cnn, no --layer: the deepest convolution; improved is the default method.
    code, out, err = run_visualize(["filters", "--model", files["cnn"], "--filters", "3", "--steps", "3",
                                    "--output", tmp_path], capsys)
    assert code == 0, err
    assert is_mosaic_png(tmp_path / "filters-conv4-improved.png", 3, CNN_SIZE)


# ---------------------------------------------------------------------------------------- Grad-CAM
@pytest.mark.parametrize("model_key", ["cnn", "base"])
def test_gradcam_writes_the_same_overlays_as_predict_explain(files, tmp_path, capsys, model_key):
    from catsdogs.predict import main as predict_main

    test_images = files["data"] / "test"
    code, out, err = run_visualize(["gradcam", "--model", files[model_key], "--image", test_images,
                                    "--output", tmp_path / "visualize"], capsys)
    assert code == 0, err
    overlays = sorted((tmp_path / "visualize").glob("*.png"))
    assert [p.name for p in overlays] == ["cats__cats.0.jpg.png", "cats__cats.1.jpg.png", "dogs__dogs.0.jpg.png",
                                          "dogs__dogs.1.jpg.png"]
    with Image.open(overlays[0]) as overlay:
        assert overlay.size[0] >= 240 and overlay.size[1] >= 240  # the image (at least 240 px) and a colour bar
    with pytest.raises(SystemExit):
        run_cli(predict_main, [str(test_images), "--model", str(files[model_key]), "--explain", str(tmp_path / "p")])
    capsys.readouterr()
    for overlay in overlays:
        np.testing.assert_allclose(np.load(overlay.with_suffix(".npy")),
                                   np.load(tmp_path / "p" / overlay.with_suffix(".npy").name))


# ----------------------------------------------------------------------------------------- augment
def test_augment_preview_has_the_original_and_count_augmented_tiles(files, tmp_path, capsys):
    code, out, err = run_visualize(["augment", "--image", files["image"], "--count", "6", "--seed", "3",
                                    "--image-size", "40", "--output", tmp_path], capsys)
    assert code == 0, err
    # image_grid: 7 tiles in rows of 5, 2 inches each at 80 dpi.
    assert png_size(tmp_path / "augmentation.png") == (5 * 160, 2 * 160)


def test_augment_takes_a_runs_augmentation_parameters(files, tmp_path, capsys):
    from catsdogs.config import AugmentParams, TrainConfig

    run = tmp_path / "run"
    run.mkdir()
    TrainConfig(image_size=36, augment_params=AugmentParams(rotation_range=0, horizontal_flip=False)).save(
        run / "config.json")
    code, _, err = run_visualize(["augment", "--image", files["image"], "--from-run", run, "--count", "2",
                                  "--output", tmp_path / "figures"], capsys)
    assert code == 0, err
    assert png_size(tmp_path / "figures" / "augmentation.png") == (3 * 160, 160)


# ------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("argv, words", [
    (["activations", "--model", "{cnn}", "--image", "{root}/missing.jpg"], "image {root}/missing.jpg does not exist"),
    (["activations", "--model", "{cnn}", "--image", "{root}"], "is a folder"),
    (["activations", "--saved-models-dir", "{root}/empty", "--image", "{image}"], "no .keras model in"),
    (["activations", "--model", "{root}/none.keras", "--image", "{image}"], "does not exist"),
    (["activations", "--model", "{cnn}", "--image", "{image}", "--layers", "conv1,block9"], "has no layer 'block9'"),
    (["activations", "--model", "{cnn}", "--image", "{image}", "--layers", "dense"], "'dense' has no 2-D feature map"),
    (["activations", "--model", "{base}", "--image", "{image}", "--layers", "avg_pool"], "has no 2-D feature map"),
    (["activations", "--model", "{cnn}", "--image", "{not_an_image}"], "not an image"),
    (["filters", "--model", "{base}", "--layer", "conv_pw_99"], "has no layer 'conv_pw_99'"),
    (["filters", "--model", "{cnn}", "--layer", "flatten"], "'flatten' has no 2-D feature map"),
    (["filters", "--model", "{cnn}", "--method", "best"], "invalid choice: 'best'"),
    (["filters", "--model", "{cnn}", "--filters", "0"], "--filters must be at least 1"),
    (["gradcam", "--model", "{cnn}", "--image", "{root}/missing.jpg"], "no such file or folder"),
    (["gradcam", "--model", "{cnn}", "--image", "{image}", "--layer", "dense"], "no 2-D feature map"),
    (["curves", "{root}/no-run"], "does not exist"),
    (["curves", "{root}"], "{root} has no history.csv"),
    (["curves", "{not_an_image}"], "holds no training history"),
    (["augment", "--image", "{not_an_image}"], "not an image"),
    (["augment", "--image", "{root}/missing.jpg"], "does not exist"),
    (["augment", "--image", "{image}", "--from-run", "{root}"], "has no config.json"),
    ([], "required: COMMAND"),
])
def test_bad_input_is_one_line_that_names_it(files, capsys, argv, words):
    (files["root"] / "empty").mkdir(exist_ok=True)
    fill = {key: str(value) for key, value in files.items()}
    code, _, err = run_visualize([arg.format(**fill) for arg in argv], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0], err
    assert words.format(**fill) in lines[0]
