"""The model registry: a model is a name; ``create_model(name, ...)`` builds it.

Every classifier has the same shape, so that prediction, Grad-CAM and feature caching can rely on it:

    image (raw RGB, 0-255) -> [RandomAffine, training only] -> Preprocess(mode) -> base -> head -> output

- ``small_cnn`` is the report's network trained from scratch; its layers sit directly in the classifier.
- Every other name is a ``keras.applications`` base (a nested ``keras.Model``, called with
  ``training=False`` so its BatchNormalization layers stay in inference mode while fine-tuning)
  with a head: the report's ``Flatten -> Dense 256 -> Dropout`` for VGG, global average pooling
  for the others. One table, ``APPLICATIONS``, registers them; ``register_application`` adds more.
- Each base's ImageNet preprocessing is a layer inside the model (no ``Lambda``, so models load in
  Keras safe mode), so every saved model takes raw 0-255 RGB. The report rescaled by 1/255 before
  VGG19, which does not match VGG's ImageNet weights (they expect BGR with the mean subtracted).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras

from catsdogs.augment import AugmentParams, RandomAffine
from catsdogs.cli import UserError

PREPROCESSING_MODES = ("caffe", "tf", "torch", "rescale", "none")
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)


@keras.saving.register_keras_serializable(package="catsdogs")
class Preprocess(keras.layers.Layer):
    """Raw RGB in 0-255 -> what a base was trained on (``keras.applications.imagenet_utils`` modes).

    caffe: RGB -> BGR, ImageNet mean subtracted, no scaling (VGG, ResNet50); tf: scaled to [-1, 1]
    (MobileNet, Xception); torch: [0, 1] then ImageNet mean / std (DenseNet); rescale: [0, 1]
    (models trained from scratch); none: unchanged (EfficientNet normalises inside itself).
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
        return images

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.mode}


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one model name."""

    name: str
    description: str
    preprocessing: str
    min_size: int
    head: str  # "small_cnn", "flatten" (VGG) or "gap" (global average pooling)
    constructor: str | None = None  # the keras.applications attribute, e.g. "VGG19"
    weights_file: Callable[[int, float], str] | None = None  # ImageNet no-top file Keras caches
    weights_url: str = ""
    blocks: tuple[str, ...] = ()  # unfreeze units by name prefix, bottom to top (VGG: block1..block5)
    takes_alpha: bool = False
    default_size: int = 150
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_pretrained_base(self) -> bool:
        return self.constructor is not None


_REGISTRY: dict[str, ModelSpec] = {}
_KERAS_WEIGHTS = "https://storage.googleapis.com/tensorflow/keras-applications/"


def register_model(spec: ModelSpec) -> ModelSpec:
    _REGISTRY[spec.name] = spec
    return spec


def register_application(name: str, constructor: str, preprocessing: str, weights_file: Callable[[int, float], str],
                         weights_url: str, min_size: int = 32, head: str = "gap", **kwargs: Any) -> ModelSpec:
    """Register any ``keras.applications`` base by its constructor name (the mechanism all bases use)."""
    if not hasattr(keras.applications, constructor):
        raise ValueError(f"keras.applications has no {constructor}")
    description = kwargs.pop("description", f"keras.applications.{constructor} base, ImageNet-pretrained")
    return register_model(ModelSpec(name=name, description=description, preprocessing=preprocessing,
                                    min_size=min_size, head=head, constructor=constructor,
                                    weights_file=weights_file, weights_url=weights_url, **kwargs))


def _mobilenet_weights(image_size: int, alpha: float) -> str:
    alpha_text = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}.get(alpha, str(alpha))
    rows = image_size if image_size in (128, 160, 192, 224) else 224  # Keras falls back to 224
    return f"mobilenet_{alpha_text}_{rows}_tf_no_top.h5"


def _mobilenet_v2_weights(image_size: int, alpha: float) -> str:
    rows = image_size if image_size in (96, 128, 160, 192, 224) else 224
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}_no_top.h5"


def _fixed(file_name: str) -> Callable[[int, float], str]:
    return lambda image_size, alpha: file_name


register_model(ModelSpec(
    name="small_cnn", preprocessing="rescale", min_size=46, head="small_cnn",
    description="the report's CNN from scratch: 4 x (conv 3x3 + max-pool), 32-64-128-128 filters, dense 512"))
register_application("vgg16", "VGG16", "caffe", _fixed("vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
                     _KERAS_WEIGHTS + "vgg16/", head="flatten", blocks=tuple(f"block{i}" for i in range(1, 6)))
register_application("vgg19", "VGG19", "caffe", _fixed("vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"),
                     _KERAS_WEIGHTS + "vgg19/", head="flatten", blocks=tuple(f"block{i}" for i in range(1, 6)))
register_application("mobilenet", "MobileNet", "tf", _mobilenet_weights, _KERAS_WEIGHTS + "mobilenet/",
                     takes_alpha=True, description="MobileNet v1 (--alpha 0.25/0.5/0.75/1.0), ImageNet-pretrained")
register_application("mobilenet_v2", "MobileNetV2", "tf", _mobilenet_v2_weights, _KERAS_WEIGHTS + "mobilenet_v2/",
                     takes_alpha=True, description="MobileNet v2 (--alpha), ImageNet-pretrained")
register_application("resnet50", "ResNet50", "caffe", _fixed("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
                     _KERAS_WEIGHTS + "resnet/")
register_application("efficientnet_b0", "EfficientNetB0", "none", _fixed("efficientnetb0_notop.h5"),
                     "https://storage.googleapis.com/keras-applications/")
register_application("xception", "Xception", "tf", _fixed("xception_weights_tf_dim_ordering_tf_kernels_notop.h5"),
                     _KERAS_WEIGHTS + "xception/", min_size=71)
register_application("densenet121", "DenseNet121", "torch",
                     _fixed("densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"), _KERAS_WEIGHTS + "densenet/")


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UserError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}") from None


def keras_cache_dir() -> Path:
    """Where Keras caches downloaded weights: ``$KERAS_HOME/models`` (default ``~/.keras/models``)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def offline() -> bool:
    """``CATSDOGS_OFFLINE=1`` promises no network: fail at once instead of trying a download."""
    return os.environ.get("CATSDOGS_OFFLINE", "").lower() not in ("", "0", "false", "no")


