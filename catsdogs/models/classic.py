"""The field's classic small networks, trained from scratch: LeNet-5, multilayer perceptrons, a small ResNet.

They are what the documents this app grew beside compare (LeNet-5 and MLPs on MNIST; a CNN against a
ResNet on Tiny ImageNet), so that those studies run here on any class folders (``python -m
catsdogs.experiments``). The digit networks see one channel (``Preprocess("gray")``): a grayscale file
decodes to three equal channels, which the model turns back into one, so parameter counts are the
documents' (LeNet-5 at 32 px: 61,706 for 10 classes; the 400-200 MLP at 28 px: 396,210).

- ``lenet5``: conv 6@5x5, pool, conv 16@5x5, pool, FC 120, FC 84, output; ReLU and max-pooling.
- ``lenet5_classic``: the same with tanh and average pooling, as LeCun et al. (1998) built it.
- ``mlp``: hidden ReLU layers of ``--units`` sizes, 400 and 200 by default; ``mlp_1layer``: one of 500
  (about the same weights).
- ``resnet_small``: a 3x3 stem, then three stages of two (``--depth``) basic residual blocks (two 3x3 convolutions,
  BatchNormalization, the shortcut projected by a strided 1x1 convolution where the shape changes),
  32-64-128 filters, global average pooling, dropout: the Tiny-ImageNet study's network, RGB.

``batchnorm`` adds BatchNormalization after each convolution of the LeNets (the ResNet always has it);
``--dropout`` is the head's dropout.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import keras
from keras import KerasTensor
from pydantic import Field

from catsdogs.models.heads import Head, dropout_head, pooling_head
from catsdogs.models.recipes import CLASSIC, RESNET_SMALL
from catsdogs.models.registry import BuildContext, ModelOptions, ModelSpec, register_model

LENET_FILTERS = (6, 16)
LENET_UNITS = (120, 84)
MLP_UNITS = (400, 200)  # the MNIST document's two-layer network
MLP_1LAYER_UNITS = (500,)
RESNET_STAGES = 3  # each twice the filters of the one before
RESNET_WIDTH = 32  # the first stage's filters
RESNET_BLOCKS_PER_STAGE = 2

HiddenSizes = tuple[Annotated[int, Field(ge=1)], ...]


class LeNetOptions(ModelOptions):
    batchnorm: bool = Field(False, description="BatchNormalization after each convolution")


class MlpOptions(ModelOptions):
    units: HiddenSizes = Field(MLP_UNITS, min_length=1, description="hidden layer sizes, e.g. 400,200")


class Mlp1LayerOptions(ModelOptions):
    units: HiddenSizes = Field(MLP_1LAYER_UNITS, min_length=1, description="hidden layer sizes, e.g. 400,200")


class ResnetSmallOptions(ModelOptions):
    depth: int = Field(RESNET_BLOCKS_PER_STAGE, ge=1, description="basic residual blocks per stage")
    width: int = Field(RESNET_WIDTH, ge=4, description="filters of the first stage (the next ones have 2 and 4 "
                                                        "times as many)")


def _lenet_features(x: KerasTensor, options: LeNetOptions, activation: str, pooling: type) -> KerasTensor:
    for index, filters in enumerate(LENET_FILTERS, start=1):
        x = keras.layers.Conv2D(filters, 5, name=f"conv{index}", activation=None if options.batchnorm else activation,
                                use_bias=not options.batchnorm)(x)
        if options.batchnorm:
            x = keras.layers.BatchNormalization(name=f"bn{index}")(x)
            x = keras.layers.Activation(activation, name=f"act{index}")(x)
        x = pooling(2, name=f"pool{index}")(x)
    return x


def lenet_features(spec: ModelSpec, x: KerasTensor, context: BuildContext, options: LeNetOptions) -> KerasTensor:
    return _lenet_features(x, options, "relu", keras.layers.MaxPooling2D)


def lenet_classic_features(spec: ModelSpec, x: KerasTensor,
                           context: BuildContext, options: LeNetOptions) -> KerasTensor:
    return _lenet_features(x, options, "tanh", keras.layers.AveragePooling2D)


def dense_head(units: Sequence[int], activation: str = "relu") -> Head:
    """Flatten, then a Dense layer per entry of ``units`` (the last one followed by the dropout)."""

    def head(x: KerasTensor, dropout: float) -> KerasTensor:
        x = keras.layers.Flatten(name="flatten")(x)
        for index, width in enumerate(units, start=1):
            x = keras.layers.Dense(width, activation=activation, name=f"dense{index}")(x)
        return keras.layers.Dropout(dropout, name="dropout")(x)

    return head


def mlp_features(spec: ModelSpec, x: KerasTensor,
                 context: BuildContext, options: MlpOptions | Mlp1LayerOptions) -> KerasTensor:
    """Flatten, then a ReLU Dense layer per hidden size (``--units``)."""
    x = keras.layers.Flatten(name="flatten")(x)
    for index, width in enumerate(options.units, start=1):
        x = keras.layers.Dense(width, activation="relu", name=f"dense{index}")(x)
    return x


def _basic_block(x: KerasTensor, filters: int, stride: int, name: str) -> KerasTensor:
    shortcut = x
    y = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = keras.layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = keras.layers.Activation("relu", name=f"{name}_relu1")(y)
    y = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = keras.layers.BatchNormalization(name=f"{name}_bn2")(y)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_proj")(shortcut)
        shortcut = keras.layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    return keras.layers.Activation("relu", name=f"{name}_out")(keras.layers.Add(name=f"{name}_add")([y, shortcut]))


def resnet_small_features(spec: ModelSpec, x: KerasTensor,
                          context: BuildContext, options: ResnetSmallOptions) -> KerasTensor:
    x = keras.layers.Conv2D(options.width, 3, padding="same", use_bias=False, name="stem_conv")(x)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.Activation("relu", name="stem_relu")(x)
    for stage in range(1, RESNET_STAGES + 1):
        filters = options.width * 2 ** (stage - 1)
        for block in range(1, options.depth + 1):
            stride = 2 if stage > 1 and block == 1 else 1
            x = _basic_block(x, filters, stride, f"stage{stage}_block{block}")
    return x


register_model(ModelSpec(
    name="lenet5", preprocessing="gray", min_size=28, features=lenet_features, head=dense_head(LENET_UNITS),
    recipes=CLASSIC, options=LeNetOptions,
    description="LeNet-5 with ReLU and max-pooling: conv 6@5x5, pool, conv 16@5x5, pool, FC 120, FC 84; grayscale"))
register_model(ModelSpec(
    name="lenet5_classic", preprocessing="gray", min_size=28, features=lenet_classic_features,
    head=dense_head(LENET_UNITS, "tanh"), recipes=CLASSIC, options=LeNetOptions,
    description="LeNet-5 as in 1998: tanh and average pooling; grayscale"))
register_model(ModelSpec(
    name="mlp", preprocessing="gray", min_size=8, features=mlp_features, head=dropout_head,
    recipes=CLASSIC, options=MlpOptions,
    description="a perceptron, hidden sizes --units (default 400,200: 396,210 weights at 28 px, 10 classes); gray"))
register_model(ModelSpec(
    name="mlp_1layer", preprocessing="gray", min_size=8, features=mlp_features, head=dropout_head,
    recipes=CLASSIC, options=Mlp1LayerOptions,
    description="a one-layer perceptron, 500 ReLU units (about the two-layer one's weights); grayscale"))
register_model(ModelSpec(
    name="resnet_small", preprocessing="rescale", min_size=16, features=resnet_small_features, head=pooling_head,
    recipes=RESNET_SMALL, options=ResnetSmallOptions,
    description="a small ResNet from scratch: 3 stages x --depth basic blocks (default 2), --width filters "
                "doubling per stage (default 32-64-128), BatchNormalization"))
