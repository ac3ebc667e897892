"""Looking inside a classifier built by ``create_model``: its base, its feature maps, and cuts through it.

Our classifiers nest their ImageNet base as one layer (``registry``). A model built from the
classifier's input to a layer inside the base fails with Keras's "graph disconnected" error, so a
cut runs in parts: the classifier's layers before the base (augmentation, preprocessing) applied by
hand, then a model built from the base's *own* inputs, then (for Grad-CAM) the head re-applied.
The networks trained from scratch keep their layers in the classifier, some with skip connections
(``mini_xception``, ``resnet_small``), so there a cut is a model built on the classifier's graph.
Grad-CAM, activations, filter ascent and cached features all cut here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras

from catsdogs.errors import UserError
from catsdogs.models.layers import Preprocess, RandomAffine

# Layers whose 4-D output is still the image (the classifier's input side), not a feature map.
INPUT_SIDE_LAYERS = (keras.layers.InputLayer, Preprocess, RandomAffine)


def find_base(model: keras.Model) -> keras.Model | None:
    """The nested ``keras.applications`` base of a classifier built here (None for small_cnn)."""
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return nested[0] if nested else None


def layers_by_name(model: keras.Model) -> dict[str, keras.layers.Layer]:
    """The classifier's layers and its nested base's layers, by name."""
    base = find_base(model)
    return {layer.name: layer for layer in [*model.layers, *(base.layers if base else [])]}


def has_feature_map(layer: keras.layers.Layer) -> bool:
    """Whether ``layer`` outputs a 2-D feature map: a 4-D tensor that is not the image itself."""
    if isinstance(layer, INPUT_SIDE_LAYERS):
        return False
    try:
        return len(layer.output.shape) == 4
    except (AttributeError, ValueError):  # a layer never called, or called more than once
        return False


def feature_map_layers(model: keras.Model) -> list[str]:
    """Every layer with a 2-D feature map, bottom to top: in the nested base, or in the classifier itself."""
    container = find_base(model) or model
    return [layer.name for layer in container.layers if has_feature_map(layer)]


def check_feature_map_layer(model: keras.Model, layer_name: str, purpose: str, suggestion: str) -> str:
    """``layer_name`` if the classifier or its base has it with a 2-D feature map; else a UserError.

    ``purpose`` ("explain", "show") and ``suggestion`` (a layer or a few) make the message's fix.
    """
    layers = layers_by_name(model)
    if layer_name not in layers:
        raise UserError(f"{model.name} has no layer {layer_name!r}; choose a layer with a 2-D feature map "
                        f"such as {suggestion}")
    if not has_feature_map(layers[layer_name]):
        raise UserError(f"layer {layer_name!r} has no 2-D feature map to {purpose}; choose a layer such as "
                        f"{suggestion}")
    return layer_name


def chain(model: keras.Model) -> list[keras.layers.Layer]:
    """The classifier's layers in order, input layer left out."""
    return [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def inference_input(model: keras.Model) -> Any:
    """The tensor inference starts from: the image after the augmentation layer (left out, as inference does),
    or the classifier's input when it has none."""
    augmentation = [layer for layer in model.layers if isinstance(layer, RandomAffine)]
    return augmentation[0].output if augmentation else model.inputs[0]


def inference_body(model: keras.Model) -> keras.Model:
    """The classifier from the image to its output layer's input (the features the logits are made of), without
    augmentation, weights shared.

    Built from the classifier's own graph between two tensors (Keras clones the nodes between them), so a
    network with skip connections (``mini_xception``, ``resnet_small``) is cut as well as a chain; calling its
    layers one after another would not reconnect an ``Add``. Calibration and the exports put a new output on it.
    """
    return keras.Model(inference_input(model), chain(model)[-1].input, name=f"{model.name}_body")


def base_holding(model: keras.Model, layer_name: str) -> keras.Model | None:
    """The nested base when ``layer_name`` is one of its layers, else None."""
    base = find_base(model)
    return base if base is not None and layer_name in {layer.name for layer in base.layers} else None


def apply_layers(layers: Sequence[keras.layers.Layer], x: Any) -> Any:
    """Call ``layers`` in order, in inference mode."""
    for layer in layers:
        x = layer(x, training=False)
    return x


def dense_logits(output: keras.layers.Dense, x: Any) -> Any:
    """A Dense output layer's pre-activation on ``x``, from its kernel and bias (never by inverting the activation)."""
    logits = keras.ops.matmul(keras.ops.cast(x, output.compute_dtype), output.kernel)
    return logits + output.bias if output.use_bias else logits


def head_logits(layers: Sequence[keras.layers.Layer], x: Any) -> Any:
    """The head, ending in the output layer's pre-activation (logits) when it is a sigmoid/softmax Dense."""
    *head, output = layers
    x = apply_layers(head, x)
    if isinstance(output, keras.layers.Dense) and output.activation in (keras.activations.sigmoid,
                                                                        keras.activations.softmax):
        return dense_logits(output, x)
    return output(x, training=False)  # an unknown output layer: explain its value as it is


@dataclass
class SplitClassifier:
    """The classifier cut at a layer: ``features_model(before(images))`` gives ``[the layer's output, x]``, and
    ``after`` continues from ``x`` to the output."""

    before: list[keras.layers.Layer]
    features_model: keras.Model
    after: list[keras.layers.Layer]


def split_at(model: keras.Model, layer_name: str) -> SplitClassifier:
    """Cut the classifier ``image -> ... -> output`` (the layout ``create_model`` builds) at ``layer_name``.

    Inside a nested base: the layers before the base, the base's graph to ``[target, base output]``, the head.
    In the classifier itself: its graph to ``[target, output layer's input]``, then the output layer (a graph,
    not a chain of calls, so skip connections such as ``mini_xception``'s are kept).
    """
    layers = chain(model)
    base = base_holding(model, layer_name)
    if base is not None:
        position = [layer.name for layer in layers].index(base.name)
        target = base.get_layer(layer_name)
        # Built from the base's own graph: connected, unlike one built from the classifier's input.
        features_model = keras.Model(base.inputs, [target.output, base.output])
        return SplitClassifier(layers[:position], features_model, layers[position + 1:])
    features_model = keras.Model(inference_input(model), [model.get_layer(layer_name).output, layers[-1].input])
    return SplitClassifier([], features_model, layers[-1:])


def feature_extractor(model: keras.Model, layer_names: Sequence[str]) -> Callable[[Any], list[Any]]:
    """A function: raw 0-255 RGB images -> the named layers' outputs, in inference mode (differentiable).

    Layers inside a nested base are read from a model built on the base's own inputs, after the
    classifier's layers before the base (augmentation, preprocessing) are applied by hand; layers of
    the classifier itself (``small_cnn``) from a model on its input. Unknown names raise
    ``ValueError`` (callers check names first, with ``check_feature_map_layer``).
    """
    layer_names = list(layer_names)
    unknown = [name for name in layer_names if name not in layers_by_name(model)]
    if unknown:
        raise ValueError(f"{model.name} has no layer(s) {unknown}")
    base = find_base(model)
    inner = [name for name in layer_names if base_holding(model, name) is not None]
    outer = [name for name in layer_names if name not in inner]
    before: list[keras.layers.Layer] = []
    inner_model = outer_model = None
    if inner and base is not None:
        layers = chain(model)
        before = layers[:[layer.name for layer in layers].index(base.name)]
        inner_model = keras.Model(base.inputs, [base.get_layer(name).output for name in inner])
    if outer:
        outer_model = keras.Model(model.inputs, [model.get_layer(name).output for name in outer])

    def extract(images: Any) -> list[Any]:
        outputs: dict[str, Any] = {}
        if inner_model is not None:
            outputs.update(zip(inner, keras.tree.flatten(inner_model(apply_layers(before, images), training=False))))
        if outer_model is not None:
            outputs.update(zip(outer, keras.tree.flatten(outer_model(images, training=False))))
        return [outputs[name] for name in layer_names]

    return extract