def _resolve_weights(spec: ModelSpec, weights: str | None, image_size: int, alpha: float) -> str | None:
    """A weights file path (``imagenet``: Keras's cache, else a download) or None; fail early with a fix."""
    if weights in (None, "none", "None"):
        return None
    if weights != "imagenet":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise UserError(f"weights file {path} does not exist")
        return str(path)
    assert spec.weights_file is not None
    file_name = spec.weights_file(image_size, alpha)
    cached = keras_cache_dir() / file_name
    if cached.is_file():  # load it by path: Keras reads KERAS_HOME only once, when it is imported
        return str(cached)
    if offline():
        raise UserError(_missing_weights_message(spec, file_name, "offline mode (CATSDOGS_OFFLINE) is set"))
    # Download into $KERAS_HOME/models ourselves: Keras reads KERAS_HOME once, at import, so asking it for
    # "imagenet" would ignore a KERAS_HOME set later and could find a file in another cache.
    try:
        return keras.utils.get_file(file_name, origin=spec.weights_url + file_name,
                                    cache_dir=str(keras_cache_dir().parent), cache_subdir="models")
    except Exception as exc:  # Keras raises a bare Exception("URL fetch failure ...") when offline
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        reason = "no network" if "URL fetch failure" in first_line else f"download failed: {first_line[:100]}"
        raise UserError(_missing_weights_message(spec, file_name, reason)) from None


def _missing_weights_message(spec: ModelSpec, file_name: str, reason: str) -> str:
    return (f"ImageNet weights for {spec.name} are not cached and cannot be downloaded ({reason}): "
            f"put {file_name} (from {spec.weights_url}{file_name}) in {keras_cache_dir()}/ "
            f"or pass --weights PATH (or --weights none to train from scratch)")


def build_base(spec: ModelSpec, image_size: int, weights: str | None = "imagenet", alpha: float = 1.0) -> keras.Model:
    """The ``keras.applications`` base without its top, loaded with ``weights``."""
    resolved = _resolve_weights(spec, weights, image_size, alpha)
    kwargs: dict[str, Any] = {"include_top": False, "weights": resolved, "input_shape": (image_size, image_size, 3)}
    if spec.takes_alpha:
        kwargs["alpha"] = alpha
    constructor = getattr(keras.applications, spec.constructor)
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


def _output_layer(num_classes: int) -> keras.layers.Dense:
    # float32 output even under mixed precision, so the loss and probabilities are exact.
    if num_classes == 2:
        return keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="output")
    return keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="output")


