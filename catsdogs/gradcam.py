"""Grad-CAM: which parts of an image made the classifier choose a class (Selvaraju et al., 2017).

The heatmap is the ReLU of the target layer's feature maps, each weighted by the mean gradient of the
class score with respect to it. The class score is the output layer's logit (pre-sigmoid or
pre-softmax), so confident predictions do not saturate the gradient; in a binary model class 1 is
scored by the logit and class 0 by its negative, i.e. by the gradient of ``1 - p``.

Our classifiers nest their ImageNet base as one layer (see ``catsdogs.models``). A gradient model
built from the classifier's input to a layer inside the base fails with Keras's "graph disconnected"
error, so the forward pass runs in three parts: the classifier's layers before the base
(augmentation, preprocessing), then a model built from the base's *own* inputs to
``[target layer output, base output]``, then the head layers, re-applied by hand. ``small_cnn`` keeps
its layers in the classifier, so there the chain is simply split at the target layer.

``feature_extractor`` is the same cut for any number of layers, without the head: raw images ->
the named layers' outputs. ``catsdogs.visualize`` (activations) and ``catsdogs.filters``
(gradient ascent in input space) build on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from catsdogs.augment import RandomAffine
from catsdogs.cli import UserError
from catsdogs.models import Preprocess, find_base

# Layers whose 4-D output is still the image (the classifier's input side), not a feature map.
_INPUT_SIDE = (keras.layers.InputLayer, Preprocess, RandomAffine)
# Layers whose 4-D output is not a feature map worth explaining.
_NOT_FEATURE_MAPS = (*_INPUT_SIDE, keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)


def _has_spatial_output(layer: keras.layers.Layer) -> bool:
    try:
        return len(layer.output.shape) == 4
    except (AttributeError, ValueError):  # a layer never called, or called more than once
        return False


def default_target_layer(model: keras.Model) -> str:
    """The last feature-map layer: in the nested base, or in the classifier itself for ``small_cnn``.

    Pooling layers are passed over: they carry the same evidence as the convolution before them at a
    coarser grid (VGG19's ``block5_pool`` is 1x1 at 32 px where ``block5_conv4`` is 2x2).
    """
    container = find_base(model) or model
    candidates = [layer.name for layer in container.layers
                  if _has_spatial_output(layer) and not isinstance(layer, _NOT_FEATURE_MAPS)]
    if not candidates:
        raise UserError(f"{model.name} has no layer with a 2-D feature map to explain")
    return candidates[-1]


def layers_by_name(model: keras.Model) -> dict[str, keras.layers.Layer]:
    """The classifier's layers and its nested base's layers, by name."""
    base = find_base(model)
    return {layer.name: layer for layer in [*model.layers, *(base.layers if base else [])]}


def feature_map_layers(model: keras.Model) -> list[str]:
    """Every layer whose output is a 2-D feature map (4-D tensor), bottom to top, input-side layers excluded."""
    container = find_base(model) or model
    return [layer.name for layer in container.layers
            if _has_spatial_output(layer) and not isinstance(layer, _INPUT_SIDE)]


def resolve_target_layer(model: keras.Model, layer_name: str | None = None) -> str:
    """``layer_name`` when the classifier or its base has it with a 2-D feature map, else the default layer."""
    if layer_name is None:
        return default_target_layer(model)
    layers = layers_by_name(model)
    if layer_name not in layers:
        raise UserError(f"{model.name} has no layer {layer_name!r}; the default is {default_target_layer(model)!r}")
    if not _has_spatial_output(layers[layer_name]):
        raise UserError(f"layer {layer_name!r} has no 2-D feature map to explain; choose a convolutional layer "
                        f"such as {default_target_layer(model)!r}")
    return layer_name


@dataclass
class _SplitClassifier:
    """The classifier cut at the target layer: ``after(features_model(before(images)))``."""

    before: list[keras.layers.Layer]
    features_model: keras.Model | None  # base inputs -> [target output, base output]; None if no base is cut
    after: list[keras.layers.Layer]


def _chain(model: keras.Model) -> list[keras.layers.Layer]:
    return [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def _in_base(model: keras.Model, layer_name: str) -> keras.Model | None:
    """The nested base when ``layer_name`` is one of its layers, else None."""
    base = find_base(model)
    return base if base is not None and layer_name in {layer.name for layer in base.layers} else None


def _split_at(model: keras.Model, layer_name: str) -> _SplitClassifier:
    """Cut the chain ``image -> ... -> output`` (the layout ``create_model`` builds) at ``layer_name``."""
    chain = _chain(model)
    names = [layer.name for layer in chain]
    base = _in_base(model, layer_name)
    if base is not None:
        position = names.index(base.name)
        target = base.get_layer(layer_name)
        # Built from the base's own graph: connected, unlike one built from the classifier's input.
        features_model = keras.Model(base.inputs, [target.output, base.output])
        return _SplitClassifier(chain[:position], features_model, chain[position + 1:])
    position = names.index(layer_name)
    return _SplitClassifier(chain[:position + 1], None, chain[position + 1:])


def feature_extractor(model: keras.Model, layer_names: Sequence[str]) -> Callable[[tf.Tensor], list[tf.Tensor]]:
    """A function: raw 0-255 RGB images -> the named layers' outputs, in inference mode (differentiable).

    Layers inside a nested base are read from a model built on the base's own inputs, after the
    classifier's layers before the base (augmentation, preprocessing) are applied by hand, as in
    ``grad_cam``; layers of the classifier itself (``small_cnn``) from a model on its input.
    Unknown names raise ``ValueError`` (callers check names first, with ``resolve_target_layer``).
    """
    layer_names = list(layer_names)
    unknown = [name for name in layer_names if name not in layers_by_name(model)]
    if unknown:
        raise ValueError(f"{model.name} has no layer(s) {unknown}")
    base = find_base(model)
    inner = [name for name in layer_names if _in_base(model, name) is not None]
    outer = [name for name in layer_names if name not in inner]
    before: list[keras.layers.Layer] = []
    inner_model = outer_model = None
    if inner:
        chain = _chain(model)
        before = chain[:[layer.name for layer in chain].index(base.name)]
        inner_model = keras.Model(base.inputs, [base.get_layer(name).output for name in inner])
    if outer:
        outer_model = keras.Model(model.inputs, [model.get_layer(name).output for name in outer])

    def extract(images: tf.Tensor) -> list[tf.Tensor]:
        outputs: dict[str, tf.Tensor] = {}
        if inner_model is not None:
            outputs.update(zip(inner, tf.nest.flatten(inner_model(_apply(before, images), training=False))))
        if outer_model is not None:
            outputs.update(zip(outer, tf.nest.flatten(outer_model(images, training=False))))
        return [outputs[name] for name in layer_names]

    return extract


def _apply(layers: Sequence[keras.layers.Layer], x: tf.Tensor) -> tf.Tensor:
    for layer in layers:
        x = layer(x, training=False)
    return x


def _logits(layers: Sequence[keras.layers.Layer], x: tf.Tensor) -> tf.Tensor:
    """The head, ending in the output layer's pre-activation (logits) when it is a sigmoid/softmax Dense."""
    *head, output = layers
    x = _apply(head, x)
    if isinstance(output, keras.layers.Dense) and output.activation in (keras.activations.sigmoid,
                                                                        keras.activations.softmax):
        logits = keras.ops.matmul(keras.ops.cast(x, output.compute_dtype), output.kernel)
        return logits + output.bias if output.use_bias else logits
    return output(x, training=False)  # an unknown output layer: explain its value as it is


def grad_cam(model: keras.Model, images: np.ndarray | tf.Tensor, layer_name: str | None = None,
             class_index: int | Sequence[int] | None = None) -> np.ndarray:
    """Grad-CAM heatmaps, float32 ``(N, H, W)`` in [0, 1] at the images' size, one per image.

    ``images``: a batch of raw 0-255 RGB at the model's input size (what ``make_path_dataset``
    yields). ``layer_name`` defaults to ``default_target_layer(model)``. ``class_index``: the class
    to explain, one for all images or one per image; default: each image's predicted class.
    A map with no positive evidence is all zeros.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    split = _split_at(model, resolve_target_layer(model, layer_name))
    x = _apply(split.before, images)
    with tf.GradientTape() as tape:
        if split.features_model is not None:
            features, x = split.features_model(x, training=False)
        else:
            features = x
            tape.watch(features)
        logits = tf.cast(_logits(split.after, x), tf.float32)
        binary = logits.shape[-1] == 1
        if class_index is None:
            chosen = tf.cast(logits[:, 0] > 0, tf.int32) if binary else tf.argmax(logits, -1, output_type=tf.int32)
        else:
            chosen = tf.broadcast_to(tf.constant(class_index, tf.int32), tf.shape(logits)[:1])
        if binary:  # class 1: the logit; class 0: its negative (the direction of 1 - p)
            scores = logits[:, 0] * tf.cast(2 * chosen - 1, tf.float32)
        else:
            scores = tf.gather(logits, chosen, batch_dims=1)
    gradients = tf.cast(tape.gradient(scores, features), tf.float32)
    features = tf.cast(features, tf.float32)
    channel_weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    heatmaps = tf.nn.relu(tf.reduce_sum(features * channel_weights, axis=-1, keepdims=True))
    heatmaps = tf.image.resize(heatmaps, tf.shape(images)[1:3], method="bilinear")[..., 0]
    peak = tf.reduce_max(heatmaps, axis=(1, 2), keepdims=True)
    return tf.math.divide_no_nan(heatmaps, peak).numpy()


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.4, colormap: str = "jet") -> np.ndarray:
    """The heatmap in colour over ``image`` (uint8 RGB, any size; the map is stretched to fit): uint8 RGB."""
    from matplotlib import colormaps

    image = np.asarray(image)
    height, width = image.shape[:2]
    heatmap = np.asarray(heatmap, np.float32)
    if heatmap.shape != (height, width):
        heatmap = tf.image.resize(heatmap[..., None], (height, width), method="bilinear").numpy()[..., 0]
    coloured = colormaps[colormap](np.clip(heatmap, 0.0, 1.0))[..., :3] * 255.0
    blended = (1.0 - alpha) * image[..., :3].astype(np.float32) + alpha * coloured
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def save_overlay(image: np.ndarray, heatmap: np.ndarray, path: str | Path, alpha: float = 0.4,
                 save_heatmap: bool = True) -> Path:
    """Write the overlay as a PNG at ``path`` and, with ``save_heatmap``, the map itself beside it (.npy)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(overlay(image, heatmap, alpha)).save(path, format="PNG")
    if save_heatmap:
        np.save(path.with_suffix(".npy"), np.asarray(heatmap, np.float32))
    return path
