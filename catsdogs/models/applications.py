"""ImageNet-pretrained ``keras.applications`` bases, registered by one table of calls.

Each base is nested in the classifier as one layer and called with ``training=False``, so its
BatchNormalization layers stay in inference mode while fine-tuning. Its weights come from
``catsdogs.models.weights`` (a local file, Keras's cache or a download). ``register_application``
adds any other ``keras.applications`` base in one line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import keras
from keras import KerasTensor
from pydantic import Field

from catsdogs.errors import UserError
from catsdogs.models.heads import Head, flatten_dense_head, pooling_head
from catsdogs.models.recipes import TRANSFER, VGG, Recipe
from catsdogs.models.registry import BuildContext, ModelOptions, ModelSpec, PretrainedBase, register_model
from catsdogs.models.unfreeze import BlockMatcher
from catsdogs.models.weights import KERAS_WEIGHTS_URL, resolve_weights

_ALPHA_TEXT = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}


class MobileNetOptions(ModelOptions):
    alpha: float = Field(1.0, gt=0,
                         description="width multiplier of every layer (MobileNet's ImageNet weights: 0.25 to 1.0)")


def build_base(spec: ModelSpec, image_size: int, weights: str | None = "imagenet", alpha: float = 1.0) -> keras.Model:
    """The ``keras.applications`` base without its top, loaded with ``weights``."""
    pretrained = spec.pretrained
    if pretrained is None:
        raise ValueError(f"{spec.name} is not a keras.applications base")
    resolved = resolve_weights(spec.name, weights, pretrained.weights_files(image_size, alpha), pretrained.weights_url)
    kwargs: dict[str, Any] = {"include_top": False, "weights": resolved, "input_shape": (image_size, image_size, 3)}
    if "alpha" in spec.options.model_fields:
        kwargs["alpha"] = alpha
    constructor = getattr(keras.applications, pretrained.constructor)
    try:
        base = constructor(**kwargs)
    except Exception as exc:  # Keras raises a bare Exception when a download fails
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if resolved is not None:
            raise UserError(f"weights file {resolved} does not fit {spec.name} without its top "
                            f"at alpha={alpha}: {first_line}") from None
        if isinstance(exc, ValueError):
            raise UserError(f"{spec.name}: {first_line}") from None
        raise
    base.name = spec.name  # a stable name to find it by (Keras appends sizes for MobileNet)
    return base


def application_features(spec: ModelSpec, x: KerasTensor, context: BuildContext, options: ModelOptions) -> KerasTensor:
    base = build_base(spec, context.image_size, context.weights, getattr(options, "alpha", 1.0))
    return base(x, training=False)  # BatchNormalization stays in inference mode even when unfrozen


def register_application(name: str, constructor: str, preprocessing: str, weights_file: Callable[[int, float], str],
                         weights_url: str, min_size: int = 32, head: Head = pooling_head,
                         blocks: BlockMatcher | None = None, options: type[ModelOptions] = ModelOptions,
                         description: str | None = None, recipes: Mapping[str, Recipe] = TRANSFER,
                         trained_sizes: tuple[int, ...] = ()) -> ModelSpec:
    """Register any ``keras.applications`` base by its constructor name (the mechanism all bases use)."""
    if not hasattr(keras.applications, constructor):
        raise ValueError(f"keras.applications has no {constructor}")
    return register_model(ModelSpec(
        name=name, description=description or f"keras.applications.{constructor} base, ImageNet-pretrained",
        preprocessing=preprocessing, min_size=min_size, features=application_features, head=head, blocks=blocks,
        pretrained=PretrainedBase(constructor, weights_file, weights_url, trained_sizes), options=options,
        recipes=recipes))


MOBILENET_SIZES = (128, 160, 192, 224)  # Keras publishes one ImageNet checkpoint per training size
MOBILENET_V2_SIZES = (96, 128, 160, 192, 224)


def mobilenet_weights(image_size: int, alpha: float) -> str:
    rows = image_size if image_size in MOBILENET_SIZES else 224  # Keras falls back to 224
    return f"mobilenet_{_ALPHA_TEXT.get(alpha, str(alpha))}_{rows}_tf_no_top.h5"


def mobilenet_v2_weights(image_size: int, alpha: float) -> str:
    rows = image_size if image_size in MOBILENET_V2_SIZES else 224
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}_no_top.h5"


def fixed_file(file_name: str) -> Callable[[int, float], str]:
    return lambda image_size, alpha: file_name


NUMBERED_BLOCKS = BlockMatcher(r"block(\d+)_")  # VGG: block5_conv1..4 are block 5; Xception: block14_sepconv2
MOBILENET_BLOCKS = BlockMatcher(r"conv_(?:dw|pw)_(\d+)")  # conv_dw_13 and conv_pw_13 are block 13

register_application("vgg16", "VGG16", "caffe", fixed_file("vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
                     KERAS_WEIGHTS_URL + "vgg16/", head=flatten_dense_head, blocks=NUMBERED_BLOCKS, recipes=VGG)
register_application("vgg19", "VGG19", "caffe", fixed_file("vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"),
                     KERAS_WEIGHTS_URL + "vgg19/", head=flatten_dense_head, blocks=NUMBERED_BLOCKS, recipes=VGG)
register_application("mobilenet", "MobileNet", "tf", mobilenet_weights, KERAS_WEIGHTS_URL + "mobilenet/",
                     blocks=MOBILENET_BLOCKS, options=MobileNetOptions, trained_sizes=MOBILENET_SIZES,
                     description="MobileNet v1 (--alpha 0.25/0.5/0.75/1.0), ImageNet-pretrained")
register_application("mobilenet_v2", "MobileNetV2", "tf", mobilenet_v2_weights, KERAS_WEIGHTS_URL + "mobilenet_v2/",
                     blocks=BlockMatcher(r"block_(\d+)_"), options=MobileNetOptions, trained_sizes=MOBILENET_V2_SIZES,
                     description="MobileNet v2 (--alpha), ImageNet-pretrained")
register_application("resnet50", "ResNet50", "caffe",
                     fixed_file("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"), KERAS_WEIGHTS_URL + "resnet/")
register_application("efficientnet_b0", "EfficientNetB0", "none", fixed_file("efficientnetb0_notop.h5"),
                     "https://storage.googleapis.com/keras-applications/")
register_application("xception", "Xception", "tf", fixed_file("xception_weights_tf_dim_ordering_tf_kernels_notop.h5"),
                     KERAS_WEIGHTS_URL + "xception/", min_size=71, blocks=NUMBERED_BLOCKS)
register_application("densenet121", "DenseNet121", "torch",
                     fixed_file("densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"),
                     KERAS_WEIGHTS_URL + "densenet/")
