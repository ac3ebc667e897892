"""Intermediate activations: what each layer's channels respond to in one image (the report's 5.4.1).

One grid per layer, one tile per channel, each tile scaled to its own range; the whole map is saved
beside it as ``.npy``. Layers are read through ``catsdogs.models.introspection.feature_extractor``,
so layers inside a nested ImageNet base work as well as ``small_cnn``'s own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from catsdogs.config import DEFAULT_VISUALIZATIONS_DIR
from catsdogs.errors import UserError, parameter
from catsdogs.models.introspection import check_feature_map_layer, feature_extractor, feature_map_layers, layers_by_name
from catsdogs.outputs import save_array
from catsdogs.plots import save_mosaic


@dataclass(frozen=True)
class ActivationGrid:
    """One layer's grid: where it went, the map's shape (H, W, channels) and how many channels it shows."""

    layer: str
    path: Path
    shape: tuple[int, int, int]
    tiles: int


def activation_layers(model: keras.Model) -> list[str]:
    """The layers ``activations`` shows by default: every convolution and pooling layer, bottom to top."""
    kinds = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D,
             keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)
    layers = layers_by_name(model)
    return [name for name in feature_map_layers(model) if isinstance(layers[name], kinds)]


def check_activation_layers(model: keras.Model, layer_names: Sequence[str] | None) -> list[str]:
    """The named layers (default: ``activation_layers``), each checked to have a 2-D feature map."""
    if not layer_names:
        return activation_layers(model)
    suggestion = ", ".join(activation_layers(model)[:4]) + f" (or leave out {parameter('layer_names')} for all of them)"
    return [check_feature_map_layer(model, name, "show", suggestion) for name in layer_names]


def layer_activations(model: keras.Model, image: np.ndarray, layer_names: Sequence[str]) -> dict[str, np.ndarray]:
    """One image (raw 0-255 RGB at the model's input size) -> each named layer's map, float32 (H, W, C)."""
    batch = tf.convert_to_tensor(np.asarray(image, np.float32)[None])
    outputs = feature_extractor(model, layer_names)(batch)
    return {name: np.asarray(output[0], np.float32) for name, output in zip(layer_names, outputs)}


def save_activation_grids(model: keras.Model, image: np.ndarray, output_dir: str | Path = DEFAULT_VISUALIZATIONS_DIR,
                          layer_names: Sequence[str] | None = None, max_channels: int = 64) -> list[ActivationGrid]:
    """``activations-<layer>.png`` and ``.npy`` (the whole map) per layer.

    The PNG is a ``save_mosaic``: one tile per channel, the first ``max_channels``, channel ``k`` at
    row ``k // 8``, column ``k % 8`` and labelled ``ch k``; each tile scaled to its own range (a dead
    channel is flat); the title names the model, the layer and the map's size.
    """
    if max_channels < 1:
        raise UserError(f"{parameter('max_channels')} must be at least 1, not {max_channels}")
    layer_names = check_activation_layers(model, layer_names)
    output_dir = Path(output_dir)
    grids = []
    for name, activation in layer_activations(model, image, layer_names).items():
        channels = min(activation.shape[-1], max_channels)
        tiles = [activation[:, :, channel] for channel in range(channels)]
        height, width, depth = activation.shape
        title = (f"{model.name} {name}: {height}x{width} maps, channels 0-{channels - 1} of {depth} "
                 "(each scaled to its own range)")
        path = save_mosaic(tiles, output_dir / f"activations-{name}.png", title,
                           [f"ch {channel}" for channel in range(channels)])
        save_array(path.with_suffix(".npy"), activation)
        grids.append(ActivationGrid(name, path, tuple(activation.shape), channels))
    return grids
