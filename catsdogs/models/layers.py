"""The custom layers every classifier may hold: ``Preprocess`` and ``RandomAffine``.

Both are registered for Keras serialisation under the ``catsdogs`` package, so a saved model loads
in safe mode (no ``Lambda``) wherever this module has been imported; ``catsdogs.models.saving``
imports it for that reason.
"""

from __future__ import annotations

from typing import Any

import keras

from catsdogs.affine_ops import augment_batch
from catsdogs.config import AugmentParams

PREPROCESSING_MODES = ("caffe", "tf", "torch", "rescale", "gray", "none")
# BatchNormalization's momentum in the networks trained from scratch on small sets. Keras's default 0.99 keeps
# 0.99^(steps) of the initial statistics: after five 63-step epochs of the 2,000-image set still 4 %, and
# small_cnn --batchnorm then validated at 0.500 for all five epochs (measured; 0.9: 0.562 to 0.628).
SHORT_EPOCH_BN_MOMENTUM = 0.9
_LUMA = (0.2989, 0.5870, 0.1140)  # ITU-R 601, as tf.image.rgb_to_grayscale weighs R, G and B
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)


@keras.saving.register_keras_serializable(package="catsdogs")
class Preprocess(keras.layers.Layer):
    """Raw RGB in 0-255 -> what a base was trained on (``keras.applications.imagenet_utils`` modes).

    caffe: RGB -> BGR, ImageNet mean subtracted, no scaling (VGG, ResNet50); tf: scaled to [-1, 1]
    (MobileNet, Xception); torch: [0, 1] then ImageNet mean / std (DenseNet); rescale: [0, 1]
    (models trained from scratch); gray: [0, 1] luminance, one channel (the classic networks, made for
    grayscale digits: a grayscale file decodes to three equal channels, which this turns back into one);
    none: unchanged (EfficientNet normalises inside itself).
    """

    def __init__(self, mode: str = "rescale", **kwargs: Any):
        super().__init__(**kwargs)
        if mode not in PREPROCESSING_MODES:
            raise ValueError(f"preprocessing mode must be one of {PREPROCESSING_MODES}, not {mode!r}")
        self.mode = mode

    def call(self, images: Any) -> Any:
        images = keras.ops.cast(images, self.compute_dtype)
        if self.mode == "caffe":
            return images[..., ::-1] - keras.ops.convert_to_tensor(_CAFFE_MEAN_BGR, self.compute_dtype)
        if self.mode == "tf":
            return images / 127.5 - 1.0
        if self.mode == "torch":
            mean = keras.ops.convert_to_tensor(_TORCH_MEAN, self.compute_dtype)
            std = keras.ops.convert_to_tensor(_TORCH_STD, self.compute_dtype)
            return (images / 255.0 - mean) / std
        if self.mode == "rescale":
            return images / 255.0
        if self.mode == "gray":
            luma = keras.ops.convert_to_tensor(_LUMA, self.compute_dtype)
            return keras.ops.sum(images * luma, axis=-1, keepdims=True) / 255.0
        return images

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*input_shape[:-1], 1) if self.mode == "gray" else input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="catsdogs")
class RandomAffine(keras.layers.Layer):
    """ImageDataGenerator's augmentation as a layer, for augmenting on the accelerator inside the model.

    Written in keras.ops (``catsdogs.affine_ops``), so it runs on every backend. Active only when
    ``training`` is true, like Keras's own ``Random*`` layers; inference passes images through.
    """

    def __init__(self, params: AugmentParams | dict[str, Any] | None = None, seed: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(params, dict):
            params = AugmentParams.from_dict(params)
        self.params = params or AugmentParams()
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images: Any, training: bool | None = None) -> Any:
        if not training:
            return images
        return augment_batch(keras.ops.cast(images, self.compute_dtype), self.params, self.seed_generator)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "params": self.params.to_dict(), "seed": self.seed}
