"""The graph an export is made of: the classifier for inference, with a chosen input name and class probabilities.

Augmentation layers are left out rather than traced in inference mode: their random ops
(``StatelessRandomUniformV2``, ``ImageProjectiveTransformV3``) would still be in the graph, and ONNX
and LiteRT's builtin op set reject them. The graph starts after the augmentation layer
(``introspection.inference_body``: image -> preprocess -> features -> head, skip connections
included) and ends in a new output; the weights are shared, not copied. A binary model's sigmoid ``p``
becomes ``[1 - p, p]``, so every export answers one probability per class, like the sidecar's labels.
A calibrated model's temperature divides the logits inside the graph, so every runtime applies it.
"""

from __future__ import annotations

import keras
import numpy as np

from catsdogs.errors import UserError
from catsdogs.metadata import ModelInfo
from catsdogs.models.calibration import calibrated, scaled_output, temperature_of
from catsdogs.models.heads import class_probabilities
from catsdogs.models.introspection import chain, inference_body
from catsdogs.runtime.engines import INPUT_NAME, OUTPUT_NAME

PARITY_PROBE_TOLERANCE = 1e-5  # the graph without augmentation must compute what the model computes


def inference_model(model: keras.Model, info: ModelInfo) -> keras.Model:
    """``model`` without augmentation: ``image`` (N, S, S, 3) float32 RGB 0-255 -> ``{"probabilities": (N, C)}``."""
    size = info.image_size
    inputs = keras.Input((size, size, 3), name=INPUT_NAME, dtype="float32")
    # A calibrated model's temperature is in the graph.
    x = scaled_output(chain(model)[-1], inference_body(model)(inputs), temperature_of(info))
    if info.binary and x.shape[-1] == 1:
        x = keras.ops.concatenate([1.0 - x, x], axis=-1)
    exported = keras.Model(inputs, {OUTPUT_NAME: x}, name=f"{model.name}_inference")
    probe = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype(np.float32)
    expected = class_probabilities(calibrated(model, info)(probe, training=False), len(info.class_names))
    got = keras.ops.convert_to_numpy(exported(probe)[OUTPUT_NAME])
    if got.shape != expected.shape or float(np.max(np.abs(got - expected))) > PARITY_PROBE_TOLERANCE:
        raise UserError(f"{model.name} is not a classifier catsdogs can export (its inference graph differs "
                        "from the model); export it with keras's model.export yourself")
    return exported
