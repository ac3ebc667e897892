"""The model registry: every model builds, unfreezing is exact, preprocessing is inside, weights load or fail clearly."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from helpers.images import make_split_folder, write_legacy_h5_weights

from catsdogs.errors import UserError
from catsdogs.models import (
    Preprocess,
    build_base,
    create_model,
    find_base,
    get_spec,
    list_models,
    set_trainable,
)
from catsdogs.models.saving import ModelInfo, load_model, save_model

VGG_BLOCK5 = {"block5_conv1", "block5_conv2", "block5_conv3", "block5_conv4"}
VGG_BLOCK4 = {"block4_conv1", "block4_conv2", "block4_conv3", "block4_conv4"}


def raw_images(size: int, count: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (count, size, size, 3)).astype(np.float32)


def trainable_base_layers(model: keras.Model) -> set[str]:
    return {layer.name for layer in find_base(model).layers if layer.trainable and layer.weights}


def trainable_head_layers(model: keras.Model) -> set[str]:
    return {layer.name for layer in model.layers if layer.trainable_weights and not isinstance(layer, keras.Model)}


def _on_this_backend(name: str) -> object:
    # keras.applications' own networks are Keras's to test on each backend. Under JAX (README's second pytest),
    # mobilenet stands for them (our preprocessing and head on an application base) beside every network written here.
    spare = keras.backend.backend() == "jax" and get_spec(name).is_pretrained_base and name != "mobilenet"
    return pytest.param(name, marks=pytest.mark.skipif(spare, reason="a keras.applications network: Keras tests it "
                                                                      "on JAX; mobilenet stands for them here"))


@pytest.mark.parametrize("name", [_on_this_backend(name) for name in list_models()])
def test_every_registered_model_builds_and_predicts_at_its_smallest_size(name):
    size = get_spec(name).min_size
    model = create_model(name, image_size=size, weights=None)
    probabilities = model.predict(raw_images(size), verbose=0)
    assert probabilities.shape == (2, 1)
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    with pytest.raises(UserError, match=f"at least {size} px"):
        create_model(name, image_size=size - 1, weights=None)


def test_n_classes_get_a_softmax_output():
    model = create_model("small_cnn", image_size=48, num_classes=3)
    probabilities = model.predict(raw_images(48), verbose=0)
    assert probabilities.shape == (2, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_vgg19_block5_unfreezes_exactly_block5_and_the_head():
    model = create_model("vgg19", image_size=32, weights=None, unfreeze="block5")
    assert trainable_base_layers(model) == VGG_BLOCK5
    assert trainable_head_layers(model) == {"dense", "output"}
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert trainable == VGG_BLOCK5 | {"dense", "output"}


def test_vgg19_block4_unfreezes_blocks_4_and_5_and_none_freezes_the_base():
    model = create_model("vgg19", image_size=32, weights=None, unfreeze="block4")
    assert trainable_base_layers(model) == VGG_BLOCK4 | VGG_BLOCK5
    set_trainable(model, "none")
    assert trainable_base_layers(model) == set()
    assert len(model.trainable_weights) == 4  # dense and output kernels and biases
    set_trainable(model, "all")
    assert len(trainable_base_layers(model)) == 16


def test_unknown_block_and_layer_names_are_refused():
    model = create_model("vgg16", image_size=32, weights=None)
    with pytest.raises(UserError, match="no block7"):
        set_trainable(model, "block7")
    with pytest.raises(UserError, match="no layer 'conv_pw_99'"):
        set_trainable(model, "conv_pw_99")
    with pytest.raises(UserError, match=r"\(0, 1\]"):
        set_trainable(model, "1.5")
    with pytest.raises(UserError, match="unknown model"):
        create_model("vgg21")
    with pytest.raises(UserError, match="pretrained bases"):
        create_model("small_cnn", image_size=48, unfreeze="block5")


def test_partial_unfreeze_by_fraction_or_layer_keeps_batchnorm_frozen():
    model = create_model("mobilenet", image_size=32, weights=None, alpha=0.25)
    base = find_base(model)
    set_trainable(model, "conv_pw_12")
    assert trainable_base_layers(model) == {"conv_pw_12", "conv_dw_13", "conv_pw_13"}
    names = set_trainable(model, "0.25")
    convolutions = [layer.name for layer in base.layers
                    if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)]
    assert set(names) == set(convolutions[-round(0.25 * len(convolutions)):])
    assert not any(layer.trainable for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization))
    # The base is called with training=False: its BatchNormalization uses moving statistics in training too.
    images = raw_images(32, count=4)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(images, training=True)),
                               keras.ops.convert_to_numpy(model(images, training=False)),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode,application", [("caffe", "vgg19"), ("tf", "mobilenet"), ("torch", "densenet")])
def test_preprocess_layer_matches_keras_applications(mode, application):
    images = raw_images(8, count=3)
    expected = getattr(keras.applications, application).preprocess_input(images.copy())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(Preprocess(mode)(images)), expected, rtol=1e-5, atol=1e-4)


def test_models_take_raw_pixels_and_reload_identically(tmp_path):
    model = create_model("vgg16", image_size=32, weights=None, unfreeze="block5")
    info = ModelInfo(class_names=["cats", "dogs"], image_size=32, model_name="vgg16", preprocessing="caffe")
    path = save_model(model, tmp_path / "vgg16.keras", info)
    reloaded, reloaded_info = load_model(path)
    images = raw_images(32, count=3)
    np.testing.assert_allclose(reloaded.predict(images, verbose=0), model.predict(images, verbose=0), rtol=1e-5)
    assert reloaded_info == info
    assert not list(tmp_path.glob("*.partial*"))


def test_local_weights_file_is_loaded(tmp_path):
    spec = get_spec("mobilenet")
    source = build_base(spec, 32, weights=None, alpha=0.25)
    for variable in source.weights:
        variable.assign(np.full(variable.shape, 0.5, np.float32))
    source.save_weights(tmp_path / "mobilenet.weights.h5")
    model = create_model("mobilenet", image_size=32, alpha=0.25, weights=str(tmp_path / "mobilenet.weights.h5"))
    loaded = keras.ops.convert_to_numpy(find_base(model).get_layer("conv1").kernel)
    np.testing.assert_array_equal(loaded, np.full(loaded.shape, 0.5, np.float32))
    with pytest.raises(UserError, match="does not exist"):
        create_model("mobilenet", image_size=32, weights=str(tmp_path / "missing.h5"))
    with pytest.raises(UserError, match="does not fit vgg16"):
        create_model("vgg16", image_size=32, weights=str(tmp_path / "mobilenet.weights.h5"))


def test_missing_imagenet_weights_name_the_file_and_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("CATSDOGS_OFFLINE", "1")
    with pytest.raises(UserError) as offline:
        create_model("vgg19", image_size=32, weights="imagenet")
    message = str(offline.value)
    assert "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert str(tmp_path / "keras" / "models") in message and "pass weights='PATH'" in message
    assert "pass --weights PATH (or --weights none" in offline.value.worded()
    # Without the offline promise Keras tries to download; the test session's network guard refuses.
    monkeypatch.delenv("CATSDOGS_OFFLINE")
    with pytest.raises(UserError, match="mobilenet_2_5_224_tf_no_top.h5.*no network|no network.*mobilenet_2_5_224"):
        create_model("mobilenet", image_size=150, alpha=0.25, weights="imagenet")


def test_cached_imagenet_file_is_used_without_network(tmp_path, monkeypatch):
    # A file under the name Keras expects in KERAS_HOME/models is loaded, no download attempted.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("CATSDOGS_OFFLINE", "1")
    source = keras.applications.MobileNet(include_top=False, weights=None, alpha=0.25, input_shape=(128, 128, 3))
    (tmp_path / "models").mkdir()
    write_legacy_h5_weights(source, tmp_path / "models" / "mobilenet_2_5_128_tf_no_top.h5")
    model = create_model("mobilenet", image_size=128, alpha=0.25, weights="imagenet")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(find_base(model).get_layer("conv1").kernel), keras.ops.convert_to_numpy(source.get_layer("conv1").kernel))


def test_lambda_models_are_refused_in_safe_mode(tmp_path):
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Dense(1)(keras.layers.Lambda(lambda x: x * 2.0)(keras.layers.Flatten()(inputs)))
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(UserError, match="Lambda.*pass unsafe "):
        load_model(path)
    model, info = load_model(path, unsafe=True)
    assert model.output_shape == (None, 1) and info.image_size == 8


def test_non_model_files_are_refused_clearly(tmp_path):
    (tmp_path / "notes.keras").write_text("hello")
    with pytest.raises(UserError, match="not a .keras model"):
        load_model(tmp_path / "notes.keras")
    with pytest.raises(UserError, match="does not exist"):
        load_model(tmp_path / "missing.keras")


@pytest.mark.parametrize("name, size, expected", [
    ("lenet5", 32, 61_706),  # LeCun et al. 1998's count for 10 classes at 32 px (C1 156, C3 2,416, F 48,120 ...)
    ("lenet5_classic", 32, 61_706),
    ("mlp", 28, 396_210),  # the MNIST document's two-layer MLP: 784-400-200-10
])
def test_the_classic_networks_have_the_documents_parameter_counts(name, size, expected):
    model = create_model(name, image_size=size, num_classes=10, weights=None)
    assert model.count_params() == expected
    assert model.get_layer("preprocess").compute_output_shape((None, size, size, 3))[-1] == 1  # one channel


def test_the_gray_preprocessing_is_tensorflows_luminance_scaled_to_one():
    import tensorflow as tf

    from catsdogs.models.layers import Preprocess

    images = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(Preprocess("gray")(images), tf.image.rgb_to_grayscale(images) / 255.0, atol=1e-6)


def test_resnet_small_has_residual_blocks_and_takes_any_class_count(tmp_path):
    model = create_model("resnet_small", image_size=32, num_classes=5, weights=None, dropout=0.2)
    adds = [layer for layer in model.layers if isinstance(layer, keras.layers.Add)]
    assert len(adds) == 6 and model.output_shape == (None, 5)
    assert model.get_layer("stage3_block2_out").output.shape[1:] == (8, 8, 128)  # two stride-2 stages


@pytest.mark.parametrize("name", ["lenet5", "mlp", "resnet_small"])
def test_the_classic_networks_train_on_three_classes_and_reload(tmp_path, name):
    from helpers.training import tiny_config

    from catsdogs.training.trainer import train

    data = make_split_folder(tmp_path / "data", {"train": 6, "validation": 2, "test": 2}, size=32,
                             classes=("birds", "cats", "dogs"))
    run = train(tiny_config(data, tmp_path, model=name, image_size=32, epochs=1,
                            model_options={"batchnorm": True} if name == "lenet5" else {}))
    model, info = load_model(run.saved_model_path)
    assert info.class_names == ["birds", "cats", "dogs"] and model.output_shape == (None, 3)
    assert run.metrics["test"]["images"] == 6 and len(run.metrics["test"]["confusion_matrix"]["matrix"]) == 3


def test_units_size_the_mlp_and_depth_sizes_the_resnet_and_other_models_refuse_them():
    # 28*28 inputs -> 100 -> 10: 78,500 + 1,010 weights; the default 400-200 network has 396,210.
    assert create_model("mlp", image_size=28, num_classes=10, units=[100]).count_params() == 79_510
    assert [layer.name for layer in create_model("mlp", image_size=28, num_classes=10, units=(64, 32, 16)).layers
            if layer.name.startswith("dense")] == ["dense1", "dense2", "dense3"]
    shallow = create_model("resnet_small", image_size=32, num_classes=5, depth=1)
    deep = create_model("resnet_small", image_size=32, num_classes=5, depth=3)
    assert [sum(isinstance(layer, keras.layers.Add) for layer in model.layers) for model in (shallow, deep)] == [3, 9]
    with pytest.raises(UserError, match="units applies to mlp, mlp_1layer only, not lenet5"):
        create_model("lenet5", image_size=32, num_classes=10, units=[10])
    with pytest.raises(UserError, match="depth applies to resnet_small only, not small_cnn"):
        create_model("small_cnn", image_size=64, depth=3)


def test_each_model_validates_its_own_options_in_one_line():
    """Options belong to their models: declared in the model's file, bounds and types checked by create_model."""
    narrow = create_model("resnet_small", image_size=32, num_classes=2, width=8)  # the option resnet_small added
    filters = [layer.filters for layer in narrow.layers if isinstance(layer, keras.layers.Conv2D)]
    assert filters[0] == 8 and max(filters) == 32  # 8-16-32 instead of 32-64-128
    assert narrow.count_params() < create_model("resnet_small", image_size=32, num_classes=2).count_params() / 10
    for options, message in (({"width": 2}, r"^width of resnet_small: input should be greater than or equal to 4, "
                                            r"not 2$"),
                             ({"depth": "deep"}, r"^depth of resnet_small: input should be a valid integer"),
                             ({"widht": 8}, r"^widht is no model's option; the options are .*width"),
                             ({"alpha": 0.5}, r"^alpha applies to mobilenet, mobilenet_v2, mini_xception, "
                                              r"mini_xception_s2 only, not resnet_small$")):
        with pytest.raises(UserError, match=message):
            create_model("resnet_small", image_size=32, num_classes=2, **options)
    # Before options were the models' own, [] meant "the model's own"; it still does (old config.json files).
    assert create_model("mlp", image_size=28, num_classes=10, units=[]).count_params() == 396_210


