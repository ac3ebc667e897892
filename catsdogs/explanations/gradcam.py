"""Grad-CAM: which parts of an image made the classifier choose a class (Selvaraju et al., 2017).

The heatmap is the ReLU of the target layer's feature maps, each weighted by the mean gradient of the
class score with respect to it. The class score is the output layer's logit (pre-sigmoid or
pre-softmax), so confident predictions do not saturate the gradient; in a binary model class 1 is
scored by the logit and class 0 by its negative, i.e. by the gradient of ``1 - p``.

The cut through the classifier (the nested base's own inputs, the head re-applied by hand) is
``catsdogs.models.introspection.split_at``; activations and filter ascent cut there too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from catsdogs.data.decode import describe_decode_failure
from catsdogs.data.files import Failure, expand_inputs
from catsdogs.data.images import check_files, open_upright
from catsdogs.data.pipeline import make_path_dataset
from catsdogs.errors import UserError, parameter
from catsdogs.explanations.backend import require_gradients_backend
from catsdogs.metadata import ModelInfo
from catsdogs.models.heads import class_probabilities
from catsdogs.models.introspection import (
    apply_layers,
    check_feature_map_layer,
    feature_map_layers,
    find_base,
    head_logits,
    split_at,
)
from catsdogs.outputs import fitted_name, save_array
from catsdogs.plots import overlay_figure, save_figure

# Layers whose 4-D output is not a feature map worth explaining (pooling repeats the evidence coarser).
_POOLING = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)


def default_target_layer(model: keras.Model) -> str:
    """The last feature-map layer: in the nested base, or in the classifier itself for ``small_cnn``.

    Pooling layers are passed over: they carry the same evidence as the convolution before them at a
    coarser grid (VGG19's ``block5_pool`` is 1x1 at 32 px where ``block5_conv4`` is 2x2).
    """
    layers = {layer.name: layer for layer in (find_base(model) or model).layers}
    candidates = [name for name in feature_map_layers(model) if not isinstance(layers[name], _POOLING)]
    if not candidates:
        raise UserError(f"{model.name} has no layer with a 2-D feature map to explain")
    return candidates[-1]


def resolve_target_layer(model: keras.Model, layer_name: str | None = None) -> str:
    """``layer_name`` when the classifier or its base has it with a 2-D feature map, else the default layer."""
    if layer_name is None:
        return default_target_layer(model)
    return check_feature_map_layer(model, layer_name, "explain", repr(default_target_layer(model)))


def grad_cam(model: keras.Model, images: np.ndarray | tf.Tensor, layer_name: str | None = None,
             class_index: int | Sequence[int] | None = None) -> np.ndarray:
    """Grad-CAM heatmaps, float32 ``(N, H, W)`` in [0, 1] at the images' size, one per image.

    ``images``: a batch of raw 0-255 RGB at the model's input size (what ``make_path_dataset``
    yields). ``layer_name`` defaults to ``default_target_layer(model)``. ``class_index``: the class
    to explain, one for all images or one per image; default: each image's predicted class.
    A map with no positive evidence is all zeros.
    """
    require_gradients_backend("Grad-CAM")
    images = tf.convert_to_tensor(images, tf.float32)
    split = split_at(model, resolve_target_layer(model, layer_name))
    x = apply_layers(split.before, images)
    with tf.GradientTape() as tape:
        features, x = split.features_model(x, training=False)
        logits = tf.cast(head_logits(split.after, x), tf.float32)
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
    # Bicubic, then clipped at 0: a 4x4 map (MobileNet at 128 px) becomes a smooth field, not blocks.
    heatmaps = tf.nn.relu(tf.image.resize(heatmaps, tf.shape(images)[1:3], method="bicubic"))[..., 0]
    peak = tf.reduce_max(heatmaps, axis=(1, 2), keepdims=True)
    return tf.math.divide_no_nan(heatmaps, peak).numpy()


def save_overlay(image: np.ndarray, heatmap: np.ndarray, path: str | Path, title: str, alpha: float = 0.4,
                 save_heatmap: bool = True) -> Path:
    """The overlay (``plots.overlay_figure``: the map over the image, a title, a colour bar) as a PNG at
    ``path`` and, with ``save_heatmap``, the map itself beside it (.npy)."""
    path = save_figure(overlay_figure(image, heatmap, title, alpha), path)
    if save_heatmap:
        save_array(path.with_suffix(".npy"), np.asarray(heatmap, np.float32))
    return path


def explain_files(model: keras.Model, info: ModelInfo, paths: Sequence[str], output_dir: str | Path,
                  layer_name: str | None = None, batch_size: int = 32,
                  class_index: int | None = None) -> tuple[list[Path], list[Failure]]:
    """A Grad-CAM overlay PNG (and its heatmap as .npy) per image file; unusable files fail, the others go on.

    ``class_index``: the class to explain (default: each image's predicted class). The overlay is
    drawn on the upright original, shrunk to at most ``DISPLAY_MAX_SIDE`` pixels (so memory stays
    bounded whatever the photo's size). Files are named after the image's path below the inputs'
    common folder, extension included (``cats/cat.1.jpg`` -> ``cats__cat.1.jpg.png``), so no two
    inputs share an overlay.
    """
    checks = check_files(paths, info.image_size)
    failures = [check.failure() for check in checks if not check.ok]
    usable = [check for check in checks if check.ok]
    if not usable:
        return [], failures
    output_dir = Path(output_dir)
    names = overlay_names([check.path for check in usable])
    written, decoded = [], set()
    dataset = make_path_dataset([c.path for c in usable], info.image_size, batch_size, [c.orientation for c in usable])
    for batch_paths, images in dataset:
        batch_paths = [p.decode() for p in batch_paths.numpy()]
        heatmaps = grad_cam(model, images, layer_name, class_index=class_index)
        probabilities = class_probabilities(model.predict_on_batch(images), len(info.class_names))
        for path, heatmap, row in zip(batch_paths, heatmaps, probabilities):
            shown = int(np.argmax(row)) if class_index is None else class_index
            title = f"{Path(path).name}: {info.class_names[shown]} {100 * row[shown]:.1f}%" + (
                "" if class_index is None else " (the class explained)")
            written.append(save_overlay(open_upright(path), heatmap, output_dir / names[path], title))
            decoded.add(path)
    failures += [Failure(c.path, describe_decode_failure(c.path, info.image_size)) for c in usable
                 if c.path not in decoded]
    return written, failures


def overlay_names(paths: Sequence[str]) -> dict[str, str]:
    """Each input's overlay file name: its path below the inputs' common folder, ``/`` as ``__``, plus ``.png``
    (shortened, keeping its ending, where that is longer than a file name may be)."""
    root = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths])
    return {path: fitted_name(os.path.relpath(os.path.abspath(path), root).replace(os.sep, "__") + ".png")
            for path in paths}


def save_gradcam(model: keras.Model, info: ModelInfo, images: Sequence[str | Path], output_dir: str | Path,
                 layer_name: str | None = None, batch_size: int = 32,
                 class_index: int | None = None) -> tuple[list[Path], list[Failure]]:
    """Grad-CAM overlays (PNG + heatmap .npy) for image files, folders or globs; the same code as ``predict --explain``.

    Returns the overlays written and the inputs that failed (missing, no images, not decodable).
    """
    resolve_target_layer(model, layer_name)  # a wrong layer fails before any work
    files, problems = expand_inputs([str(image) for image in images])
    if not files:
        first = problems[0] if problems else "no image given"
        raise UserError(f"{first}; pass {parameter('images')} with an image file, a folder of images or a glob pattern")
    written, failures = explain_files(model, info, files, output_dir, layer_name, batch_size, class_index)
    return written, [*problems, *failures]
