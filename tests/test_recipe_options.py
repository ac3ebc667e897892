"""The modern from-scratch options every model can use (AdamW and weight decay, SGD's momentum, warm-up and cosine
decay, label smoothing) and ``mini_xception``, the book's second-edition network."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from helpers.images import make_split_folder
from helpers.training import StopAfter, tiny_config

from catsdogs.config import ConfigError, TrainConfig
from catsdogs.errors import UserError
from catsdogs.models import create_model
from catsdogs.training.fitting import SmoothedSparseCrossentropy, make_optimizer
from catsdogs.training.rundir import read_history
from catsdogs.training.settings import resolve_config
from catsdogs.training.trainer import train


def expected_cosine(base: float, warmup: int, epochs: int) -> list[float]:
    """Linear warm-up to the base over ``warmup`` epochs, then a half cosine to 0 over the rest."""
    return [base * (e + 1) / (warmup + 1) if e < warmup else
            base * 0.5 * (1 + math.cos(math.pi * (e - warmup) / (epochs - warmup))) for e in range(epochs)]


def test_the_cosine_schedule_warms_up_then_decays_and_a_resumed_run_continues_the_curve(tiny_split, tmp_path):
    config = tiny_config(tiny_split, tmp_path, epochs=6, schedule="cosine", lr_warmup=2, optimizer="adam", lr=1e-3)
    with pytest.raises(KeyboardInterrupt):
        train(config, callbacks=[StopAfter(3)])
    [run_dir] = (tmp_path / "runs").iterdir()
    run = train(TrainConfig(), resume_dir=run_dir)
    rates = read_history(run.run_dir / "history.csv")["learning_rate"]
    np.testing.assert_allclose(rates, expected_cosine(1e-3, 2, 6), rtol=1e-5)


def test_cosine_and_reduce_lr_both_setting_the_rate_is_refused():
    with pytest.raises(ConfigError, match="schedule='cosine' sets the learning rate every epoch"):
        TrainConfig(schedule="cosine", reduce_lr=3)


def test_weight_decay_and_momentum_reach_the_optimizers():
    adamw = make_optimizer(TrainConfig(optimizer="adamw", weight_decay=0.05), 1e-3)
    assert isinstance(adamw, keras.optimizers.AdamW) and adamw.weight_decay == pytest.approx(0.05)
    sgd = make_optimizer(TrainConfig(optimizer="sgd", momentum=0.8, weight_decay=1e-4), 0.1)
    assert sgd.momentum == pytest.approx(0.8) and sgd.weight_decay == pytest.approx(1e-4)
    assert make_optimizer(TrainConfig(optimizer="adam"), 1e-3).weight_decay is None


def test_label_smoothing_of_integer_labels_is_kerass_categorical_smoothing_of_one_hot_labels():
    rng = np.random.default_rng(0)
    probabilities = keras.ops.softmax(rng.normal(0, 2, (8, 4)).astype("float32"))
    labels = rng.integers(0, 4, 8)
    ours = SmoothedSparseCrossentropy(4, 0.1)(labels, probabilities)
    reference = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)(np.eye(4)[labels], probabilities)
    assert float(ours) == pytest.approx(float(reference), rel=1e-6)
    assert float(ours) != pytest.approx(float(keras.losses.SparseCategoricalCrossentropy()(labels, probabilities)))


def test_mini_xception_is_the_books_network_and_trains_with_its_recipe_on_three_classes(tmp_path):
    model = create_model("mini_xception", image_size=180)
    assert model.count_params() < 5_000_000
    assert sum(isinstance(layer, keras.layers.Add) for layer in model.layers) == 5
    assert sum(isinstance(layer, keras.layers.SeparableConv2D) for layer in model.layers) == 10
    recipe = resolve_config({"model": "mini_xception"})
    assert (recipe.optimizer, recipe.schedule, recipe.label_smoothing) == ("adamw", "cosine", 0.1)
    data = make_split_folder(tmp_path / "data", {"train": 6, "validation": 2, "test": 2}, size=40,
                             classes=("birds", "cats", "dogs"))
    settings = {**recipe.to_dict(), **tiny_config(data, tmp_path, model="mini_xception", epochs=2,
                                                  image_size=48).to_dict(),
                "optimizer": "adamw", "weight_decay": 0.05, "schedule": "cosine", "lr_warmup": 1,
                "label_smoothing": 0.1, "recipe": "default"}
    run = train(TrainConfig.from_dict(settings))
    assert run.metrics["test"]["images"] == 6 and len(read_history(run.run_dir / "history.csv")["epoch"]) == 2


def test_mini_xception_s2_is_the_same_network_behind_a_strided_stem():
    books, strided = (create_model(name, image_size=180, weights=None) for name in ("mini_xception", "mini_xception_s2"))
    assert [type(layer) for layer in books.layers] == [type(layer) for layer in strided.layers]
    # The 5x5 stem's 2,400 weights become a 3x3's 864; every block keeps its weights.
    assert books.count_params() - strided.count_params() == (5 * 5 - 3 * 3) * 3 * 32
    # A stride of 2 with same padding halves the stem's map (the book's valid 5x5: 176 px), a quarter of the work.
    assert books.get_layer("stem_conv").output.shape[1:3] == (176, 176)
    assert strided.get_layer("stem_conv").output.shape[1:3] == (90, 90)


def test_alpha_widens_every_layer_of_mini_xception_and_only_the_networks_that_take_it():
    narrow, wide = (create_model("mini_xception_s2", image_size=64, alpha=alpha) for alpha in (1.0, 1.5))
    widths = [[layer.filters for layer in model.layers if hasattr(layer, "filters")] for model in (narrow, wide)]
    assert len(widths[0]) == 1 + 5 * 3 and widths[0][:4] == [32, 32, 32, 32]  # the stem; block1's 2 separable + 1x1
    assert widths[1] == [round(width * 1.5) for width in widths[0]]
    assert wide.count_params() < 5_000_000 < create_model("mini_xception_s2", image_size=64, alpha=3.0).count_params()
    recipe = resolve_config({"model": "mini_xception_s2"})  # its default recipe widens it
    assert (recipe.model_options, recipe.image_size, recipe.epochs, recipe.mixup) == ({"alpha": 1.5}, 180, 120, 0.2)
    assert recipe.run_label == "mini_xception_s2-1.5"
    assert resolve_config({"model": "mini_xception_s2", "alpha": 1.0}).run_label == "mini_xception_s2"  # a flag wins
    with pytest.raises(UserError, match="alpha applies to .*mini_xception_s2 only, not small_cnn"):
        create_model("small_cnn", image_size=64, alpha=1.5)
