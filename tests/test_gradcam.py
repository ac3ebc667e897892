"""Grad-CAM: maps at the image's size that point at the evidence, through nested bases and small_cnn alike."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from catsdogs.config import AugmentParams
from catsdogs.errors import UserError
from catsdogs.explanations.gradcam import default_target_layer, grad_cam, save_overlay
from catsdogs.models import create_model
from catsdogs.models.introspection import apply_layers, head_logits, split_at
from catsdogs.plots import overlay_figure

SIZE = 48


def noise_with_squares(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise images; odd ones (class 1) hold a bright 10 px square somewhere in the top-left quadrant."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 160, (count, SIZE, SIZE, 3)).astype("float32")
    labels = np.arange(count) % 2
    for image, label in zip(images, labels):
        if label:
            top, left = rng.integers(2, SIZE // 2 - 12, 2)
            image[top:top + 10, left:left + 10] = 255.0
    return images, labels


@pytest.fixture(scope="module")
def square_model() -> keras.Model:
    """small_cnn trained until it tells the squares from plain noise (about 4 s on 2 cores)."""
    keras.utils.set_random_seed(0)
    images, labels = noise_with_squares(128, seed=0)
    model = create_model("small_cnn", image_size=SIZE, weights=None, dropout=0.0)
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy", metrics=["accuracy"])
    model.fit(images, labels, epochs=4, batch_size=32, verbose=0)
    return model


def quadrant_shares(heatmaps: np.ndarray) -> np.ndarray:
    """Share of all the maps' mass in the top-left, top-right, bottom-left, bottom-right quadrants."""
    half = heatmaps.shape[1] // 2
    masses = np.array([heatmaps[:, :half, :half].sum(), heatmaps[:, :half, half:].sum(),
                       heatmaps[:, half:, :half].sum(), heatmaps[:, half:, half:].sum()])
    return masses / masses.sum()


def test_the_map_puts_most_of_its_mass_where_the_evidence_is(square_model):
    images, labels = noise_with_squares(32, seed=1)
    assert np.mean((square_model.predict(images, verbose=0)[:, 0] > 0.5) == labels) >= 0.9  # it did learn
    heatmaps = grad_cam(square_model, images[labels == 1])
    assert heatmaps.shape == (16, SIZE, SIZE) and heatmaps.dtype == np.float32
    assert heatmaps.min() >= 0 and heatmaps.max() == pytest.approx(1.0)
    shares = quadrant_shares(heatmaps)
    assert np.argmax(shares) == 0 and shares[0] > 0.3, shares


def test_default_class_is_the_predicted_one_and_binary_classes_use_the_logit_sign(square_model):
    images, _ = noise_with_squares(6, seed=2)
    predicted = (square_model.predict(images, verbose=0)[:, 0] > 0.5).astype(int)
    np.testing.assert_allclose(grad_cam(square_model, images), grad_cam(square_model, images, class_index=predicted))
    as_dog, as_cat = grad_cam(square_model, images, class_index=1), grad_cam(square_model, images, class_index=0)
    # Class 0's score is minus class 1's, so its map lights up where class 1's is dark.
    assert np.corrcoef(as_dog.ravel(), as_cat.ravel())[0, 1] < 0


@pytest.mark.parametrize("name, size, kwargs, expected_layer", [
    ("vgg19", 32, {}, "block5_conv4"),
    ("mobilenet", 64, {"alpha": 0.25}, "conv_pw_13_relu"),
])
def test_nested_bases_give_maps_without_graph_disconnected(name, size, kwargs, expected_layer):
    keras.utils.set_random_seed(1)
    model = create_model(name, image_size=size, weights=None, **kwargs)
    images = np.random.default_rng(0).uniform(0, 255, (3, size, size, 3)).astype("float32")
    assert default_target_layer(model) == expected_layer
    heatmaps = grad_cam(model, images)
    assert heatmaps.shape == (3, size, size) and np.isfinite(heatmaps).all()
    assert all(heatmap.std() > 0 for heatmap in heatmaps)
    # The hand-made forward pass (preprocess -> base -> head re-applied) is the classifier's own.
    split = split_at(model, expected_layer)
    _, base_output = split.features_model(apply_layers(split.before, images))
    probabilities = keras.ops.sigmoid(head_logits(split.after, base_output)).numpy()
    np.testing.assert_allclose(probabilities, model.predict(images, verbose=0), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name, expected_layer", [("mini_xception", "block5_add"),
                                                  ("resnet_small", "stage3_block2_out")])