def _small_cnn_body(x: Any, batchnorm: bool, dropout: float) -> Any:
    for index, filters in enumerate((32, 64, 128, 128), start=1):
        x = keras.layers.Conv2D(filters, 3, use_bias=not batchnorm, name=f"conv{index}",
                                activation=None if batchnorm else "relu")(x)
        if batchnorm:
            x = keras.layers.BatchNormalization(name=f"bn{index}")(x)
            x = keras.layers.Activation("relu", name=f"relu{index}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{index}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    return keras.layers.Dense(512, activation="relu", name="dense")(x)


def _head(x: Any, kind: str, dropout: float) -> Any:
    if kind == "flatten":  # the report's VGG head
        x = keras.layers.Flatten(name="flatten")(x)
        x = keras.layers.Dense(256, activation="relu", name="dense")(x)
        return keras.layers.Dropout(dropout, name="dropout")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.layers.Dropout(dropout, name="dropout")(x)


def create_model(
    name: str,
    image_size: int = 150,
    num_classes: int = 2,
    weights: str | None = "imagenet",
    unfreeze: str = "none",
    dropout: float = 0.5,
    alpha: float = 1.0,
    batchnorm: bool = False,
    augmentation: AugmentParams | None = None,
    seed: int | None = None,
) -> keras.Model:
    """Build a registered classifier for square RGB images in 0-255.

    ``weights``: "imagenet" (Keras's cache, honouring KERAS_HOME), a path to a weights file, or
    None; ignored by ``small_cnn``. ``unfreeze``: see ``set_trainable``. ``augmentation`` puts a
    ``RandomAffine`` layer inside the model (for augmenting on the accelerator).
    """
    spec = get_spec(name)
    if image_size < spec.min_size:
        raise UserError(f"{name} needs images of at least {spec.min_size} px, got --image-size {image_size}")
    if num_classes < 2:
        raise UserError(f"a classifier needs at least 2 classes, got {num_classes}")
    if alpha != 1.0 and not spec.takes_alpha:
        raise UserError(f"--alpha applies to mobilenet and mobilenet_v2 only, not {name}")

    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = inputs
    if augmentation is not None and not augmentation.is_identity:
        x = RandomAffine(augmentation, seed=seed, name="augment")(x)
    x = Preprocess(spec.preprocessing, name="preprocess")(x)
    if spec.head == "small_cnn":
        x = _small_cnn_body(x, batchnorm, dropout)
    else:
        base = build_base(spec, image_size, weights, alpha)
        # training=False: BatchNormalization stays in inference mode even when the base is unfrozen.
        x = base(x, training=False)
        x = _head(x, spec.head, dropout)
    model = keras.Model(inputs, _output_layer(num_classes)(x), name=name)
    set_trainable(model, unfreeze)
    return model


def find_base(model: keras.Model) -> keras.Model | None:
    """The nested ``keras.applications`` base of a classifier built here (None for small_cnn)."""
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return nested[0] if nested else None


def unfreeze_choices(name: str) -> list[str]:
    spec = get_spec(name)
    if not spec.is_pretrained_base:
        return ["none", "all"]
    return ["none", *reversed(spec.blocks), "all", "<fraction in (0, 1]>", "<layer name>"]


def set_trainable(model: keras.Model, unfreeze: str = "none") -> list[str]:
    """Freeze the base, then unfreeze its top part; return the names of the base layers left trainable.

    ``unfreeze``: ``none`` (train the head only), ``all``, ``blockK`` (VGG: blocks K..5, e.g.
    ``block5`` = block5_conv1..4), a fraction such as ``0.25`` (the top quarter of the base's layers
    with weights, BatchNormalization not counted), or a layer name (that layer and every layer above
    it). BatchNormalization layers stay frozen in a partly or fully unfrozen base. The head is always trainable.
    """
    base = find_base(model)
    unfreeze = str(unfreeze).strip()
    if base is None:
        if unfreeze not in ("none", "all"):
            raise UserError(f"--unfreeze applies to pretrained bases; {model.name} trains all its layers")
        model.trainable = True
        return []
    model.trainable = True
    base.trainable = True  # set per layer below
    # The units that unfreezing counts: layers with weights, BatchNormalization aside (it stays frozen).
    layers = [layer for layer in base.layers
              if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)]
    chosen = _layers_to_unfreeze(base, layers, unfreeze)
    for layer in base.layers:
        layer.trainable = layer.name in chosen and not isinstance(layer, keras.layers.BatchNormalization)
    if not any(layer.trainable for layer in base.layers):
        base.trainable = False
    return [layer.name for layer in base.layers if layer.trainable and layer.weights]


def _layers_to_unfreeze(base: keras.Model, layers: list[keras.layers.Layer], unfreeze: str) -> set[str]:
    names = [layer.name for layer in layers]
    if unfreeze == "none":
        return set()
    if unfreeze == "all":
        return set(names)
    match = re.fullmatch(r"block(\d+)", unfreeze)
    if match:
        blocks = sorted({int(m.group(1)) for n in names if (m := re.match(r"block(\d+)_", n))})
        if not blocks or int(match.group(1)) not in blocks:
            raise UserError(f"{base.name} has no {unfreeze}; choose from "
                            f"{', '.join(f'block{b}' for b in reversed(blocks)) or 'a fraction or a layer name'}")
        first = int(match.group(1))
        return {n for n in names if (m := re.match(r"block(\d+)_", n)) and int(m.group(1)) >= first}
    try:
        fraction = float(unfreeze)
    except ValueError:
        fraction = None
    if fraction is not None:
        if not 0 < fraction <= 1:
            raise UserError(f"--unfreeze {unfreeze}: a fraction must be in (0, 1]")
        count = max(1, round(fraction * len(names)))
        return set(names[-count:])
    all_names = [layer.name for layer in base.layers]
    if unfreeze not in all_names:
        raise UserError(f"{base.name} has no layer {unfreeze!r}; use none, all, a fraction, a block name, "
                        f"or a layer name such as {names[-1]!r}")
    start = all_names.index(unfreeze)
    return {n for n in all_names[start:] if n in names}


def describe(name: str) -> str:
    spec = get_spec(name)
    return f"{spec.name:16s} {spec.description} (min {spec.min_size} px, preprocessing: {spec.preprocessing})"