def test_a_config_json_from_before_model_options_builds_the_same_model(tmp_path):
    """Release 0.1.0's config.json had alpha, batchnorm, units and depth at the top: --config and --resume read
    them as the model's options, and the values that meant "the model's own" build the model's own."""
    from catsdogs.config import TrainConfig
    from catsdogs.training.settings import model_from_config

    old = {**TrainConfig(model="small_cnn", image_size=48).to_dict(), "alpha": 1.0, "batchnorm": True, "units": [],
           "depth": 0}
    del old["model_options"]
    (tmp_path / "config.json").write_text(json.dumps(old))
    config = TrainConfig.load(tmp_path / "config.json")  # what --config and --resume read
    assert config.model_options == {"alpha": 1.0, "batchnorm": True, "units": [], "depth": 0}
    built = model_from_config(config, 2, "none")
    assert [layer.name for layer in built.layers if layer.name.startswith("bn")] == ["bn1", "bn2", "bn3", "bn4"]
    assert built.count_params() == create_model("small_cnn", image_size=48, batchnorm=True).count_params()


def test_the_classic_recipe_is_the_documents_32_px_without_augmentation():
    from catsdogs.training.settings import resolve_config

    config = resolve_config({"model": "lenet5"})
    assert (config.image_size, config.augment, config.dropout, config.epochs) == (32, False, 0.0, 40)
    assert resolve_config({"model": "mlp", "image_size": 28}).image_size == 28  # flags above the recipe


@pytest.mark.parametrize("name, size, options", [("small_cnn", 64, {"batchnorm": True}), ("mini_xception", 64, {}),
                                                 ("mini_xception_s2", 64, {})])
def test_the_from_scratch_networks_normalise_with_a_momentum_for_short_epochs(name, size, options):
    from catsdogs.models.layers import SHORT_EPOCH_BN_MOMENTUM

    norms = [layer for layer in create_model(name, image_size=size, **options).layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and {layer.momentum for layer in norms} == {SHORT_EPOCH_BN_MOMENTUM} != {0.99}
