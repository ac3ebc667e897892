"""Cached-feature training: an exact split of the classifier, a cache that is never stale, a full model out."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from helpers.images import write_image

from catsdogs.config import AugmentParams, TrainConfig
from catsdogs.data.files import read_image_folder
from catsdogs.errors import UserError
from catsdogs.models import create_model, set_trainable
from catsdogs.models.saving import load_model
from catsdogs.training.features import cached_features, frozen_layers_below_cut, split_at_first_trainable
from catsdogs.training.rundir import read_history
from catsdogs.training.trainer import train


def raw_images(size: int, count: int = 3) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (count, size, size, 3)).astype(np.float32)


@pytest.mark.parametrize("name,unfreeze,cut", [
    ("vgg16", "none", "vgg16_output"),
    ("vgg16", "block5", "block5_conv1_input"),
    ("vgg19", "block4", "block4_conv1_input"),
    ("mobilenet", "conv_pw_13", "conv_pw_13_input"),
])
def test_prefix_then_suffix_equals_the_classifier(name, unfreeze, cut):
    model = create_model(name, image_size=32, weights=None, unfreeze=unfreeze)
    prefix, suffix, cut_name = split_at_first_trainable(model)
    assert cut_name == cut
    images = raw_images(32)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(suffix(prefix(images))), keras.ops.convert_to_numpy(model(images)),
                               rtol=1e-4, atol=1e-6)
    # The suffix trains the classifier's own layers: same variables, not copies.
    assert {id(v) for v in suffix.trainable_weights} == {id(v) for v in model.trainable_weights}


def test_nothing_is_cached_when_every_layer_trains():
    model = create_model("vgg16", image_size=32, weights=None, unfreeze="all")
    assert frozen_layers_below_cut(model) == 0
    set_trainable(model, "block3")
    assert frozen_layers_below_cut(model) == 4  # block1 and block2 convolutions
    with pytest.raises(UserError, match="needs a pretrained base"):
        split_at_first_trainable(create_model("small_cnn", image_size=48))


def feature_config(data: Path, tmp_path: Path, **overrides) -> TrainConfig:
    values = dict(data_dir=str(data), image_size=32, model="vgg16", weights=None, epochs=1, warmup_epochs=1,
                  batch_size=8, cache_features=True, feature_cache=str(tmp_path / "cache"),
                  output=str(tmp_path / "runs"), saved_models_dir=str(tmp_path / "saved"), verbose=0)
    values.update(overrides)
    return TrainConfig(**values)


def test_cache_is_reused_and_never_stale(tiny_split, tmp_path):
    config = feature_config(tiny_split, tmp_path)
    model = create_model("vgg16", image_size=32, weights=None)
    prefix, _, cut = split_at_first_trainable(model)
    folder = read_image_folder(tiny_split / "train")
    first = cached_features(prefix, folder, config, cut, "train", 8)
    assert first.shape == (1, 12, 1, 1, 512)
    assert len(list((tmp_path / "cache").iterdir())) == 1
    np.testing.assert_array_equal(cached_features(prefix, folder, config, cut, "train", 8), first)
    assert len(list((tmp_path / "cache").iterdir())) == 1  # the second call read the cache

    write_image(tiny_split / "train" / "cats" / "new.jpg", np.zeros((40, 40, 3)))  # the data changed
    grown = cached_features(prefix, read_image_folder(tiny_split / "train"), config, cut, "train", 8)
    assert grown.shape[1] == 13 and len(list((tmp_path / "cache").iterdir())) == 2

    prefix.weights[0].assign(prefix.weights[0] * 2.0)  # other weights: another key too
    cached_features(prefix, read_image_folder(tiny_split / "train"), config, cut, "train", 8)
    assert len(list((tmp_path / "cache").iterdir())) == 3


def test_augmented_copies_are_stored_beside_the_originals(tiny_split, tmp_path):
    config = feature_config(tiny_split, tmp_path, augment_copies=2, augment_params=AugmentParams(rotation_range=90))
    model = create_model("vgg16", image_size=32, weights=None)
    prefix, _, cut = split_at_first_trainable(model)
    features = cached_features(prefix, read_image_folder(tiny_split / "train"), config, cut, "train", 8)
    assert features.shape[0] == 3
    assert not np.allclose(features[0], features[1]) and not np.allclose(features[1], features[2])
    validation = cached_features(prefix, read_image_folder(tiny_split / "validation"), config, cut, "validation", 8)
    assert validation.shape[0] == 1  # never augmented


def test_training_on_cached_features_saves_a_full_model_that_predicts_from_pixels(tiny_split, tmp_path):
    config = feature_config(tiny_split, tmp_path, unfreeze="block5", augment_copies=1)
    keras.utils.set_random_seed(config.seed)  # as train() does: `before` holds the starting weights
    before = create_model("vgg16", image_size=32, weights=None)
    run = train(config)
    assert read_history(run.run_dir / "history.csv")["learning_rate"] == pytest.approx([1e-4, 1e-5])
    assert len(list((tmp_path / "cache").iterdir())) == 4  # train + validation, below each phase's cut
    model, info = load_model(run.saved_model_path)
    images = raw_images(32)
    np.testing.assert_allclose(model.predict(images, verbose=0), run.model.predict(images, verbose=0), rtol=1e-5)
    assert model.get_layer("vgg16").get_layer("block5_conv1").kernel.shape == (3, 3, 512, 512)
    assert 0 <= run.metrics["test"]["accuracy"] <= 1
    start = {w.path: keras.ops.convert_to_numpy(w) for w in before.weights}
    end = {w.path: keras.ops.convert_to_numpy(w) for w in run.model.weights}
    assert np.allclose(start["block1_conv1/kernel"], end["block1_conv1/kernel"])  # frozen below
    assert not np.allclose(start["block5_conv1/kernel"], end["block5_conv1/kernel"])  # fine-tuned
    assert not np.allclose(start["output/kernel"], end["output/kernel"])


def test_cache_features_refuses_a_model_without_a_base(tiny_split, tmp_path):
    with pytest.raises(UserError, match="pretrained base"):
        train(feature_config(tiny_split, tmp_path, model="small_cnn", image_size=48))
