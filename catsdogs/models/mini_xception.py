"""``mini_xception``: the small separable-convolution residual network that replaced the report's CNN in the
book's second edition (Chollet, *Deep Learning with Python*, 2nd ed., chapter 9), reported at about 0.90 on this
2,000-image task from scratch.

A 5x5 stem, then five blocks of 32-64-128-256-512 filters, each BatchNormalization -> ReLU ->
SeparableConv2D (3x3) twice and a stride-2 max-pooling, with a strided 1x1 convolution on the residual
path; global average pooling and dropout. About 0.7 M weights (the issue's bound is 5 M). Unlike the
report's CNN it normalises every block, so it trains fast at a high rate; its recipe (``recipes.MINI_XCEPTION``)
uses the modern from-scratch options: AdamW, a warm-up and cosine decay, label smoothing.

``mini_xception_s2`` is the same network behind the real Xception's first layer, a 3x3 convolution of stride 2: the
book's stem and first block run at the full input size, where separable convolutions and BatchNormalization wait on
memory, and halving that size makes a training step about 4x faster on a CPU (BENCHMARKS.md section 16), which buys
epochs or pixels within the same time.

``--alpha`` widens both, as it widens MobileNet: every layer's filters times alpha (1.5: 1.6 M weights, 2: 2.8 M).
"""

from __future__ import annotations

import keras
from keras import KerasTensor
from pydantic import Field

from catsdogs.models.heads import pooling_head
from catsdogs.models.layers import SHORT_EPOCH_BN_MOMENTUM
from catsdogs.models.recipes import MINI_XCEPTION, MINI_XCEPTION_S2
from catsdogs.models.registry import BuildContext, ModelOptions, ModelSpec, register_model

STEM_FILTERS = 32
BLOCK_FILTERS = (32, 64, 128, 256, 512)


def _block(x: KerasTensor, filters: int, name: str) -> KerasTensor:
    residual = x
    for index in (1, 2):
        x = keras.layers.BatchNormalization(momentum=SHORT_EPOCH_BN_MOMENTUM, name=f"{name}_bn{index}")(x)
        x = keras.layers.Activation("relu", name=f"{name}_relu{index}")(x)
        x = keras.layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_sepconv{index}")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name=f"{name}_pool")(x)
    residual = keras.layers.Conv2D(filters, 1, strides=2, padding="same", use_bias=False, name=f"{name}_proj")(residual)
    return keras.layers.Add(name=f"{name}_add")([x, residual])


class MiniXceptionOptions(ModelOptions):
    alpha: float = Field(1.0, gt=0, description="width multiplier: every layer's filters times alpha")


def _width(filters: int, alpha: float) -> int:
    return max(1, round(filters * alpha))


def _blocks(x: KerasTensor, alpha: float) -> KerasTensor:
    for number, filters in enumerate(BLOCK_FILTERS, start=1):
        x = _block(x, _width(filters, alpha), f"block{number}")
    return x


def mini_xception_features(spec: ModelSpec, x: KerasTensor,
                           context: BuildContext, options: MiniXceptionOptions) -> KerasTensor:
    stem = keras.layers.Conv2D(_width(STEM_FILTERS, options.alpha), 5, use_bias=False, name="stem_conv")
    return _blocks(stem(x), options.alpha)


def mini_xception_s2_features(spec: ModelSpec, x: KerasTensor,
                              context: BuildContext, options: MiniXceptionOptions) -> KerasTensor:
    stem = keras.layers.Conv2D(_width(STEM_FILTERS, options.alpha), 3, strides=2, padding="same", use_bias=False,
                               name="stem_conv")
    return _blocks(stem(x), options.alpha)


register_model(ModelSpec(
    name="mini_xception", preprocessing="rescale", min_size=32, features=mini_xception_features, head=pooling_head,
    recipes=MINI_XCEPTION, options=MiniXceptionOptions,
    description="the book's 2nd-edition network from scratch: 5 residual blocks of separable convolutions, "
                "BatchNormalization, 32-512 filters (--alpha: times alpha)"))
register_model(ModelSpec(
    name="mini_xception_s2", preprocessing="rescale", min_size=32, features=mini_xception_s2_features,
    head=pooling_head, recipes=MINI_XCEPTION_S2, options=MiniXceptionOptions,
    description="mini_xception with Xception's own strided 3x3 stem: a quarter of the compute at the same size"))