def test_networks_with_skip_connections_give_the_maps_of_their_own_graph(name, expected_layer):
    keras.utils.set_random_seed(2)
    model = create_model(name, image_size=SIZE, weights=None, augmentation=AugmentParams(), seed=0)
    images = np.random.default_rng(1).uniform(0, 255, (3, SIZE, SIZE, 3)).astype("float32")
    assert default_target_layer(model) == expected_layer
    # Reference: the gradient of the output's logit (its sigmoid's inverse, exact away from saturation) with
    # respect to the target layer, on a model cut from the classifier's own inputs.
    cut = keras.Model(model.input, [model.get_layer(expected_layer).output, model.output])
    with tf.GradientTape() as tape:
        features, p = cut(images, training=False)
        scores = tf.abs(tf.math.log(p[:, 0]) - tf.math.log1p(-p[:, 0]))  # the predicted class's: |logit|
    weights = tf.reduce_mean(tape.gradient(scores, features), axis=(1, 2), keepdims=True)
    maps = tf.nn.relu(tf.reduce_sum(features * weights, axis=-1, keepdims=True))
    maps = tf.nn.relu(tf.image.resize(maps, (SIZE, SIZE), method="bicubic"))[..., 0]
    expected = tf.math.divide_no_nan(maps, tf.reduce_max(maps, axis=(1, 2), keepdims=True)).numpy()
    np.testing.assert_allclose(grad_cam(model, images), expected, atol=1e-3)


def test_multi_class_and_chosen_layers():
    model = create_model("small_cnn", image_size=SIZE, num_classes=3, weights=None)
    images = np.random.default_rng(0).uniform(0, 255, (3, SIZE, SIZE, 3)).astype("float32")
    assert grad_cam(model, images, class_index=[0, 1, 2]).shape == (3, SIZE, SIZE)
    assert grad_cam(model, images, layer_name="conv2").shape == (3, SIZE, SIZE)
    with pytest.raises(UserError, match="no layer 'block9'"):
        grad_cam(model, images, layer_name="block9")
    with pytest.raises(UserError, match="no 2-D feature map"):
        grad_cam(model, images, layer_name="dense")


def test_a_model_with_an_augmentation_layer_is_explained_without_augmenting():
    model = create_model("small_cnn", image_size=SIZE, weights=None, augmentation=AugmentParams(), seed=0)
    images = np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
    np.testing.assert_allclose(grad_cam(model, images), grad_cam(model, images))  # no random transform


def test_the_overlay_has_a_title_a_colour_scale_and_the_map_stretched_over_the_image(tmp_path):
    image = np.full((30, 50, 3), 128, np.uint8)
    heatmap = np.zeros((8, 8), np.float32)
    heatmap[:4, :4] = 1.0
    figure = overlay_figure(image, heatmap, "cat.jpg: cats 97.0%")
    picture, colour_bar = figure.axes
    assert picture.get_title() == "cat.jpg: cats 97.0%"
    assert colour_bar.get_ylabel() == "Grad-CAM evidence (0-1)"  # the colour bar's own axis
    shown_image, shown_map = picture.get_images()
    assert shown_image.get_array().shape == (30, 50, 3)
    assert shown_map.get_extent() == [-0.5, 49.5, 29.5, -0.5] and shown_map.get_clim() == (0.0, 1.0)
    path = save_overlay(image, heatmap, tmp_path / "explained" / "cat.png", "cat.jpg: cats 97.0%")
    assert Image.open(path).size[0] > 50
    np.testing.assert_array_equal(np.load(tmp_path / "explained" / "cat.npy"), heatmap)


def test_a_small_map_is_upsampled_smoothly(square_model):
    images, _ = noise_with_squares(1, seed=4)
    heatmap = grad_cam(square_model, images)[0]
    assert heatmap.min() >= 0 and heatmap.max() == pytest.approx(1.0)
    steps = np.abs(np.diff(heatmap, axis=1))
    assert steps.max() < 0.25  # no block edges: neighbouring pixels differ little


def test_grad_cam_takes_tensors_too(square_model):
    images, _ = noise_with_squares(2, seed=3)
    np.testing.assert_allclose(grad_cam(square_model, tf.constant(images)), grad_cam(square_model, images))
