"""``small_cnn``: the report's network trained from scratch, its layers directly in the classifier.

Four blocks of a 3x3 convolution and 2x2 max-pooling (32-64-128-128 filters), then the report's head
(Flatten -> Dropout -> Dense 512). ``batchnorm`` puts BatchNormalization between each convolution
and its ReLU (the convolution then needs no bias), with a momentum for short epochs (``layers``).
"""

from __future__ import annotations

import keras
from keras import KerasTensor
from pydantic import Field

from catsdogs.models.heads import dropout_dense_head
from catsdogs.models.layers import SHORT_EPOCH_BN_MOMENTUM
from catsdogs.models.recipes import SMALL_CNN
from catsdogs.models.registry import BuildContext, ModelOptions, ModelSpec, register_model

FILTERS = (32, 64, 128, 128)


class SmallCnnOptions(ModelOptions):
    batchnorm: bool = Field(False, description="BatchNormalization after each convolution")


def small_cnn_features(spec: ModelSpec, x: KerasTensor, context: BuildContext, options: SmallCnnOptions) -> KerasTensor:
    for index, filters in enumerate(FILTERS, start=1):
        x = keras.layers.Conv2D(filters, 3, use_bias=not options.batchnorm, name=f"conv{index}",
                                activation=None if options.batchnorm else "relu")(x)
        if options.batchnorm:
            x = keras.layers.BatchNormalization(momentum=SHORT_EPOCH_BN_MOMENTUM, name=f"bn{index}")(x)
            x = keras.layers.Activation("relu", name=f"relu{index}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{index}")(x)
    return x


register_model(ModelSpec(
    name="small_cnn", preprocessing="rescale", min_size=46, features=small_cnn_features, head=dropout_dense_head,
    recipes=SMALL_CNN, options=SmallCnnOptions,
    description="the report's CNN from scratch: 4 x (conv 3x3 + max-pool), 32-64-128-128 filters, dense 512"))
